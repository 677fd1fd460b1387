"""Image resizing: RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR (NHWC).

With a constant size every index and weight table is computed once in
prepare; run is a few flat gathers (``np.take``) and multiply-adds into
preallocated buffers. A size known only at invoke gives a data-dependent
output shape; its tables are built (and cached per size) at invoke.

The arithmetic follows LiteRT's builtin kernels on a non-NEON build, which
the tests check bit for bit:

* float32 bilinear: the optimized kernel — a 2x upscale without
  align_corners/half_pixel_centers averages neighbours pairwise; otherwise the
  four corner products are accumulated in float32 in the order
  (y0,x0), (y0,x1), (y1,x0), (y1,x1);
* uint8 bilinear: the four products plus 0.5 summed in float32, truncated;
* int8/int16 bilinear: TFLite's integer formula with 10-bit fractional
  coordinates and a 20-bit rounding division;
* nearest neighbour: a pure gather with TFLite's float32 index formula
  (one-byte types without options use the optimized kernel's 16.16
  fixed-point one instead; the two differ for some sizes, e.g. 2 -> 82).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np

from edgeplex.core.errors import InterpreterError
from edgeplex.core.kernel_api import BoundRun, Call, Calls, OpContext, Prepared, RunFn

from .registry import register

BILINEAR_TYPES = frozenset({"FLOAT32", "UINT8", "INT8", "INT16"})
NEAREST_TYPES = frozenset({"FLOAT32", "FLOAT16", "UINT8", "INT8", "INT16", "INT32", "BOOL"})


@dataclass(frozen=True)
class Geometry:
    """Sizes and options of one resize."""

    batch: int
    in_h: int
    in_w: int
    depth: int
    out_h: int
    out_w: int
    align_corners: bool
    half_pixel_centers: bool

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        """NHWC output shape."""
        return (self.batch, self.out_h, self.out_w, self.depth)


#: run() and the bytes of scratch buffers it holds
Plan = tuple[RunFn, int]
#: Builds the plan for a geometry: (geometry, dtype) -> (run, scratch bytes)
Planner = Callable[[Geometry, np.dtype], Plan]


def _prepare_resize(ctx: OpContext, planner: Planner, bilinear: bool) -> Prepared:
    ctx.expect_counts(2)
    image, size = ctx.input(0), ctx.input(1)
    if image.rank != 4:
        raise ctx.invalid(f"input must be 4-D (NHWC), got rank {image.rank}")
    if size.type_name != "INT32" or size.shape != (2,):
        raise ctx.invalid(f"size must be an INT32 vector of 2 values, got {size.type_name} "
                          f"{list(size.shape)}")
    if ctx.outputs[0].dtype != image.dtype:
        raise ctx.invalid(f"output type {ctx.outputs[0].type_name} differs from the input's "
                          f"{image.type_name}")
    align, half = bool(ctx.options.align_corners), bool(ctx.options.half_pixel_centers)
    if bilinear and align and half:
        raise ctx.invalid("align_corners and half_pixel_centers cannot both be true")
    n, h, w, c = image.shape

    def geometry(size_data: np.ndarray, fail: Callable[[str], Exception]) -> Geometry:
        oh, ow = (int(v) for v in np.asarray(size_data).reshape(-1))
        if oh < (1 if bilinear else 0) or ow < (1 if bilinear else 0):
            raise fail(f"output size {[oh, ow]} must be positive")
        return Geometry(n, h, w, c, oh, ow, align, half)

    if size.is_constant:
        geo = geometry(size.data, ctx.invalid)
        run, scratch = planner(geo, image.dtype)
        return ctx.done(run, geo.out_shape, scratch_bytes=scratch)
    return ctx.done(_dynamic(ctx.where(), geometry, planner, image.dtype), None)


def _dynamic(where: str, geometry: Callable[..., Geometry], planner: Planner,
             dtype: np.dtype) -> RunFn:
    """run() for a size tensor known only at invoke (tables cached per size)."""
    cache: dict[Geometry, RunFn] = {}

    def fail(msg: str) -> Exception:
        return InterpreterError(f"{where}: {msg}")

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> list[np.ndarray]:
        geo = geometry(ins[1], fail)
        if geo not in cache:
            cache[geo] = planner(geo, dtype)[0]
        out = np.empty(geo.out_shape, dtype)
        cache[geo](ins, [out])
        return [out]
    return run


def _flat_view(a: np.ndarray, geo: Geometry, out: bool = False) -> np.ndarray:
    """(batch, pixels, depth) view of an NHWC array."""
    h, w = (geo.out_h, geo.out_w) if out else (geo.in_h, geo.in_w)
    return a.reshape(geo.batch, h * w, geo.depth)


# -- nearest neighbour ----------------------------------------------------------------
def nearest_indices(in_size: int, out_size: int, align: bool, half: bool) -> np.ndarray:
    """Source index per output index, TFLite's reference formula in float32."""
    if align and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(max(out_size, 1))
    pos = (np.arange(out_size, dtype=np.float32) + np.float32(0.5 if half else 0.0)) * scale
    if align:
        idx = np.trunc(pos + np.copysign(np.float32(0.5), pos))  # std::round
    else:
        idx = np.floor(pos)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    return np.maximum(idx, 0) if half else idx


