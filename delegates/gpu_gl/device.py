"""OpenGL contexts with compute shaders, opened once per process.

moderngl is imported here, lazily: importing the delegate never touches
the GL driver, and a machine without moderngl, EGL or a GL 4.3 driver gets
an explanation (:class:`GLUnavailable`) instead of a crash.

A :class:`GLDevice` is one context plus what it offers (version, renderer,
extensions) and the process-wide cache of compiled compute programs, keyed
by their complete source text: a program is compiled once per op
configuration for the life of the process.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

#: GL 4.3 is the first desktop version with compute shaders and SSBOs.
REQUIRED_GL = 430
#: backends tried, in order, by backend="auto" (None: the platform's default).
AUTO_BACKENDS: tuple[str | None, ...] = ("egl", None)
#: GLSL extensions that give 16-bit float arithmetic in shaders.
FP16_ARITHMETIC_EXTENSIONS = ("GL_NV_gpu_shader5", "GL_AMD_gpu_shader_half_float")


class GLUnavailable(Exception):
    """No usable OpenGL compute context: the message says why."""


@dataclass
class GLDevice:
    """One OpenGL context with compute shaders, and its compiled programs."""

    ctx: Any
    backend: str
    index: int
    renderer: str
    version: str
    extensions: frozenset[str]
    max_storage_blocks: int
    max_block_bytes: int
    programs: dict[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def fp16_arithmetic(self) -> str | None:
        """The extension offering float16 shader arithmetic, or None."""
        return next((e for e in FP16_ARITHMETIC_EXTENSIONS if e in self.extensions), None)

    def describe(self) -> str:
        """``llvmpipe (LLVM 15.0.6, 256 bits), OpenGL 4.5 (Core Profile) Mesa 22.3.6 via egl``."""
        return f"{self.renderer}, OpenGL {self.version} via {self.backend}"

    def program(self, source: str) -> Any:
        """The compute program for ``source``, compiled on first use."""
        prog = self.programs.get(source)
        if prog is None:
            try:
                prog = self.ctx.compute_shader(source)
            except Exception as e:
                raise RuntimeError(f"GLSL compile error on {self.renderer}: {e}\n"
                                   f"--- source ---\n{_numbered(source)}") from e
            self.programs[source] = prog
        return prog

    def collect(self) -> int:
        """Release the GL objects Python has dropped (call with the context current)."""
        return int(self.ctx.gc())

    def buffer(self, data: bytes | None = None, reserve: int = 0) -> Any:
        """A new storage buffer holding ``data`` (or ``reserve`` zero bytes)."""
        if data is not None:
            return self.ctx.buffer(data)
        return self.ctx.buffer(reserve=max(int(reserve), 16))


def _numbered(source: str) -> str:
    return "\n".join(f"{i + 1:4d} {line}" for i, line in enumerate(source.splitlines()))


_devices: dict[tuple[str, int], GLDevice | GLUnavailable] = {}
_lock = threading.Lock()


def open_device(backend: str = "auto", index: int = 0) -> GLDevice:
    """The shared device for ``backend`` ("egl" or "auto") and GPU ``index``.

    Raises :class:`GLUnavailable` with every attempt's reason; failures are
    remembered too, so asking again costs nothing.
    """
    key = (backend, int(index))
    with _lock:
        if key not in _devices:
            try:
                _devices[key] = _open(backend, int(index))
            except GLUnavailable as e:
                _devices[key] = e
        found = _devices[key]
    if isinstance(found, GLUnavailable):
        raise found
    return found


def _open(backend: str, index: int) -> GLDevice:
    try:
        import moderngl
    except ImportError as e:
        raise GLUnavailable(f"moderngl is not installed ({e}); install edgeplex[gpu]") from None
    tries = ("egl",) if backend == "egl" else AUTO_BACKENDS
    reasons = []
    for name in tries:
        try:
            return _context(moderngl, name, index)
        except GLUnavailable as e:
            reasons.append(str(e))
    raise GLUnavailable("; ".join(reasons))


def _context(moderngl: Any, backend: str | None, index: int) -> GLDevice:
    label = backend or "platform default"
    kwargs: dict[str, Any] = {"require": REQUIRED_GL}
    if backend is not None:
        kwargs["backend"] = backend
        if backend == "egl":
            kwargs["device_index"] = index
    elif index:
        raise GLUnavailable(f"{label}: cannot choose device {index} (only EGL enumerates GPUs)")
    try:
        ctx = moderngl.create_standalone_context(**kwargs)
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GLUnavailable(f"{label}: no OpenGL {REQUIRED_GL // 100}.{REQUIRED_GL % 100 // 10} "
                            f"context with compute shaders ({text})") from None
    # dropped buffers are queued and released by GLDevice.collect() with the context current
    ctx.gc_mode = "context_gc"
    info = ctx.info
    return GLDevice(ctx, backend or "default", index, str(info.get("GL_RENDERER", "?")),
                    str(info.get("GL_VERSION", "?")), frozenset(ctx.extensions),
                    int(info.get("GL_MAX_COMPUTE_SHADER_STORAGE_BLOCKS", 8)),
                    int(info.get("GL_MAX_SHADER_STORAGE_BLOCK_SIZE", 2 ** 24)))


def forget_devices() -> None:
    """Drop the cached devices and failures (tests that fake the driver use it)."""
    with _lock:
        _devices.clear()
