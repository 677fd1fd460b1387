"""Geometry shared by windowed ops (convolutions and pooling), NHWC / NDHWC.

An :class:`Axis` describes one spatial axis: input size, filter size, stride,
dilation, output size and padding, as TFLite computes them. On top of that:

* :class:`PaddedInput` — a buffer allocated once in prepare whose zero (or
  ``-inf``) border is written once; each run copies only the interior.
* :func:`window_view` — the im2col view ``(N, *out, *taps, C)`` of a padded
  input, built with ``as_strided`` (no copy).
* :func:`tap_views` — one output-aligned strided view per filter tap, for
  kernels that loop over taps (depthwise convolution, pooling).
* :class:`TapRegions` — the output split into rectangles whose filter taps
  are each one strided view, read from the input itself where no padding is
  involved; a *flat* view ``(N, rows, kh, kw, cols * C)`` has a contiguous
  last axis (what a per-tap multiply-accumulate wants: long inner loops).
* :class:`ViewCache` — rebuilds such views only when the source array changes.
* :class:`BoundRun` — a run function whose numpy calls are bound to the
  step's arrays once (``functools.partial``), so a run is a loop over ready
  calls: about a microsecond per numpy call instead of several of Python glue;
  large ops also carry per-part call lists that threads share out.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgeplex.core.kernel_api import BoundRun, Call, Calls, OpContext  # noqa: F401 (re-exported)

try:  # the ufuncs behind np.clip / np.einsum, without their Python wrappers (~1-2 us)
    from numpy._core.multiarray import c_einsum
    from numpy._core.umath import clip as clip_ufunc
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.multiarray import c_einsum
    from numpy.core.umath import clip as clip_ufunc

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


class TapRegion:
    """One rectangle of a windowed op's output and the strided view of the filter
    taps it reads, from the input itself or from a small buffer of its own.

    ``rows`` / ``cols`` are output ranges ``(start, stop)``. ``view(x)`` is the
    region's tap view of input ``x``: *flat* ``(N, R, kh, kw, Wr * C)`` (the
    columns and channels of one output row in one contiguous run; needs unit
    width stride, or a buffer that gathered the column taps) or *per-pixel*
    ``(N, R, Wr, kh, kw, C)``. ``fill(x)`` first copies what the buffer holds.
    """

    def __init__(self, rows: tuple[int, int], cols: tuple[int, int],
                 view: Callable[[np.ndarray], np.ndarray],
                 copies: Sequence[tuple[np.ndarray, Index]] = (), nbytes: int = 0) -> None:
        self.rows, self.cols = rows, cols
        self.copies, self.nbytes = list(copies), nbytes
        self.view = view

    def fill(self, x: np.ndarray) -> None:
        """Copy this region's part of ``x`` into its buffer (nothing when it reads ``x``)."""
        for dst, index in self.copies:
            np.copyto(dst, x[index])