def nearest_indices_fixed(in_size: int, out_size: int) -> np.ndarray:
    """The optimized kernel's 16.16 fixed-point source indices, which LiteRT uses
    for one-byte types (uint8, int8, bool) when no option is set."""
    scale = (in_size << 16) // out_size + 1
    return np.minimum((np.arange(out_size, dtype=np.int64) * scale) >> 16, in_size - 1)


def _plan_nearest(geo: Geometry, dtype: np.dtype) -> Plan:
    plain = not (geo.align_corners or geo.half_pixel_centers)
    if np.dtype(dtype).itemsize == 1 and plain:
        ys, xs = nearest_indices_fixed(geo.in_h, geo.out_h), nearest_indices_fixed(
            geo.in_w, geo.out_w)
    else:
        ys = nearest_indices(geo.in_h, geo.out_h, geo.align_corners, geo.half_pixel_centers)
        xs = nearest_indices(geo.in_w, geo.out_w, geo.align_corners, geo.half_pixel_centers)
    flat = (ys[:, None] * geo.in_w + xs[None, :]).reshape(-1)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.take(_flat_view(ins[0], geo), flat, axis=1, out=_flat_view(outs[0], geo, True),
                mode="clip")
    return run, 0


@register("RESIZE_NEAREST_NEIGHBOR", versions=(1, 4), types=NEAREST_TYPES)
def prepare_resize_nearest(ctx: OpContext) -> Prepared:
    """RESIZE_NEAREST_NEIGHBOR with align_corners / half_pixel_centers."""
    return _prepare_resize(ctx, _plan_nearest, bilinear=False)


# -- bilinear: float coordinates ----------------------------------------------------------
def _float_axis(in_size: int, out_size: int, align: bool, half: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, fraction) per output index, float32 as ComputeInterpolationValues."""
    if align and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    pos = np.arange(out_size, dtype=np.float32)
    pos = (pos + np.float32(0.5)) * scale - np.float32(0.5) if half else pos * scale
    lo = np.maximum(np.floor(pos).astype(np.int64), 0)
    hi = np.minimum(np.ceil(pos).astype(np.int64), in_size - 1)
    return lo, hi, (pos - lo.astype(np.float32)).astype(np.float32)


def float_corners(geo: Geometry) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Flat source pixel per output pixel of the corners (y0,x0), (y0,x1),
    (y1,x0), (y1,x1), and their float32 weights shaped (pixels, 1)."""
    y0, y1, dy = _float_axis(geo.in_h, geo.out_h, geo.align_corners, geo.half_pixel_centers)
    x0, x1, dx = _float_axis(geo.in_w, geo.out_w, geo.align_corners, geo.half_pixel_centers)
    one = np.float32(1)
    wy = ((one - dy)[:, None], dy[:, None])
    wx = ((one - dx)[None, :], dx[None, :])
    ys, xs = (y0[:, None], y1[:, None]), (x0[None, :], x1[None, :])
    index, weight = [], []
    for a in (0, 1):
        for b in (0, 1):
            index.append((ys[a] * geo.in_w + xs[b]).reshape(-1))
            weight.append((wy[a] * wx[b]).astype(np.float32).reshape(-1, 1))
    return index, weight


