"""Integer (quantized) elementwise binary ops: ADD, SUB, MUL, SQUARED_DIFFERENCE,
MAXIMUM, MINIMUM and the comparisons, bit-exact with TFLite.

8-bit inputs: prepare runs the exact integer formula once over all 256 x 256
input pairs into a 65536-entry table; run is one broadcast table lookup.
int16 (16x8 mode) computes the formula vectorized at run time.

Which LiteRT kernel each op matches (tests/test_qelementwise.py compares
against it): the reference kernels' formulas. The optimized int8 MUL of the
x86 wheel (NEON code through NEON_2_SSE) narrows the rescaled product to int16
and adds the output zero point in wrapping int16 arithmetic, so a product that
saturates at -32768 with a negative output zero point wraps to +127; edgeplex
does not copy that overflow and equals the reference kernel there.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from . import quant_math as qm
from .common import broadcast_shape
from .qcommon import EIGHT_BIT, QParams, TableIndex, output_type, pair_table, qparams, \
    same_type
from .registry import register

QUANT8 = frozenset({"INT8", "UINT8"})
QUANT16 = frozenset({"INT8", "UINT8", "INT16"})
PairFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# -- shared plumbing -------------------------------------------------------------------
def _binary_inputs(ctx: OpContext) -> tuple[QParams, QParams, tuple[int, ...]]:
    ctx.expect_counts(2)
    a, b = ctx.input(0), ctx.input(1)
    same_type(ctx, a, b)
    shape = broadcast_shape(ctx, a.shape, b.shape)
    if a.type_name == "INT16" and a.quantization is None and b.quantization is None:
        ctx.fail("INT16 without quantization parameters (plain int16 arithmetic) is not "
                 "supported; quantized int16 is")
    return qparams(ctx, a, "input 0"), qparams(ctx, b, "input 1"), shape


def _done_pairwise(ctx: OpContext, fn: PairFn, shape: tuple[int, ...]) -> Prepared:
    """Prepared kernel applying exact integer ``fn`` (int64 in, final values out)."""
    dtype, out_dtype = ctx.input(0).dtype, ctx.outputs[0].dtype
    if ctx.input(0).type_name in EIGHT_BIT:
        table = pair_table(dtype, fn, out_dtype)
        index = TableIndex(shape)

        def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            index.pair(table, ins[0], ins[1], outs[0])
        return ctx.done(run, shape, scratch_bytes=table.nbytes + index.nbytes)

    def run16(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        outs[0][...] = fn(ins[0].astype(np.int64), ins[1].astype(np.int64))
    return ctx.done(run16, shape)


def _act_range(ctx: OpContext, out: QParams) -> tuple[int, int]:
    act = getattr(ctx.options, "fused_activation_function", "NONE")
    try:
        return qm.activation_range(act, out.scale, out.zero_point, out.dtype)
    except ValueError:
        ctx.fail(f"fused activation {act!r} is not supported on quantized outputs")


def _smaller_than_one(ctx: OpContext, real: float, what: str) -> tuple[int, int]:
    try:
        return qm.quantize_multiplier_smaller_than_one_exp(real)
    except ValueError:
        ctx.fail(f"{what} rescale factor {real:g} must be below 1 (TFLite aborts on it); "
                 "the quantization scales are out of the supported range")


# -- ADD / SUB ---------------------------------------------------------------------------
def _add_sub(ctx: OpContext, sign: int) -> Prepared:
    a, b, shape = _binary_inputs(ctx)
    out = qparams(ctx, output_type(ctx, ctx.input(0).type_name), "output")
    lo, hi = _act_range(ctx, out)
    if ctx.input(0).type_name == "INT16" and _pot_int16(ctx, a, b, out):
        return _add_sub_pot16(ctx, a, b, out, sign, shape, (lo, hi))
    left = 15 if ctx.input(0).type_name == "INT16" else 20
    twice_max = 2.0 * float(max(a.scale, b.scale))
    m1 = _smaller_than_one(ctx, a.scale64 / twice_max, "input 0")
    m2 = _smaller_than_one(ctx, b.scale64 / twice_max, "input 1")
    # TFLite's SUB accepts an output multiplier above 1 but then right-shifts by
    # a negative amount (undefined behaviour; garbage on x86): refuse it, as ADD.
    mo = _smaller_than_one(ctx, twice_max / float(np.float32(1 << left) * out.scale), "output")

    in_x, in_y = _rescaler(a, left, m1), _rescaler(b, left, m2)

    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raw = qm.multiply_by_quantized_multiplier(in_x(x) + sign * in_y(y), *mo) + \
            out.zero_point
        return np.clip(raw, lo, hi)
    return _done_pairwise(ctx, fn, shape)


def _rescaler(p: QParams, left: int, mult: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    """x -> MultiplyByQuantizedMultiplier((x - zp) << left): for 8-bit inputs
    computed once per value (a pair table would otherwise redo it 256 times)."""
    def rescale(x: np.ndarray) -> np.ndarray:
        return qm.multiply_by_quantized_multiplier((x - p.zero_point) << left, *mult)
    if p.dtype.itemsize != 1:
        return rescale
    info = np.iinfo(p.dtype)
    table = rescale(np.arange(info.min, info.max + 1, dtype=np.int64))
    return lambda x: table[np.asarray(x, dtype=np.int64) - info.min]


def _pot_int16(ctx: OpContext, a: QParams, b: QParams, out: QParams) -> bool:
    """TFLite's int16 ADD/SUB use the power-of-two path when the option asks
    for it (the default) and all three scales are powers of two."""
    if not getattr(ctx.options, "pot_scale_int16", True):
        return False
    return all(qm.checked_log2(q.scale)[0] for q in (a, b, out))


def _add_sub_pot16(ctx: OpContext, a: QParams, b: QParams, out: QParams, sign: int,
                   shape: tuple[int, ...], clamp: tuple[int, int]) -> Prepared:
    """The LSTM-style int16 path: one input shifted right to the output's
    power-of-two scale, then a saturating int16 add/sub."""
    lo_out = qm.checked_log2(out.scale)[1]
    s1, s2 = qm.checked_log2(a.scale)[1] - lo_out, qm.checked_log2(b.scale)[1] - lo_out
    if not (s1 == 0 or s2 == 0) or s1 > 0 or s2 > 0:
        ctx.fail(f"power-of-two int16 {ctx.name} needs one input at the output's scale and "
                 f"the other at a smaller one (input shifts {s1}, {s2})")
    if sign > 0 and tuple(ctx.input(0).shape) != tuple(ctx.input(1).shape):
        ctx.fail("int16 ADD with power-of-two scales does not broadcast in TFLite (its kernel "
                 "aborts); give both inputs the same shape or set pot_scale_int16=false")
    lo, hi = clamp

    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = qm.rounding_divide_by_pot(x, -s1), qm.rounding_divide_by_pot(y, -s2)
        return np.clip(np.clip(x + sign * y, -32768, 32767), lo, hi)
    return _done_pairwise(ctx, fn, shape)


@register("ADD", versions=(1, 5), types=QUANT16)
def prepare_add(ctx: OpContext) -> Prepared:
    """Quantized ADD: both inputs rescaled to a common scale (20 fractional bits
    for 8-bit, 15 for int16), summed, rescaled to the output, clamped."""
    return _add_sub(ctx, +1)


@register("SUB", versions=(1, 5), types=QUANT16)
def prepare_sub(ctx: OpContext) -> Prepared:
    """Quantized SUB: as ADD with the second input negated."""
    return _add_sub(ctx, -1)


# -- MUL -------------------------------------------------------------------------------
@register("MUL", versions=(1, 7), types=QUANT16)
def prepare_mul(ctx: OpContext) -> Prepared:
    """Quantized MUL: (a - za)(b - zb) rescaled by sa*sb/so (float32 product)."""
    a, b, shape = _binary_inputs(ctx)
    if ctx.input(0).type_name == "INT16" and ctx.outputs[0].type_name in ("INT8", "UINT8"):
        return _mul16_to_8(ctx, shape)
    out = qparams(ctx, output_type(ctx, ctx.input(0).type_name), "output")
    lo, hi = _act_range(ctx, out)
    real = float(a.scale * b.scale / out.scale)         # float arithmetic in TFLite
    mult, shift = (int(v) for v in qm.quantize_multiplier(real))

    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        prod = qm.wrap_int32((x - a.zero_point) * (y - b.zero_point))
        raw = qm.multiply_by_quantized_multiplier(prod, mult, shift) + out.zero_point
        return np.clip(raw, lo, hi)
    return _done_pairwise(ctx, fn, shape)


def _mul16_to_8(ctx: OpContext, shape: tuple[int, ...]) -> Prepared:
    """int16 x int16 -> int8/uint8 MUL (LSTM-style): a Q0.15 product shifted
    down to 8 bits and offset by the output zero point; scales are not used."""
    if tuple(ctx.input(0).shape) != tuple(ctx.input(1).shape):
        ctx.fail("int16 -> 8-bit MUL does not broadcast in TFLite (its kernel aborts)")
    out = qparams(ctx, ctx.outputs[0], "output")
    lo, hi = _act_range(ctx, out)
    zp = out.zero_point

    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = qm.rounding_divide_by_pot(qm.saturating_rounding_doubling_high_mul16(x, y), 8)
        return zp + np.clip(r, lo - zp, hi - zp)
    return _done_pairwise(ctx, fn, shape)


# -- SQUARED_DIFFERENCE ------------------------------------------------------------------
@register("SQUARED_DIFFERENCE", versions=(1, 2), types={"INT8"})
def prepare_squared_difference(ctx: OpContext) -> Prepared:
    """Quantized (int8) SQUARED_DIFFERENCE: inputs rescaled with 7 fractional
    bits, the difference squared, rescaled to the output."""
    a, b, shape = _binary_inputs(ctx)
    out = qparams(ctx, output_type(ctx, "INT8"), "output")
    twice_max = 2.0 * float(max(a.scale, b.scale))
    m1 = _smaller_than_one(ctx, a.scale64 / twice_max, "input 0")
    m2 = _smaller_than_one(ctx, b.scale64 / twice_max, "input 1")
    mo = _smaller_than_one(ctx, twice_max * twice_max / float(np.float32(1 << 14) * out.scale),
                           "output")

    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        sx = qm.multiply_by_quantized_multiplier((x - a.zero_point) << 7, *m1)
        sy = qm.multiply_by_quantized_multiplier((y - b.zero_point) << 7, *m2)
        raw = qm.multiply_by_quantized_multiplier((sx - sy) ** 2, *mo) + out.zero_point
        return np.clip(raw, -128, 127)
    return _done_pairwise(ctx, fn, shape)


# -- MAXIMUM / MINIMUM -------------------------------------------------------------------
def _max_min(ctx: OpContext, ufunc: Callable[..., np.ndarray]) -> Prepared:
    ctx.expect_counts(2)
    specs = (ctx.input(0), ctx.input(1), output_type(ctx, ctx.input(0).type_name))
    same_type(ctx, *specs[:2])
    shape = broadcast_shape(ctx, specs[0].shape, specs[1].shape)
    if all(s.quantization is None for s in specs):     # plain integers: raw max/min
        return _raw_max_min(ctx, ufunc, shape)
    a, b, out = (qparams(ctx, s, r) for s, r in zip(specs, ("input 0", "input 1", "output")))
    if not (a.scale == b.scale == out.scale and a.zero_point == b.zero_point == out.zero_point):
        ctx.fail(f"quantized {ctx.name} needs equal quantization on both inputs and the "
                 f"output (TFLite compares raw values); got scales {float(a.scale):g}, "
                 f"{float(b.scale):g}, {float(out.scale):g} and zero points {a.zero_point}, "
                 f"{b.zero_point}, {out.zero_point}")

    return _raw_max_min(ctx, ufunc, shape)


def _raw_max_min(ctx: OpContext, ufunc: Callable[..., np.ndarray],
                 shape: tuple[int, ...]) -> Prepared:
    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        ufunc(ins[0], ins[1], out=outs[0])
    return ctx.done(run, shape)


@register("MAXIMUM", versions=(1, 4), types=QUANT16)
def prepare_maximum(ctx: OpContext) -> Prepared:
    """Quantized MAXIMUM: elementwise max of the raw values (equal quantization)."""
    return _max_min(ctx, np.maximum)


@register("MINIMUM", versions=(1, 4), types=QUANT16)
def prepare_minimum(ctx: OpContext) -> Prepared:
    """Quantized MINIMUM: elementwise min of the raw values (equal quantization)."""
    return _max_min(ctx, np.minimum)


# -- comparisons -----------------------------------------------------------------------
_COMPARE: dict[str, Callable[..., np.ndarray]] = {
    "EQUAL": np.equal, "NOT_EQUAL": np.not_equal, "LESS": np.less,
    "LESS_EQUAL": np.less_equal, "GREATER": np.greater, "GREATER_EQUAL": np.greater_equal}


def _scale_multiplier(ctx: OpContext, scale: np.float32) -> tuple[int, int]:
    if scale < 1:
        return qm.quantize_multiplier_smaller_than_one_exp(float(scale))
    ctx.fail(f"quantized {ctx.name} with an input scale of {float(scale):g} (>= 1) is not "
             "supported: TFLite's rescaling takes scales below 1")


def prepare_comparison(ctx: OpContext) -> Prepared:
    """Quantized comparisons: both inputs rescaled by their own scale (8
    fractional bits), then compared; LiteRT rescales even equal parameters."""
    a, b, shape = _binary_inputs(ctx)
    output_type(ctx, "BOOL")
    m1, m2 = _scale_multiplier(ctx, a.scale), _scale_multiplier(ctx, b.scale)
    cmp = _COMPARE[ctx.name]

    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        sx = qm.multiply_by_quantized_multiplier((x - a.zero_point) << 8, *m1)
        sy = qm.multiply_by_quantized_multiplier((y - b.zero_point) << 8, *m2)
        return cmp(sx, sy)
    return _done_pairwise(ctx, fn, shape)


for _op, _hi in (("EQUAL", 5), ("NOT_EQUAL", 4), ("LESS", 3), ("LESS_EQUAL", 2),
                 ("GREATER", 2), ("GREATER_EQUAL", 3)):
    register(_op, versions=(1, _hi), types=QUANT8)(prepare_comparison)
