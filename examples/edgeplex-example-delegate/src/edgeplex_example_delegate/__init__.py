"""An example edgeplex delegate: float32 ADD, MUL and RELU in numpy."""
from __future__ import annotations

from .delegate import ExampleDelegate, ExampleKernel

__all__ = ["ExampleDelegate", "ExampleKernel"]
__version__ = "0.1.0"
