"""Every hook a delegate plugin can implement (the pluggy project ``"edgeplex"``).

A plugin is a module named by an entry point in the group
``edgeplex.delegates``; it marks its hook functions with
``@edgeplex.hookimpl``. New hooks and new hook arguments are only ever
added, and an implementation may accept a subset of a hook's arguments,
so a plugin written today keeps working.
"""
from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "edgeplex"

#: Marks hook specifications (this module only).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementations: ``@edgeplex.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def edgeplex_delegates() -> list[Callable[..., Any]]:
    """Return the delegates this plugin provides.

    Arguments: none.

    Returns: a list of delegate classes (subclasses of ``edgeplex.Delegate``)
    or factories. Each has a class attribute ``name`` (a non-empty str such
    as ``"acme-npu"``, unique across installed plugins) and is called with
    the user's options for that delegate as keyword arguments
    (``[edgeplex.delegate.acme-npu]`` in ``edgeplex.toml`` or
    ``delegate_options={"acme-npu": {...}}``) to create an instance.

    When called: once per process per plugin, the first time delegates are
    looked up (an ``Interpreter`` asking for a delegate other than the CPU,
    ``edgeplex.load_delegate``, ``edgeplex delegates``). Each plugin's
    implementation is called on its own: one that raises is listed as
    broken and the others still work. Do not touch hardware here; do that
    in the delegate's ``__init__`` or ``is_available``.
    """
    raise NotImplementedError  # pragma: no cover - a specification only
