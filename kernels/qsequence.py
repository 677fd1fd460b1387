"""Integer UNIDIRECTIONAL_SEQUENCE_LSTM (TFLite's 8x8_16 kernel), bit-exact.

The converter's full-integer LSTM has int8 input, weights and output, int32
gate biases, an int8 output state and an int16 cell state (both variable
tensors with a power-of-two cell scale), int16 peephole and layer-norm
weights, and five intermediate tensors: the quantization of the four gate
pre-activations (used only with layer norm; Q3.12 otherwise) and of the
hidden state (the output gate times tanh(cell)).

Everything TFLite precomputes in Prepare (effective scales as Q31
multipliers, biases with the zero points folded in, quantized clips, layer
norm variance guards) is computed here in prepare, with the same float32 /
double arithmetic; each time step then repeats lstm_eval.cc's integer steps
(int16 gate accumulation, integer layer norm, gemmlowp fixed-point sigmoid
and tanh, integer cell update and hidden-state requantization) vectorized
over the batch and the cells. The Python loop runs over time steps only.

Speed: the fixed-point sigmoid and tanh of an int16 input are read from
tables of all 65536 inputs, computed once per process with the functions
below (bit-exact by construction). :class:`Int8LstmLoop` computes every
step's input contributions at once and runs each step on preallocated
gate-major buffers (one matmul, one rescale and one table lookup for all
gates).

The LSTM input layout helpers here are shared with the hybrid LSTM kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from .qconv import gemm_dtype
from .quant_math import (inv_sqrt_quantized_multiplier, multiply_by_quantized_multiplier,
                         quantize_multiplier)
from .registry import register

# -- the 24 inputs of a (unidirectional sequence) LSTM --------------------------------
INPUT = 0
INPUT_WEIGHTS = (1, 2, 3, 4)            # input-to-{input, forget, cell, output}
RECURRENT_WEIGHTS = (5, 6, 7, 8)
PEEPHOLE_WEIGHTS = (9, 10, 11)          # cell-to-{input, forget, output}
GATE_BIAS = (12, 13, 14, 15)
PROJECTION_WEIGHTS, PROJECTION_BIAS = 16, 17
OUTPUT_STATE, CELL_STATE = 18, 19
LAYER_NORM = (20, 21, 22, 23)
GATES = ("input", "forget", "cell", "output")


@dataclass(frozen=True)
class LstmLayout:
    """Sizes and optional parts of an LSTM op."""

    max_time: int
    n_batch: int
    n_input: int
    n_cell: int
    n_output: int
    time_major: bool
    use_cifg: bool
    use_peephole: bool
    use_projection: bool
    use_layer_norm: bool

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The op's output shape (time and batch in the input's order)."""
        lead = (self.max_time, self.n_batch) if self.time_major else (self.n_batch,
                                                                      self.max_time)
        return lead + (self.n_output,)

    def gates(self) -> tuple[int, ...]:
        """Indices (0 input, 1 forget, 2 cell, 3 output) of the gates present."""
        return (1, 2, 3) if self.use_cifg else (0, 1, 2, 3)


def lstm_layout(ctx: OpContext) -> LstmLayout:
    """Validate an LSTM's inputs (as TFLite's CheckInputTensorDimensions does)."""
    if len(ctx.inputs) not in (20, 24) or len(ctx.outputs) != 1:
        raise ctx.invalid(f"expects 20 or 24 inputs and 1 output, got {len(ctx.inputs)} and "
                          f"{len(ctx.outputs)}")
    x = ctx.input(INPUT)
    if x.rank != 3:
        ctx.fail(f"input of rank {x.rank} is not supported (3-D sequences only)")
    time_major = bool(ctx.options.time_major)
    max_time, n_batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    w_out = ctx.input(INPUT_WEIGHTS[3])
    r_out = ctx.input(RECURRENT_WEIGHTS[3])
    if w_out.rank != 2 or r_out.rank != 2:
        ctx.fail("diagonal (1-D) recurrent weights are not supported")
    n_cell, n_input = w_out.shape
    n_output = r_out.shape[1]
    if n_input != x.shape[2]:
        raise ctx.invalid(f"input depth {x.shape[2]} does not match weights {list(w_out.shape)}")
    present = [ctx.optional_input(i) is not None for i in range(24)]
    use_cifg = not present[INPUT_WEIGHTS[0]]
    if present[RECURRENT_WEIGHTS[0]] == use_cifg or present[GATE_BIAS[0]] == use_cifg:
        raise ctx.invalid("input-gate weights and bias must be all present or all absent")
    peep = [present[i] for i in PEEPHOLE_WEIGHTS]
    use_peephole = peep[2]
    if peep[1:] != [use_peephole] * 2 or (not use_cifg and peep[0] != use_peephole):
        raise ctx.invalid("peephole weights must be all present or all absent")
    use_projection = present[PROJECTION_WEIGHTS]
    if present[PROJECTION_BIAS] and not use_projection:
        raise ctx.invalid("a projection bias needs projection weights")
    if not use_projection and n_output != n_cell:
        raise ctx.invalid(f"without a projection the output size {n_output} must equal the "
                          f"cell count {n_cell}")
    use_ln = len(ctx.inputs) == 24 and present[LAYER_NORM[1]]
    layout = LstmLayout(max_time, n_batch, n_input, n_cell, n_output, time_major, use_cifg,
                        use_peephole, use_projection, use_ln)
    _check_shapes(ctx, layout)
    return layout