Terms = Sequence[tuple[np.ndarray, np.ndarray]]


def _corner_sum(src: np.ndarray, terms: Terms, pixels: np.ndarray, acc: np.ndarray,
                tmp: np.ndarray) -> None:
    """acc = sum over corners of gather(src) * weight, accumulated left to right."""
    for k, (idx, w) in enumerate(terms):
        np.take(src, idx, axis=1, out=pixels, mode="clip")
        np.multiply(pixels, w, out=acc if k == 0 else tmp)
        if k:
            np.add(acc, tmp, out=acc)


def _buffers(geo: Geometry, *dtypes: type) -> list[np.ndarray]:
    """Scratch arrays shaped (batch, output pixels, depth)."""
    return [np.empty((geo.batch, geo.out_h * geo.out_w, geo.depth), d) for d in dtypes]


def _plan_bilinear_float(geo: Geometry) -> Plan:
    if (not geo.align_corners and not geo.half_pixel_centers
            and geo.out_h == 2 * geo.in_h and geo.out_w == 2 * geo.in_w):
        return _plan_bilinear_2x(geo)
    terms = list(zip(*float_corners(geo)))
    (tmp,) = _buffers(geo, np.float32)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        _corner_sum(_flat_view(ins[0], geo), terms, tmp, _flat_view(outs[0], geo, True), tmp)
    return run, tmp.nbytes