class TapRegions:
    """The output of a 2-D windowed op over ``(N, H, W, C)`` split into regions whose
    taps are plain strided views.

    ``split``: the interior, whose windows hold no padding, reads the input
    directly (no copy); thin bands along the padded border read small
    zero-padded buffers. Otherwise one region covers the output, reading a
    padded copy of the input (or the input itself when nothing is padded).
    ``flat`` views need a unit width stride; with a larger one the column taps
    are gathered into a buffer ``(N, padded_h, kw, out_w, C)`` (one region).
    ``repeat`` > 1 stores each channel that many times in a row (a depthwise
    multiplier), which needs a buffer too.
    """

    def __init__(self, shape: Sequence[int], axes: Sequence[Axis], dtype: Any, *,
                 flat: bool, split: bool, fill: float = 0, repeat: int = 1) -> None:
        self.n, self.h, self.w, self.c = shape
        self.ay, self.ax = axes
        self.dtype, self.fill_value, self.repeat, self.flat = dtype, fill, repeat, flat
        ho, wo = self.ay.out, self.ax.out
        inner = self._interior() if split and repeat == 1 else None
        if flat and self.ax.stride > 1 and wo > 1:
            self.regions = [self._gathered()]
        elif inner is None:
            direct = repeat == 1 and not needs_padding(axes)
            self.regions = [self._direct((0, ho), (0, wo)) if direct
                            else self._buffered((0, ho), (0, wo))]
        else:
            (r0, r1), (c0, c1) = inner
            bands = [((0, r0), (0, wo)), ((r1, ho), (0, wo)),
                     ((r0, r1), (0, c0)), ((r0, r1), (c1, wo))]
            self.regions = [self._direct(*inner)] + [
                self._buffered(r, c) for r, c in bands if r[1] > r[0] and c[1] > c[0]]
        self.nbytes = sum(r.nbytes for r in self.regions)

    @property
    def copies(self) -> int:
        """Number of copies :meth:`fill` makes per run."""
        return sum(len(r.copies) for r in self.regions)

    def fill(self, x: np.ndarray) -> None:
        """Copy what the regions' buffers hold of ``x`` (before reading their views)."""
        for r in self.regions:
            r.fill(x)

    # -- geometry ------------------------------------------------------------------
    def _interior(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """Output rows and columns whose windows lie inside the input, or None."""
        ranges = []
        for a in (self.ay, self.ax):
            lo = -(-a.before // a.stride)
            hi = min(a.out, (a.size - 1 - (a.filter - 1) * a.dilation + a.before) // a.stride + 1)
            if hi <= lo:
                return None
            ranges.append((lo, hi))
        return ranges[0], ranges[1]

    def _taps(self, p: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """Tap view of ``p`` (its element [0, 0, 0] is the region's first tap)."""
        ay, ax = self.ay, self.ax
        s = p.strides
        if self.flat:
            return as_strided(p, (self.n, rows, ay.filter, ax.filter, cols * p.shape[3]),
                              (s[0], s[1] * ay.stride, s[1] * ay.dilation, s[2] * ax.dilation,
                               s[3]), writeable=False)
        return as_strided(p, (self.n, rows, cols, ay.filter, ax.filter, p.shape[3]),
                          (s[0], s[1] * ay.stride, s[2] * ax.stride, s[1] * ay.dilation,
                           s[2] * ax.dilation, s[3]), writeable=False)

    def _direct(self, rows: tuple[int, int], cols: tuple[int, int]) -> TapRegion:
        """A region reading the input itself."""
        y0 = rows[0] * self.ay.stride - self.ay.before
        x0 = cols[0] * self.ax.stride - self.ax.before
        nr, nc = rows[1] - rows[0], cols[1] - cols[0]

        def view(x: np.ndarray) -> np.ndarray:
            if x.strides[-1] != x.itemsize or x.strides[-2] != x.itemsize * x.shape[-1]:
                x = np.ascontiguousarray(x)   # arena tensors are contiguous: never in practice
            return self._taps(x[:, y0:, x0:], nr, nc)
        return TapRegion(rows, cols, ViewCache(view))

    def _buffered(self, rows: tuple[int, int], cols: tuple[int, int]) -> TapRegion:
        """A region reading a zero-padded copy of the part of the input it needs."""
        ay, ax, c, rep = self.ay, self.ax, self.c, self.repeat
        spans = []
        for a, (lo, hi) in ((ay, rows), (ax, cols)):
            p0, p1 = lo * a.stride, (hi - 1) * a.stride + (a.filter - 1) * a.dilation + 1
            i0, i1 = max(0, p0 - a.before), min(a.size, p1 - a.before)
            spans.append((p1 - p0, slice(i0 + a.before - p0, i1 + a.before - p0), slice(i0, i1)))
        (ph, dy, sy), (pw, dx, sx) = spans
        buffer = np.full((self.n, ph, pw, c * rep), self.fill_value, self.dtype)
        copies = []
        if sy.stop > sy.start and sx.stop > sx.start:
            dst = buffer[:, dy, dx]
            copies.append((as_shape(dst, (*dst.shape[:-1], c, rep)),
                           (slice(None), sy, sx, slice(None), None)))
        view = self._taps(buffer, rows[1] - rows[0], cols[1] - cols[0])
        return TapRegion(rows, cols, lambda x: view, copies, buffer.nbytes)

    def _gathered(self) -> TapRegion:
        """The whole output, flat, from a buffer gathering each column tap (stride > 1)."""
        ay, ax, c, rep = self.ay, self.ax, self.c, self.repeat
        buffer = np.full((self.n, ay.padded, ax.filter, ax.out, c * rep), self.fill_value,
                         self.dtype)
        copies = []
        for kx in range(ax.filter):
            off = kx * ax.dilation - ax.before           # input column of output column 0
            lo = max(0, -(off // ax.stride))
            hi = min(ax.out, (self.w - 1 - off) // ax.stride + 1)
            if hi > lo:
                dst = buffer[:, ay.before:ay.before + ay.size, kx, lo:hi]
                first = lo * ax.stride + off
                cols = slice(first, first + (hi - lo - 1) * ax.stride + 1, ax.stride)
                copies.append((as_shape(dst, (*dst.shape[:-1], c, rep)),
                               (slice(None), slice(None), cols, slice(None), None)))
        s = buffer.strides
        view = as_strided(buffer, (self.n, ay.out, ay.filter, ax.filter, ax.out * c * rep),
                          (s[0], s[1] * ay.stride, s[1] * ay.dilation, s[2], s[4]),
                          writeable=False)
        return TapRegion((0, ay.out), (0, ax.out), lambda x: view, copies, buffer.nbytes)


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


#: Work from which an op is split in two halves across threads. Waking a
#: worker costs tens of microseconds at worst, and an op reading what the
#: other core wrote pays for moving it between the cores' caches: on this
#: project's 2-core machine a serial 1x1 conv after a split depthwise layer
#: took 0.13 -> 0.23 ms. Measured whole models (1 vs 2 threads, quiet
#: machine): lower thresholds made face_detection_full_range 15% and
#: face_landmark 9% slower; these split only layers big enough that their
#: neighbours split too (face_detection_back's 128x128 blocks: 11.4 -> 9.8 ms)
#: and leave the rest neutral. Multiply-adds of numpy loops (einsum) and of
#: BLAS products. Halves keep consecutive split ops on the same rows per core
#: (the caller takes the first half, a prompt worker the second).
PARALLEL_MACS = 3_000_000
PARALLEL_GEMM = 1 << 23
#: An op reading an input this large splits from a quarter of the thresholds
#: above: such inputs come from split layers, and reading half of one from the
#: other core's cache cost a serial layer more than splitting it (MobileNetV2-224
#: layer 4 after a split 1x1 conv: 0.80 ms in halves, 1.11 ms serial).
LARGE_INPUT_BYTES = 3 << 19


def split_parts(work: int, threshold: int, input_bytes: int = 0) -> int:
    """2 (halves) when ``work`` reaches ``threshold`` (a quarter of it for a
    large input), else 1."""
    if input_bytes >= LARGE_INPUT_BYTES:
        threshold //= 4
    return 2 if work >= threshold else 1


#: Least output rows of one half of a split matrix product.
PARALLEL_ROWS = 256


def as_shape(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A view of ``a`` with another shape; raises instead of silently copying."""
    return np.reshape(a, tuple(shape), copy=False)


#: (low, high) of the fused activations TFLite's conv, pooling and
#: fully-connected kernels apply; they clamp and nothing else.
_CLAMPS: dict[str, tuple[float | None, float | None]] = {
    "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


class Clamp:
    """An in-place clamp to ``[lo, hi]`` (``hi`` None: no upper bound), float32 bounds.

    numpy's clip loop is about twice as fast as ``maximum``; the only difference
    is that ``-0.0`` stays ``-0.0`` under ``RELU`` (as in LiteRT's ``std::max(x,
    0.f)``), which compares equal to ``0.0``.
    """

    def __init__(self, lo: float, hi: float | None) -> None:
        self.lo = np.float32(lo)
        self.hi = np.float32(np.inf if hi is None else hi)

    def __call__(self, a: np.ndarray) -> Any:
        return clip_ufunc(a, self.lo, self.hi, a)

    def bind(self, a: np.ndarray) -> Call:
        """The clamp of ``a`` as a ready call."""
        return partial(clip_ufunc, a, self.lo, self.hi, a)


def clamp_activation(ctx: OpContext) -> Clamp | None:
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
    return Clamp(*_CLAMPS[act])
