"""QUANTIZE and DEQUANTIZE, bit-exact with TFLite.

* QUANTIZE float32 -> int8/uint8/int16 (per-tensor or per-channel output
  quantization): ``round_half_away(x / scale) + zero_point`` in float32,
  saturated — TFLite's reference formula. LiteRT's optimized x86 kernel
  multiplies by ``1 / scale`` and rounds ties to even for whole blocks of 8
  elements (NEON code through NEON_2_SSE) and uses the reference formula on
  the remaining tail, so the two only disagree on exact ties and its result
  depends on an element's position; edgeplex follows the reference kernel.
* QUANTIZE int -> int (requantize: int8/uint8 -> int8/uint8, int16 ->
  int8/int16): ``MultiplyByQuantizedMultiplier(x - zp_in, s_in / s_out) + zp_out``.
* DEQUANTIZE int8/uint8/int16 (per-tensor, and per-channel for int8/uint8)
  and float16 -> float32: ``scale * (x - zero_point)`` rounded once to float32.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from . import quant_math as qm
from .qcommon import TableIndex, qparams, unary_table
from .registry import register


@register("DEQUANTIZE", versions=(1, 8), types={"FLOAT16"})
def prepare_dequantize_float16(ctx: OpContext) -> Prepared:
    """DEQUANTIZE of float16 (usually constant weights) to float32."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    if ctx.outputs[0].type_name != "FLOAT32":
        raise ctx.invalid(f"float16 DEQUANTIZE must output FLOAT32, not "
                          f"{ctx.outputs[0].type_name}")

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.copyto(outs[0], ins[0], casting="unsafe")
    return ctx.done(run, x.shape)