def _plan_bilinear_2x(geo: Geometry) -> Plan:
    """The optimized kernel's exact 2x upscale: pairwise float32 averages.

    With ``right`` the input shifted one column left and ``below`` one row up
    (the last column / row repeated): the four output phases are ``x``,
    ``(x + right) / 2``, ``(x + below) / 2`` and ``((x + below) / 2 +
    (right + right below) / 2) / 2``, each sum split into the shifted part and
    the repeated edge, bound once into preallocated memory.
    """
    n, h, w, c = geo.batch, geo.in_h, geo.in_w, geo.depth
    corner = np.empty((n, h, w, c), np.float32)    # (right + right below) / 2
    half = np.float32(0.5)

    def pairs(x: np.ndarray, axis: int, first: slice, out: np.ndarray) -> list[Call]:
        """out = x + x shifted by one along ``axis`` (edge repeated), columns ``first``."""
        def at(a: np.ndarray, i: slice, j: slice) -> np.ndarray:
            return a[(slice(None), i, j) if axis == 1 else (slice(None), j, i)]
        rest = slice(None)
        return [partial(np.add, at(x, slice(None, -1), first), at(x, slice(1, None), first),
                        at(out, slice(None, -1), rest)),
                partial(np.add, at(x, slice(-1, None), first), at(x, slice(-1, None), first),
                        at(out, slice(-1, None), rest))]

    def bind(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> Calls:
        x = ins[0]
        out = outs[0].reshape(n, h, 2, w, 2, c)
        o01, o10, o11 = out[:, :, 0, :, 1], out[:, :, 1, :, 0], out[:, :, 1, :, 1]
        calls: list[Call] = [partial(np.copyto, out[:, :, 0, :, 0], x)]
        calls += pairs(x, 2, slice(None), o01) + [partial(np.multiply, o01, half, o01)]
        calls += pairs(x, 1, slice(None), o10) + [partial(np.multiply, o10, half, o10)]
        # corner: rows of right + right below, right's columns being x[:, :, 1:] then
        # the last column again
        calls += pairs(x, 1, slice(1, None), corner[:, :, :-1])
        calls += pairs(x, 1, slice(-1, None), corner[:, :, -1:])
        calls += [partial(np.multiply, corner, half, corner),
                  partial(np.add, o10, corner, o11), partial(np.multiply, o11, half, o11)]
        return Calls([], calls)
    return BoundRun(bind), corner.nbytes


def _plan_bilinear_uint8(geo: Geometry) -> Plan:
    """uint8: the four float32 products plus 0.5, truncated (generic kernel)."""
    terms = list(zip(*float_corners(geo)))
    pixels, acc, tmp = _buffers(geo, np.uint8, np.float32, np.float32)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        _corner_sum(_flat_view(ins[0], geo), terms, pixels, acc, tmp)
        np.add(acc, np.float32(0.5), out=acc)
        np.copyto(_flat_view(outs[0], geo, True), acc, casting="unsafe")
    return run, pixels.nbytes + acc.nbytes + tmp.nbytes


# -- bilinear: integer coordinates (int8 / int16) ------------------------------------------
def _trunc_div(a: np.ndarray, b: int) -> np.ndarray:
    """C integer division (rounds toward zero)."""
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def _integer_axis(in_size: int, out_size: int, align: bool, half: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, 10-bit fraction) per output index (ComputeInterpolationValuesInteger)."""
    if align and out_size > 1:
        scale = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = ((1 << 10) * in_size + out_size // 2) // out_size
    pos = np.arange(out_size, dtype=np.int64) * scale
    if half:
        pos = pos + scale // 2 - (1 << 9)
    lo = np.maximum(_trunc_div(pos, 1 << 10), 0)
    hi = np.minimum(_trunc_div(pos + (1 << 10) - 1, 1 << 10), in_size - 1)
    return lo, hi, pos - (lo << 10)


def _plan_bilinear_integer(geo: Geometry, dtype: np.dtype) -> Plan:
    """int8/int16: 10-bit weights, int accumulation, division by 2**20 rounding
    half away from zero (TFLite's double-rounding build). int8 sums stay below
    128 * 2048 * 2048 < 2**31 even with half-pixel extrapolated weights, so
    they use int32; int16 needs int64."""
    y0, y1, dy = _integer_axis(geo.in_h, geo.out_h, geo.align_corners, geo.half_pixel_centers)
    x0, x1, dx = _integer_axis(geo.in_w, geo.out_w, geo.align_corners, geo.half_pixel_centers)
    acc_type = np.int32 if np.dtype(dtype).itemsize == 1 else np.int64
    wy = (((1 << 10) - dy)[:, None], dy[:, None])
    wx = (((1 << 10) - dx)[None, :], dx[None, :])
    ys, xs = (y0[:, None], y1[:, None]), (x0[None, :], x1[None, :])
    terms = [((ys[a] * geo.in_w + xs[b]).reshape(-1),
              (wy[a] * wx[b]).reshape(-1, 1).astype(acc_type)) for a in (0, 1) for b in (0, 1)]
    pixels, acc, tmp, negative = _buffers(geo, dtype, acc_type, acc_type, np.bool_)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        _corner_sum(_flat_view(ins[0], geo), terms, pixels, acc, tmp)
        np.less(acc, 0, out=negative)
        np.abs(acc, out=tmp)
        np.add(tmp, 1 << 19, out=tmp)
        np.right_shift(tmp, 20, out=tmp)
        np.negative(tmp, out=tmp, where=negative)
        np.copyto(_flat_view(outs[0], geo, True), tmp, casting="unsafe")
    return run, pixels.nbytes + acc.nbytes + tmp.nbytes + negative.nbytes


def _plan_bilinear(geo: Geometry, dtype: np.dtype) -> Plan:
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return _plan_bilinear_float(geo)
    if dtype == np.uint8:
        return _plan_bilinear_uint8(geo)
    return _plan_bilinear_integer(geo, dtype)


@register("RESIZE_BILINEAR", versions=(1, 4), types=BILINEAR_TYPES)
def prepare_resize_bilinear(ctx: OpContext) -> Prepared:
    """RESIZE_BILINEAR with align_corners / half_pixel_centers."""
    return _prepare_resize(ctx, _plan_bilinear, bilinear=True)
