"""Entry point module of the built-in ``gpu`` delegate (group ``edgeplex.delegates``).

edgeplex's pyproject declares it as a third-party package would:
``[project.entry-points."edgeplex.delegates"] gpu = "edgeplex.delegates.gpu_gl.plugin"``.
"""
from __future__ import annotations

from typing import Any

from edgeplex.delegates.hookspecs import hookimpl

from .delegate import GPUDelegate


@hookimpl
def edgeplex_delegates() -> list[Any]:
    """The GPU delegate."""
    return [GPUDelegate]
