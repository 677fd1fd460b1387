"""Integer (quantized) activations, bit-exact with TFLite: RELU, RELU6,
RELU_N1_TO_1, LEAKY_RELU, PRELU, ELU, HARD_SWISH, LOGISTIC, TANH, SOFTMAX,
L2_NORMALIZATION.

Every unary op runs TFLite's exact integer (or float-LUT) formula once in
prepare over all 256 (8-bit) or 65536 (int16) input values into a table; run
is one table lookup. Which LiteRT kernel each one equals:

* RELU*, LEAKY_RELU, PRELU, HARD_SWISH, int16 LOGISTIC/TANH (general scales):
  builtin and reference kernels agree; edgeplex equals both.
* 8-bit LOGISTIC/TANH/ELU: LiteRT (builtin and reference alike) builds a
  256-entry table from float32 math (LUTPopulate); edgeplex rebuilds it.
* 8-bit SOFTMAX: the builtin (optimized) kernel uses a float32 exp table and a
  float32 sum; the reference kernel uses gemmlowp fixed point and differs by
  one step on many inputs. edgeplex equals the builtin kernel.
* int16 SOFTMAX: one kernel (interpolated int16 LUTs), edgeplex equals it.
* 8-bit L2_NORMALIZATION: one integer formula in both kernels (1/sqrt by
  gemmlowp Newton-Raphson per row); edgeplex equals it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from . import quant_math as qm
from .common import broadcast_shape
from .qcommon import QParams, TableIndex, output_type, pair_table, qparams, same_type, \
    unary_table
from .registry import register

QUANT8 = frozenset({"INT8", "UINT8"})
QUANT16 = frozenset({"INT8", "UINT8", "INT16"})
IntFn = Callable[[np.ndarray], np.ndarray]


# -- shared plumbing -------------------------------------------------------------------------
def _unary(ctx: OpContext, *, int16_zero: bool = True) -> tuple[QParams, QParams]:
    """Input/output quantization of a one-input op whose output type equals its input's."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    out = output_type(ctx, x.type_name)
    return (qparams(ctx, x, "input", symmetric_int16=int16_zero),
            qparams(ctx, out, "output", symmetric_int16=int16_zero))