# -- per-channel parameters ---------------------------------------------------------------
def _channel_params(ctx: OpContext, spec: TensorSpec, role: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(scales, zero points) shaped to broadcast along the quantized axis."""
    q = spec.quantization
    if q is None or q.scale.size == 0:
        raise ctx.invalid(f"{role} {spec.name!r} is {spec.type_name} but has no "
                          "quantization parameters")
    axis = q.axis + spec.rank if q.axis < 0 else q.axis
    if not 0 <= axis < spec.rank or spec.shape[axis] != q.scale.size:
        raise ctx.invalid(f"{role} {spec.name!r}: {q.scale.size} per-channel scales do not "
                          f"match axis {q.axis} of shape {list(spec.shape)}")
    zp = q.zero_point if q.zero_point.size == q.scale.size else \
        np.full(q.scale.size, q.zero_point.reshape(-1)[0] if q.zero_point.size else 0)
    shape = [1] * spec.rank
    shape[axis] = q.scale.size
    return (q.scale.astype(np.float32).reshape(shape),
            zp.astype(np.int64).reshape(shape))


def _is_per_channel(spec: TensorSpec) -> bool:
    return spec.quantization is not None and spec.quantization.scale.size > 1


# -- DEQUANTIZE ---------------------------------------------------------------------------
@register("DEQUANTIZE", versions=(1, 8), types={"INT8", "UINT8", "INT16"})
def prepare_dequantize(ctx: OpContext) -> Prepared:
    """DEQUANTIZE int8/uint8/int16 -> float32: ``scale * (x - zero_point)``."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    if ctx.outputs[0].type_name != "FLOAT32":
        raise ctx.invalid(f"DEQUANTIZE must output FLOAT32, not {ctx.outputs[0].type_name}")
    if _is_per_channel(x):
        if x.type_name == "INT16":
            ctx.fail("per-channel DEQUANTIZE of INT16 is not supported (TFLite takes "
                     "int8/uint8 per-channel)")
        return _dequantize_per_channel(ctx, x)
    p = qparams(ctx, x, "input")          # LiteRT also requires int16 zero point 0
    table = unary_table(x.dtype, lambda v: np.float32(p.scale) * (v - p.zero_point).astype(
        np.float32), np.float32)
    index = TableIndex(x.shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        index.unary(table, ins[0], outs[0])
    return ctx.done(run, x.shape, scratch_bytes=table.nbytes + index.nbytes)


def _dequantize_per_channel(ctx: OpContext, x: TensorSpec) -> Prepared:
    scale, zp = _channel_params(ctx, x, "input")

    wide = np.empty(x.shape, np.int64)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.copyto(wide, ins[0])
        np.subtract(wide, zp, out=wide)
        np.copyto(outs[0], wide, casting="unsafe")          # exact: |x - zp| <= 255
        np.multiply(outs[0], scale, out=outs[0])
    if x.is_constant:                       # constant weights: compute once
        value = (x.data.astype(np.int64) - zp).astype(np.float32) * scale

        def run_const(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            np.copyto(outs[0], value)
        return ctx.done(run_const, x.shape, scratch_bytes=value.nbytes)
    return ctx.done(run, x.shape, scratch_bytes=wide.nbytes)


# -- QUANTIZE -------------------------------------------------------------------------------
_REQUANT_PAIRS = {("INT8", "INT8"), ("INT8", "UINT8"), ("UINT8", "INT8"), ("UINT8", "UINT8"),
                  ("INT16", "INT8"), ("INT16", "INT16")}


@register("QUANTIZE", versions=(1, 5), types={"FLOAT32"})
def prepare_quantize(ctx: OpContext) -> Prepared:
    """QUANTIZE float32 -> int8/uint8/int16, per-tensor or per-channel."""
    ctx.expect_counts(1)
    x, out = ctx.input(0), ctx.outputs[0]
    if out.type_name not in ("INT8", "UINT8", "INT16"):
        ctx.fail(f"QUANTIZE to {out.type_name} is not supported (int8, uint8, int16)")
    if _is_per_channel(out):
        scale, zp = _channel_params(ctx, TensorSpec(out.tensor, x.shape), "output")
    else:
        p = qparams(ctx, out, "output", symmetric_int16=False)
        scale, zp = p.scale, np.int64(p.zero_point)
    info = np.iinfo(out.dtype)
    ratio = np.empty(x.shape, np.float32)
    wide, half = np.empty(x.shape), np.empty(x.shape)
    bad = np.empty(x.shape, bool)
    q = np.empty(x.shape, np.int64)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.divide(ins[0], scale, out=ratio)                  # float32, as TFLite
        np.copyto(wide, ratio)                               # std::round in double
        np.copysign(0.5, wide, out=half)
        np.add(wide, half, out=wide)
        np.trunc(wide, out=wide)
        np.abs(wide, out=half)                               # static_cast<int32_t>: out of
        np.less(half, 2.0**31, out=bad)                      # range and NaN give INT32_MIN
        np.logical_not(bad, out=bad)
        np.copyto(wide, qm.INT32_MIN, where=bad)
        np.copyto(q, wide, casting="unsafe")
        np.add(q, zp, out=q)
        np.add(q, 1 << 31, out=q)                            # + zero point wraps in int32
        np.bitwise_and(q, (1 << 32) - 1, out=q)
        np.subtract(q, 1 << 31, out=q)
        qm.clip_into(q, info.min, info.max, q)
        np.copyto(outs[0], q, casting="unsafe")
    return ctx.done(run, x.shape, scratch_bytes=ratio.nbytes + wide.nbytes + half.nbytes +
                    bad.nbytes + q.nbytes)


@register("QUANTIZE", versions=(1, 5), types={"INT8", "UINT8", "INT16"})
def prepare_requantize(ctx: OpContext) -> Prepared:
    """QUANTIZE between integer types: rescale by ``s_in / s_out`` (requantize)."""
    ctx.expect_counts(1)
    x, out = ctx.input(0), ctx.outputs[0]
    if (x.type_name, out.type_name) not in _REQUANT_PAIRS:
        ctx.fail(f"requantizing {x.type_name} to {out.type_name} is not supported")
    both16 = x.type_name == out.type_name == "INT16"
    pin = qparams(ctx, x, "input", symmetric_int16=both16)
    pout = qparams(ctx, out, "output", symmetric_int16=both16)
    mult, shift = qm.quantize_multiplier(pin.scale64 / pout.scale64)
    table = unary_table(x.dtype, lambda v: qm.requantize(
        v, int(mult), int(shift), pin.zero_point, pout.zero_point, out.dtype), out.dtype)
    index = TableIndex(x.shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        index.unary(table, ins[0], outs[0])
    return ctx.done(run, x.shape, scratch_bytes=table.nbytes + index.nbytes)
