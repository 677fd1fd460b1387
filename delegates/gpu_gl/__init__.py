"""The built-in ``gpu`` delegate: OpenGL 4.3 compute shaders (moderngl, headless EGL).

Importing this package never touches the GL driver or imports moderngl; the
context is opened by ``GPUDelegate.is_available()`` or the first prepare.
"""
from __future__ import annotations

from .delegate import GPUDelegate

__all__ = ["GPUDelegate"]
