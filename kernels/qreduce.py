"""Requantizing reductions MEAN and SUM on int8/uint8/int16, bit-exact with
TFLite. (Float and int32 reductions live in kernels/reduce.py.)

MEAN, general case — TFLite's reference QuantizedMeanOrSum, which LiteRT's
builtin and reference kernels both run: an int32 sum of the raw values, minus
``n * zero_point_in``, rescaled by ``s_in / s_out`` with 1/n folded into the
fixed-point multiplier, plus ``zero_point_out``.

SUM — LiteRT's builtin (optimized) kernel rescales the int32 sum in float32
(``round(sum * s + bias) + zp_out``); its reference kernel computes something
else on nearly every input (it disagrees with the builtin one on most
outputs), so edgeplex follows the builtin kernel.

int8/uint8 MEAN over axes {1, 2} of a 4-D input with keep_dims: LiteRT's
builtin kernel takes a dedicated spatial-mean path with a different formula
(multiplier ``s_in / (n * s_out)`` in float32 applied to the raw sum, then a
float-rounded bias ``zp_out - round(zp_in * s_in / s_out)``; channel blocks of
16 round ties up, the remaining channels away from zero). edgeplex follows
that builtin kernel there, as single-threaded LiteRT runs it.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from . import quant_math as qm
from .qcommon import QParams, output_type, qparams
from .registry import register

QUANT16 = frozenset({"INT8", "UINT8", "INT16"})


def _axes(ctx: OpContext) -> tuple[int, ...]:
    """Resolved, de-duplicated reduction axes from the constant axis input."""
    x, axis = ctx.input(0), ctx.input(1)
    if axis.data is None:
        ctx.fail("quantized reductions need a constant axis tensor")
    if axis.type_name not in ("INT32", "INT64"):
        raise ctx.invalid(f"axis tensor must be INT32, not {axis.type_name}")
    out: list[int] = []
    for a in np.asarray(axis.data).reshape(-1).tolist():
        if not -x.rank <= a < max(x.rank, 1):
            raise ctx.invalid(f"axis {a} is out of range for rank {x.rank}")
        a = a + x.rank if a < 0 else a
        if a not in out:
            out.append(a)
    return tuple(out)


def _out_shape(shape: tuple[int, ...], axes: tuple[int, ...], keep: bool) -> tuple[int, ...]:
    if keep:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _mean_multiplier(mult: int, shift: int, n: int) -> tuple[int, int]:
    """Fold 1/n into (mult, shift) as TFLite's reference QuantizedMeanOrSum does."""
    s = min(n.bit_length() - 1, 32, 31 + shift)
    return int(np.int64(mult << s) // n) if s >= 0 else mult, shift - s


def _prepare_reduce(ctx: OpContext, compute_sum: bool) -> Prepared:
    ctx.expect_counts(2)
    x = ctx.input(0)
    out = output_type(ctx, x.type_name)
    pin, pout = qparams(ctx, x, "input"), qparams(ctx, out, "output")
    axes = _axes(ctx)
    keep = bool(getattr(ctx.options, "keep_dims", False))
    shape = _out_shape(tuple(x.shape), axes, keep)
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if (not compute_sum and keep and x.rank == 4 and sorted(axes) == [1, 2]
            and x.type_name in ("INT8", "UINT8")):
        return _spatial_mean(ctx, pin, pout, n, shape)
    if compute_sum:
        return _float_sum(ctx, pin, pout, n, axes, keep, shape)
    mult, shift = (int(v) for v in qm.quantize_multiplier(pin.scale64 / pout.scale64))
    if n > 0:
        mult, shift = _mean_multiplier(mult, shift, n)
    info = np.iinfo(x.dtype)
    closed = qm.closed_form_requant(mult, shift, "double", -pin.zero_point * n,
                                    pout.zero_point, info.min, info.max,
                                    n * max(-info.min, info.max)) if n > 0 else None
    if closed is not None and math.prod(shape) > 0:
        return _closed_mean(ctx, closed, axes, keep, shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        if outs[0].size == 0:
            return
        if n == 0:
            outs[0][...] = 0
            return
        total = qm.wrap_int32(ins[0].sum(axis=axes, dtype=np.int64, keepdims=keep))
        shifted = qm.wrap_int32(total - pin.zero_point * n)
        y = qm.multiply_by_quantized_multiplier(shifted, mult, shift) + pout.zero_point
        outs[0][...] = np.clip(y, info.min, info.max).reshape(outs[0].shape)
    return ctx.done(run, shape)


def _float_sum(ctx: OpContext, pin: QParams, pout: QParams, n: int, axes: tuple[int, ...],
               keep: bool, shape: tuple[int, ...]) -> Prepared:
    """LiteRT's builtin quantized SUM: the int32 sum rescaled in float32,
    ``round(sum * s + bias) + zp_out`` with ``s = s_in / s_out`` and
    ``bias = -zp_in * s * n`` (see module doc)."""
    scale = pin.scale / pout.scale
    bias = np.float32(-pin.zero_point) * scale * np.float32(n)
    info = np.iinfo(ctx.input(0).dtype)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        if outs[0].size == 0 or n == 0:
            outs[0][...] = 0
            return
        total = qm.wrap_int32(ins[0].sum(axis=axes, dtype=np.int64, keepdims=keep))
        r = qm.round_half_away(total.astype(np.float32) * scale + bias)
        y = qm.wrap_int32(qm.float_to_int32(r) + pout.zero_point)
        outs[0][...] = np.clip(y, info.min, info.max).reshape(outs[0].shape)
    return ctx.done(run, shape)


def _spatial_mean(ctx: OpContext, pin: QParams, pout: QParams, n: int,
                  shape: tuple[int, ...]) -> Prepared:
    """LiteRT's builtin 4-D mean over height and width (see module doc)."""
    temp = np.float32(pin.zero_point) * pin.scale / pout.scale
    temp = temp + np.float32(0.5) if temp > 0 else temp - np.float32(0.5)
    bias = pout.zero_point - int(temp)
    real = pin.scale / (np.float32(n) * pout.scale)
    mult, shift = (int(v) for v in qm.quantize_multiplier(float(real)))
    depth = shape[3]
    blocked = np.arange(depth) < depth - depth % 16      # NEON blocks of 16 channels
    info = np.iinfo(ctx.input(0).dtype)
    # NEON blocks round ties up (as ruy does), the tail away from zero.
    closed = qm.closed_form_requant(mult, shift, ["ruy" if b else "double" for b in blocked],
                                    0, bias, info.min, info.max,
                                    n * max(-info.min, info.max))
    if closed is not None and n > 0:
        return _closed_mean(ctx, closed, (1, 2), True, shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        acc = qm.wrap_int32(ins[0].sum(axis=(1, 2), dtype=np.int64, keepdims=True))
        tail = qm.multiply_by_quantized_multiplier(acc, mult, shift)
        neon = _round_half_up_mbqm(acc, mult, shift)
        y = np.where(blocked, neon, tail) + bias
        outs[0][...] = np.clip(y, info.min, info.max)
    return ctx.done(run, shape)


def _closed_mean(ctx: OpContext, closed: qm.ClosedFormRequant, axes: tuple[int, ...],
                 keep: bool, shape: tuple[int, ...]) -> Prepared:
    """A mean as an int64 sum and a closed-form requantization into buffers
    made here (see quant_math.closed_form_requant)."""
    total = np.empty(shape, np.int64)
    work = np.empty(shape, np.int64)
    mask = np.empty(shape, bool) if closed.needs_mask else None

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.sum(ins[0], axis=axes, dtype=np.int64, keepdims=keep, out=total)
        closed(total, work, outs[0], mask)
    return ctx.done(run, shape, scratch_bytes=total.nbytes + work.nbytes +
                    (0 if mask is None else mask.nbytes))


def _round_half_up_mbqm(x: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier as TFLite's NEON 4-row helper computes it:
    the final right shift rounds ties toward +inf (vrshl) instead of away."""
    left, right = max(shift, 0), max(-shift, 0)
    hi = qm.saturating_rounding_doubling_high_mul(qm.wrap_int32(x << left), mult)
    return (hi + ((1 << right) >> 1)) >> right


@register("MEAN", versions=(1, 3), types=QUANT16)
def prepare_mean(ctx: OpContext) -> Prepared:
    """Quantized MEAN over constant axes (keep_dims option)."""
    return _prepare_reduce(ctx, compute_sum=False)


@register("SUM", versions=(1, 2), types=QUANT16)
def prepare_sum(ctx: OpContext) -> Prepared:
    """Quantized SUM over constant axes (keep_dims option), rescaled to the output."""
    return _prepare_reduce(ctx, compute_sum=True)
