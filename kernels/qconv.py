"""Integer CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV and
BATCH_MATMUL, bit-exact with TensorFlow Lite.

Types: int8 (asymmetric activations, symmetric per-channel or per-tensor int8
weights, int32 bias), uint8 (legacy: per-tensor weights with a zero point)
and int16x8 (int16 activations with zero point 0, int8 weights, int64 or
int32 bias).

**Integer GEMMs in BLAS.** Products of small integers summed in float are
exact as long as no partial sum leaves the range where every integer is
representable: 2**24 in float32, 2**53 in float64. Every layer bounds its
accumulators in prepare, ``max|x| * max over output channels of sum|w|``
(:func:`gemm_dtype`), and runs its GEMM in float32 when that bound is at
most 2**24, else in float64. Input zero points are folded into the bias
(``bias - zp_x * sum(w)`` per output channel), so the GEMM sees the raw input
values and padding holds the zero point (TRANSPOSE_CONV, whose border
outputs see fewer taps, subtracts the zero point from the input instead).

**Requantization** follows whichever kernel LiteRT's default CPU resolver
(``BUILTIN_WITHOUT_DEFAULT_DELEGATES``) runs on x86, which is not always the
reference kernel (see :data:`SIMPLE_ROUNDING` and :func:`conv_rounding`):
the optimized int8/uint8 GEMMs requantize in ruy's AVX code and TFLite's
NEON code compiled through NEON_2_SSE (ties upward), TFLite's scalar code
rounds twice with ties away from zero (the wheel is built without
``TFLITE_SINGLE_ROUNDING``), and the 16x8 kernels use the 64-bit accumulator
form.

**Speed without temporaries.** Every buffer a run needs is made in prepare
(``scratch_bytes``). The rescale is quant_math's closed form
``floor((acc * M + C) / 2**S)``, proven exact per layer from the accumulator
bound: in float64 it is folded into the GEMM itself for widening and small
layers (scaled weights plus an offset row; then clamp, truncating cast and a
sign-bit flip), otherwise a few passes after a float32 GEMM, through
cache-sized row blocks; step-by-step fixed point only where no closed form is
provable. Pointwise convolutions use the cast input as the GEMM operand,
im2col casts while copying windows, depthwise is one einsum over a strided
window view.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from .common import broadcast_shape, window_padding
from .quant_math import (ClosedFormRequant, ScaledRequant, activation_range, clip_into,
                         closed_form_requant, multiply_by_quantized_multiplier,
                         multiply_by_quantized_multiplier_int64,
                         multiply_by_quantized_multiplier_ruy, quantize_multiplier,
                         round_half_away, scaled_requant)
from .registry import register

#: Largest |partial sum| a float32 / float64 GEMM over integers keeps exact.
FLOAT32_EXACT = 2**24
FLOAT64_EXACT = 2**53

#: How LiteRT's builtin kernels requantize on x86 (measured against
#: ai-edge-litert; tests/test_qconv.py pins each choice):
#: "ruy"    - optimized int8/uint8 GEMMs (ruy's AVX code) and TFLite's NEON
#:            code compiled for x86 through NEON_2_SSE: double rounding with
#:            ties upward (SQRDMULH then a rounding shift);
#: "double" - TFLite's scalar MultiplyByQuantizedMultiplier (the wheel is
#:            built without TFLITE_SINGLE_ROUNDING), used by the reference
#:            paths LiteRT falls back to (grouped conv, 16x8 transpose conv
#:            with an int32 bias), uint8 depthwise and int8 BATCH_MATMUL;
#: "neon8"  - int8 depthwise and transpose conv: their NEON loops take the
#:            output channels eight at a time ("ruy" rounding) and finish the
#:            remaining C % 8 channels in scalar code ("double");
#: "int64"  - the 16x8 kernels on int64 accumulators (15-bit multiplier);
#: "float"  - 16x8 FULLY_CONNECTED with an int64 bias (reference kernel):
#:            round(double(acc) * real multiplier); without a bias or with an
#:            int32 one it takes the optimized (ruy) path.
SIMPLE_ROUNDING: dict[tuple[str, str], str] = {
    ("FULLY_CONNECTED", "INT8"): "ruy", ("FULLY_CONNECTED", "UINT8"): "ruy",
    ("DEPTHWISE_CONV_2D", "INT8"): "neon8", ("DEPTHWISE_CONV_2D", "UINT8"): "double",
    ("DEPTHWISE_CONV_2D", "INT16"): "int64",
    ("BATCH_MATMUL", "INT8"): "double", ("BATCH_MATMUL", "INT16"): "int64",
}


def conv_rounding(ctx: OpContext, act: str, bias: TensorSpec | None, groups: int = 1) -> str:
    """Rounding of CONV_2D / TRANSPOSE_CONV, which depends on the kernel
    path LiteRT picks from the types, bias and grouping (see SIMPLE_ROUNDING)."""
    if act == "INT16":
        if bias is None or bias.type_name == "INT64":
            return "int64"
        if ctx.options.quantized_bias_type != "INT32":
            raise ctx.invalid("an INT32 bias of a 16x8 op needs quantized_bias_type INT32 "
                              "(LiteRT reads it as INT64 otherwise)")
        return "double" if groups > 1 or ctx.name == "TRANSPOSE_CONV" else "ruy"
    if ctx.name == "TRANSPOSE_CONV":
        return "neon8" if act == "INT8" else "ruy"
    return "double" if groups > 1 else "ruy"


ACT_DTYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}


# -- quantization parameters ------------------------------------------------------
def activation_quant(ctx: OpContext, spec: TensorSpec, role: str) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized activation tensor."""
    q = spec.quantization
    if q is None or q.scale.size == 0:
        raise ctx.invalid(f"{role} {spec.name!r} ({spec.type_name}) has no quantization "
                          "parameters")
    if q.scale.size != 1:
        ctx.fail(f"{role} {spec.name!r} must be quantized per tensor, not with "
                 f"{q.scale.size} scales")
    scale, zp = float(np.float32(q.scale[0])), int(q.zero_point[0])
    if not scale > 0:
        raise ctx.invalid(f"{role} {spec.name!r} has scale {scale}; it must be positive")
    info = np.iinfo(spec.dtype)
    if not info.min <= zp <= info.max:
        raise ctx.invalid(f"{role} {spec.name!r} zero point {zp} is outside {spec.type_name}")
    if spec.type_name == "INT16" and zp != 0:
        raise ctx.invalid(f"{role} {spec.name!r}: int16 activations need zero point 0, "
                          f"got {zp}")
    return scale, zp


