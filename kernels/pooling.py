"""Pooling: AVERAGE_POOL_2D, MAX_POOL_2D (float32, int8, uint8, int16) and
L2_POOL_2D (float32).

Each kernel loops over the filter taps only: one output-aligned strided view
of the padded input per tap, combined into the output (or an int32
accumulator) in place. Padded positions never count: max pooling pads with
the type's lowest value, sums pad with zero and divide by the number of
valid (non-padded) positions of each window, as TFLite does.

Integer pooling works on the raw quantized values, so the input and output
must share scale and zero point. Integer averages round the sum over the
count half away from zero, TFLite's reference integer AveragePool.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .quant_math import activation_range, clip_into
from .registry import FLOAT_TYPES, QUANT_TYPES, register
from .windows import (Axis, BoundRun, Calls, Clamp, PaddedInput, ViewCache, clamp_activation,
                      tap_indices, window_axes, window_view)

InPlace = Callable[[np.ndarray], Any]


# -- shared -----------------------------------------------------------------------
def pool_axes(ctx: OpContext) -> tuple[Axis, Axis]:
    """Checks the op's input/output and returns its two spatial axes."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    if x.rank != 4:
        raise ctx.invalid(f"input must have rank 4 (NHWC), got shape {list(x.shape)}")
    if ctx.outputs[0].type_name != x.type_name:
        raise ctx.invalid(f"output type {ctx.outputs[0].type_name} differs from the input's "
                          f"{x.type_name}")
    o = ctx.options
    h, w = window_axes(ctx, o.padding, x.shape[1:3], (o.filter_height, o.filter_width),
                       (o.stride_h, o.stride_w))
    return h, w


def output_shape(ctx: OpContext, axes: Sequence[Axis]) -> tuple[int, ...]:
    """(N, out_h, out_w, C)."""
    n, *_, c = ctx.input(0).shape
    return (n, *(a.out for a in axes), c)


def valid_counts(axes: Sequence[Axis]) -> np.ndarray:
    """(out_h, out_w, 1) int array: how many non-padded positions each window covers."""
    per_axis = []
    for a in axes:
        start = np.arange(a.out) * a.stride - a.before
        per_axis.append(np.minimum(start + a.filter, a.size) - np.maximum(start, 0))
    return np.multiply.outer(per_axis[0], per_axis[1])[..., None]


class Taps:
    """Per-tap views of the op's input, padded with ``fill`` (built once per source)."""

    def __init__(self, ctx: OpContext, axes: Sequence[Axis], fill: float) -> None:
        x = ctx.input(0)
        self.pad = PaddedInput(x.shape, axes, x.dtype, fill)
        indices = tap_indices(axes)
        self.views: Callable[[np.ndarray], list[np.ndarray]] = lambda p: [p[i] for i in indices]
        self._views = ViewCache(self.views)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self._views(self.pad(x))


def reduce_taps(views: Sequence[np.ndarray], out: np.ndarray, ufunc: Any) -> None:
    """out = ufunc.reduce(views) in tap order, in place."""
    np.copyto(out, views[0], casting="same_kind")
    for v in views[1:]:
        ufunc(out, v, out=out)


# -- float -----------------------------------------------------------------------------
def _float_max(ctx: OpContext, axes: Sequence[Axis], act: Clamp | None
               ) -> tuple[Callable[..., None], int]:
    """The maximum over the taps, in tap order, then the clamp; bound calls."""
    taps = Taps(ctx, axes, -np.inf)

    def bind(ins: Sequence[Any], outs: Sequence[Any]) -> Calls:
        x, out = ins[0], outs[0]
        pad = taps.pad
        first = [] if pad.buffer is None else [partial(np.copyto, pad.interior, x[..., None])]
        views = taps.views(pad.buffer if pad.buffer is not None else x)
        calls = [partial(np.copyto, out, views[0])]
        calls += [partial(np.maximum, out, v, out=out) for v in views[1:]]
        return Calls(first, calls + ([act.bind(out)] if act is not None else []))
    return BoundRun(bind), taps.pad.nbytes


def _float_average(ctx: OpContext, axes: Sequence[Axis], act: InPlace | None, square: bool
                   ) -> tuple[Callable[..., None], int]:
    """Average (or, with ``square``, the root of the mean square: L2 pooling)."""
    taps = Taps(ctx, axes, 0.0)
    counts = valid_counts(axes).astype(np.float32)
    tmp = np.empty(output_shape(ctx, axes), np.float32) if square else None

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray]) -> None:
        out, views = outs[0], taps(ins[0])
        if tmp is None:
            reduce_taps(views, out, np.add)
        else:
            np.square(views[0], out=out)
            for v in views[1:]:
                np.square(v, out=tmp)
                np.add(out, tmp, out=out)
        np.divide(out, counts, out=out)
        if tmp is not None:
            np.sqrt(out, out=out)
        if act is not None:
            act(out)
    return run, taps.pad.nbytes + (0 if tmp is None else tmp.nbytes)


