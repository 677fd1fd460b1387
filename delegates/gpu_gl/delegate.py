"""The ``gpu`` delegate: OpenGL compute shaders through moderngl, headless.

Options (``delegate_options={"gpu": {...}}`` or ``[edgeplex.delegate.gpu]``):

- ``precision``: "fp32" (default) or "fp16". fp16 stores every tensor and
  weight as float16 pairs in 32-bit words (``packHalf2x16``, core since GLSL
  4.20, so every GL 4.3 driver offers it) and computes in float32: GL has no
  core float16 arithmetic, and the vendor extensions that add it
  (GL_NV_gpu_shader5, GL_AMD_gpu_shader_half_float) are only reported —
  :meth:`GPUDelegate.precision_note` says what the current driver does.
- ``backend``: "auto" (headless EGL first, then the platform's default
  context) or "egl" (EGL only).
- ``device``: which GPU, by EGL device index, where several exist.
"""
from __future__ import annotations

import logging
import weakref
from typing import Any

import numpy as np

from edgeplex.delegates.api import Delegate, Option, Unsupported

from .capabilities import Limits, check_node
from .device import GLDevice, GLUnavailable, open_device
from .memory import GLTensor, encode, storage_bytes

log = logging.getLogger("edgeplex.delegates.gpu")


class GPUDelegate(Delegate):
    """Float ops on the GPU via OpenGL 4.3 compute shaders (moderngl, headless EGL)."""

    name = "gpu"
    memory_domain = "gl"
    OPTIONS = {
        "precision": Option("fp32", "storage precision of tensors and weights (fp16: float16 "
                            "storage, float32 arithmetic)", choices=("fp32", "fp16")),
        "backend": Option("auto", "auto: EGL, then the platform's default; egl: EGL only",
                          choices=("egl", "auto")),
        "device": Option(0, "GPU index (EGL device) when there are several", type=int),
    }
    #: host <-> GPU copy rate assumed by cost-based placement (PCIe-class)
    transfer_bytes_per_second = 8e9

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["device"] < 0:
            from edgeplex.core.errors import ConfigError
            raise ConfigError(f"[edgeplex.delegate.gpu] device = {self.options['device']} "
                              "must be >= 0")
        self.fp16 = self.options["precision"] == "fp16"
        self._device: GLDevice | None = None
        self._reason: str | None = None
        self._uploads: dict[int, tuple[Any, GLTensor]] = {}

    # -- availability ------------------------------------------------------------------
    @property
    def device(self) -> GLDevice:
        """The GL device (opened on first use); GLUnavailable when there is none."""
        if self._device is None:
            if self._reason is not None:
                raise GLUnavailable(self._reason)
            try:
                self._device = open_device(self.options["backend"], self.options["device"])
            except GLUnavailable as e:
                self._reason = str(e)
                raise
            if self.fp16:
                log.info("gpu delegate: %s", self.precision_note())
        return self._device

    def is_available(self) -> bool:
        """True when an OpenGL 4.3 context with compute shaders can be created."""
        try:
            return self.device is not None
        except GLUnavailable:
            return False

    def unavailable_reason(self) -> str:
        """Why there is no usable context ("" when there is one)."""
        if self.is_available():
            return ""
        return f"no OpenGL compute-shader context: {self._reason}"

    def precision_note(self) -> str:
        """What ``precision`` means on this driver."""
        if not self.fp16:
            return "fp32 storage and arithmetic"
        ext = self.device.fp16_arithmetic
        extra = (f"; {ext} offers float16 arithmetic, which this delegate does not use"
                 if ext else "; the driver offers no float16 shader arithmetic")
        return f"fp16 storage (packHalf2x16), fp32 arithmetic{extra}"

    def describe(self) -> str:
        """The GL device and precision, for logs and benchmarks."""
        return f"{self.device.describe()}; {self.precision_note()}"

    # -- placement and compilation --------------------------------------------------------
    def supports(self, node: Any) -> bool | Unsupported:
        """True for the float ops in the capability table; else the reason."""
        dev = self._device
        limits = Limits(dev.max_storage_blocks, dev.max_block_bytes) if dev else Limits()
        reason = check_node(node, limits)
        return True if reason is None else Unsupported(reason)

    def prepare(self, partition: Any) -> Any:
        """Compile the partition: programs, constants and buffers, once."""
        from .compiler import compile_partition
        return compile_partition(self.device, partition, self.fp16)

    def estimate_seconds(self, node: Any) -> float:
        """A rough cost for placement by cost: output elements at 1e9 per second."""
        return float(sum(int(np.prod(t.shape)) for t in node.outputs)) / 1e9 + 2e-5

    # -- the "gl" memory domain -----------------------------------------------------------
    def from_host(self, array: np.ndarray) -> GLTensor:
        """Copy ``array`` into a GL buffer (one buffer per host array, reused)."""
        a = np.asarray(array)
        if a.dtype.kind != "f":
            raise TypeError(f"the GPU holds float tensors, not {a.dtype}")
        data = encode(a, "data", self.fp16)
        entry = self._uploads.get(id(array))
        dev = self.device
        with dev.lock, dev.ctx:
            if entry is not None and entry[0]() is array and entry[1].shape == a.shape \
                    and entry[1].dtype == a.dtype:
                entry[1].buffer.write(data)
                return entry[1]
            value = GLTensor(dev.buffer(data), a.shape, a.dtype, self.fp16, dev)
        self._remember(array, value)
        return value

    def _remember(self, array: Any, value: GLTensor) -> None:
        key = id(array)
        uploads = self._uploads
        try:
            ref = weakref.ref(array, lambda _r, k=key: uploads.pop(k, None))
        except TypeError:
            return
        uploads[key] = (ref, value)

    def to_host(self, value: GLTensor) -> np.ndarray:
        """A host array of ``value`` in its declared dtype."""
        if not isinstance(value, GLTensor):
            raise TypeError(f"expected a GLTensor, got {value!r}")
        with value.device.lock, value.device.ctx:
            return value.numpy()

    @staticmethod
    def buffer_bytes(value: GLTensor) -> int:
        """Bytes a value occupies on the GPU."""
        return storage_bytes(value.size, "data", value.fp16)