def filter_quant(ctx: OpContext, w: TensorSpec, channels: int, axis: int
                 ) -> tuple[np.ndarray, int]:
    """(per-output-channel scales as float32 [channels], weight zero point).

    int8 weights are symmetric (zero point 0), per tensor or per channel
    along ``axis``; uint8 weights are per tensor with any zero point.
    """
    q = w.quantization
    if q is None or q.scale.size == 0:
        raise ctx.invalid(f"weights {w.name!r} ({w.type_name}) have no quantization parameters")
    if w.sparsity is not None:
        ctx.fail(f"sparse weights {w.name!r} are not supported (densify them first)")
    n = q.scale.size
    if n not in (1, channels):
        raise ctx.invalid(f"weights {w.name!r} have {n} scales; expected 1 or {channels} "
                          f"(one per output channel along axis {axis})")
    if n > 1 and q.axis != axis:
        raise ctx.invalid(f"weights {w.name!r} are quantized per channel along axis "
                          f"{q.axis}; this op needs axis {axis}")
    if not np.all(q.scale > 0):
        raise ctx.invalid(f"weights {w.name!r} have a non-positive scale")
    zps = np.asarray(q.zero_point, dtype=np.int64)
    if w.type_name == "UINT8":
        if n != 1:
            ctx.fail(f"uint8 weights {w.name!r} must be quantized per tensor")
        return np.full(channels, q.scale[0], np.float32), int(zps[0])
    if w.type_name != "INT8":
        ctx.fail(f"weights of type {w.type_name} are not supported (int8 or uint8)")
    if np.any(zps != 0):
        raise ctx.invalid(f"int8 weights {w.name!r} must be symmetric (zero point 0), got "
                          f"zero point {int(zps[zps != 0][0])}")
    return np.broadcast_to(np.asarray(q.scale, np.float32), (channels,)).copy(), 0


def real_multipliers(in_scale: float, filter_scales: np.ndarray, out_scale: float
                     ) -> np.ndarray:
    """Per-channel in_scale * w_scale / out_scale, in double from the float32
    scales, as TFLite computes it before QuantizeMultiplier."""
    return (np.float64(in_scale) * filter_scales.astype(np.float64)) / np.float64(out_scale)


def gemm_dtype(max_abs_x: float, abs_weight_sums: Any) -> type:
    """float32 when every partial sum of the integer GEMM stays within 2**24
    (exact in float32), else float64 (exact to 2**53)."""
    bound = float(max_abs_x) * float(np.max(abs_weight_sums, initial=0))
    if bound > FLOAT64_EXACT:
        raise ValueError(f"integer accumulators may reach {bound:.3g}, beyond float64's "
                         "exact range")
    return np.float32 if bound <= FLOAT32_EXACT else np.float64


def max_abs(type_name: str) -> int:
    """The largest |value| of an integer tensor type."""
    info = np.iinfo(ACT_DTYPES[type_name])
    return max(-int(info.min), int(info.max))


