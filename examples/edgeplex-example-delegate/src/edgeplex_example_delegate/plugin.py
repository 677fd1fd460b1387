"""The module the entry point names: it implements the ``edgeplex_delegates`` hook.

Keep this module cheap to import: edgeplex imports it when it looks for
delegates. Touch hardware in the delegate, not here.
"""
from __future__ import annotations

from typing import Any

import edgeplex

from .delegate import ExampleDelegate


@edgeplex.hookimpl
def edgeplex_delegates() -> list[Any]:
    """The delegates this package provides."""
    return [ExampleDelegate]
