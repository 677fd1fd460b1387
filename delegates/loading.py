"""``edgeplex.load_delegate``: a delegate instance for ``experimental_delegates``."""
from __future__ import annotations

from typing import Any, Mapping

from edgeplex.core.errors import DelegateError, EdgeplexError


def load_delegate(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Create the delegate called ``name`` with ``options``.

    Unknown names and bad options are ConfigErrors (naming what is valid);
    a delegate whose construction fails otherwise is a DelegateError.
    The instance goes to ``Interpreter(..., experimental_delegates=[...])``,
    ahead of any delegates named by config.
    """
    from .discovery import CPU, LoadSettings, registry
    reg = registry(LoadSettings.from_env(), cpu_only=(name == CPU))
    try:
        return reg.create(name, dict(options or {}))
    except EdgeplexError:
        raise
    except Exception as e:
        raise DelegateError(f"delegate {name!r} failed to initialise: "
                            f"{type(e).__name__}: {e}") from e
