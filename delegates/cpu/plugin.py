"""Entry point module of the built-in ``cpu`` delegate (group ``edgeplex.delegates``).

edgeplex's own pyproject declares it exactly as a third-party package
would: ``[project.entry-points."edgeplex.delegates"] cpu = "edgeplex.delegates.cpu.plugin"``.
"""
from __future__ import annotations

from typing import Any

from edgeplex.delegates.hookspecs import hookimpl

from .delegate import CPUDelegate


@hookimpl
def edgeplex_delegates() -> list[Any]:
    """The CPU delegate."""
    return [CPUDelegate]