def _check_shapes(ctx: OpContext, lay: LstmLayout) -> None:
    def want(i: int, shape: tuple[int, ...], what: str) -> None:
        spec = ctx.optional_input(i)
        if spec is not None and tuple(spec.shape) != shape:
            raise ctx.invalid(f"{what} has shape {list(spec.shape)}, expected {list(shape)}")
    for g in lay.gates():
        want(INPUT_WEIGHTS[g], (lay.n_cell, lay.n_input), f"input-to-{GATES[g]} weights")
        want(RECURRENT_WEIGHTS[g], (lay.n_cell, lay.n_output), f"recurrent-to-{GATES[g]} weights")
        want(GATE_BIAS[g], (lay.n_cell,), f"{GATES[g]} gate bias")
        if lay.use_layer_norm:
            want(LAYER_NORM[g], (lay.n_cell,), f"{GATES[g]} layer-norm coefficients")
    for i in PEEPHOLE_WEIGHTS:
        want(i, (lay.n_cell,), "peephole weights")
    want(PROJECTION_WEIGHTS, (lay.n_output, lay.n_cell), "projection weights")
    want(PROJECTION_BIAS, (lay.n_output,), "projection bias")
    for i, n in ((OUTPUT_STATE, lay.n_output), (CELL_STATE, lay.n_cell)):
        spec = ctx.input(i)
        if not spec.is_variable:
            raise ctx.invalid(f"state tensor {spec.name!r} must be a variable tensor")
        if spec.size != lay.n_batch * n:
            raise ctx.invalid(f"state tensor {spec.name!r} has {spec.size} elements, expected "
                              f"{lay.n_batch * n}")
    if ctx.options.cell_clip < 0 or ctx.options.proj_clip < 0:
        raise ctx.invalid("cell_clip and proj_clip must be >= 0")


def steps(x: np.ndarray, time_major: bool) -> np.ndarray:
    """[T, B, ...] view of a sequence in either layout."""
    return x if time_major else np.swapaxes(x, 0, 1)


# -- gemmlowp fixed point on int16 raw values (vectorized) -----------------------------------
I16_MIN, I16_MAX = -(2**15), 2**15 - 1


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of int64 values to ``bits`` bits."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def _trunc_div(a: np.ndarray, d: int) -> np.ndarray:
    """C++ integer division (truncates toward zero)."""
    q = np.abs(a) // d
    return np.where(a < 0, -q, q)