# -- requantization -----------------------------------------------------------------
@dataclass
class Requant:
    """int accumulators -> output integers: rescale, add zero point, clamp."""

    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int
    lo: int
    hi: int
    rounding: str
    real: np.ndarray | None = None      # the double multiplier, for "float"
    dtype: Any = None                   # the output's numpy dtype
    _scaled: dict = field(default_factory=dict, repr=False, compare=False)

    def __call__(self, acc: np.ndarray, out: np.ndarray) -> None:
        """Write requantized ``acc`` (int64, channels last) into ``out``."""
        r = self.rescale(acc, self.rounding)
        r += self.zero_point
        np.clip(r, self.lo, self.hi, out=r)
        np.copyto(out, r.reshape(out.shape), casting="unsafe")

    def rescale(self, acc: np.ndarray, rounding: str) -> np.ndarray:
        """acc * real multiplier, rounded as ``rounding`` says."""
        m, s = self.multiplier, self.shift
        if rounding == "float":
            return round_half_away(acc.astype(np.float64) * self.real).astype(np.int64)
        if rounding == "ruy":
            return multiply_by_quantized_multiplier_ruy(acc, m, s)
        if rounding == "int64":
            return multiply_by_quantized_multiplier_int64(acc, m, s)
        if rounding == "neon8":
            vector = np.arange(acc.shape[-1]) < acc.shape[-1] // 8 * 8
            return np.where(vector, self.rescale(acc, "ruy"), self.rescale(acc, "double"))
        return multiply_by_quantized_multiplier(acc, m, s, rounding)


    def channel_roundings(self, channels: int) -> list[str]:
        """The rounding of each output channel ("neon8" spelled out)."""
        if self.rounding != "neon8":
            return [self.rounding] * channels
        return ["ruy" if c < channels // 8 * 8 else "double" for c in range(channels)]

    def scaled(self, bias: np.ndarray | None, acc_bound: np.ndarray) -> ScaledRequant | None:
        """The float64 closed form (quant_math.scaled_requant) for a constant
        bias, or None where it is not provably exact."""
        if bias is None or self.rounding == "float" or self.dtype is None:
            return None
        key = (np.asarray(bias).tobytes(), np.asarray(acc_bound).tobytes())
        if key not in self._scaled:
            self._scaled[key] = scaled_requant(
                self.multiplier, self.shift, self.channel_roundings(self.multiplier.size),
                bias, self.zero_point, self.lo, self.hi, acc_bound, self.dtype)
        return self._scaled[key]

    def compile(self, acc: np.ndarray, bias: np.ndarray | None, acc_bound: np.ndarray
                ) -> tuple[Finish, int]:
        """``finish(out, bias)``: requantize the integer-valued accumulators in
        the buffer ``acc`` (channels last, any numeric dtype) plus ``bias`` into
        ``out``; and the scratch bytes it holds.

        With a constant bias (None: supplied per call) and |acc| <= acc_bound
        per channel this is quant_math's closed form (float64 where exact, else
        int64), run over blocks of rows through a small buffer that stays in
        cache; nothing is allocated. Otherwise the step-by-step rescale.
        """
        closed: ClosedFormRequant | ScaledRequant | None = self.scaled(bias, acc_bound)
        if closed is None and bias is not None and self.rounding != "float":
            closed = closed_form_requant(self.multiplier, self.shift,
                                         self.channel_roundings(self.multiplier.size), bias,
                                         self.zero_point, self.lo, self.hi, acc_bound)
        if closed is not None:
            return _blocked(closed, acc)
        if bias is not None and self.rounding == "float" and _float_exact(bias, acc_bound):
            return self._compile_float(acc, bias)

        def slow(out: np.ndarray, dyn_bias: np.ndarray) -> None:
            self(acc.astype(np.int64) + dyn_bias, out)
        return slow, 0

    def _compile_float(self, acc: np.ndarray, bias: np.ndarray) -> tuple[Finish, int]:
        """The "float" rounding in float64 buffers (exact: |acc + bias| < 2**53)."""
        real, bias_f = np.asarray(self.real, np.float64), bias.astype(np.float64)
        work, half = np.empty(acc.shape, np.float64), np.empty(acc.shape, np.float64)

        def finish(out: np.ndarray, _bias: Any = None) -> None:
            np.add(acc, bias_f, out=work)
            np.multiply(work, real, out=work)
            np.copysign(0.5, work, out=half)          # round_half_away, as TFLite's round
            np.add(work, half, out=work)
            np.trunc(work, out=work)
            np.add(work, self.zero_point, out=work)
            clip_into(work, self.lo, self.hi, work)
            np.copyto(out.reshape(acc.shape), work, casting="unsafe")
        return finish, work.nbytes + half.nbytes


#: Elements of the (int64 or float64) buffer a closed-form requantization
#: works through: 256 KiB stays in cache across its passes (A/B on the int8
#: MobileNetV2-224: 32K-element blocks 26.2 ms, 128K 28.2 ms, whole tensors
#: 28.1 ms), and the scratch memory stays small.
REQUANT_BLOCK = 1 << 15

#: Up to this many output elements, per-channel requantization constants are
#: stored at full size (numpy's broadcasting loops cost 2-3x on small arrays).
TILE_LIMIT = 1 << 14


def _blocked(closed: ClosedFormRequant | ScaledRequant, acc: np.ndarray) -> tuple[Finish, int]:
    """Run ``closed`` over row blocks of ``acc`` (whole when it is not one
    [rows, channels] array); the block views are made once."""
    channels = acc.shape[-1]
    rows = acc.size // max(channels, 1)
    flat = acc.reshape(rows, channels) if acc.flags.c_contiguous else None
    step = rows if flat is None else max(1, min(rows, REQUANT_BLOCK // max(channels, 1)))
    shape = (step, channels) if flat is not None else acc.shape
    work = np.empty(shape, closed.work_dtype)
    mask = np.empty(shape, bool) if closed.needs_mask else None
    extra = 0
    if step == rows and acc.size <= TILE_LIMIT:     # one small block: no broadcasting
        closed = closed.tiled(shape)
        extra = sum(v.nbytes for v in vars(closed).values() if isinstance(v, np.ndarray))
    if flat is None:
        def whole(out: np.ndarray, _bias: Any = None) -> None:
            closed(acc, work, out.reshape(acc.shape), mask)
        return whole, work.nbytes + extra + (0 if mask is None else mask.nbytes)
    spans = [(r, min(rows, r + step)) for r in range(0, rows, step)]
    blocks = [(flat[a:b], work[:b - a], None if mask is None else mask[:b - a])
              for a, b in spans]
    outs: list[Any] = [None, None]            # the output array and its block views

    def finish(out: np.ndarray, _bias: Any = None) -> None:
        if outs[0] is not out:
            o = closed.target(out.reshape(rows, channels))
            outs[:] = [out, [o[a:b] for a, b in spans]]
        for (a, w, m), o in zip(blocks, outs[1]):
            closed(a, w, o, m)
    return finish, work.nbytes + extra + (0 if mask is None else mask.nbytes)


Finish = Callable[..., None]


def _float_exact(bias: np.ndarray, acc_bound: np.ndarray) -> bool:
    return bool(np.all(np.abs(bias.astype(np.float64)) + acc_bound < 2.0**52))


def make_requant(ctx: OpContext, in_scale: float, filter_scales: np.ndarray,
                 out: TensorSpec, rounding: str) -> Requant:
    """The requantization of an op with a fused activation (if it has one)."""
    out_scale, out_zp = activation_quant(ctx, out, "output")
    real = real_multipliers(in_scale, filter_scales, out_scale)
    mult, shift = quantize_multiplier(real)
    act = getattr(ctx.options, "fused_activation_function", "NONE")
    try:
        lo, hi = activation_range(act, out_scale, out_zp, out.dtype)
    except ValueError:
        ctx.fail(f"fused activation {act} is not supported for quantized outputs")
    return Requant(mult, shift, out_zp, lo, hi, rounding, real, out.dtype)


@dataclass(frozen=True)
class Types:
    """The integer flavour of a conv-like op and its rounding (if fixed by type)."""

    act: str                # "INT8", "UINT8" or "INT16"
    rounding: str


def check_types(ctx: OpContext, x: TensorSpec, w: TensorSpec, bias: TensorSpec | None,
                out: TensorSpec) -> Types:
    """Validate the type combination of a quantized conv/FC op."""
    act = x.type_name
    if out.type_name != act:
        ctx.fail(f"output type {out.type_name} with {act} input is not supported")
    want_w = "UINT8" if act == "UINT8" else "INT8"
    if w.type_name != want_w:
        ctx.fail(f"{act} input needs {want_w} weights, got {w.type_name}")
    if bias is not None:
        allowed = {"INT32", "INT64"} if act == "INT16" else {"INT32"}
        if bias.type_name not in allowed:
            raise ctx.invalid(f"bias of type {bias.type_name} is not valid for {act} inputs "
                              f"({' or '.join(sorted(allowed))})")
    return Types(act, SIMPLE_ROUNDING.get((ctx.name, act), ""))


# -- weights: constant ones are laid out once, others at every run -------------------
@dataclass
class Gemm:
    """A weight matrix as float [K, N] and the bias with zero points folded in."""

    matrix: np.ndarray
    bias: np.ndarray           # int64 [N]


WeightsFn = Callable[[np.ndarray, np.ndarray | None], Gemm]


class Weights:
    """The Gemm of a run: laid out once in prepare when weights and bias are
    constant (``fixed``), else from the run's inputs ``w_index`` and ``bias_index``."""

    def __init__(self, w: TensorSpec, bias: TensorSpec | None, layout: WeightsFn,
                 w_index: int = 1, bias_index: int = 2) -> None:
        self.fixed: Gemm | None = None
        if w.is_constant and (bias is None or bias.is_constant):
            self.fixed = layout(w.data, None if bias is None else bias.data)
        self._layout, self._w, self._b = layout, w_index, bias_index if bias is not None else -1

    def __call__(self, ins: Sequence[Any]) -> Gemm:
        if self.fixed is not None:
            return self.fixed
        return self._layout(ins[self._w], ins[self._b] if self._b >= 0 else None)

    @property
    def bias(self) -> np.ndarray | None:
        """The folded bias when it is known at prepare, else None."""
        return None if self.fixed is None else self.fixed.bias


def weights_provider(w: TensorSpec, bias: TensorSpec | None, layout: WeightsFn,
                     w_index: int = 1, bias_index: int = 2) -> Weights:
    """Gemm for this run: precomputed when weights and bias are constant,
    else laid out from the run's inputs ``w_index`` and ``bias_index``."""
    return Weights(w, bias, layout, w_index, bias_index)


def fold_bias(bias: np.ndarray | None, wsum: np.ndarray, x_zp: int) -> np.ndarray:
    """bias - zp_x * sum(w) per output channel, as int64."""
    b = np.zeros(wsum.shape, np.int64) if bias is None else bias.astype(np.int64)
    return b - np.int64(x_zp) * wsum.astype(np.int64)


def weight_abs_sums(w: TensorSpec, axis: int, zp: int = 0) -> np.ndarray:
    """Per output channel (along ``axis``), the sum of |w - zp| over the other
    axes: the true sums for constant weights, the largest possible otherwise."""
    axes = tuple(i for i in range(w.rank) if i != axis)
    if w.is_constant:
        wf = np.abs(w.data.astype(np.int64) - zp)
        return np.atleast_1d(wf.sum(axis=axes) if axes else wf)
    k = int(np.prod([w.shape[i] for i in axes], dtype=np.int64))
    return np.full(w.shape[axis], k * (255 if w.type_name == "UINT8" else 128), np.int64)


#: Output elements per GEMM block of a float64 closed-form requantization
#: (2 MiB of float64, about one core's L2; smaller blocks mean more BLAS calls,
#: each a thread synchronization that costs dearly on a busy machine).
GEMM_BLOCK = 1 << 18


def fuse_in_gemm(rows: int, depth: int, cols: int) -> bool:
    """Whether to requantize inside a float64 GEMM (:func:`scaled_gemm`) rather
    than after a float32 one. The fused form costs a float64 GEMM and operand
    (~ rows * depth), the other its passes over the output (~ rows * cols).
    Per-layer A/B timings on the MobileNetV2 and KWS layers: fusing wins for
    widening layers (N > K/2: up to 1.4x) and small ones (fewer numpy calls),
    loses up to 1.6x on narrowing ones (N <= K/2, e.g. 192 -> 32) and on a
    handful of rows (float64 BLAS is slower and the weights dominate)."""
    if rows < 16:
        return False
    return 2 * cols > depth or (depth <= 48 and rows * cols <= 1 << 16) or \
        rows * depth * cols <= 1 << 17


def scaled_rhs(matrix: np.ndarray, sr: ScaledRequant) -> np.ndarray:
    """Weights [K, N] scaled per output channel by ``sr.scale``, with the
    offsets as row K (the lhs carries a column of ones): the GEMM then yields
    ``z = acc * scale + offset`` exactly (see quant_math.scaled_requant)."""
    n = matrix.shape[-1]
    rows = matrix.astype(np.float64) * sr.scale
    return np.ascontiguousarray(np.vstack([rows, np.broadcast_to(sr.offset, (1, n))]))


def scaled_gemm(rhs: np.ndarray, sr: ScaledRequant, rows: int
                ) -> tuple[Callable[[np.ndarray, np.ndarray], None], int]:
    """``gemm(lhs, out)``: lhs [rows, K + 1] @ rhs requantized into ``out``,
    in row blocks (GEMM then clamp, cast, flip per block); and its scratch bytes."""
    n = rhs.shape[1]
    step = max(1, min(rows, GEMM_BLOCK // max(n, 1)))
    z = np.empty((step, n))
    mask = np.empty((step, n), bool) if sr.needs_mask else None
    spans = [(a, min(rows, a + step)) for a in range(0, rows, step)]
    work = [(z[:b - a], None if mask is None else mask[:b - a]) for a, b in spans]
    cache: list[Any] = [None, None, None]     # lhs, out, and their block views

    def gemm(lhs: np.ndarray, out: np.ndarray) -> None:
        if cache[0] is not lhs or cache[1] is not out:
            o = sr.target(out.reshape(rows, n))
            cache[:] = [lhs, out, [(lhs[a:b], o[a:b]) for a, b in spans]]
        for (l, o), (zz, mm) in zip(cache[2], work):
            np.matmul(l, rhs, out=zz)
            sr.finish(zz, o, mm)
    return gemm, z.nbytes + (0 if mask is None else mask.nbytes)


# -- FULLY_CONNECTED ---------------------------------------------------------------
@register("FULLY_CONNECTED", versions=(1, 14), types={"INT8", "UINT8", "INT16"})
def prepare_fully_connected(ctx: OpContext) -> Prepared:
    """Integer FULLY_CONNECTED: x [..., K] @ w[N, K].T + bias, requantized."""
    ctx.expect_counts((2, 3), 1)
    x, w, bias, out = ctx.input(0), ctx.input(1), ctx.optional_input(2), ctx.outputs[0]
    opts = ctx.options
    if opts.weights_format != "DEFAULT":
        ctx.fail(f"weights_format {opts.weights_format} is not supported")
    if w.rank != 2:
        raise ctx.invalid(f"weights must be 2-D [units, depth], got shape {list(w.shape)}")
    n, k = w.shape
    if k == 0 or x.size % k:
        raise ctx.invalid(f"input of {x.size} elements is not a multiple of the weights' "
                          f"depth {k}")
    if x.shape and x.shape[-1] != k and opts.keep_num_dims:
        raise ctx.invalid(f"keep_num_dims needs input depth {x.shape[-1]} == weights depth {k}")
    check_types(ctx, x, w, bias, out)
    _check_bias_shape(ctx, bias, n)
    in_scale, x_zp = activation_quant(ctx, x, "input")
    scales, w_zp = filter_quant(ctx, w, n, 0)
    int64_bias = bias is not None and bias.type_name == "INT64"
    rounding = "float" if int64_bias else "ruy"
    requant = make_requant(ctx, in_scale, scales, out, rounding)
    shape = tuple(x.shape[:-1]) + (n,) if opts.keep_num_dims else (x.size // k, n)
    sums = weight_abs_sums(w, 0, w_zp)
    dtype = gemm_dtype(max_abs(x.type_name), sums)

    def layout(wv: np.ndarray, bv: np.ndarray | None) -> Gemm:
        wf = wv.astype(np.int64) - w_zp
        return Gemm(np.ascontiguousarray(wf.T, dtype=dtype), fold_bias(bv, wf.sum(1), x_zp))
    weights = weights_provider(w, bias, layout)
    rows = x.size // k
    sr = requant.scaled(weights.bias, max_abs(x.type_name) * sums)
    if sr is not None and fuse_in_gemm(rows, k, n):
        lhs = np.ones((rows, k + 1))
        xin = lhs[:, :k]
        gemm, gemm_bytes = scaled_gemm(scaled_rhs(weights.fixed.matrix, sr), sr, rows)

        def run_scaled(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            np.copyto(xin, ins[0].reshape(rows, k), casting="unsafe")
            gemm(lhs, outs[0])
        return ctx.done(run_scaled, shape, scratch_bytes=lhs.nbytes + gemm_bytes)
    xf = np.empty((rows, k), dtype)
    acc_f = np.empty((rows, n), dtype)
    finish, scratch = requant.compile(acc_f, weights.bias, max_abs(x.type_name) * sums)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        g = weights(ins)
        np.copyto(xf, ins[0].reshape(rows, k), casting="unsafe")
        np.matmul(xf, g.matrix, out=acc_f)
        finish(outs[0], g.bias)
    return ctx.done(run, shape, scratch_bytes=xf.nbytes + acc_f.nbytes + scratch)


def _check_bias_shape(ctx: OpContext, bias: TensorSpec | None, n: int) -> None:
    if bias is not None and bias.size != n:
        raise ctx.invalid(f"bias has {bias.size} elements; expected {n} (one per output "
                          "channel)")


def _dtype_for(w: TensorSpec, max_x: int, axis: int, zp: int = 0) -> type:
    """GEMM float type from the weights: ``axis`` is the output-channel axis,
    |w| is summed over the others (their true values when constant)."""
    return gemm_dtype(max_x, weight_abs_sums(w, axis, zp))


# -- CONV_2D -------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """Output size, padding and the strided view of one 2-D sliding window."""

    out_h: int
    out_w: int
    pad: tuple[int, int, int, int]         # top, bottom, left, right
    stride: tuple[int, int]
    dilation: tuple[int, int]
    kernel: tuple[int, int]


def conv_window(ctx: OpContext, in_hw: tuple[int, int], kernel: tuple[int, int]) -> Window:
    """SAME/VALID window of a conv-like op from its options."""
    o = ctx.options
    sh, sw = o.stride_h, o.stride_w
    dh, dw = getattr(o, "dilation_h_factor", 1), getattr(o, "dilation_w_factor", 1)
    oh, pt, pb = window_padding(ctx, o.padding, in_hw[0], kernel[0], sh, dh)
    ow, pl, pr = window_padding(ctx, o.padding, in_hw[1], kernel[1], sw, dw)
    return Window(oh, ow, (pt, pb, pl, pr), (sh, sw), (dh, dw), kernel)


def windows_of(a: np.ndarray, win: Window) -> np.ndarray:
    """Read-only view [N, OH, OW, KH, KW, C] of every window of a (padded) NHWC array."""
    sn, sh, sw, sc = a.strides
    return as_strided(a, (a.shape[0], win.out_h, win.out_w, *win.kernel, a.shape[3]),
                      (sn, sh * win.stride[0], sw * win.stride[1], sh * win.dilation[0],
                       sw * win.dilation[1], sc), writeable=False)


class PaddedInput:
    """A copy of the input (in ``dtype``) surrounded by the input zero point,
    and strided views of its windows (no copy until im2col)."""

    def __init__(self, shape: tuple[int, ...], win: Window, zp: int, dtype: type,
                 repeat: int = 1) -> None:
        n, h, w, c = shape
        pt, pb, pl, pr = win.pad
        hp = max(h + pt + pb, (win.out_h - 1) * win.stride[0]
                 + (win.kernel[0] - 1) * win.dilation[0] + 1)
        wp = max(w + pl + pr, (win.out_w - 1) * win.stride[1]
                 + (win.kernel[1] - 1) * win.dilation[1] + 1)
        self.buf = np.full((n, hp, wp, c, repeat), zp, dtype)
        self.inner = self.buf[:, pt:pt + h, pl:pl + w]
        self.win = win
        self.flat = self.buf.reshape(n, hp, wp, c * repeat)

    def fill(self, x: np.ndarray) -> None:
        """Copy the input in (repeated along a trailing axis for depth multipliers)."""
        np.copyto(self.inner, x[..., None], casting="unsafe")

    def windows(self) -> np.ndarray:
        """View [N, OH, OW, KH, KW, C] of every window."""
        return windows_of(self.flat, self.win)

    def tap(self, i: int, j: int) -> np.ndarray:
        """View [N, OH, OW, C] of the inputs under kernel tap (i, j)."""
        win = self.win
        y0, x0 = i * win.dilation[0], j * win.dilation[1]
        return self.flat[:, y0:y0 + (win.out_h - 1) * win.stride[0] + 1:win.stride[0],
                         x0:x0 + (win.out_w - 1) * win.stride[1] + 1:win.stride[1]]


def im2col(shape: tuple[int, ...], win: Window, zp: int, raw: np.dtype, dtype: type,
           groups: int, ones: bool = False) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """``lhs(x)``: the GEMM operand of a convolution, [M, KH*KW*C] (or
    [groups, M, KH*KW*C/groups]) in ``dtype``, written into buffers made here;
    and their bytes. A 1x1 stride-1 convolution is the input itself, cast.
    With ``ones`` (one group only) a last column of ones is appended, for a
    bias row in the weights."""
    n, h, w, c = shape
    kh, kw = win.kernel
    m = n * win.out_h * win.out_w
    extra = int(ones)
    if (kh, kw, win.stride, groups) == (1, 1, (1, 1), 1) and (win.out_h, win.out_w) == (h, w):
        xf = np.ones((m, c + extra), dtype)
        xin = xf[:, :c]

        def pointwise(x: np.ndarray) -> np.ndarray:
            np.copyto(xin, x.reshape(m, c), casting="unsafe")
            return xf
        return pointwise, xf.nbytes
    pad = PaddedInput(shape, win, zp, raw)
    padded = any(win.pad) or pad.buf.shape[1:3] != (h, w)
    cg = c // groups
    if groups == 1:
        lhs = np.ones((m, kh * kw * c + extra), dtype)
        cols = lhs
        into = np.reshape(lhs[:, :kh * kw * c], (n, win.out_h, win.out_w, kh, kw, c), copy=False)
    else:
        cols = np.empty((groups, n, win.out_h, win.out_w, kh, kw, cg), dtype)
        into = cols.transpose(1, 2, 3, 4, 5, 0, 6)
        lhs = cols.reshape(groups, m, kh * kw * cg)
    padded_view = pad.windows()
    cache: list[Any] = [None, None]          # the unpadded input and its window view

    def source(x: np.ndarray) -> np.ndarray:
        if padded:
            pad.fill(x)
            return padded_view
        if cache[0] is not x:
            cache[:] = [x, windows_of(x, win)]
        return cache[1]

    def gather(x: np.ndarray) -> np.ndarray:
        src = source(x)
        np.copyto(into, src if groups == 1 else src.reshape(*src.shape[:5], groups, cg),
                  casting="unsafe")
        return lhs
    return gather, cols.nbytes + (pad.buf.nbytes if padded else 0)


@register("CONV_2D", versions=(1, 8), types={"INT8", "UINT8", "INT16"})
def prepare_conv2d(ctx: OpContext) -> Prepared:
    """Integer CONV_2D (NHWC input, OHWI weights), im2col + one GEMM per group."""
    ctx.expect_counts((2, 3), 1)
    x, w, bias, out = ctx.input(0), ctx.input(1), ctx.optional_input(2), ctx.outputs[0]
    if x.rank != 4 or w.rank != 4:
        raise ctx.invalid(f"input and weights must be 4-D, got {list(x.shape)} and "
                          f"{list(w.shape)}")
    n, h, wd, c = x.shape
    cout, kh, kw, cg = w.shape
    if cg == 0 or c % cg or cout % (c // cg):
        raise ctx.invalid(f"input depth {c} and weights depth {cg} / {cout} output channels "
                          "do not form whole groups")
    groups = c // cg
    types = check_types(ctx, x, w, bias, out)
    _check_bias_shape(ctx, bias, cout)
    if bias is None:
        ctx.fail("quantized CONV_2D without a bias is not supported (LiteRT requires one)")
    in_scale, x_zp = activation_quant(ctx, x, "input")
    scales, w_zp = filter_quant(ctx, w, cout, 0)
    requant = make_requant(ctx, in_scale, scales, out,
                           conv_rounding(ctx, types.act, bias, groups))
    win = conv_window(ctx, (h, wd), (kh, kw))
    sums = weight_abs_sums(w, 0, w_zp)
    dtype = gemm_dtype(max_abs(x.type_name), sums)
    kdim = kh * kw * cg

    def layout(wv: np.ndarray, bv: np.ndarray | None) -> Gemm:
        wf = wv.astype(np.int64) - w_zp
        mats = wf.reshape(groups, cout // groups, kdim).transpose(0, 2, 1)
        return Gemm(np.ascontiguousarray(mats, dtype=dtype),
                    fold_bias(bv, wf.reshape(cout, -1).sum(1), x_zp))
    weights = weights_provider(w, bias, layout)
    m = n * win.out_h * win.out_w
    sr = requant.scaled(weights.bias, max_abs(x.type_name) * sums) if groups == 1 else None
    if sr is not None and fuse_in_gemm(m, kdim, cout):
        cols, cols_bytes = im2col(x.shape, win, x_zp, x.dtype, np.float64, 1, ones=True)
        gemm, gemm_bytes = scaled_gemm(scaled_rhs(weights.fixed.matrix[0], sr), sr, m)

        def run_scaled(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            gemm(cols(ins[0]), outs[0])
        return ctx.done(run_scaled, (n, win.out_h, win.out_w, cout),
                        scratch_bytes=cols_bytes + gemm_bytes)
    lhs, lhs_bytes = im2col(x.shape, win, x_zp, x.dtype, dtype, groups)
    acc_f = np.empty((groups, m, cout // groups), dtype)
    grouped = np.empty((m, groups, cout // groups), dtype) if groups > 1 else None
    acc2 = acc_f.reshape(m, cout) if groups == 1 else grouped.reshape(m, cout)
    finish, fin_bytes = requant.compile(acc2, weights.bias, max_abs(x.type_name) * sums)
    scratch = lhs_bytes + acc_f.nbytes + fin_bytes
    if groups == 1:

        def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            g = weights(ins)
            np.matmul(lhs(ins[0]), g.matrix[0], out=acc2)
            finish(outs[0], g.bias)
        return ctx.done(run, (n, win.out_h, win.out_w, cout), scratch_bytes=scratch)

    def run_grouped(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        g = weights(ins)
        np.matmul(lhs(ins[0]), g.matrix, out=acc_f)
        np.copyto(grouped, acc_f.transpose(1, 0, 2))
        finish(outs[0], g.bias)
    return ctx.done(run_grouped, (n, win.out_h, win.out_w, cout),
                    scratch_bytes=scratch + grouped.nbytes)


# -- DEPTHWISE_CONV_2D ---------------------------------------------------------------
@register("DEPTHWISE_CONV_2D", versions=(1, 7), types={"INT8", "UINT8", "INT16"})
def prepare_depthwise(ctx: OpContext) -> Prepared:
    """Integer DEPTHWISE_CONV_2D: one multiply-add per kernel tap over all pixels.

    The input is cast once into a padded float buffer (channels repeated for
    a depth multiplier) whose window views are made in prepare; see
    :func:`depthwise_taps` for the multiply-adds.
    """
    ctx.expect_counts((2, 3), 1)
    x, w, bias, out = ctx.input(0), ctx.input(1), ctx.optional_input(2), ctx.outputs[0]
    if x.rank != 4 or w.rank != 4 or w.shape[0] != 1:
        raise ctx.invalid(f"input must be 4-D and weights [1, H, W, C], got {list(x.shape)} "
                          f"and {list(w.shape)}")
    n, h, wd, c = x.shape
    _, kh, kw, cout = w.shape
    if c == 0 or cout % c:
        raise ctx.invalid(f"weights' {cout} channels are not a multiple of the input's {c}")
    mult = cout // c     # LiteRT's integer kernels also ignore the depth_multiplier option
    types = check_types(ctx, x, w, bias, out)
    _check_bias_shape(ctx, bias, cout)
    if bias is None:
        ctx.fail("quantized DEPTHWISE_CONV_2D without a bias is not supported (LiteRT "
                 "requires one)")
    if types.act == "INT16" and bias.type_name != "INT64":
        raise ctx.invalid(f"16x8 DEPTHWISE_CONV_2D needs an INT64 bias, got {bias.type_name}")
    in_scale, x_zp = activation_quant(ctx, x, "input")
    scales, w_zp = filter_quant(ctx, w, cout, 3)
    requant = make_requant(ctx, in_scale, scales, out, types.rounding)
    win = conv_window(ctx, (h, wd), (kh, kw))
    sums = weight_abs_sums(w, 3, w_zp)
    dtype = gemm_dtype(max_abs(x.type_name), sums)

    def layout(wv: np.ndarray, bv: np.ndarray | None) -> Gemm:
        wf = wv.astype(np.int64).reshape(kh, kw, cout) - w_zp
        return Gemm(wf.astype(dtype), fold_bias(bv, wf.sum((0, 1)), x_zp))
    weights = weights_provider(w, bias, layout)
    padded = PaddedInput(x.shape, win, x_zp, dtype, repeat=mult)
    acc_f = np.empty((n, win.out_h, win.out_w, cout), dtype)
    taps, taps_bytes = depthwise_taps(padded, acc_f,
                                      None if weights.fixed is None else weights.fixed.matrix)
    finish, fin_bytes = requant.compile(acc_f, weights.bias, max_abs(x.type_name) * sums)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        g = weights(ins)
        padded.fill(ins[0])
        taps(g.matrix)
        finish(outs[0], g.bias)
    return ctx.done(run, acc_f.shape,
                    scratch_bytes=padded.buf.nbytes + acc_f.nbytes + taps_bytes + fin_bytes)


#: Below this many channels a strided (stride_w > 1) depthwise runs tap by tap:
#: einsum's inner loop over the channels is too short there (measured).
EINSUM_MIN_CHANNELS = 32


def depthwise_taps(padded: PaddedInput, acc: np.ndarray, fixed: np.ndarray | None
                   ) -> tuple[Callable[[np.ndarray], None], int]:
    """``taps(w)``: acc = sum over the kernel taps of tap view * weights w
    [KH, KW, C] (``fixed``: the weights when constant, tiled once here).

    One einsum over a strided window view, which multiplies and sums in one
    pass without temporaries. With stride_w == 1 a window row's (x, c) pairs
    are evenly spaced in memory, so x and c merge into one long axis (the
    weights tiled along the output width to match); otherwise the view is
    [N, OH, OW, KH, KW, C], or for few channels a multiply and an add per tap.
    Integer values summed in float are exact in any order (the layer's bound).
    """
    win, a = padded.win, padded.flat
    n, oh, ow, c = acc.shape
    sn, sh, sw, sc = a.strides
    (kh, kw), (dh, dw) = win.kernel, win.dilation
    if win.stride[1] == 1:
        view = as_strided(a, (n, oh, ow * c, kh, kw), (sn, sh * win.stride[0], sc, sh * dh,
                                                       sw * dw), writeable=False)
        out = acc.reshape(n, oh, ow * c)

        def tile(m: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.broadcast_to(m[:, :, None, :], (kh, kw, ow, c))
                                        ).reshape(kh, kw, ow * c)
        tiled = tile(fixed) if fixed is not None else None

        def merged(w: np.ndarray) -> None:
            wt = tiled if tiled is not None else tile(w)
            np.einsum("nhqij,ijq->nhq", view, wt, out=out)
        return merged, 0 if tiled is None else tiled.nbytes
    if c >= EINSUM_MIN_CHANNELS:
        view = windows_of(a, win)

        def windowed(w: np.ndarray) -> None:
            np.einsum("nhwijc,ijc->nhwc", view, w, out=acc)
        return windowed, 0
    taps = [padded.tap(i, j) for i in range(kh) for j in range(kw)]
    tmp = np.empty_like(acc)

    def by_tap(w: np.ndarray) -> None:
        wt = w.reshape(kh * kw, c)
        np.multiply(taps[0], wt[0], out=acc)
        for t in range(1, len(taps)):
            np.multiply(taps[t], wt[t], out=tmp)
            np.add(acc, tmp, out=acc)
    return by_tap, tmp.nbytes


# -- TRANSPOSE_CONV -------------------------------------------------------------------
def _transpose_conv_type(ctx: OpContext) -> str:
    """TRANSPOSE_CONV is keyed on its data input (input 2), not output_shape."""
    spec = ctx.inputs[2] if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
    return spec.type_name if spec is not None else ctx.outputs[0].type_name


@register("TRANSPOSE_CONV", versions=(1, 5), types={"INT8", "UINT8", "INT16"},
          type_key=_transpose_conv_type)
def prepare_transpose_conv(ctx: OpContext) -> Prepared:
    """Integer TRANSPOSE_CONV: one GEMM per input pixel row, then col2im.

    col2im adds each kernel tap's slab into the strided output positions it
    reaches (a loop over the KH*KW taps, not over pixels).
    """
    ctx.expect_counts((3, 4), 1)
    shape_in, w, x, out = ctx.input(0), ctx.input(1), ctx.input(2), ctx.outputs[0]
    bias = ctx.optional_input(3)
    if not shape_in.is_constant:
        ctx.fail("a non-constant output_shape is not supported for quantized TRANSPOSE_CONV")
    if x.rank != 4 or w.rank != 4 or shape_in.size != 4:
        raise ctx.invalid(f"input, weights and output_shape must describe 4-D tensors, got "
                          f"{list(x.shape)}, {list(w.shape)}, {shape_in.size} dims")
    oshape = tuple(int(d) for d in np.asarray(shape_in.data).reshape(-1))
    n, h, wd, c = x.shape
    cout, kh, kw, cin = w.shape
    if cin != c or oshape[0] != n or oshape[3] != cout:
        raise ctx.invalid(f"shapes disagree: input {list(x.shape)}, weights {list(w.shape)}, "
                          f"output_shape {list(oshape)}")
    types = check_types(ctx, x, w, bias, out)
    _check_bias_shape(ctx, bias, cout)
    in_scale, x_zp = activation_quant(ctx, x, "input")
    scales, w_zp = filter_quant(ctx, w, cout, 0)
    requant = make_requant(ctx, in_scale, scales, out, conv_rounding(ctx, types.act, bias))
    o = ctx.options
    ch, pt, _ = window_padding(ctx, o.padding, oshape[1], kh, o.stride_h)
    cw, pl, _ = window_padding(ctx, o.padding, oshape[2], kw, o.stride_w)
    if (ch, cw) != (h, wd):
        raise ctx.invalid(f"output_shape {list(oshape)} implies a {ch}x{cw} input for "
                          f"{o.padding} padding, but the input is {h}x{wd}")
    sh, sw = o.stride_h, o.stride_w
    max_x = max_abs(x.type_name) + abs(x_zp)
    sums = weight_abs_sums(w, 0, w_zp)
    dtype = gemm_dtype(max_x, sums)

    def layout(wv: np.ndarray, bv: np.ndarray | None) -> Gemm:
        wf = wv.astype(np.int64) - w_zp
        mat = wf.transpose(3, 1, 2, 0).reshape(c, kh * kw * cout)
        return Gemm(mat.astype(dtype), np.zeros(cout, np.int64) if bv is None
                    else bv.astype(np.int64))
    weights = weights_provider(w, bias, layout, bias_index=3)
    full_h = max((h - 1) * sh + kh, pt + oshape[1])
    full_w = max((wd - 1) * sw + kw, pl + oshape[2])
    cols = np.empty((n, h, wd, kh, kw, cout), dtype)
    acc_f = np.empty((n, full_h, full_w, cout), dtype)
    xf = np.empty((n * h * wd, c), dtype)
    slabs = [(acc_f[:, i:i + (h - 1) * sh + 1:sh, j:j + (wd - 1) * sw + 1:sw],
              cols[:, :, :, i, j]) for i in range(kh) for j in range(kw)]
    crop = acc_f[:, pt:pt + oshape[1], pl:pl + oshape[2]]
    finish, fin_bytes = requant.compile(crop, weights.bias, max_x * sums)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        g = weights(ins)
        np.copyto(xf, ins[2].reshape(n * h * wd, c), casting="unsafe")
        np.subtract(xf, x_zp, out=xf)
        np.matmul(xf, g.matrix, out=cols.reshape(n * h * wd, -1))
        acc_f.fill(0)
        for dst, src in slabs:
            np.add(dst, src, out=dst)
        finish(outs[0], g.bias)
    return ctx.done(run, oshape,
                    scratch_bytes=cols.nbytes + acc_f.nbytes + xf.nbytes + fin_bytes)


# -- BATCH_MATMUL -----------------------------------------------------------------------
@register("BATCH_MATMUL", versions=(1, 4), types={"INT8", "INT16"})
def prepare_batch_matmul(ctx: OpContext) -> Prepared:
    """Integer BATCH_MATMUL with adj_x/adj_y and broadcast batch dimensions;
    int8 x int8 may also produce raw int32 products (zero points ignored, as
    LiteRT does)."""
    ctx.expect_counts(2, 1)
    a, b, out = ctx.input(0), ctx.input(1), ctx.outputs[0]
    if a.type_name != b.type_name:
        raise ctx.invalid(f"operand types differ: {a.type_name} and {b.type_name}")
    if a.rank < 2 or b.rank < 2:
        raise ctx.invalid(f"operands must have rank >= 2, got {a.rank} and {b.rank}")
    adj_x, adj_y = bool(ctx.options.adj_x), bool(ctx.options.adj_y)
    m, k = (a.shape[-1], a.shape[-2]) if adj_x else a.shape[-2:]
    k2, nn = (b.shape[-1], b.shape[-2]) if adj_y else b.shape[-2:]
    if k != k2:
        raise ctx.invalid(f"contraction sizes differ: {k} and {k2}")
    batch = broadcast_shape(ctx, a.shape[:-2], b.shape[:-2], max_rank=4)
    sa, za = activation_quant(ctx, a, "lhs")
    sb, zb = activation_quant(ctx, b, "rhs")
    raw = out.type_name == "INT32" and a.type_name == "INT8"
    if out.type_name != a.type_name and not raw:
        raise ctx.invalid(f"output type {out.type_name} does not match inputs {a.type_name}")
    requant = None if raw else make_requant(ctx, sa, np.array([sb], np.float32), out,
                                            SIMPLE_ROUNDING[("BATCH_MATMUL", a.type_name)])
    if raw:
        # LiteRT's int8 x int8 -> int32 path returns sum(a * b) and ignores
        # both zero points; so does this kernel.
        za = zb = 0
    qa, qb = max_abs(a.type_name) + abs(za), max_abs(b.type_name) + abs(zb)
    dtype = gemm_dtype(qa, [qb * k])
    shape = batch + (m, nn)
    lhs, lhs_bytes = _operand(a, za, adj_x, dtype)
    rhs, rhs_bytes = _operand(b, zb, adj_y, dtype)
    acc_f = np.empty(shape, dtype)
    finish, fin_bytes = (None, 0) if requant is None else \
        requant.compile(acc_f, np.zeros(1, np.int64), np.array([qa * qb * k]))

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.matmul(lhs(ins[0]), rhs(ins[1]), out=acc_f)
        if finish is None:
            np.copyto(outs[0], acc_f, casting="unsafe")
        else:
            finish(outs[0], 0)
    return ctx.done(run, shape, scratch_bytes=acc_f.nbytes + lhs_bytes + rhs_bytes + fin_bytes)


def _operand(spec: TensorSpec, zp: int, adj: bool, dtype: type
             ) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """A BATCH_MATMUL operand as float minus its zero point (transposed for adj):
    computed once when constant, else into a buffer made here."""
    def view(f: np.ndarray) -> np.ndarray:
        return np.swapaxes(f, -1, -2) if adj else f
    if spec.is_constant:
        fixed = view(spec.data.astype(dtype) - zp)
        return (lambda v: fixed), 0
    buf = np.empty(spec.shape, dtype)
    viewed = view(buf)

    def get(v: np.ndarray) -> np.ndarray:
        np.copyto(buf, v, casting="unsafe")
        if zp:
            np.subtract(buf, zp, out=buf)
        return viewed
    return get, buf.nbytes