def _done_table(ctx: OpContext, fn: IntFn) -> Prepared:
    """A kernel looking up ``fn`` (exact, over every input value) in a table."""
    x = ctx.input(0)
    table = unary_table(x.dtype, lambda v: qm.saturate(fn(v), x.dtype), x.dtype)
    index = TableIndex(x.shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        index.unary(table, ins[0], outs[0])
    return ctx.done(run, x.shape, scratch_bytes=table.nbytes + index.nbytes)


def _done_lut(ctx: OpContext, pin: QParams, pout: QParams,
              fn: Callable[[np.ndarray], np.ndarray]) -> Prepared:
    """An 8-bit kernel using TFLite's float32 LUTPopulate table of ``fn``."""
    x = ctx.input(0)
    table = qm.int8_lut(x.dtype, pin.scale, pin.zero_point, pout.scale, pout.zero_point, fn)
    index = TableIndex(x.shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        index.unary(table, ins[0], outs[0])
    return ctx.done(run, x.shape, scratch_bytes=table.nbytes + index.nbytes)


def _f32(v: float) -> float:
    return float(np.float32(v))


# -- RELU family ------------------------------------------------------------------------------
def _relu_x(ctx: OpContext, lo: float | None, hi: float | None) -> Prepared:
    pin, pout = _unary(ctx)
    mult, shift = (int(v) for v in qm.quantize_multiplier(_f32(pin.scale / pout.scale)))
    info = np.iinfo(ctx.input(0).dtype)

    def q(v: float) -> int:
        return pout.zero_point + int(qm.round_half_away(np.float32(v) / pout.scale))
    qmin = max(info.min, q(lo)) if lo is not None else info.min
    qmax = min(info.max, q(hi)) if hi is not None else info.max

    def fn(v: np.ndarray) -> np.ndarray:
        y = pout.zero_point + qm.multiply_by_quantized_multiplier(v - pin.zero_point, mult, shift)
        return np.minimum(np.maximum(y, qmin), qmax)
    return _done_table(ctx, fn)


@register("RELU", versions=(1, 3), types=QUANT16)
def prepare_relu(ctx: OpContext) -> Prepared:
    """Quantized RELU: rescale to the output, clamp below at real 0."""
    return _relu_x(ctx, 0.0, None)


@register("RELU6", versions=(1, 3), types=QUANT16)
def prepare_relu6(ctx: OpContext) -> Prepared:
    """Quantized RELU6: rescale, clamp to real [0, 6]."""
    return _relu_x(ctx, 0.0, 6.0)


@register("RELU_N1_TO_1", versions=(1, 1), types=QUANT8)
def prepare_relu_n1_to_1(ctx: OpContext) -> Prepared:
    """Quantized RELU_N1_TO_1: rescale, clamp to real [-1, 1]."""
    return _relu_x(ctx, -1.0, 1.0)


# -- LEAKY_RELU / PRELU -------------------------------------------------------------------
@register("LEAKY_RELU", versions=(1, 2), types=QUANT16)
def prepare_leaky_relu(ctx: OpContext) -> Prepared:
    """Quantized LEAKY_RELU: identity or alpha multiplier by the input's sign."""
    pin, pout = _unary(ctx)
    alpha = np.float32(getattr(ctx.options, "alpha", 0.0))
    m_alpha = [int(v) for v in qm.quantize_multiplier(_f32(pin.scale * alpha / pout.scale))]
    m_id = [int(v) for v in qm.quantize_multiplier(_f32(pin.scale / pout.scale))]

    def fn(v: np.ndarray) -> np.ndarray:
        d = v - pin.zero_point
        pos = qm.multiply_by_quantized_multiplier(d, *m_id)
        neg = qm.multiply_by_quantized_multiplier(d, *m_alpha)
        return pout.zero_point + np.where(d >= 0, pos, neg)
    return _done_table(ctx, fn)


@register("PRELU", versions=(1, 1), types=QUANT8)
def prepare_prelu(ctx: OpContext) -> Prepared:
    """Quantized PRELU: x or x * alpha (alpha broadcast, usually per channel)."""
    ctx.expect_counts(2)
    x, alpha = ctx.input(0), ctx.input(1)
    same_type(ctx, x, alpha)
    shape = broadcast_shape(ctx, x.shape, alpha.shape)
    if shape != tuple(x.shape):
        raise ctx.invalid(f"alpha shape {list(alpha.shape)} must broadcast to the input shape "
                          f"{list(x.shape)}")
    pin, pa = qparams(ctx, x, "input"), qparams(ctx, alpha, "alpha")
    pout = qparams(ctx, output_type(ctx, x.type_name), "output")
    m1 = [int(v) for v in qm.quantize_multiplier(_f32(pin.scale / pout.scale))]
    m2 = [int(v) for v in qm.quantize_multiplier(_f32(pin.scale * pa.scale / pout.scale))]

    def fn(v: np.ndarray, a: np.ndarray) -> np.ndarray:
        d = v - pin.zero_point
        pos = qm.multiply_by_quantized_multiplier(d, *m1)
        neg = qm.multiply_by_quantized_multiplier(d * (a - pa.zero_point), *m2)
        return qm.saturate(pout.zero_point + np.where(d >= 0, pos, neg), x.dtype)
    table = pair_table(x.dtype, fn, x.dtype)
    index = TableIndex(shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        index.pair(table, ins[0], ins[1], outs[0])
    return ctx.done(run, shape, scratch_bytes=table.nbytes + index.nbytes)


# -- ELU ------------------------------------------------------------------------------------
def _elu(v: np.ndarray) -> np.ndarray:
    v64 = v.astype(np.float64)
    return np.where(v < 0, np.expm1(v64), v64).astype(np.float32)


@register("ELU", versions=(1, 1), types={"INT8"})
def prepare_elu(ctx: OpContext) -> Prepared:
    """Quantized (int8) ELU through TFLite's float LUT (expm1 below zero)."""
    pin, pout = _unary(ctx)
    return _done_lut(ctx, pin, pout, _elu)


# -- HARD_SWISH -------------------------------------------------------------------------------
def _down_scale_to_int16(m: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier (round the Q31 multiplier to Q15)."""
    return 32767 if m >= qm.INT32_MAX - (1 << 15) else (m + (1 << 15)) >> 16


def _sat16(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -32768, 32767)


@register("HARD_SWISH", versions=(1, 1), types=QUANT8)
def prepare_hard_swish(ctx: OpContext) -> Prepared:
    """Quantized HARD_SWISH: TFLite's int16 fixed-point x * relu6(x + 3) / 6."""
    pin, pout = _unary(ctx)
    hires = np.float32(1.0 / 128.0) * pin.scale
    m_out, e_out = (int(v) for v in qm.quantize_multiplier(_f32(hires / pout.scale)))
    m_rel, e_rel = (int(v) for v in qm.quantize_multiplier(
        _f32(hires / np.float32(3.0 / 32768.0))))
    if e_out > 0:
        ctx.fail(f"HARD_SWISH output multiplier exponent {e_out} must be <= 0 "
                 "(output scale too small for the input scale)")
    m_out, m_rel = _down_scale_to_int16(m_out), _down_scale_to_int16(m_rel)

    def fn(v: np.ndarray) -> np.ndarray:
        hi = qm.wrap_int16(qm.wrap_int16(v - pin.zero_point) * 128)
        pre = qm.saturating_rounding_doubling_high_mul16(hi, m_out)
        rel = _sat16(hi << max(e_rel - 1, 0)) if e_rel > 0 else hi
        rel = qm.saturating_rounding_doubling_high_mul16(rel, m_rel)
        if e_rel > 0:
            rel = _sat16(rel * 2)
        elif e_rel < 0:
            rel = qm.rounding_divide_by_pot(rel, -e_rel)
        rel = (rel + (1 << 15)) >> 1
        prod = rel * pre
        out = np.where(prod >= 0, prod >> 15, -((-prod) >> 15))   # C++ division truncates
        out = qm.rounding_divide_by_pot(out, -e_out)
        return qm.wrap_int16(out + pout.zero_point)
    return _done_table(ctx, fn)


# -- LOGISTIC / TANH ---------------------------------------------------------------------
def _sigmoid_f32(v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):            # expf overflows to inf as well
        e = np.exp(-v.astype(np.float64)).astype(np.float32)
    return np.float32(1.0) / (np.float32(1.0) + e)


def _tanh_f32(v: np.ndarray) -> np.ndarray:
    return np.tanh(v.astype(np.float64)).astype(np.float32)


#: Entries where TFLite's stored sigmoid table is one above round(2^16 *
#: sigmoid(i / 24)) (its generator is not published; verified exhaustively
#: against LiteRT's int16 LOGISTIC/TANH in tests/test_qactivations.py).
_SIGMOID_TABLE_PLUS_ONE = (4, 8, 12, 14, 15, 16, 17, 19, 20, 21, 22, 25, 27, 28, 29, 30, 31,
                           33, 34, 35, 37, 39, 40, 41, 43, 44, 45, 46, 49, 50, 54, 62, 63, 64,
                           66, 82, 86, 93, 100, 103, 112, 116, 135)


def sigmoid_table_uint16() -> np.ndarray:
    """TFLite's 256-entry sigmoid(i / 24) table in unsigned Q0.16 (last entry
    saturated to 65535), shared by its int16 LOGISTIC and TANH."""
    i = np.arange(256, dtype=np.float64)
    table = qm.round_half_away(65536.0 / (1.0 + np.exp(-i / 24.0))).astype(np.int64)
    table[list(_SIGMOID_TABLE_PLUS_ONE)] += 1
    table[-1] = 65535
    return table


def _int16_input_scaling(ctx: OpContext, pin: QParams, pot_shift: int, pot_ok: Callable[[int],
                         bool]) -> tuple[int, int]:
    """(input_multiplier, input_left_shift) of TFLite's int16 LOGISTIC/TANH."""
    is_pot, log2 = qm.checked_log2(pin.scale)
    shift = pot_shift + log2
    if is_pot and pot_ok(shift):
        return 0, shift
    mult, shift = pin.scale64 * 4096.0 * 3.0, 0
    while mult <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        mult *= 2.0
    return int(mult), shift


def _int16_output_check(ctx: OpContext, pout: QParams) -> None:
    is_pot, log2 = qm.checked_log2(pout.scale)
    if not is_pot or log2 != -15:
        ctx.fail(f"int16 {ctx.name} needs output scale 2^-15, got {float(pout.scale):g}")


def _logistic16(mult: int, shift: int) -> IntFn:
    table = sigmoid_table_uint16()

    def fn(v: np.ndarray) -> np.ndarray:
        m, s = (3 << shift, 0) if mult == 0 else (mult, shift)
        x = (v * m + ((1 << (s - 1)) if s > 0 else 0)) >> s
        ax = np.abs(x)
        uh = np.minimum(ax >> 9, 254)
        res = (table[uh] << 9) + (ax & 0x1FF) * (table[uh + 1] - table[uh])
        res = np.where((ax >> 9) >= 255, 0x7FFF << 10, res)
        res = np.where(x >= 0, res + (1 << 9), (1 << 25) - res + (1 << 9) - 1)
        return qm.wrap_int16(res >> 10)
    return fn


def _tanh16(mult: int, shift: int) -> IntFn:
    table = sigmoid_table_uint16()

    def fn(v: np.ndarray) -> np.ndarray:
        m, s = (3 << shift, 0) if mult == 0 else (mult, shift)
        x = (v * m + ((1 << (s - 1)) if s > 0 else 0)) >> s
        ax = np.abs(x)
        uh = np.minimum(ax >> 8, 254)
        res = (table[uh] << 8) + (ax & 0xFF) * (table[uh + 1] - table[uh])
        res = np.where((ax >> 8) >= 255, 0xFFFF << 8, res)
        res = np.where(x >= 0, res - (1 << 23) + (1 << 7), -res + (1 << 23) + (1 << 7) - 1)
        return qm.wrap_int16(res >> 8)
    return fn


@register("LOGISTIC", versions=(1, 3), types=QUANT16)
def prepare_logistic(ctx: OpContext) -> Prepared:
    """Quantized LOGISTIC: float32 LUT for 8-bit (output scale 1/256), TFLite's
    interpolated sigmoid table for int16 (output scale 2^-15)."""
    pin, pout = _unary(ctx)
    if ctx.input(0).type_name == "INT16":
        _int16_output_check(ctx, pout)
        mult, shift = _int16_input_scaling(ctx, pin, 12, lambda s: s == 0)
        return _done_table(ctx, _logistic16(mult, shift))
    if pout.scale != np.float32(1.0 / 256):
        ctx.fail(f"quantized LOGISTIC needs output scale 1/256, got {float(pout.scale):g}")
    return _done_lut(ctx, pin, pout, _sigmoid_f32)


@register("TANH", versions=(1, 3), types=QUANT16)
def prepare_tanh(ctx: OpContext) -> Prepared:
    """Quantized TANH: float32 LUT for 8-bit, TFLite's interpolated table for int16."""
    pin, pout = _unary(ctx)
    if ctx.input(0).type_name == "INT16":
        _int16_output_check(ctx, pout)
        mult, shift = _int16_input_scaling(ctx, pin, 12, lambda s: s in (0, 1))
        return _done_table(ctx, _tanh16(mult, shift))
    return _done_lut(ctx, pin, pout, _tanh_f32)


# -- SOFTMAX ---------------------------------------------------------------------------------
@register("SOFTMAX", versions=(1, 3), types=QUANT16)
def prepare_softmax(ctx: OpContext) -> Prepared:
    """Quantized SOFTMAX over the last axis (beta option)."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    if x.rank < 1:
        raise ctx.invalid("SOFTMAX input must have at least one dimension")
    out = output_type(ctx, x.type_name)
    pin, pout = qparams(ctx, x, "input"), qparams(ctx, out, "output")
    beta = np.float32(getattr(ctx.options, "beta", 1.0))
    if x.type_name == "INT16":
        return _softmax16(ctx, pin, pout, beta)
    want_zp = -128 if x.type_name == "INT8" else 0
    if x.type_name == "INT8" and (pout.zero_point != want_zp or
                                  abs(pout.scale - 1 / 256) > 0.001 / 256):
        ctx.fail(f"int8 SOFTMAX needs output scale 1/256 and zero point -128, got "
                 f"{float(pout.scale):g} and {pout.zero_point}")
    return _softmax8(ctx, pin, pout, beta)


def _softmax8(ctx: OpContext, pin: QParams, pout: QParams, beta: np.float32) -> Prepared:
    """TFLite's optimized 8-bit softmax: exp table in float32, float32 sum.

    Every step writes into buffers made here, in the same float32 (and, for
    int8's rounding, float64) operations as the reference formula
    ``round(exp_table[max - x] / (sum * s_out)) + zp``.
    """
    scale = -pin.scale * beta
    exp_table = np.exp((scale * np.arange(256, dtype=np.float32)).astype(np.float64)
                       ).astype(np.float32)             # exp_table[d] = exp(-s*beta*d)
    x = ctx.input(0)
    is_uint8 = x.type_name == "UINT8"
    info = np.iinfo(x.dtype)
    shape, row = tuple(x.shape), tuple(x.shape[:-1]) + (1,)
    index, top = np.empty(shape, np.intp), np.empty(row, np.intp)
    e, cum, inv = np.empty(shape, np.float32), np.empty(shape, np.float32), \
        np.empty(row, np.float32)
    wide = None if is_uint8 else np.empty(shape, np.float64)
    q = np.empty(shape, np.int64)
    total = cum[..., -1:]

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.copyto(index, ins[0])
        np.max(index, axis=-1, keepdims=True, out=top)
        np.subtract(top, index, out=index)                     # max - x, in [0, 255]
        np.take(exp_table, index, out=e, mode="clip")
        np.cumsum(e, axis=-1, out=cum)                         # sequential, like C++
        np.multiply(total, pout.scale, out=inv)
        np.divide(np.float32(1.0), inv, out=inv)
        np.multiply(e, inv, out=e)                             # the probabilities
        if wide is None:
            np.add(e, np.float32(0.5), out=e)                  # uint8: + 0.5f, truncate
            np.copyto(q, e, casting="unsafe")
        else:
            np.copyto(wide, e)                                 # int8: std::round (>= 0)
            np.add(wide, 0.5, out=wide)
            np.copyto(q, wide, casting="unsafe")
        np.add(q, pout.zero_point, out=q)
        qm.clip_into(q, info.min, info.max, q)
        np.copyto(outs[0], q, casting="unsafe")
    scratch = sum(a.nbytes for a in (index, top, e, cum, inv, q)) + \
        (0 if wide is None else wide.nbytes)
    return ctx.done(run, shape, scratch_bytes=scratch)


def _softmax16(ctx: OpContext, pin: QParams, pout: QParams, beta: np.float32) -> Prepared:
    """TFLite's int16 softmax: exp and 1/(1+x) through interpolated int16 LUTs."""
    if ctx.input(0).rank > 4:
        ctx.fail("int16 SOFTMAX supports 1D to 4D inputs")
    if abs(pout.scale - 1 / 32768) > 0.001 / 32768:
        ctx.fail(f"int16 SOFTMAX needs output scale 1/32768, got {float(pout.scale):g}")
    rng = 65535
    exp_lut = qm.int16_lut(10.0 / rng, 32767, 2.0 / rng, 0, np.exp, np.float64)
    inv_lut = qm.int16_lut(1.0 / rng, -32768, 2.0 / rng, 0, lambda v: 1.0 / (1.0 + v),
                           np.float64)
    mult, shift = (int(v) for v in qm.quantize_multiplier(
        float(pin.scale * beta) / (10.0 / 65535.0)))

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        x = ins[0].astype(np.int64)
        diff = qm.multiply_by_quantized_multiplier(x - x.max(axis=-1, keepdims=True), mult, shift)
        e = qm.int16_lut_lookup(np.clip(diff + 32767, -32768, 32767), exp_lut)
        total = e.sum(axis=-1, keepdims=True)
        head = _clz32(total)
        shifted = ((total << (head - 1)) + (1 << 13)) >> 14
        recip = qm.int16_lut_lookup(np.clip(shifted - (1 << 15) - (1 << 16), -32768, 32767),
                                    inv_lut)
        right = 31 - head
        res = (e * recip + (np.int64(1) << (right - 1))) >> right
        np.copyto(outs[0], np.clip(res, 0, 32767), casting="unsafe")
    return ctx.done(run, ctx.input(0).shape)


def _clz32(v: np.ndarray) -> np.ndarray:
    """Count of leading zeros of positive int32 values (as int64)."""
    return 32 - np.frexp(v.astype(np.float64))[1].astype(np.int64)


# -- L2_NORMALIZATION -------------------------------------------------------------------------
@register("L2_NORMALIZATION", versions=(1, 2), types=QUANT8)
def prepare_l2_normalization(ctx: OpContext) -> Prepared:
    """Quantized L2_NORMALIZATION over the last axis (output scale 1/128)."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    if x.rank < 1:
        raise ctx.invalid("L2_NORMALIZATION input must have at least one dimension")
    out = output_type(ctx, x.type_name)
    pin, pout = qparams(ctx, x, "input"), qparams(ctx, out, "output")
    want_zp = 0 if x.type_name == "INT8" else 128
    if pout.scale != np.float32(1 / 128) or pout.zero_point != want_zp:
        ctx.fail(f"quantized L2_NORMALIZATION needs output scale 1/128 and zero point "
                 f"{want_zp}, got {float(pout.scale):g} and {pout.zero_point}")
    act = getattr(ctx.options, "fused_activation_function", "NONE")
    if act != "NONE":
        ctx.fail(f"L2_NORMALIZATION with fused activation {act!r} is not supported")
    is_int8 = x.type_name == "INT8"
    info = np.iinfo(x.dtype)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        d = ins[0].astype(np.int64) - pin.zero_point
        acc = qm.wrap_int32((d * d).sum(axis=-1, keepdims=True))
        mult, shift = qm.inv_sqrt_quantized_multiplier(acc)
        if is_int8:
            y = qm.multiply_by_quantized_multiplier(d, mult, shift + 7)
        else:
            y = 128 + qm.multiply_by_quantized_multiplier(128 * d, mult, shift)
        np.copyto(outs[0], np.clip(y, info.min, info.max), casting="unsafe")
    return ctx.done(run, x.shape)