def srdhm(a: np.ndarray, b: np.ndarray | int, bits: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul for int16 or int32 raw values."""
    lo = -(1 << (bits - 1))
    ab = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    nudge = np.where(ab >= 0, 1 << (bits - 2), 1 - (1 << (bits - 2)))
    high = _trunc_div(ab + nudge, 1 << (bits - 1))
    return np.where((np.asarray(a) == lo) & (np.asarray(b) == lo), -lo - 1, high)


def rdbpot(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT (round half away from zero)."""
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def srmbpot(x: np.ndarray, exponent: int, bits: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent>."""
    if exponent < 0:
        return rdbpot(x, -exponent)
    if exponent == 0:
        return x
    threshold = (1 << (bits - 1 - exponent)) - 1
    shifted = wrap(x << exponent, bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.where(x > threshold, hi, np.where(x < -threshold, lo, shifted))


def constant16(raw32: int) -> int:
    """gemmlowp RescaleConstantInitializer: a 32-bit constant rounded to 16 bits."""
    return int(rdbpot(np.int64(raw32), 16))


def _exp_quarter(a: np.ndarray) -> np.ndarray:
    """exp(x) for x in [-1/4, 0), Q0.15 in and out."""
    const = constant16(1895147668)
    third = constant16(715827883)
    x = wrap(a + (1 << 12), 16)
    x2 = srdhm(x, x, 16)
    x3 = srdhm(x2, x, 16)
    x4 = srdhm(x2, x2, 16)
    x4_4 = srmbpot(x4, -2, 16)
    poly = srmbpot(wrap(srdhm(wrap(x4_4 + x3, 16), third, 16) + x2, 16), -1, 16)
    return np.clip(const + srdhm(const, wrap(x + poly, 16), 16), I16_MIN, I16_MAX)


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
           (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: np.ndarray, int_bits: int) -> np.ndarray:
    """gemmlowp exp for a <= 0 in Q(int_bits).(15-int_bits); result Q0.15."""
    frac = 15 - int_bits
    quarter = 1 << (frac - 2)
    a_mod = wrap((a & (quarter - 1)) - quarter, 16)
    result = _exp_quarter(srmbpot(a_mod, int_bits, 16))
    remainder = wrap(a_mod - a, 16)
    for exponent, mult in _BARREL:
        if int_bits > exponent:
            bit = (remainder & (1 << (frac + exponent))) != 0
            result = np.where(bit, srdhm(result, constant16(mult), 16), result)
    if int_bits > 5:
        clamp = constant16(-(1 << (36 - int_bits)))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, I16_MAX, result)


def _newton_reciprocal(a: np.ndarray) -> np.ndarray:
    """The Newton-Raphson core of gemmlowp's 1/(1+x) and (1-x)/(1+x); Q2.13 out."""
    s = a + I16_MAX
    half = _trunc_div(s + np.where(s >= 0, 1, -1), 2)
    c48, cneg32 = constant16(1515870810), constant16(-1010580540)
    x = wrap(c48 + srdhm(half, cneg32, 16), 16)
    for _ in range(3):
        one_minus = wrap((1 << 13) - srdhm(half, x, 16), 16)
        x = wrap(x + srmbpot(srdhm(x, one_minus, 16), 2, 16), 16)
    return x


def logistic16(a: np.ndarray, int_bits: int) -> np.ndarray:
    """gemmlowp logistic of int16 Q(int_bits) values; Q0.15 result."""
    positive = a > 0
    abs_a = np.where(positive, a, wrap(-a, 16))
    x = exp_on_negative_values(wrap(-abs_a, 16), int_bits)
    pos = srmbpot(_newton_reciprocal(x), 1, 16)
    neg = wrap(I16_MAX - pos, 16)
    return np.where(a == 0, constant16(1 << 30), np.where(positive, pos, neg))


def tanh16(a: np.ndarray, int_bits: int) -> np.ndarray:
    """gemmlowp tanh of int16 Q(int_bits) values; Q0.15 result."""
    negative = a < 0
    n = np.where(negative, a, wrap(-a, 16))
    x = exp_on_negative_values(n, int_bits + 1)
    t = srmbpot(wrap(_newton_reciprocal(x) - (1 << 13), 16), 2, 16)
    return np.where(a == 0, 0, np.where(negative, wrap(-t, 16), t))


# -- prepare: TFLite's PopulateQuantizedLstmParams8x8_16 -------------------------------------
@dataclass
class GateParams:
    """One gate's precomputed integer parameters."""

    w_in: np.ndarray               # [n_input, n_cell] float (exact integer GEMM)
    w_rec: np.ndarray              # [n_output, n_cell]
    bias_in: np.ndarray            # int64 [n_cell]: bias (unless layer norm) + zp terms
    bias_rec: np.ndarray
    scale_in: tuple[int, int]
    scale_rec: tuple[int, int]
    peephole: np.ndarray | None
    scale_peephole: tuple[int, int]
    ln_weight: np.ndarray | None
    ln_bias: np.ndarray | None
    ln_scale: tuple[int, int]
    variance_guard: int


def qparams(ctx: OpContext, spec: TensorSpec | None, what: str) -> tuple[float, int]:
    """(float32 scale, zero point) of a per-tensor quantized tensor."""
    if spec is None:
        return 1.0, 0
    q = spec.quantization
    if q is None or q.scale.size == 0:
        raise ctx.invalid(f"{what} {spec.name!r} has no quantization parameters")
    if q.scale.size != 1:
        ctx.fail(f"{what} {spec.name!r} must be quantized per tensor")
    return float(np.float32(q.scale[0])), int(q.zero_point[0])


def multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier of a real scale."""
    m, s = quantize_multiplier(real)
    return int(m), int(s)


F32 = np.float32


def _intermediate(ctx: OpContext, i: int) -> tuple[float, int]:
    if i >= len(ctx.op.intermediates):
        raise ctx.invalid(f"the integer LSTM needs 5 intermediate tensors, got "
                          f"{len(ctx.op.intermediates)}")
    return qparams(ctx, _spec(ctx, ctx.op.intermediates[i]), "intermediate")


def _spec(ctx: OpContext, index: int) -> TensorSpec:
    return TensorSpec(ctx.subgraph.tensors[index], ctx.subgraph.tensors[index].shape)


def _data(spec: TensorSpec | None) -> np.ndarray | None:
    return None if spec is None else np.asarray(spec.data).astype(np.int64)


class Int8Lstm:
    """Prepared integer LSTM: parameters plus one time step at a time."""

    def __init__(self, ctx: OpContext, lay: LstmLayout) -> None:
        self.lay = lay
        self._check_types(ctx)
        x_scale, x_zp = qparams(ctx, ctx.input(INPUT), "input")
        h_scale, h_zp = qparams(ctx, ctx.input(OUTPUT_STATE), "output state")
        c_scale, _ = qparams(ctx, ctx.input(CELL_STATE), "cell state")
        log2 = float(np.log(F32(c_scale)) * (F32(1) / np.log(F32(2))))
        self.cell_shift = int(np.round(log2))
        if abs(log2 - self.cell_shift) >= 1e-3:
            raise ctx.invalid(f"cell state scale {c_scale} is not a power of two")
        if not 0 <= 15 + self.cell_shift <= 6:
            ctx.fail(f"cell state scale 2**{self.cell_shift} is not supported (TFLite's "
                     "integer tanh takes 2**-15 to 2**-9)")
        out_scale, _ = qparams(ctx, ctx.outputs[0], "output")
        inter = [(2.0**-12, 0)] * 4 if not lay.use_layer_norm else \
            [_intermediate(ctx, i) for i in range(4)]
        hidden_scale, self.hidden_zp = _intermediate(ctx, 4)
        self.h_zp = h_zp
        self.gate = {g: self._gate(ctx, g, x_scale, x_zp, h_scale, h_zp, inter[g][0])
                     for g in lay.gates()}
        ehs = F32(2.0**-15 / np.float64(F32(hidden_scale)) * 2.0**-15)
        self.hidden_scale = multiplier(float(ehs))
        self._projection(ctx, hidden_scale, h_scale)
        self._clips(ctx, c_scale, out_scale)

    def _check_types(self, ctx: OpContext) -> None:
        want = {INPUT: "INT8", OUTPUT_STATE: "INT8", CELL_STATE: "INT16"}
        want.update({i: "INT8" for i in (*INPUT_WEIGHTS, *RECURRENT_WEIGHTS,
                                         PROJECTION_WEIGHTS)})
        want.update({i: "INT32" for i in (*GATE_BIAS, PROJECTION_BIAS)})
        want.update({i: "INT16" for i in (*PEEPHOLE_WEIGHTS, *LAYER_NORM)})
        for i, t in want.items():
            spec = ctx.optional_input(i)
            if spec is not None and spec.type_name != t:
                raise ctx.invalid(f"input {i} ({spec.name!r}) must be {t} in an integer LSTM, "
                                  f"not {spec.type_name}")
            if spec is not None and i not in (INPUT, OUTPUT_STATE, CELL_STATE) \
                    and (not spec.is_constant or spec.sparsity is not None):
                ctx.fail(f"input {i} ({spec.name!r}) must be a dense constant")
        if ctx.outputs[0].type_name != "INT8":
            raise ctx.invalid(f"output must be INT8, not {ctx.outputs[0].type_name}")
        if self.lay.use_peephole and self.lay.use_projection and \
                self.lay.n_output != self.lay.n_cell:
            ctx.fail("peephole weights together with a projection to a different size are "
                     "not supported")

    def _gate(self, ctx: OpContext, g: int, x_scale: float, x_zp: int, h_scale: float,
              h_zp: int, gate_scale: float) -> GateParams:
        lay = self.lay
        w_in_spec, w_rec_spec = ctx.input(INPUT_WEIGHTS[g]), ctx.input(RECURRENT_WEIGHTS[g])
        w_in, w_rec = _data(w_in_spec), _data(w_rec_spec)
        s_in = qparams(ctx, w_in_spec, "weights")[0]
        s_rec = qparams(ctx, w_rec_spec, "weights")[0]
        bias = _data(ctx.input(GATE_BIAS[g]))
        gs = F32(gate_scale)
        peephole, scale_p = None, (0, 0)
        if lay.use_peephole and g != 2:
            spec = ctx.input(PEEPHOLE_WEIGHTS[(0, 1, None, 2)[g]])
            peephole = _data(spec)
            real = np.float64(2.0**self.cell_shift) * np.float64(F32(qparams(ctx, spec,
                                                                            "weights")[0]))
            scale_p = multiplier(float(F32(real / np.float64(gs))))
        ln_w = ln_b = None
        ln_scale, guard = (0, 0), 0
        if lay.use_layer_norm:
            spec = ctx.input(LAYER_NORM[g])
            ln_w, ln_b = _data(spec), bias
            s = qparams(ctx, spec, "layer-norm coefficients")[0]
            ln_scale = multiplier(s)
            guard = max(1, int(np.float32(10000 * F32(s))))
        dtype_in = gemm_dtype(128, np.abs(w_in).sum(axis=1))
        dtype_rec = gemm_dtype(128, np.abs(w_rec).sum(axis=1))
        return GateParams(
            w_in=np.ascontiguousarray(w_in.T, dtype_in),
            w_rec=np.ascontiguousarray(w_rec.T, dtype_rec),
            bias_in=(np.zeros(lay.n_cell, np.int64) if lay.use_layer_norm else bias)
            - x_zp * w_in.sum(axis=1),
            bias_rec=-h_zp * w_rec.sum(axis=1),
            scale_in=multiplier(float(F32(F32(s_in) * F32(x_scale) / gs))),
            scale_rec=multiplier(float(F32(F32(s_rec) * F32(h_scale) / gs))),
            peephole=peephole, scale_peephole=scale_p, ln_weight=ln_w, ln_bias=ln_b,
            ln_scale=ln_scale, variance_guard=guard)

    def _projection(self, ctx: OpContext, hidden_scale: float, h_scale: float) -> None:
        self.proj = None
        if not self.lay.use_projection:
            return
        spec = ctx.input(PROJECTION_WEIGHTS)
        w = _data(spec)
        bias = _data(ctx.optional_input(PROJECTION_BIAS))
        bias = np.zeros(self.lay.n_output, np.int64) if bias is None else bias
        s = qparams(ctx, spec, "projection weights")[0]
        self.proj_scale = multiplier(float(F32(F32(s) * F32(hidden_scale) / F32(h_scale))))
        self.proj = np.ascontiguousarray(w.T, gemm_dtype(128, np.abs(w).sum(axis=1)))
        self.proj_bias = bias + self.hidden_zp * w.sum(axis=1)

    def _clips(self, ctx: OpContext, c_scale: float, out_scale: float) -> None:
        cc, pc = F32(ctx.options.cell_clip), F32(ctx.options.proj_clip)
        self.cell_clip = int(np.clip(cc / F32(c_scale), -32768, 32767)) if cc > 0 else 0
        self.proj_clip = int(np.clip(pc / F32(out_scale), -128, 127)) if pc > 0 else 0


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, scale: tuple[int, int],
               variance_guard: int) -> np.ndarray:
    """TFLite's integer ApplyLayerNorm over the last axis of int16 values."""
    n = x.shape[-1]
    total = x.sum(axis=-1, keepdims=True)
    mean = _trunc_div(total * 1024, n)
    variance = (x * x).sum(axis=-1, keepdims=True) * ((1 << 20) // n) - mean * mean
    variance2 = wrap(_trunc_div(variance, 1 << 20), 32)
    variance2 = np.where(variance2 < 1, variance_guard, variance2)
    inv_a, inv_b = inv_sqrt_quantized_multiplier(variance2)
    shifted = wrap(1024 * x - mean, 32)
    rescaled = multiply_by_quantized_multiplier(shifted, inv_a, inv_b)
    val3 = wrap(rescaled * weight + bias, 32)
    val4 = _trunc_div(val3 + np.where(val3 > 0, 512, -512), 1024)
    val5 = multiply_by_quantized_multiplier(val4, scale[0], scale[1] + 12)
    return np.clip(val5, I16_MIN, I16_MAX)


# -- speed: lookup tables and a preallocated time loop -----------------------------------------
@lru_cache(maxsize=None)
def activation_table(kind: str, int_bits: int) -> np.ndarray:
    """``logistic16`` or ``tanh16`` of every int16 input (index: value + 32768) as a
    read-only int64 table: one ``np.take`` replaces ~100 numpy calls, bit for bit."""
    x = np.arange(I16_MIN, I16_MAX + 1, dtype=np.int64)
    table = (logistic16 if kind == "logistic" else tanh16)(x, int_bits)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=None)
def _gate_table() -> np.ndarray:
    """Gate nonlinearities in one table: logistic(Q3.12) at 0, tanh(Q3.12) at 65536."""
    table = np.concatenate([activation_table("logistic", 3), activation_table("tanh", 3)])
    table.flags.writeable = False
    return table


def _i64(value: int) -> np.ndarray:
    return np.array(value, np.int64)


class Rescale:
    """In-place ``multiply_by_quantized_multiplier`` (double rounding) of int64 arrays of
    one shape, allocation-free; (multiplier, shift) per element or scalar.

    SaturatingRoundingDoublingHighMul is ``(x * m + 2**30) >> 31`` (an
    arithmetic shift floors, which equals gemmlowp's nudge-and-truncate for
    either sign of x * m; it saturates only for x = m = -2**31, and
    QuantizeMultiplier never gives m = -2**31) and RoundingDivideByPOT is
    ``(y + 2**(e-1) - (y < 0)) >> e``: 7 numpy calls instead of ~20.
    """

    def __init__(self, shape: tuple[int, ...], multiplier: Any, shift: Any) -> None:
        m, s = (np.asarray(a, np.int64) for a in (multiplier, shift))
        scalar = m.ndim == 0 and s.ndim == 0
        full = (lambda a: _i64(int(a))) if scalar else \
            (lambda a: np.ascontiguousarray(np.broadcast_to(a, shape)))   # noqa: E731
        left, right = np.maximum(s, 0), np.maximum(-s, 0)
        self.m, self.right = full(m), full(right)
        self.left = full(left) if left.any() else None
        self.half = full((np.int64(1) << right) >> 1)
        self.keep_sign = None if (right > 0).all() else full(np.where(right > 0, -1, 0))
        self.sign = np.zeros(shape, np.int64)

    @property
    def nbytes(self) -> int:
        """Bytes of the per-element parameters and scratch."""
        return sum(a.nbytes for a in (self.m, self.right, self.left, self.half, self.keep_sign,
                                      self.sign) if a is not None)

    def __call__(self, x: np.ndarray) -> None:
        if self.left is not None:              # x << left, wrapped to int32 like C++
            np.left_shift(x, self.left, out=x)
            np.add(x, _TWO31, out=x)
            np.bitwise_and(x, _MASK32, out=x)
            np.subtract(x, _TWO31, out=x)
        np.multiply(x, self.m, out=x)
        np.add(x, _TWO30, out=x)
        np.right_shift(x, _31, out=x)
        np.right_shift(x, _63, out=self.sign)  # -1 below zero
        if self.keep_sign is not None:
            np.bitwise_and(self.sign, self.keep_sign, out=self.sign)
        np.add(x, self.sign, out=x)
        np.add(x, self.half, out=x)
        np.right_shift(x, self.right, out=x)


_TWO30, _TWO31, _MASK32 = _i64(1 << 30), _i64(1 << 31), _i64((1 << 32) - 1)
_31, _63, _OFFSET16 = _i64(31), _i64(63), _i64(32768)
_I16 = (_i64(I16_MIN), _i64(I16_MAX))
_I8 = (_i64(-128), _i64(127))


def _clamp(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    np.minimum(x, hi, out=x)
    np.maximum(x, lo, out=x)


class Int8LstmLoop:
    """The time loop of an :class:`Int8Lstm` on preallocated gate-major buffers:
    the input contributions of every step are computed at once, then each step
    is one matmul for all gates, one rescale, one table lookup for all gate
    nonlinearities and the integer cell and hidden-state updates (about 45
    numpy calls a step, none allocating). Peepholes add a rescaled product
    with the cell state (the output gate's with the new one, so that gate is
    looked up after the cell update); layer norm runs once over the stacked
    gates (it allocates: its integer inverse square root is not worth
    preallocating)."""

    def __init__(self, lstm: Int8Lstm) -> None:
        lay = lstm.lay
        self.lstm, self.lay = lstm, lay
        t, b, n, gates = lay.max_time, lay.n_batch, lay.n_cell, lay.gates()
        g = len(gates)
        params = [lstm.gate[k] for k in gates]
        ftype = np.result_type(*(p.w_in.dtype for p in params), *(p.w_rec.dtype for p in params))
        self.w_in = np.stack([p.w_in for p in params]).astype(ftype)          # (G, I, n)
        self.w_rec = np.stack([p.w_rec for p in params]).astype(ftype)        # (G, O, n)
        gate_shape, seq_shape = (g, b, n), (t, g, b, n)
        per_gate = lambda a: np.stack([a(p) for p in params])[:, None, :]   # noqa: E731
        self.bias_in = np.ascontiguousarray(np.broadcast_to(per_gate(lambda p: p.bias_in),
                                                            seq_shape))
        self.bias_rec = np.ascontiguousarray(np.broadcast_to(per_gate(lambda p: p.bias_rec),
                                                             gate_shape))
        scales = lambda key: [np.array([getattr(p, key)[i] for p in params])[:, None, None]
                              for i in (0, 1)]                                # noqa: E731
        self.rescale_in = Rescale(seq_shape, *scales("scale_in"))
        self.rescale_rec = Rescale(gate_shape, *scales("scale_rec"))
        self.offsets = np.ascontiguousarray(np.broadcast_to(np.array(
            [32768 + (65536 if k == 2 else 0) for k in gates])[:, None, None], gate_shape))
        self.table = _gate_table()
        self.tanh_c = activation_table("tanh", 15 + lstm.cell_shift)
        self.xf, self.dx = np.zeros((t, b, lay.n_input), ftype), np.zeros(seq_shape, ftype)
        self.acc_x = np.zeros(seq_shape, np.int64)
        self.hf, self.dh = np.zeros((b, lay.n_output), ftype), np.zeros(gate_shape, ftype)
        self.acc, self.act = np.zeros(gate_shape, np.int64), np.zeros(gate_shape, np.int64)
        self.c, self.t1, self.t2 = (np.zeros((b, n), np.int64) for _ in range(3))
        self.i_cifg = np.zeros((b, n), np.int64)
        slot = {k: j for j, k in enumerate(gates)}
        self.i = self.i_cifg if lay.use_cifg else self.act[slot[0]]
        self.f, self.g, self.o = (self.act[slot[k]] for k in (1, 2, 3))
        self.update_shift = _i64(30 + lstm.cell_shift)
        self.half_update = _i64(1 << (29 + lstm.cell_shift))
        self.cell_clip = (_i64(-lstm.cell_clip), _i64(lstm.cell_clip)) if lstm.cell_clip else None
        self.rescale_hidden = Rescale((b, n), *lstm.hidden_scale)
        zp = -lstm.hidden_zp if lstm.proj is not None else lstm.hidden_zp
        self.hidden_zp = _i64(zp)
        self._projection(b)
        self.h = np.zeros((b, lay.n_output), np.int64)
        self.rows = list(self.acc_x)
        self.early = g - 1 if lay.use_peephole else g      # gates looked up before the cell
        self._peepholes(params, b, n)
        self._layer_norm(params)

    def _peepholes(self, params: list[GateParams], b: int, n: int) -> None:
        """Peephole weights and rescales: (k, B, n) for the input/forget gates
        (the first k slots), (B, n) for the output gate (the last)."""
        if not self.lay.use_peephole:
            return
        k = self.early - 1                                 # slots before the cell gate
        full = lambda a, shape: np.ascontiguousarray(np.broadcast_to(a, shape))  # noqa: E731
        self.peep_if = full(np.stack([p.peephole for p in params[:k]])[:, None, :], (k, b, n))
        self.peep_o = full(params[-1].peephole, (b, n))
        scale = lambda ps, i: np.array([p.scale_peephole[i] for p in ps])[:, None, None]  # noqa
        self.rescale_peep_if = Rescale((k, b, n), scale(params[:k], 0), scale(params[:k], 1))
        self.rescale_peep_o = Rescale((b, n), *params[-1].scale_peephole)
        self.c_if = np.zeros((k, b, n), np.int64)

    def _layer_norm(self, params: list[GateParams]) -> None:
        """Stacked layer-norm weights, biases, scales and variance guards."""
        self.ln = None
        if not self.lay.use_layer_norm:
            return
        col = lambda f: np.array([f(p) for p in params])[:, None, None]     # noqa: E731
        self.ln = (np.stack([p.ln_weight for p in params])[:, None, :],
                   np.stack([p.ln_bias for p in params])[:, None, :],
                   (col(lambda p: p.ln_scale[0]), col(lambda p: p.ln_scale[1])),
                   col(lambda p: p.variance_guard))

    def _normalize(self, acc: np.ndarray, j: slice) -> None:
        """Integer layer norm of gates ``j`` in place."""
        w, b, (m, s), guard = self.ln
        acc[j] = layer_norm(acc[j], w[j], b[j], (m[j], s[j]), guard[j])

    def _projection(self, b: int) -> None:
        lstm = self.lstm
        if lstm.proj is None:
            return
        n_out = self.lay.n_output
        self.proj = lstm.proj
        self.hidden_f = np.zeros((b, self.lay.n_cell), lstm.proj.dtype)
        self.proj_f = np.zeros((b, n_out), lstm.proj.dtype)
        self.proj_bias = np.ascontiguousarray(np.broadcast_to(lstm.proj_bias, (b, n_out)))
        self.rescale_proj = Rescale((b, n_out), *lstm.proj_scale)
        self.h_zp = _i64(lstm.h_zp)
        pc = lstm.proj_clip
        self.proj_clip = (_i64(-pc), _i64(pc)) if pc else None

    @property
    def scratch_bytes(self) -> int:
        """Bytes of the buffers and per-element parameters (the lookup tables are
        shared by every LSTM of the process and not counted)."""
        tables = (self.table, self.tanh_c)
        arrays = [a for a in vars(self).values() if isinstance(a, np.ndarray)
                  and a.base is None and not any(a is t for t in tables)]
        rescales = [a for a in vars(self).values() if isinstance(a, Rescale)]
        return sum(a.nbytes for a in arrays) + sum(r.nbytes for r in rescales)

    def run(self, x: np.ndarray, out: np.ndarray, h_var: np.ndarray, c_var: np.ndarray
            ) -> None:
        """Time-major int8 ``x`` (T, B, I) -> ``out`` (T, B, O) int8; states updated."""
        np.copyto(self.xf, x, casting="unsafe")
        np.matmul(self.xf[:, None], self.w_in, out=self.dx)
        np.copyto(self.acc_x, self.dx, casting="unsafe")          # exact integers
        np.add(self.acc_x, self.bias_in, out=self.acc_x)
        self.rescale_in(self.acc_x)
        _clamp(self.acc_x, *_I16)
        np.copyto(self.h, h_var.reshape(self.h.shape))
        np.copyto(self.c, c_var.reshape(self.c.shape))
        for k, acc_x in enumerate(self.rows):
            self._gates(acc_x)
            self._cell()
            if self.lay.use_peephole:
                self._output_gate()
            self._hidden()
            np.copyto(out[k], self.h, casting="unsafe")
        np.copyto(h_var.reshape(self.h.shape), self.h, casting="unsafe")
        np.copyto(c_var.reshape(self.c.shape), self.c, casting="unsafe")

    def _gates(self, acc_x: np.ndarray) -> None:
        acc = self.acc
        np.copyto(self.hf, self.h, casting="unsafe")
        np.matmul(self.hf, self.w_rec, out=self.dh)
        np.copyto(acc, self.dh, casting="unsafe")
        np.add(acc, self.bias_rec, out=acc)
        self.rescale_rec(acc)
        np.add(acc, acc_x, out=acc)
        _clamp(acc, *_I16)
        if self.lay.use_peephole:                          # i, f see the previous cell
            k = self.early - 1
            np.copyto(self.c_if, self.c)
            np.multiply(self.c_if, self.peep_if, out=self.c_if)
            self.rescale_peep_if(self.c_if)
            np.add(acc[:k], self.c_if, out=acc[:k])
            _clamp(acc[:k], *_I16)
        early = slice(0, self.early)
        if self.ln is not None:
            self._normalize(acc, early)
        np.add(acc[early], self.offsets[early], out=acc[early])
        np.take(self.table, acc[early], out=self.act[early], mode="clip")

    def _output_gate(self) -> None:
        """With peepholes: the output gate sees the new cell state."""
        acc, o, t1 = self.acc, self.acc[-1], self.t1
        np.multiply(self.c, self.peep_o, out=t1)
        self.rescale_peep_o(t1)
        np.add(o, t1, out=o)
        _clamp(o, *_I16)
        last = slice(len(acc) - 1, len(acc))
        if self.ln is not None:
            self._normalize(acc, last)
        np.add(o, self.offsets[-1], out=o)
        np.take(self.table, o, out=self.act[-1], mode="clip")

    def _cell(self) -> None:
        """c = clamp(rdbpot(f c, 15) + rdbpot(i g, 30 + cell_shift)); both terms fit
        int16 (|f c|, |i g| < 2**30), so the int16 wraps of lstm_eval.cc are no-ops."""
        c, t1, t2 = self.c, self.t1, self.t2
        if self.lay.use_cifg:
            np.subtract(_i64(I16_MAX), self.f, out=self.i_cifg)
        np.multiply(self.f, c, out=t1)
        _round_shift(t1, _i64(1 << 14), _i64(15), t2)
        np.multiply(self.i, self.g, out=c)
        _round_shift(c, self.half_update, self.update_shift, t2)
        np.add(c, t1, out=c)
        _clamp(c, *_I16)
        if self.cell_clip is not None:
            _clamp(c, *self.cell_clip)

    def _hidden(self) -> None:
        t1, h = self.t1, self.h
        np.add(self.c, _OFFSET16, out=self.t2)
        np.take(self.tanh_c, self.t2, out=t1, mode="clip")
        np.multiply(self.o, t1, out=t1)
        self.rescale_hidden(t1)
        np.add(t1, self.hidden_zp, out=t1)
        _clamp(t1, *_I8)
        if self.lstm.proj is None:
            np.copyto(h, t1)
            return
        np.copyto(self.hidden_f, t1, casting="unsafe")
        np.matmul(self.hidden_f, self.proj, out=self.proj_f)
        np.copyto(h, self.proj_f, casting="unsafe")
        np.add(h, self.proj_bias, out=h)
        self.rescale_proj(h)
        np.add(h, self.h_zp, out=h)
        _clamp(h, *_I8)
        if self.proj_clip is not None:
            _clamp(h, *self.proj_clip)


def _round_shift(x: np.ndarray, half: np.ndarray, shift: np.ndarray, sign: np.ndarray) -> None:
    """RoundingDivideByPOT by a positive ``shift`` in place (``sign``: scratch)."""
    np.right_shift(x, _63, out=sign)
    np.add(x, sign, out=x)
    np.add(x, half, out=x)
    np.right_shift(x, shift, out=x)


@register("UNIDIRECTIONAL_SEQUENCE_LSTM", versions=(1, 4), types={"INT8"})
def prepare_int8_lstm(ctx: OpContext) -> Prepared:
    """Full-integer UNIDIRECTIONAL_SEQUENCE_LSTM (int8 activations, int16 cell)."""
    lay = lstm_layout(ctx)
    if ctx.options.fused_activation_function != "TANH":
        ctx.fail(f"integer LSTM activation {ctx.options.fused_activation_function} is not "
                 "supported (the integer kernel always uses TANH)")
    loop = Int8LstmLoop(Int8Lstm(ctx, lay))

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        loop.run(steps(ins[INPUT], lay.time_major), steps(outs[0], lay.time_major),
                 ins[OUTPUT_STATE], ins[CELL_STATE])
    return ctx.done(run, lay.output_shape, scratch_bytes=loop.scratch_bytes)
