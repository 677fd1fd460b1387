"""Hybrid (dynamic-range quantized) kernels: float activations, int8 weights.

LiteRT quantizes the float input on the fly (symmetrically to [-127, 127],
or asymmetrically to [-128, 127] with a zero point, per batch row), runs an
integer GEMM against the int8 weights and rescales the int32 accumulators to
float with ``input scale * weight scale``. These kernels repeat every step
with the same float32 operations in the same order: the integer parts are
exact (float GEMMs within the bounds of :func:`qconv.gemm_dtype`), so on x86
the outputs are bit-identical to LiteRT's builtin kernels; the tests allow a
few float32 ulps for activations such as TANH that LiteRT approximates.

FULLY_CONNECTED and BATCH_MATMUL quantize each row of the input (over its
last dimension); CONV_2D and DEPTHWISE_CONV_2D quantize each batch image
as a whole. CONV_2D uses the asymmetric per-channel path when the weights
have differing per-channel scales and the symmetric per-tensor path
otherwise, exactly as LiteRT chooses.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from .common import broadcast_shape, fused_activation
from .qconv import PaddedInput, conv_window, depthwise_taps, gemm_dtype
from .quant_math import clip_into
from .registry import register

if TYPE_CHECKING:
    from .qsequence import LstmLayout

F32 = np.float32
CLAMP_ACTIVATIONS = {"NONE": (-np.inf, np.inf), "RELU": (0.0, np.inf), "RELU6": (0.0, 6.0),
                     "RELU_N1_TO_1": (-1.0, 1.0)}


# -- on-the-fly input quantization (TFLite's tensor_utils, row by row) -------------------
class RowQuantizer:
    """LiteRT's on-the-fly quantization of the rows of a [B, K] float32 input,
    into buffers made once: the quantized values (as float32, exact) and the
    per-row scales and zero points.

    Symmetric: values in [-127, 127], scale range / 127 (an all-zero row gets
    scale 1). Asymmetric: the range always includes 0; the scale is (max -
    min) / 255 with the difference in float32 and the division in double, the
    zero point comes from whichever end has the smaller error (in double), and
    values are ``zero_point + round(x / scale)`` clamped to [-128, 127]. Only
    per-row arrays of B values are made per call; nothing of size B x K.
    """

    def __init__(self, rows: int, depth: int, asymmetric: bool) -> None:
        self.asymmetric = asymmetric
        self.q = np.empty((rows, depth), F32)
        self._half = np.empty((rows, depth), F32)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(quantized values, float32 scales, int64 zero points) of the rows of ``x``."""
        if self.asymmetric:
            return self._asymmetric(x)
        rng = np.maximum(np.abs(x.min(axis=1)), np.abs(x.max(axis=1)))
        zero = rng == 0
        rng = np.where(zero, F32(1), rng)
        scale = np.where(zero, F32(1), rng / F32(127)).astype(F32)
        inv = (F32(127) / rng).astype(F32)
        q = self._round(x, inv, None)
        clip_into(q, -127, 127, q)
        if zero.any():
            q[zero] = 0
        return q, scale, np.zeros(len(x), np.int64)

    def _asymmetric(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo = np.minimum(F32(0), x.min(axis=1))
        hi = np.maximum(F32(0), x.max(axis=1))
        same = lo == hi
        scale_d = np.where(same, 1.0, (hi - lo).astype(np.float64) / 255.0)
        lo_s, hi_s = lo / scale_d, hi / scale_d
        zp_d = np.where(128 + np.abs(lo_s) < 127 + np.abs(hi_s), -128 - lo_s, 127 - hi_s)
        zp = np.clip(_round_half_away(zp_d), -128, 127)
        zp[same] = 0
        scale = np.where(same, F32(1), scale_d.astype(F32)).astype(F32)
        inv = (F32(1) / scale).astype(F32)
        q = self._round(x, inv, zp.astype(F32))
        clip_into(q, -128, 127, q)
        if same.any():
            q[same] = 0
        return q, scale, zp.astype(np.int64)

    def _round(self, x: np.ndarray, inv: np.ndarray, zp: np.ndarray | None) -> np.ndarray:
        """round_half_away(x * inv) (+ zp), all in float32, in place."""
        q, half = self.q, self._half
        np.multiply(x, inv[:, None], out=q)
        np.copysign(F32(0.5), q, out=half)
        np.add(q, half, out=q)
        np.trunc(q, out=q)
        if zp is not None:
            np.add(q, zp[:, None], out=q)
        return q

    @property
    def nbytes(self) -> int:
        """Scratch bytes held."""
        return self.q.nbytes + self._half.nbytes


def quantize_symmetric(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` [B, K] to int8 values in [-127, 127] (as float32) and their
    float32 scales range/127; an all-zero row gets scale 1."""
    q, scale, _ = RowQuantizer(*x.shape, asymmetric=False)(x)
    return q, scale


def quantize_asymmetric(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``x`` [B, K] to int8 values with a per-row zero point (see
    :class:`RowQuantizer`)."""
    return RowQuantizer(*x.shape, asymmetric=True)(x)


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """std::round in the dtype of ``v``."""
    return np.trunc(v + np.copysign(v.dtype.type(0.5), v))


# -- shared checks --------------------------------------------------------------------
def weights_int8(index: int) -> Callable[[OpContext], bool]:
    """``when=`` predicate: input ``index`` holds int8 weights."""
    def check(ctx: OpContext) -> bool:
        spec = ctx.inputs[index] if index < len(ctx.inputs) else None
        return spec is not None and spec.type_name == "INT8"
    return check


def weight_scales(ctx: OpContext, w: TensorSpec, channels: int, axis: int) -> np.ndarray:
    """The weights' float32 scales, one per output channel (or one)."""
    if not w.is_constant:
        ctx.fail("hybrid kernels need constant int8 weights")
    if w.sparsity is not None:
        ctx.fail(f"sparse weights {w.name!r} are not supported (densify them first)")
    q = w.quantization
    if q is None or q.scale.size == 0:
        raise ctx.invalid(f"int8 weights {w.name!r} have no quantization parameters")
    if q.scale.size not in (1, channels) or (q.scale.size > 1 and q.axis != axis):
        raise ctx.invalid(f"weights {w.name!r} have {q.scale.size} scales along axis {q.axis};"
                          f" expected 1 or {channels} along axis {axis}")
    if np.any(np.asarray(q.zero_point) != 0):
        raise ctx.invalid(f"hybrid int8 weights {w.name!r} must have zero point 0")
    return np.asarray(q.scale, F32)


def float_bias(ctx: OpContext, bias: TensorSpec | None, n: int) -> np.ndarray:
    """The float32 bias (zeros when omitted)."""
    if bias is None:
        return np.zeros(n, F32)
    if bias.type_name != "FLOAT32" or not bias.is_constant or bias.size != n:
        ctx.fail(f"hybrid kernels need a constant FLOAT32 bias of {n} values, got "
                 f"{bias.type_name} {list(bias.shape)}")
    return np.asarray(bias.data, F32).reshape(n)


def check_float_output(ctx: OpContext) -> None:
    """Hybrid ops produce FLOAT32."""
    if ctx.outputs[0].type_name != "FLOAT32":
        raise ctx.invalid(f"hybrid output must be FLOAT32, not {ctx.outputs[0].type_name}")


def clamp_range(ctx: OpContext) -> tuple[float, float]:
    """LiteRT's hybrid convolutions only clamp; other activations are refused."""
    act = ctx.options.fused_activation_function
    if act not in CLAMP_ACTIVATIONS:
        ctx.fail(f"fused activation {act} is not supported by hybrid {ctx.name}")
    return CLAMP_ACTIVATIONS[act]


# -- FULLY_CONNECTED --------------------------------------------------------------------
@register("FULLY_CONNECTED", versions=(1, 14), types={"FLOAT32"}, when=weights_int8(1))
def prepare_hybrid_fully_connected(ctx: OpContext) -> Prepared:
    """Hybrid FULLY_CONNECTED: rows quantized on the fly (symmetric or with
    ``asymmetric_quantize_inputs``), int8 GEMM, float rescale + bias."""
    ctx.expect_counts((2, 3), 1)
    x, w, bias = ctx.input(0), ctx.input(1), ctx.optional_input(2)
    check_float_output(ctx)
    opts = ctx.options
    if w.rank != 2:
        raise ctx.invalid(f"weights must be 2-D [units, depth], got {list(w.shape)}")
    n, k = w.shape
    if k == 0 or x.size % k:
        raise ctx.invalid(f"input of {x.size} elements is not a multiple of depth {k}")
    scales = weight_scales(ctx, w, n, 0)
    b = float_bias(ctx, bias, n)
    act = fused_activation(ctx)
    rows = x.size // k
    shape = tuple(x.shape[:-1]) + (n,) if opts.keep_num_dims else (rows, n)
    wi = w.data.astype(np.int64)
    dtype = gemm_dtype(128, np.abs(wi).sum(axis=1))
    wmat = np.ascontiguousarray(wi.T, dtype=dtype)
    quant = RowQuantizer(rows, k, bool(opts.asymmetric_quantize_inputs))
    finish = _HybridFinish(quant, dtype, (rows, n), wi.sum(axis=1), scales, rows_axis=0)
    qd = quant.q if dtype is F32 else np.empty((rows, k), dtype)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        xv = ins[0].reshape(rows, k)
        out = outs[0].reshape(rows, n)
        if not xv.any():
            np.copyto(out, b)
        else:
            q, sf, zp = quant(xv)
            if qd is not q:
                np.copyto(qd, q)
            np.matmul(qd, wmat, out=finish.dot)
            np.add(b, finish(sf, zp), out=out)
        if act is not None:
            act(outs[0])
    return ctx.done(run, shape, scratch_bytes=quant.nbytes + finish.nbytes +
                    (0 if qd is quant.q else qd.nbytes))


class _HybridFinish:
    """The float rescale of hybrid integer dot products, into buffers made once:
    ``float32(dot - zp * row_sums) * float32(row scale * weight scale)``.

    ``dot`` (the GEMM's output, exact integers in ``dtype``) has rows along
    ``rows_axis`` (0: [rows, N]; for convolutions [images, pixels, N] with the
    row scale per image) and output channels last. The zero-point term is
    exact in float64 and rounded to float32 once, as LiteRT's int32 -> float
    conversion rounds it.
    """

    def __init__(self, quant: RowQuantizer, dtype: type, shape: tuple[int, ...],
                 row_sums: np.ndarray, scales: np.ndarray, rows_axis: int) -> None:
        self.dot = np.empty(shape, dtype)
        self.f32 = self.dot if dtype is F32 else np.empty(shape, F32)
        self.asym = quant.asymmetric
        self.wide = np.empty(shape) if self.asym else None
        self.row_sums = row_sums.astype(np.float64)
        self.scales = scales
        self.per_channel = scales.size > 1
        per_row = (shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],)
        self.factor = np.empty(per_row, F32) if self.per_channel else None
        self.zp_sums = np.empty(per_row) if self.asym else None
        self._col = (slice(None),) + (None,) * (len(shape) - 1)

    def __call__(self, sf: np.ndarray, zp: np.ndarray) -> np.ndarray:
        """The float32 product, in a buffer (valid until the next call)."""
        if self.asym:
            np.copyto(self.wide, self.dot)
            np.multiply(zp.astype(np.float64)[self._col], self.row_sums, out=self.zp_sums)
            np.subtract(self.wide, self.zp_sums, out=self.wide)
            np.copyto(self.f32, self.wide, casting="unsafe")
        elif self.f32 is not self.dot:
            np.copyto(self.f32, self.dot, casting="unsafe")
        if self.per_channel:       # LiteRT multiplies row scale by each channel's scale
            np.multiply(sf[self._col], self.scales, out=self.factor)
            factor = self.factor
        else:                      # per tensor it folds the weight scale into the row scale
            factor = (sf * self.scales[0]).astype(F32)[self._col]
        np.multiply(self.f32, factor, out=self.f32)
        return self.f32

    @property
    def nbytes(self) -> int:
        """Scratch bytes held."""
        arrays = [self.dot, self.wide, self.factor, self.zp_sums] + \
            ([self.f32] if self.f32 is not self.dot else [])
        return sum(a.nbytes for a in arrays if a is not None)


def _quantize(x: np.ndarray, asym: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if asym:
        return quantize_asymmetric(x)
    q, sf = quantize_symmetric(x)
    return q, sf, np.zeros(len(x), np.int64)


# -- CONV_2D ----------------------------------------------------------------------------
@register("CONV_2D", versions=(1, 8), types={"FLOAT32"}, when=weights_int8(1))
def prepare_hybrid_conv2d(ctx: OpContext) -> Prepared:
    """Hybrid CONV_2D: each batch image quantized on the fly, im2col, int8 GEMM."""
    ctx.expect_counts((2, 3), 1)
    x, w, bias = ctx.input(0), ctx.input(1), ctx.optional_input(2)
    check_float_output(ctx)
    if x.rank != 4 or w.rank != 4:
        raise ctx.invalid(f"input and weights must be 4-D, got {list(x.shape)}, "
                          f"{list(w.shape)}")
    n, h, wd, c = x.shape
    cout, kh, kw, cin = w.shape
    if cin != c:
        ctx.fail(f"grouped hybrid CONV_2D (input depth {c}, weights depth {cin}) is not "
                 "supported")
    scales = weight_scales(ctx, w, cout, 0)
    per_channel = scales.size > 1 and np.any(scales != scales[0])
    b = float_bias(ctx, bias, cout)
    lo, hi = clamp_range(ctx)
    win = conv_window(ctx, (h, wd), (kh, kw))
    wi = w.data.astype(np.int64).reshape(cout, -1)
    dtype = gemm_dtype(128, np.abs(wi).sum(axis=1))
    wmat = np.ascontiguousarray(wi.T, dtype=dtype)
    m = win.out_h * win.out_w
    cols = np.empty((n, win.out_h, win.out_w, kh, kw, c), dtype)
    lhs = cols.reshape(n * m, -1)
    pads = [PaddedInput((1, h, wd, c), win, 0, dtype) for _ in range(n)]
    quant = RowQuantizer(n, h * wd * c, asymmetric=bool(per_channel))
    finish = _HybridFinish(quant, dtype, (n, m, cout), wi.sum(axis=1),
                           scales if per_channel else scales[:1], rows_axis=0)
    dot = finish.dot.reshape(n * m, cout)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        q, sf, zp = quant(ins[0].reshape(n, -1))
        for i, pad in enumerate(pads):          # one image per batch: its own zero point
            pad.buf.fill(zp[i])
            pad.fill(q[i].reshape(1, h, wd, c))
            np.copyto(cols[i:i + 1], pad.windows())
        np.matmul(lhs, wmat, out=dot)
        out = outs[0].reshape(n, m, cout)
        np.add(finish(sf, zp), b, out=out)
        clip_into(out, lo, hi, out)
    return ctx.done(run, (n, win.out_h, win.out_w, cout),
                    scratch_bytes=cols.nbytes + sum(p.buf.nbytes for p in pads) +
                    quant.nbytes + finish.nbytes)


# -- DEPTHWISE_CONV_2D --------------------------------------------------------------------
@register("DEPTHWISE_CONV_2D", versions=(1, 7), types={"FLOAT32"}, when=weights_int8(1))
def prepare_hybrid_depthwise(ctx: OpContext) -> Prepared:
    """Hybrid DEPTHWISE_CONV_2D (per-channel weights): each batch image is
    quantized asymmetrically, integer taps are accumulated, then rescaled.

    LiteRT's NEON store loop takes channels four at a time and computes
    ``acc * channel_scale * input_scale``; its scalar tail (the last C % 4
    channels) computes ``acc * input_scale * channel_scale``. Both are kept.
    """
    ctx.expect_counts((2, 3), 1)
    x, w, bias = ctx.input(0), ctx.input(1), ctx.optional_input(2)
    check_float_output(ctx)
    if x.rank != 4 or w.rank != 4 or w.shape[0] != 1:
        raise ctx.invalid(f"input must be 4-D and weights [1, H, W, C], got {list(x.shape)}, "
                          f"{list(w.shape)}")
    n, h, wd, c = x.shape
    _, kh, kw, cout = w.shape
    if c == 0 or cout % c or ctx.options.depth_multiplier != cout // c:
        raise ctx.invalid(f"depth_multiplier {ctx.options.depth_multiplier} does not match "
                          f"{cout} weight channels for {c} input channels")
    mult = cout // c
    scales = weight_scales(ctx, w, cout, 3)
    if scales.size != cout:
        ctx.fail("hybrid DEPTHWISE_CONV_2D needs per-channel weight scales (LiteRT requires "
                 "them)")
    b = float_bias(ctx, bias, cout)
    lo, hi = clamp_range(ctx)
    win = conv_window(ctx, (h, wd), (kh, kw))
    wi = w.data.astype(np.int64).reshape(kh, kw, cout)
    dtype = gemm_dtype(255, np.abs(wi).sum(axis=(0, 1)))
    vector = np.arange(cout) < cout // 4 * 4
    quant = RowQuantizer(n, h * wd * c, asymmetric=True)
    padded = PaddedInput((n, h, wd, c), win, 0, dtype, repeat=mult)   # zero border
    acc = np.empty((n, win.out_h, win.out_w, cout), dtype)
    taps, taps_bytes = depthwise_taps(padded, acc, wi.astype(dtype))
    fixed = wi.astype(dtype)
    af = acc if dtype is F32 else np.empty(acc.shape, F32)
    tail = np.empty(acc.shape, F32) if not vector.all() else None
    image = (slice(None), None, None, None)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        q, sf, zp = quant(ins[0].reshape(n, -1))
        np.subtract(q, zp.astype(F32)[:, None], out=q)          # exact small integers
        padded.fill(q.reshape(n, h, wd, c))
        taps(fixed)
        if af is not acc:
            np.copyto(af, acc, casting="unsafe")
        sfb = sf[image]
        if tail is not None:                      # scalar tail: acc * input * channel scale
            np.multiply(af, sfb, out=tail)
            np.multiply(tail, scales, out=tail)
        np.multiply(af, scales, out=af)           # NEON: acc * channel * input scale
        np.multiply(af, sfb, out=af)
        if tail is not None:
            np.copyto(af, tail, where=~vector)
        np.add(af, b, out=outs[0])
        clip_into(outs[0], lo, hi, outs[0])
    scratch = acc.nbytes + padded.buf.nbytes + taps_bytes + quant.nbytes + \
        (0 if af is acc else af.nbytes) + (0 if tail is None else tail.nbytes)
    return ctx.done(run, acc.shape, scratch_bytes=scratch)


# -- BATCH_MATMUL ------------------------------------------------------------------------
@register("BATCH_MATMUL", versions=(1, 4), types={"FLOAT32"}, when=weights_int8(1))
def prepare_hybrid_batch_matmul(ctx: OpContext) -> Prepared:
    """Hybrid BATCH_MATMUL: float lhs rows quantized on the fly against a
    constant int8 rhs (per tensor or per output column).

    LiteRT's reference kernel (the only one it has for this case) advances
    its per-row scale / zero-point pointer and its weight row-sum pointer by
    one matrix per step of *each* batch dimension instead of by the batch's
    flat index. With two or more non-broadcast batch dimensions it therefore
    rescales some batches with another batch's input scale; this kernel
    follows the same indexing so that results equal LiteRT's.
    """
    ctx.expect_counts(2, 1)
    a, bt = ctx.input(0), ctx.input(1)
    check_float_output(ctx)
    if not 2 <= a.rank <= 5 or not 2 <= bt.rank <= 5:
        raise ctx.invalid(f"operands must have rank 2 to 5, got {a.rank} and {bt.rank}")
    adj_x, adj_y = bool(ctx.options.adj_x), bool(ctx.options.adj_y)
    m, k = (a.shape[-1], a.shape[-2]) if adj_x else a.shape[-2:]
    k2, nn = (bt.shape[-1], bt.shape[-2]) if adj_y else bt.shape[-2:]
    if k != k2:
        raise ctx.invalid(f"contraction sizes differ: {k} and {k2}")
    batch = broadcast_shape(ctx, a.shape[:-2], bt.shape[:-2], max_rank=3)
    scales = weight_scales(ctx, bt, nn, bt.rank - 2 if adj_y else bt.rank - 1)
    wi = bt.data.astype(np.int64)
    wi = np.swapaxes(wi, -1, -2) if adj_y else wi               # [..., K, N]
    a_dims, w_dims = _batch3(a.shape[:-2]), _batch3(bt.shape[:-2])
    if w_dims[0] > 1:
        ctx.fail("hybrid BATCH_MATMUL weights with three batch dimensions are not supported "
                 "(LiteRT leaves their row sums uninitialized)")
    dtype = gemm_dtype(128, np.abs(wi).sum(axis=-2))
    wmat = wi.astype(dtype)
    out3 = _batch3(batch)
    row_index = _litert_batch_index(out3, a_dims, m)            # [d0, d1, d2, M]
    sum_index = _litert_batch_index(out3, w_dims, nn)           # [d0, d1, d2, N]
    row_sums = wi.sum(axis=-2).reshape(-1)[sum_index][..., None, :].astype(F32)
    pcs = scales if scales.size > 1 else None
    asym = bool(ctx.options.asymmetric_quantize_inputs)
    shape = batch + (m, nn)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        av = np.swapaxes(ins[0], -1, -2) if adj_x else ins[0]
        q, sf, zp = _quantize(np.ascontiguousarray(av).reshape(-1, k), asym)
        if pcs is None:
            sf = (sf * scales[0]).astype(F32)
        dot = np.matmul(q.reshape(av.shape).astype(dtype), wmat).astype(np.int64)
        dot = dot.reshape(out3 + (m, nn))
        zps = zp[row_index][..., :, None].astype(F32)
        total = np.trunc(dot.astype(F32) - (row_sums * zps).astype(F32))
        factor = sf[row_index][..., :, None]
        if pcs is not None:
            factor = (factor * pcs).astype(F32)
        np.multiply(factor, total, out=outs[0].reshape(out3 + (m, nn)))
    return ctx.done(run, shape)


def _batch3(dims: tuple[int, ...]) -> tuple[int, int, int]:
    """Batch dimensions left-padded with ones to three."""
    return tuple([1] * (3 - len(dims)) + [int(d) for d in dims])  # type: ignore[return-value]


def _litert_batch_index(out3: tuple[int, int, int], own3: tuple[int, int, int], rows: int
                        ) -> np.ndarray:
    """Row index LiteRT's hybrid BATCH_MATMUL reads for each output batch:
    ``rows * sum(b_i for non-broadcast dims i) + r``."""
    grids = np.meshgrid(*(np.arange(d) for d in out3), indexing="ij")
    base = sum(g * (own != 1) for g, own in zip(grids, own3, strict=True)) * rows
    return base[..., None] + np.arange(rows)


# -- UNIDIRECTIONAL_SEQUENCE_LSTM -----------------------------------------------------------
def _float_activation(ctx: OpContext, name: str) -> Callable[[np.ndarray], np.ndarray]:
    """LiteRT's ApplyActivationToVector for an LSTM's cell activation."""
    acts = {"TANH": lambda v: np.tanh(v), "SIGMOID": _sigmoid, "NONE": lambda v: v,
            "RELU": lambda v: np.maximum(v, F32(0)), "RELU6": lambda v: np.clip(v, 0, 6),
            "RELU_N1_TO_1": lambda v: np.clip(v, -1, 1)}
    if name not in acts:
        ctx.fail(f"LSTM activation {name} is not supported")
    return acts[name]


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return (F32(1) / (F32(1) + np.exp(-v))).astype(F32)


class _HybridGate:
    """One gate's int8 weights (input and recurrent), scales, row sums, bias."""

    def __init__(self, ctx: OpContext, g: int, lay: "LstmLayout") -> None:
        from .qsequence import GATE_BIAS, INPUT_WEIGHTS, LAYER_NORM, PEEPHOLE_WEIGHTS, \
            RECURRENT_WEIGHTS
        self.w_in, self.s_in, self.rs_in = _hybrid_matrix(ctx, ctx.input(INPUT_WEIGHTS[g]))
        self.w_rec, self.s_rec, self.rs_rec = _hybrid_matrix(ctx, ctx.input(RECURRENT_WEIGHTS[g]))
        self.bias = float_bias(ctx, ctx.input(GATE_BIAS[g]), lay.n_cell)
        self.peephole = None
        if lay.use_peephole and g != 2:
            spec = ctx.input(PEEPHOLE_WEIGHTS[(0, 1, None, 2)[g]])
            scale = weight_scales(ctx, spec, lay.n_cell, 0)
            if scale.size != 1:
                ctx.fail("hybrid LSTM peephole weights must be quantized per tensor")
            self.peephole = (scale[0] * spec.data.astype(F32)).astype(F32)
        self.ln = None
        if lay.use_layer_norm:
            self.ln = np.asarray(ctx.input(LAYER_NORM[g]).data, F32)


def _hybrid_matrix(ctx: OpContext, w: TensorSpec) -> tuple[np.ndarray, F32, np.ndarray]:
    """(int8 weights transposed as an exact float matrix, scale, row sums)."""
    if w.type_name != "INT8" or w.rank != 2:
        ctx.fail(f"hybrid LSTM weights {w.name!r} must be 2-D INT8, not {w.type_name}")
    scale = weight_scales(ctx, w, w.shape[0], 0)
    if scale.size != 1:
        ctx.fail(f"hybrid LSTM weights {w.name!r} must be quantized per tensor")
    wi = w.data.astype(np.int64)
    dtype = gemm_dtype(128, np.abs(wi).sum(axis=1))
    return np.ascontiguousarray(wi.T, dtype), scale[0], wi.sum(axis=1)


class HybridLstm:
    """LiteRT's LstmStepHybrid over a whole batch (rows are independent).

    Every elementwise float32 operation of LiteRT's step is kept, in the same
    order and dtype; the speed comes from doing each one for all gates (and,
    for the input, all time steps) at once: the input is quantized and
    multiplied for the whole sequence in one go, and a step quantizes the
    output state once and runs one matmul for every gate. Gate-major arrays
    (G, B, n) keep each gate's values contiguous.
    """

    def __init__(self, ctx: OpContext, lay: "LstmLayout") -> None:
        from .qsequence import PROJECTION_BIAS, PROJECTION_WEIGHTS
        self.lay = lay
        self.gates = {g: _HybridGate(ctx, g, lay) for g in lay.gates()}
        self.act = _float_activation(ctx, ctx.options.fused_activation_function)
        self.cell_clip = F32(ctx.options.cell_clip)
        self.proj_clip = F32(ctx.options.proj_clip)
        self.asym = bool(ctx.options.asymmetric_quantize_inputs)
        self.proj = None
        if lay.use_projection:
            self.proj = _hybrid_matrix(ctx, ctx.input(PROJECTION_WEIGHTS))
            self.proj_bias = float_bias(ctx, ctx.optional_input(PROJECTION_BIAS), lay.n_output)
        self._stack()

    def _stack(self) -> None:
        """Per-gate parameters stacked gate-major: weights (G, K, n), the rest
        (G, 1, n) or (G, 1, 1) to broadcast over (G, B, n)."""
        ps = [self.gates[g] for g in self.lay.gates()]
        self.slot = {g: j for j, g in enumerate(self.lay.gates())}
        ftype = np.result_type(*(p.w_in.dtype for p in ps), *(p.w_rec.dtype for p in ps))
        stack = lambda f: np.stack([f(p) for p in ps])              # noqa: E731
        self.w_in = stack(lambda p: p.w_in).astype(ftype)            # (G, I, n)
        self.w_rec = stack(lambda p: p.w_rec).astype(ftype)          # (G, O, n)
        self.rs_in, self.rs_rec = (stack(f)[:, None, :] for f in (lambda p: p.rs_in,
                                                                  lambda p: p.rs_rec))
        self.s_in, self.s_rec = (stack(f).astype(F32)[:, None, None]
                                 for f in (lambda p: p.s_in, lambda p: p.s_rec))
        self.bias = stack(lambda p: p.bias)[:, None, :]
        self.ln = stack(lambda p: p.ln)[:, None, :] if self.lay.use_layer_norm else None

    def run(self, xs: np.ndarray, h: np.ndarray, c: np.ndarray, skip_rows: bool
            ) -> tuple[np.ndarray, np.ndarray]:
        """Time-major float ``xs`` (T, B, I) from states h, c: (outputs (T, B, O),
        final h, final c)."""
        lay = self.lay
        t_len, b = xs.shape[:2]
        xq = _quantized(xs.reshape(t_len * b, -1), self.asym, skip_rows, b)
        start = np.zeros((len(self.slot), b, lay.n_cell), F32) if self.ln is not None \
            else np.broadcast_to(self.bias, (len(self.slot), b, lay.n_cell))
        pre_x = _accumulate_gates(start, xq, self.w_in, self.s_in, self.rs_in, t_len)
        out = np.empty((t_len, b, lay.n_output), F32)
        for t in range(t_len):
            hq = _quantized(h, self.asym, skip_rows, b)
            pre = _accumulate_gates(pre_x[t], hq, self.w_rec, self.s_rec, self.rs_rec, 1)[0]
            c = self._cell(pre, c)
            h = out[t] = self._output(c, self._output_gate(pre, c), skip_rows)
        return out, h, c

    def _gate_post(self, pre: np.ndarray, j: slice, c: np.ndarray | None) -> np.ndarray:
        """Peephole (with ``c``) and layer norm of gates ``j`` of ``pre`` (k, B, n)."""
        gate = pre[j]
        if c is not None:
            gate = (gate + self.peep[j] * c).astype(F32)
        if self.ln is not None:
            gate = (_mean_stddev_normalize(gate) * self.ln[j] + self.bias[j]).astype(F32)
        return gate

    def _cell(self, pre: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Input, forget and cell gates, then the new cell state."""
        slot = self.slot
        lo = slot[1] if self.lay.use_cifg else slot[0]               # i (or f) .. f
        sig = _sigmoid(self._gate_post(pre, slice(lo, slot[1] + 1),
                                       c if self.lay.use_peephole else None))
        g = self.act(self._gate_post(pre, slice(slot[2], slot[2] + 1), None)[0]).astype(F32)
        forget = sig[-1]
        other = (F32(1) - forget) if self.lay.use_cifg else sig[0]
        c = (forget * c).astype(F32)
        c = (c + g * other).astype(F32)
        if self.cell_clip > 0:
            c = np.clip(c, -self.cell_clip, self.cell_clip)
        return c

    def _output_gate(self, pre: np.ndarray, c: np.ndarray) -> np.ndarray:
        j = self.slot[3]
        return _sigmoid(self._gate_post(pre, slice(j, j + 1),
                                        c if self.lay.use_peephole else None)[0])

    def _output(self, c: np.ndarray, o: np.ndarray, skip_rows: bool) -> np.ndarray:
        hidden = (o * self.act(c)).astype(F32)
        if self.proj is None:
            return hidden
        w, s, rs = self.proj
        out = np.broadcast_to(self.proj_bias, (len(c), self.lay.n_output)).astype(F32)
        out = _hybrid_accumulate(out, _quantized(hidden, self.asym, skip_rows, len(c)),
                                 w, s, rs)
        if self.proj_clip > 0:
            out = np.clip(out, -self.proj_clip, self.proj_clip)
        return out

    @property
    def peep(self) -> np.ndarray:
        """Peephole weights stacked like the gates (zeros for the cell gate)."""
        if not hasattr(self, "_peep"):
            n = self.lay.n_cell
            self._peep = np.stack([self.gates[g].peephole if self.gates[g].peephole is not None
                                   else np.zeros(n, F32) for g in self.lay.gates()])[:, None, :]
        return self._peep


def _quantized(v: np.ndarray, asym: bool, skip_rows: bool, batch: int) -> tuple:
    """(q, scale, zero point, rows to use) of rows ``v`` (steps x batch rows): LiteRT
    skips an all-zero row, or with ``skip_rows`` False a step's all-zero batch."""
    if skip_rows:
        live = v.any(axis=1)
    else:
        live = np.repeat(v.reshape(-1, batch * v.shape[1]).any(axis=1), batch)
    q, sf, zp = _quantize(v, asym)
    return q, sf, zp, live


def _accumulate_gates(acc: np.ndarray, vq: tuple, w: np.ndarray, scale: np.ndarray,
                      row_sums: np.ndarray, steps: int) -> np.ndarray:
    """acc + (q @ w - zp * row_sums) * (row scale * weight scale) for every gate on
    live rows: (steps, G, B, n) from rows (steps * B, K) and weights (G, K, n)."""
    q, sf, zp, live = vq
    g, k, n = w.shape
    b = len(sf) // steps
    dot = np.matmul(q.astype(w.dtype).reshape(steps, 1, b, k), w).astype(np.int64)
    dot -= zp.reshape(steps, 1, b, 1) * row_sums
    factor = (sf.reshape(steps, 1, b, 1) * scale).astype(F32)
    total = (acc + dot.astype(F32) * factor).astype(F32)
    return np.where(live.reshape(steps, 1, b, 1), total, acc)


def _hybrid_accumulate(acc: np.ndarray, vq: tuple, w: np.ndarray, scale: F32,
                       row_sums: np.ndarray) -> np.ndarray:
    """acc += (q @ w - zp * row_sums) * (row scale * weight scale) on live rows."""
    q, sf, zp, live = vq
    if not live.any():
        return acc
    dot = (q.astype(w.dtype) @ w).astype(np.int64) - zp[:, None] * row_sums
    factor = (sf * scale).astype(F32)[:, None]
    return np.where(live[:, None], (acc + dot.astype(F32) * factor).astype(F32), acc)


def _mean_stddev_normalize(v: np.ndarray) -> np.ndarray:
    """TFLite's float MeanStddevNormalization over the last axis."""
    n = F32(v.shape[-1])
    mean = (v.sum(axis=-1, dtype=F32, keepdims=True) / n).astype(F32)
    diff = (v - mean).astype(F32)
    variance = ((diff * diff).sum(axis=-1, dtype=F32, keepdims=True) / n).astype(F32)
    return (diff * (F32(1) / np.sqrt(variance + F32(1e-8)))).astype(F32)


@register("UNIDIRECTIONAL_SEQUENCE_LSTM", versions=(1, 4), types={"FLOAT32"},
          when=weights_int8(4))
def prepare_hybrid_lstm(ctx: OpContext) -> Prepared:
    """Hybrid UNIDIRECTIONAL_SEQUENCE_LSTM: float input and states, int8 weights;
    the input and the output state are quantized on the fly every step."""
    from .qsequence import CELL_STATE, INPUT, OUTPUT_STATE, lstm_layout, steps
    lay = lstm_layout(ctx)
    check_float_output(ctx)
    for i in (OUTPUT_STATE, CELL_STATE):
        if ctx.input(i).type_name != "FLOAT32":
            raise ctx.invalid(f"hybrid LSTM states must be FLOAT32, got "
                              f"{ctx.input(i).type_name}")
    lstm = HybridLstm(ctx, lay)
    # Batch-major sequences run one batch row at a time in LiteRT, so its
    # all-zero shortcuts apply per row; time-major ones apply to the batch.
    skip_rows = not lay.time_major

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        h_var, c_var = ins[OUTPUT_STATE], ins[CELL_STATE]
        h = h_var.reshape(lay.n_batch, lay.n_output).astype(F32)
        c = c_var.reshape(lay.n_batch, lay.n_cell).astype(F32)
        out, h, c = lstm.run(steps(ins[INPUT], lay.time_major), h, c, skip_rows)
        np.copyto(steps(outs[0], lay.time_major), out)
        h_var[...] = h.reshape(h_var.shape)
        c_var[...] = c.reshape(c_var.shape)
    return ctx.done(run, lay.output_shape)
