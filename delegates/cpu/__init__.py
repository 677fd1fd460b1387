"""The built-in ``cpu`` delegate: edgeplex's numpy kernels."""
from __future__ import annotations

from .delegate import CPUDelegate, CPUKernel

__all__ = ["CPUDelegate", "CPUKernel"]
