"""Geometry shared by windowed ops (convolutions and pooling), NHWC / NDHWC.

An :class:`Axis` describes one spatial axis: input size, filter size, stride,
dilation, output size and padding, as TFLite computes them. On top of that:

* :class:`PaddedInput` — a buffer allocated once in prepare whose zero (or
  ``-inf``) border is written once; each run copies only the interior.
* :func:`window_view` — the im2col view ``(N, *out, *taps, C)`` of a padded
  input, built with ``as_strided`` (no copy).
* :func:`tap_views` — one output-aligned strided view per filter tap, for
  kernels that loop over taps (depthwise convolution, pooling).
* :class:`TapRows` — the input laid out so that all filter taps of all output
  rows are one strided view ``(N, out_h, kh, kw, out_w * C)`` whose last axis
  is contiguous (what a per-tap multiply-accumulate wants: long inner loops).
* :class:`ViewCache` — rebuilds such views only when the source array changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgeplex.core.kernel_api import OpContext

from .common import window_padding

Index = tuple[slice, ...]


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a windowed op."""

    size: int       # input extent
    filter: int     # filter taps
    stride: int
    dilation: int
    out: int        # output extent
    before: int     # padding before
    after: int      # padding after

    @property
    def padded(self) -> int:
        """Extent of the padded input."""
        return self.size + self.before + self.after

    def tap(self, k: int) -> slice:
        """Slice of the padded input that tap ``k`` reads for every output position."""
        start = k * self.dilation
        return slice(start, start + (self.out - 1) * self.stride + 1, self.stride)


def window_axes(ctx: OpContext, padding: str, sizes: Sequence[int], filters: Sequence[int],
                strides: Sequence[int], dilations: Sequence[int] | None = None
                ) -> tuple[Axis, ...]:
    """The spatial axes of a windowed op (TFLite's output size and padding)."""
    dilations = dilations or [1] * len(sizes)
    axes = []
    for size, f, s, d in zip(sizes, filters, strides, dilations):
        if f < 1:
            raise ctx.invalid(f"filter size {f} must be >= 1")
        out, before, after = window_padding(ctx, padding, size, f, s, d)
        axes.append(Axis(size, f, s, d, out, before, after))
    return tuple(axes)


def needs_padding(axes: Sequence[Axis]) -> bool:
    """True if any axis is padded."""
    return any(a.before or a.after for a in axes)


class PaddedInput:
    """A preallocated, border-filled copy of an ``(N, *spatial, C)`` input.

    Calling it with the input returns the padded array (the input itself when
    no axis is padded and ``repeat`` is 1). The border is written once, in the
    constructor. With ``repeat`` > 1 each channel is stored ``repeat`` times
    in a row (channel ``c * repeat + r`` holds input channel ``c``).
    """

    def __init__(self, shape: Sequence[int], axes: Sequence[Axis], dtype: Any,
                 fill: float = 0, repeat: int = 1) -> None:
        self.buffer: np.ndarray | None = None
        self.interior: np.ndarray | None = None
        self.repeat = repeat
        if needs_padding(axes) or repeat > 1:
            padded = (shape[0], *(a.padded for a in axes), shape[-1] * repeat)
            self.buffer = np.full(padded, fill, dtype=dtype)
            inner = self.buffer[(slice(None), *(slice(a.before, a.before + a.size) for a in axes))]
            self.interior = as_shape(inner, (*inner.shape[:-1], shape[-1], repeat))

    @property
    def nbytes(self) -> int:
        """Scratch bytes held."""
        return 0 if self.buffer is None else self.buffer.nbytes

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.buffer is None:
            return x
        np.copyto(self.interior, x[..., None])
        return self.buffer