# -- quantized -------------------------------------------------------------------------
def quantized_clamp(ctx: OpContext) -> tuple[int, int] | None:
    """(lo, hi) of the fused activation in the quantized domain, or None for none.

    Checks that input and output share per-tensor quantization parameters.
    """
    x, y = ctx.input(0), ctx.outputs[0]
    qx, qy = x.quantization, y.quantization
    if (qx is None) != (qy is None):
        raise ctx.invalid("input and output must both be quantized or both not")
    if qx is not None and qy is not None:
        if qx.per_channel or qy.per_channel:
            ctx.fail("per-channel quantized pooling is not supported")
        if abs(float(qx.scale[0]) - float(qy.scale[0])) > 1e-6 or \
                int(qx.zero_point[0]) != int(qy.zero_point[0]):
            raise ctx.invalid(f"input and output quantization differ (scale {qx.scale[0]} "
                              f"zero point {qx.zero_point[0]} vs {qy.scale[0]}, "
                              f"{qy.zero_point[0]}): integer pooling needs them equal")
    act = ctx.options.fused_activation_function
    if act == "NONE":
        return None
    if act not in ("RELU", "RELU6", "RELU_N1_TO_1"):
        ctx.fail(f"fused activation {act!r} is not supported on {x.type_name} pooling")
    if qy is None:
        raise ctx.invalid(f"fused activation {act} needs output quantization parameters")
    return activation_range(act, float(qy.scale[0]), int(qy.zero_point[0]), x.dtype)


def _quantized_max(ctx: OpContext, axes: Sequence[Axis], clamp: tuple[int, int] | None
                   ) -> tuple[Callable[..., None], int]:
    taps = Taps(ctx, axes, np.iinfo(ctx.input(0).dtype).min)

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray]) -> None:
        reduce_taps(taps(ins[0]), outs[0], np.maximum)
        if clamp is not None:
            clip_into(outs[0], clamp[0], clamp[1], outs[0])
    return run, taps.pad.nbytes


def _quantized_average(ctx: OpContext, axes: Sequence[Axis], clamp: tuple[int, int] | None
                       ) -> tuple[Callable[..., None], int]:
    """Sum in int32, then (|sum| + count / 2) / count with the sum's sign, then clamp.

    The input is cast once into a zero-padded int32 buffer, so every add is
    int32 + int32 (no per-call casts). Windows that cover many taps for few
    outputs (global pooling) are summed in one reduction over a window view;
    others tap by tap.
    """
    x = ctx.input(0)
    padded = np.zeros((x.shape[0], *(a.padded for a in axes), x.shape[-1]), np.int32)
    inner = padded[(slice(None), *(slice(a.before, a.before + a.size) for a in axes))]
    counts = valid_counts(axes).astype(np.int32)
    half = counts // 2
    info = np.iinfo(x.dtype)
    lo, hi = clamp if clamp is not None else (info.min, info.max)
    acc = np.empty(output_shape(ctx, axes), np.int32)
    rounded = np.empty_like(acc)
    negative = np.empty(acc.shape, bool)
    taps = int(np.prod([a.filter for a in axes]))
    if int(np.prod([a.out for a in axes])) <= taps:
        view = window_view(padded, axes)
        into = acc.reshape(view.shape[:3] + view.shape[5:])

        def total() -> None:
            np.sum(view, axis=(3, 4), dtype=np.int32, out=into)
    else:
        views = [padded[i] for i in tap_indices(axes)]

        def total() -> None:
            reduce_taps(views, acc, np.add)

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray]) -> None:
        np.copyto(inner, ins[0])
        total()
        np.less(acc, 0, out=negative)
        np.abs(acc, out=rounded)
        np.add(rounded, half, out=rounded)
        np.floor_divide(rounded, counts, out=rounded)
        np.negative(rounded, out=rounded, where=negative)
        clip_into(rounded, lo, hi, rounded)
        np.copyto(outs[0], rounded, casting="unsafe")
    return run, padded.nbytes + 2 * acc.nbytes + negative.nbytes


# -- registrations -------------------------------------------------------------------
@register("MAX_POOL_2D", versions=(1, 3), types=FLOAT_TYPES | QUANT_TYPES)
def prepare_max_pool_2d(ctx: OpContext) -> Prepared:
    """MAX_POOL_2D: padding, strides, filter size, clamp; float32 or quantized per-tensor."""
    axes = pool_axes(ctx)
    if ctx.input(0).type_name == "FLOAT32":
        run, scratch = _float_max(ctx, axes, clamp_activation(ctx))
    else:
        run, scratch = _quantized_max(ctx, axes, quantized_clamp(ctx))
    return ctx.done(run, output_shape(ctx, axes), scratch_bytes=scratch)


@register("AVERAGE_POOL_2D", versions=(1, 3), types=FLOAT_TYPES | QUANT_TYPES)
def prepare_average_pool_2d(ctx: OpContext) -> Prepared:
    """AVERAGE_POOL_2D: the mean of each window's valid positions, clamp; float32 or
    quantized per-tensor (TFLite's integer rounding)."""
    axes = pool_axes(ctx)
    if ctx.input(0).type_name == "FLOAT32":
        run, scratch = _float_average(ctx, axes, clamp_activation(ctx), square=False)
    else:
        run, scratch = _quantized_average(ctx, axes, quantized_clamp(ctx))
    return ctx.done(run, output_shape(ctx, axes), scratch_bytes=scratch)


@register("L2_POOL_2D", versions=(1, 1), types=FLOAT_TYPES)
def prepare_l2_pool_2d(ctx: OpContext) -> Prepared:
    """L2_POOL_2D (float32): sqrt of the mean square of each window's valid positions."""
    axes = pool_axes(ctx)
    run, scratch = _float_average(ctx, axes, clamp_activation(ctx), square=True)
    return ctx.done(run, output_shape(ctx, axes), scratch_bytes=scratch)