class TapRows:
    """All filter taps of an ``(N, H, W, C)`` input as one ``(N, out_h, kh, kw, out_w * C')``
    view (``C' = C * repeat``) whose last axis is contiguous.

    Element ``[n, y, ky, kx, x * C' + c]`` is the padded input at row
    ``y * stride_h + ky * dilation_h``, column ``x * stride_w + kx * dilation_w``,
    channel ``c`` (channels repeated as in :class:`PaddedInput`). With stride 1
    along the width that is a strided view of the padded input itself. With a
    larger stride each column tap is gathered once per run into a buffer
    ``(N, padded_h, kw, out_w, C')`` allocated here (border filled once), so the
    inner axis stays contiguous.
    """

    def __init__(self, shape: Sequence[int], axes: Sequence[Axis], dtype: Any,
                 fill: float = 0, repeat: int = 1) -> None:
        n, _, w, c = shape
        ay, ax = axes
        self.shape = (n, ay.out, ay.filter, ax.filter, ax.out * c * repeat)
        self._steps = (ay.stride, ay.dilation, ax.dilation)
        self._copies: list[tuple[np.ndarray, Index]] = []
        if ax.stride == 1:
            self.pad: PaddedInput | None = PaddedInput(shape, axes, dtype, fill, repeat)
            self.nbytes = self.pad.nbytes
            self._views = ViewCache(self._strided)
            return
        self.pad = None
        buffer = np.full((n, ay.padded, ax.filter, ax.out, c * repeat), fill, dtype)
        self.nbytes = buffer.nbytes
        for kx in range(ax.filter):
            off = kx * ax.dilation - ax.before           # input column of output column 0
            lo = max(0, -(off // ax.stride))
            hi = min(ax.out, (w - 1 - off) // ax.stride + 1)
            if hi > lo:
                dst = buffer[:, ay.before:ay.before + ay.size, kx, lo:hi]
                first = lo * ax.stride + off
                cols = slice(first, first + (hi - lo - 1) * ax.stride + 1, ax.stride)
                self._copies.append((as_shape(dst, (*dst.shape[:-1], c, repeat)),
                                     (slice(None), slice(None), cols, slice(None), None)))
        s = buffer.strides
        self._view = as_strided(buffer, self.shape,
                                (s[0], s[1] * ay.stride, s[1] * ay.dilation, s[2], s[4]),
                                writeable=False)

    def _strided(self, p: np.ndarray) -> np.ndarray:
        """The tap view of a padded (or unpadded) input, stride 1 along the width."""
        if p.strides[-1] != p.itemsize or p.strides[-2] != p.itemsize * p.shape[-1]:
            p = np.ascontiguousarray(p)       # arena tensors are contiguous: never in practice
        sy, dy, dx = self._steps
        s = p.strides
        return as_strided(p, self.shape, (s[0], s[1] * sy, s[1] * dy, s[2] * dx, s[3]),
                          writeable=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.pad is not None:
            return self._views(self.pad(x))
        for dst, index in self._copies:
            np.copyto(dst, x[index])
        return self._view


def window_view(x: np.ndarray, axes: Sequence[Axis], groups: int = 1) -> np.ndarray:
    """Read-only strided view ``(N, *out, *taps, groups, C / groups)`` of a padded input.

    Element ``[n, *o, *k, g, c]`` is ``x[n, *(o * stride + k * dilation), g * C/groups + c]``.
    """
    s = x.strides
    spatial = range(1, 1 + len(axes))
    shape = (x.shape[0], *(a.out for a in axes), *(a.filter for a in axes),
             groups, x.shape[-1] // groups)
    strides = (s[0], *(s[i] * a.stride for i, a in zip(spatial, axes)),
               *(s[i] * a.dilation for i, a in zip(spatial, axes)),
               s[-1] * (x.shape[-1] // groups), s[-1])
    return as_strided(x, shape, strides, writeable=False)


def tap_indices(axes: Sequence[Axis]) -> list[Index]:
    """Per filter tap (row-major over the taps), the index of its view of the padded input."""
    grids = np.indices([a.filter for a in axes]).reshape(len(axes), -1).T
    return [(slice(None), *(a.tap(int(k)) for a, k in zip(axes, ks)), slice(None))
            for ks in grids]


def tap_views(x: np.ndarray, axes: Sequence[Axis]) -> list[np.ndarray]:
    """One ``(N, *out, C)`` view of the padded input ``x`` per filter tap."""
    return [x[i] for i in tap_indices(axes)]


class ViewCache:
    """Views of a source array, rebuilt only when a different array comes in.

    The interpreter binds each step to fixed arrays, so views built on the
    first run are reused by every later one.
    """

    def __init__(self, build: Callable[[np.ndarray], Any]) -> None:
        self._build = build
        self._source: np.ndarray | None = None
        self._views: Any = None

    def __call__(self, x: np.ndarray) -> Any:
        if x is not self._source:
            self._views, self._source = self._build(x), x
        return self._views


def as_shape(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A view of ``a`` with another shape; raises instead of silently copying."""
    return np.reshape(a, tuple(shape), copy=False)


#: (low, high) of the fused activations TFLite's conv, pooling and
#: fully-connected kernels apply; they clamp and nothing else.
_CLAMPS: dict[str, tuple[float | None, float | None]] = {
    "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def clamp_activation(ctx: OpContext) -> Callable[[np.ndarray], Any] | None:
    """In-place fused activation of a conv / pool / fully-connected op, or None.

    LiteRT's builtin float kernels of these ops only clamp (CONV_2D, pooling
    and CONV_3D silently ignore TANH and SIGN_BIT; FULLY_CONNECTED rejects
    them), so any other activation is an UnsupportedOpError naming it.
    """
    act = ctx.options.fused_activation_function
    if act == "NONE":
        return None
    if act not in _CLAMPS:
        ctx.fail(f"fused activation {act!r} is not supported (LiteRT's builtin kernel "
                 "supports NONE, RELU, RELU6 and RELU_N1_TO_1 only)")
    lo, hi = _CLAMPS[act]
    if hi is None:
        return lambda a: np.maximum(a, lo, out=a)
    return lambda a: np.clip(a, lo, hi, out=a)
