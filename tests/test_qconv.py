"""Integer CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV and
BATCH_MATMUL against LiteRT's builtin kernels, compared with == (bit-exact).

Scales are drawn log-uniformly, zero points over the type's range, and the
output scale is set around the natural spread of the accumulators so that
outputs are neither all saturated nor all zero. Goldens come from LiteRT.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edgeplex
from edgeplex import ModelError, Quantization, UnsupportedOpError
from edgeplex.kernels.qconv import FLOAT32_EXACT, gemm_dtype

from fixture_ops import fixture, op_indices, single_op_model
from oracle import check, const, inp, one_op_model, random_inputs, run_edgeplex, run_litert

DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16}
ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
FLAVOURS = [("int8", True), ("int8", False), ("uint8", False), ("int16", True),
            ("int16", False)]
FLAVOUR_IDS = [f"{d}-{'per_channel' if pc else 'per_tensor'}" for d, pc in FLAVOURS]


# -- quantization parameters ---------------------------------------------------------
def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats whose logarithm is uniform in [log lo, log hi]."""
    return st.floats(np.log(lo), np.log(hi)).map(lambda e: float(np.float32(np.exp(e))))


def activation_q(draw: Any, dtype: str) -> Quantization:
    """A per-tensor activation quantization: int16 is symmetric."""
    scale = draw(log_uniform(1e-3, 0.5))
    info = np.iinfo(DTYPES[dtype])
    zp = 0 if dtype == "int16" else draw(st.integers(int(info.min), int(info.max)))
    return Quantization.of(scale, zp)


def weights(rng: np.random.Generator, draw: Any, dtype: str, shape: tuple[int, ...],
            axis: int, per_channel: bool) -> tuple[np.ndarray, Quantization]:
    """Random weights: symmetric int8 (per channel along axis or per tensor),
    or uint8 with a zero point for uint8 models."""
    if dtype == "uint8":
        zp = draw(st.integers(0, 255))
        return (rng.integers(0, 256, shape).astype(np.uint8),
                Quantization.of(draw(log_uniform(1e-3, 0.1)), zp))
    n = shape[axis] if per_channel else 1
    scales = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), n)).astype(np.float32)
    return (rng.integers(-127, 128, shape).astype(np.int8),
            Quantization.of(scales, 0, axis=axis))


def bias_const(rng: np.random.Generator, n: int, x_q: Quantization, w_q: Quantization,
               bias_type: Any) -> Any:
    """A bias of n values with scale input_scale * weight_scale (per tensor
    or per channel like the weights)."""
    scale = (np.float32(x_q.scale[0]) * w_q.scale).astype(np.float32)
    values = rng.integers(-20000, 20000, n).astype(bias_type)
    return const(values, bias_type, Quantization.of(scale, 0))


def output_q(draw: Any, dtype: str, x_q: Quantization, w_q: Quantization, k: int
             ) -> Quantization:
    """An output scale near the accumulators' spread (times a log-uniform factor)."""
    spread = float(x_q.scale[0]) * float(np.mean(w_q.scale)) * 128 * 70 * np.sqrt(k)
    levels = 20000.0 if dtype == "int16" else 60.0
    scale = float(np.float32(spread / levels * draw(log_uniform(0.3, 3.0))))
    info = np.iinfo(DTYPES[dtype])
    zp = 0 if dtype == "int16" else draw(st.integers(int(info.min) // 2, int(info.max) // 2))
    return Quantization.of(scale, zp)


def bias_type_for(draw: Any, dtype: str, allow_int32: bool = True) -> Any:
    """int32 bias for 8-bit models; int64 (or int32 where LiteRT takes it) for 16x8."""
    if dtype != "int16":
        return np.int32
    return draw(st.sampled_from([np.int64, np.int32] if allow_int32 else [np.int64]))


def exact(model: bytes, seed: int = 0, what: str = "") -> None:
    """edgeplex must equal LiteRT's builtin kernels bit for bit."""
    check(model, exact=True, seed=seed, what=what)


# -- CONV_2D -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,per_channel", FLAVOURS, ids=FLAVOUR_IDS)
@given(data=st.data())
def test_conv2d_quantized(dtype: str, per_channel: bool, data: Any) -> None:
    """Padding, strides, dilation, fused activations, groups (int8/int16)."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    groups = draw(st.sampled_from([1, 1, 2])) if dtype != "uint8" else 1
    cg, kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(dh * (kh - 1) + 1, 9)), draw(st.integers(dw * (kw - 1) + 1, 9))
    x_q = activation_q(draw, dtype)
    wv, w_q = weights(rng, draw, dtype, (cout, kh, kw, cg), 0, per_channel)
    bias_type = bias_type_for(draw, dtype)
    opts = {"padding": draw(st.sampled_from(["SAME", "VALID"])),
            "stride_h": draw(st.integers(1, 3)), "stride_w": draw(st.integers(1, 3)),
            "dilation_h_factor": dh, "dilation_w_factor": dw,
            "fused_activation_function": draw(st.sampled_from(ACTIVATIONS)),
            "quantized_bias_type": "INT32" if bias_type is np.int32 and dtype == "int16"
            else "FLOAT32"}
    model = one_op_model(
        "CONV_2D", [inp((draw(st.integers(1, 2)), h, w, cg * groups), DTYPES[dtype], x_q),
                    const(wv, quantization=w_q), bias_const(rng, cout, x_q, w_q, bias_type)],
        opts, out_quantization=output_q(draw, dtype, x_q, w_q, kh * kw * cg), version=5)
    exact(model, seed=draw(st.integers(0, 100)))


@pytest.mark.parametrize("dtype,activation", [("int8", "RELU6"), ("int8", "NONE"),
                                              ("uint8", "RELU"), ("int16", "RELU6")])
def test_conv2d_named_cases(dtype: str, activation: str) -> None:
    """test_conv2d_<type>_per_channel_<act>: a fixed mid-size layer per flavour."""
    rng = np.random.default_rng(7)
    x_q = Quantization.of(0.02, 0 if dtype == "int16" else 11)
    if dtype == "uint8":
        wv, w_q = rng.integers(0, 256, (8, 3, 3, 6)).astype(np.uint8), Quantization.of(0.01, 127)
    else:
        wv = rng.integers(-127, 128, (8, 3, 3, 6)).astype(np.int8)
        w_q = Quantization.of(rng.uniform(0.002, 0.02, 8).astype(np.float32), 0, axis=0)
    bias_type = np.int64 if dtype == "int16" else np.int32
    out_q = Quantization.of(0.001 if dtype == "int16" else 0.2,
                            {"int8": -5, "uint8": 120, "int16": 0}[dtype])
    model = one_op_model(
        "CONV_2D", [inp((2, 12, 12, 6), DTYPES[dtype], x_q), const(wv, quantization=w_q),
                    bias_const(rng, 8, x_q, w_q, bias_type)],
        {"padding": "SAME", "stride_h": 1, "stride_w": 2,
         "fused_activation_function": activation}, out_quantization=out_q, version=3)
    exact(model)


# -- DEPTHWISE_CONV_2D ---------------------------------------------------------------
@pytest.mark.parametrize("dtype,per_channel", FLAVOURS, ids=FLAVOUR_IDS)
@given(data=st.data())
def test_depthwise_conv2d_quantized(dtype: str, per_channel: bool, data: Any) -> None:
    """Depth multiplier, dilation, strides, padding, fused activations."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c, mult = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    x_q = activation_q(draw, dtype)
    wv, w_q = weights(rng, draw, dtype, (1, kh, kw, c * mult), 3, per_channel)
    opts = {"padding": draw(st.sampled_from(["SAME", "VALID"])),
            "stride_h": draw(st.integers(1, 2)), "stride_w": draw(st.integers(1, 2)),
            "dilation_h_factor": dh, "dilation_w_factor": dw, "depth_multiplier": mult,
            "fused_activation_function": draw(st.sampled_from(ACTIVATIONS))}
    shape = (draw(st.integers(1, 2)), draw(st.integers(dh * (kh - 1) + 1, 9)),
             draw(st.integers(dw * (kw - 1) + 1, 9)), c)
    model = one_op_model(
        "DEPTHWISE_CONV_2D",
        [inp(shape, DTYPES[dtype], x_q), const(wv, quantization=w_q),
         bias_const(rng, c * mult, x_q, w_q, bias_type_for(draw, dtype, allow_int32=False))],
        opts, out_quantization=output_q(draw, dtype, x_q, w_q, kh * kw), version=3)
    exact(model, seed=draw(st.integers(0, 100)))


# -- FULLY_CONNECTED -------------------------------------------------------------------
@pytest.mark.parametrize("dtype,per_channel", FLAVOURS, ids=FLAVOUR_IDS)
@given(data=st.data())
def test_fully_connected_quantized(dtype: str, per_channel: bool, data: Any) -> None:
    """keep_num_dims, ranks 2-4, optional bias, constant or runtime weights."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k, n = draw(st.integers(1, 40)), draw(st.integers(1, 12))
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    x_q = activation_q(draw, dtype)
    wv, w_q = weights(rng, draw, dtype, (n, k), 0, per_channel)
    runtime_w = draw(st.booleans()) and dtype == "int8" and not per_channel
    w_in = inp((n, k), np.int8, w_q) if runtime_w else const(wv, quantization=w_q)
    bias = bias_const(rng, n, x_q, w_q, bias_type_for(draw, dtype)) \
        if draw(st.booleans()) else None
    opts = {"keep_num_dims": draw(st.booleans()),
            "fused_activation_function": draw(st.sampled_from(ACTIVATIONS))}
    model = one_op_model("FULLY_CONNECTED", [inp(lead + (k,), DTYPES[dtype], x_q), w_in, bias],
                         opts, out_quantization=output_q(draw, dtype, x_q, w_q, k), version=7)
    exact(model, seed=draw(st.integers(0, 100)))


# -- TRANSPOSE_CONV ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype,per_channel", FLAVOURS, ids=FLAVOUR_IDS)
@given(data=st.data())
def test_transpose_conv_quantized(dtype: str, per_channel: bool, data: Any) -> None:
    """Strides, SAME/VALID, output sizes LiteRT accepts, with and without bias."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cin, cout = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w, batch = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["SAME", "VALID"]))

    def out_size(i: int, k: int, s: int) -> int:
        lo = (i - 1) * s + (1 if padding == "SAME" else k)
        return draw(st.integers(lo, lo + s - 1))
    oshape = [batch, out_size(h, kh, sh), out_size(w, kw, sw), cout]
    x_q = activation_q(draw, dtype)
    wv, w_q = weights(rng, draw, dtype, (cout, kh, kw, cin), 0, per_channel)
    with_bias = draw(st.booleans())
    bias_type = bias_type_for(draw, dtype)
    ins = [const(np.array(oshape, np.int32)), const(wv, quantization=w_q),
           inp((batch, h, w, cin), DTYPES[dtype], x_q)]
    if with_bias:
        ins.append(bias_const(rng, cout, x_q, w_q, bias_type))
    opts = {"padding": padding, "stride_h": sh, "stride_w": sw,
            "quantized_bias_type": "INT32" if with_bias and bias_type is np.int32
            and dtype == "int16" else "FLOAT32"}
    model = one_op_model("TRANSPOSE_CONV", ins, opts, out_dtype=DTYPES[dtype],
                         out_quantization=output_q(draw, dtype, x_q, w_q, kh * kw * cin),
                         version=3 if with_bias else 2)
    exact(model, seed=draw(st.integers(0, 100)))


# -- BATCH_MATMUL -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int8", "int16"])
@given(data=st.data())
def test_batch_matmul_quantized(dtype: str, data: Any) -> None:
    """adj_x / adj_y, broadcast batch dimensions, constant or runtime rhs."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m, k, n = draw(st.integers(1, 6)), draw(st.integers(1, 20)), draw(st.integers(1, 6))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    rhs_batch = tuple(d if draw(st.booleans()) else 1 for d in batch)
    rhs_batch = rhs_batch[draw(st.integers(0, len(rhs_batch))):]
    adj_x, adj_y = draw(st.booleans()), draw(st.booleans())
    a_q, b_q = activation_q(draw, dtype), activation_q(draw, dtype)
    lhs = batch + ((k, m) if adj_x else (m, k))
    rhs = rhs_batch + ((n, k) if adj_y else (k, n))
    info = np.iinfo(DTYPES[dtype])
    rhs_in = const(rng.integers(info.min, info.max, rhs, endpoint=True).astype(DTYPES[dtype]),
                   quantization=b_q) if draw(st.booleans()) else inp(rhs, DTYPES[dtype], b_q)
    w_q = Quantization.of(float(b_q.scale[0]) / 2, 0)
    model = one_op_model("BATCH_MATMUL", [inp(lhs, DTYPES[dtype], a_q), rhs_in],
                         {"adj_x": adj_x, "adj_y": adj_y},
                         out_quantization=output_q(draw, dtype, a_q, w_q, k), version=4)
    exact(model, seed=draw(st.integers(0, 100)))


def test_batch_matmul_int8_to_int32_ignores_zero_points() -> None:
    """int8 x int8 -> int32 gives raw sum(a*b): LiteRT ignores the zero points."""
    model = one_op_model("BATCH_MATMUL", [inp((2, 5, 10), np.int8, Quantization.of(0.05, 3)),
                                          inp((10, 7), np.int8, Quantization.of(0.05, -2))],
                         {}, out_dtype=np.int32, out_shapes=[(2, 5, 7)])
    exact(model)


# -- where LiteRT's builtin and reference kernels disagree ------------------------------
def _fc_int8() -> bytes:
    rng = np.random.default_rng(1)
    return one_op_model(
        "FULLY_CONNECTED",
        [inp((1000, 37), np.int8, Quantization.of(0.05, 3)),
         const(rng.integers(-127, 128, (24, 37)).astype(np.int8),
               quantization=Quantization.of(rng.uniform(.001, .01, 24).astype(np.float32), 0))],
        {}, out_quantization=Quantization.of(0.3, -2))


def _conv_int8(groups: int = 1) -> bytes:
    rng = np.random.default_rng(2)
    w_q = Quantization.of(rng.uniform(.002, .02, 8).astype(np.float32), 0)
    return one_op_model(
        "CONV_2D", [inp((4, 24, 24, 4), np.int8, Quantization.of(0.037, 5)),
                    const(rng.integers(-127, 128, (8, 3, 3, 4 // groups)).astype(np.int8),
                          quantization=w_q),
                    const(rng.integers(-3000, 3000, 8).astype(np.int32))],
        {"padding": "SAME", "stride_h": 1, "stride_w": 1},
        out_quantization=Quantization.of(0.9, -3), out_shapes=[(4, 24, 24, 8)])


def _depthwise_int8() -> bytes:
    """12 output channels: LiteRT's NEON loop does 0-7, scalar code 8-11."""
    rng = np.random.default_rng(3)
    w_q = Quantization.of(rng.uniform(.002, .02, 12).astype(np.float32), 0, axis=3)
    return one_op_model(
        "DEPTHWISE_CONV_2D",
        [inp((8, 30, 30, 6), np.int8, Quantization.of(0.037, 5)),
         const(rng.integers(-127, 128, (1, 3, 3, 12)).astype(np.int8), quantization=w_q),
         const(rng.integers(-3000, 3000, 12).astype(np.int32))],
        {"padding": "SAME", "stride_h": 1, "stride_w": 1, "depth_multiplier": 2},
        out_quantization=Quantization.of(0.9, -3))


def _transpose_conv_int8() -> bytes:
    """12 output channels: as for depthwise, 8 in NEON and 4 in scalar code."""
    rng = np.random.default_rng(4)
    w_q = Quantization.of(rng.uniform(.002, .02, 12).astype(np.float32), 0)
    return one_op_model(
        "TRANSPOSE_CONV",
        [const(np.array([4, 20, 20, 12], np.int32)),
         const(rng.integers(-127, 128, (12, 3, 3, 5)).astype(np.int8), quantization=w_q),
         inp((4, 10, 10, 5), np.int8, Quantization.of(0.037, 5)),
         const(rng.integers(-3000, 3000, 12).astype(np.int32))],
        {"padding": "SAME", "stride_h": 2, "stride_w": 2}, out_dtype=np.int8,
        out_quantization=Quantization.of(0.9, -3), version=3)


def _conv_int16_int32_bias() -> bytes:
    rng = np.random.default_rng(5)
    w_q = Quantization.of(rng.uniform(.01, .02, 6).astype(np.float32), 0)
    return one_op_model(
        "CONV_2D", [inp((4, 16, 16, 4), np.int16, Quantization.of(0.05, 0)),
                    const(rng.integers(-127, 128, (6, 3, 3, 4)).astype(np.int8), quantization=w_q),
                    const(rng.integers(-1000, 1000, 6).astype(np.int32))],
        {"padding": "SAME", "stride_h": 1, "stride_w": 1, "quantized_bias_type": "INT32"},
        out_quantization=Quantization.of(0.05, 0))


# Why each case follows the builtin kernel: the default resolver is what
# LiteRT users get, and the reference kernels are a debugging aid. The
# optimized kernels requantize in ruy's AVX code or in TFLite's NEON code
# compiled for x86 (double rounding, ties upward; depthwise and transpose
# conv only for the first C // 8 * 8 channels), while the reference kernels
# use TFLite's scalar double rounding (ties away from zero) or, for
# FULLY_CONNECTED, round(double(acc) * scale).
BUILTIN_NOT_REF = {
    "fully_connected_int8": _fc_int8,
    "conv2d_int8": _conv_int8,
    "depthwise_conv2d_int8": _depthwise_int8,
    "transpose_conv_int8": _transpose_conv_int8,
    "conv2d_int16_int32_bias": _conv_int16_int32_bias,
}


@pytest.mark.parametrize("case", sorted(BUILTIN_NOT_REF))
def test_requantization_equals_builtin_not_ref(case: str) -> None:
    """On these inputs LiteRT's builtin and ref kernels differ; edgeplex is builtin."""
    model = BUILTIN_NOT_REF[case]()
    inputs = random_inputs(model, seed=0)
    builtin = run_litert(model, inputs, "builtin")[0]
    ref = run_litert(model, inputs, "ref")[0]
    got = run_edgeplex(model, inputs)[0]
    assert np.any(builtin != ref), "this case no longer separates builtin from ref"
    np.testing.assert_array_equal(got, builtin)


def test_grouped_conv_int8_uses_reference_path() -> None:
    """Grouped int8 convolution runs LiteRT's reference kernel (builtin == ref)."""
    model = _conv_int8(groups=2)
    inputs = random_inputs(model, seed=0)
    builtin = run_litert(model, inputs, "builtin")[0]
    np.testing.assert_array_equal(builtin, run_litert(model, inputs, "ref")[0])
    np.testing.assert_array_equal(run_edgeplex(model, inputs)[0], builtin)


# -- the float32 / float64 GEMM rule --------------------------------------------------
def test_gemm_dtype_threshold() -> None:
    """float32 exactly while max|x| * max sum|w| <= 2**24, float64 beyond."""
    assert gemm_dtype(128, [FLOAT32_EXACT // 128]) is np.float32
    assert gemm_dtype(128, [FLOAT32_EXACT // 128 + 1]) is np.float64
    assert gemm_dtype(32768, [127 * 9]) is np.float64


@pytest.mark.parametrize("k", [1000, 1100])
def test_fully_connected_int8_extreme_accumulators(k: int) -> None:
    """K=1000 keeps float32 (bound 128*127*K <= 2**24), K=1100 switches to
    float64; both agree with LiteRT on worst-case magnitudes."""
    w = np.full((4, k), 127, np.int8)
    w[1] = -127
    w[2, ::2] = -127
    model = one_op_model("FULLY_CONNECTED",
                         [inp((2, k), np.int8, Quantization.of(0.01, 10)),
                          const(w, quantization=Quantization.of(0.01, 0))],
                         {}, out_quantization=Quantization.of(k / 60.0, 0))
    x = np.full((2, k), -127, np.int8)
    x[1, ::3] = 127
    assert gemm_dtype(128, [127 * k]) is (np.float32 if k == 1000 else np.float64)
    check(model, [x], exact=True)


def test_batch_matmul_raw_accumulators_beyond_float32() -> None:
    """int8 x int8 -> int32 exposes the raw sums: with K=1100 and odd
    products (-127 * 127) the partial sums are odd integers beyond 2**24,
    which float32 cannot hold, so the float64 choice is what makes this exact."""
    k = 1100
    x = np.full((1, 2, k), -127, np.int8)
    x[0, 1, ::5] = 127
    model = one_op_model("BATCH_MATMUL", [inp((1, 2, k), np.int8, Quantization.of(0.1, 0)),
                                          const(np.full((k, 3), 127, np.int8),
                                                quantization=Quantization.of(0.1, 0))],
                         {}, out_dtype=np.int32, out_shapes=[(1, 2, 3)])
    got = check(model, [x], exact=True)[0]
    assert got[0, 0, 0] == -127 * 127 * k
    partial = np.cumsum(np.full(k, -127 * 127, np.float32), dtype=np.float32)
    assert int(partial[-1]) != -127 * 127 * k           # what float32 would have given


# -- errors -----------------------------------------------------------------------------
def _conv_with(w_q: Quantization, x_q: Quantization | None = None, dtype: Any = np.int8,
               bias: Any = None, act: str = "NONE", options: dict | None = None) -> bytes:
    wv = np.ones((4, 3, 3, 2), np.int8)
    x_q = x_q or Quantization.of(0.1, 0)
    bias = bias or const(np.zeros(4, np.int32))
    return one_op_model("CONV_2D", [inp((1, 5, 5, 2), dtype, x_q), const(wv, quantization=w_q),
                                    bias],
                        {"padding": "SAME", "stride_h": 1, "stride_w": 1,
                         "fused_activation_function": act, **(options or {})},
                        out_quantization=Quantization.of(0.1, 0), out_shapes=[(1, 5, 5, 4)])


def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


@pytest.mark.parametrize("w_q,match", [
    (Quantization.of([0.1] * 4, 0, axis=3), "axis"),
    (Quantization.of([0.1] * 3, 0, axis=0), "3 scales"),
    (Quantization.of(0.1, 3), "zero point 0"),
    (Quantization.of([0.1] * 4, [0, 0, 1, 0], axis=0), "symmetric"),
], ids=["wrong_axis", "wrong_scale_count", "weight_zero_point", "per_channel_zero_point"])
def test_bad_weight_quantization_is_model_error(w_q: Quantization, match: str) -> None:
    """Per-channel weights on the wrong axis or with the wrong number of
    scales, and int8 weights with a zero point, fail at allocate_tensors."""
    with pytest.raises(ModelError, match=match):
        _allocate(_conv_with(w_q))


def test_int16_activation_with_zero_point_is_model_error() -> None:
    """16x8 activations must be symmetric."""
    model = _conv_with(Quantization.of(0.1, 0), Quantization.of(0.1, 4), np.int16,
                       const(np.zeros(4, np.int64)))
    with pytest.raises(ModelError, match="zero point 0"):
        _allocate(model)


def test_int16_conv_int32_bias_needs_quantized_bias_type() -> None:
    """LiteRT reads an INT32 bias as INT64 unless quantized_bias_type says INT32."""
    model = _conv_with(Quantization.of(0.1, 0), Quantization.of(0.1, 0), np.int16,
                       const(np.zeros(4, np.int32)))
    with pytest.raises(ModelError, match="quantized_bias_type"):
        _allocate(model)


def test_quantized_tanh_activation_is_unsupported() -> None:
    """Only clamping activations have an integer form."""
    with pytest.raises(UnsupportedOpError, match="TANH"):
        _allocate(_conv_with(Quantization.of(0.1, 0), act="TANH"))


def test_missing_weight_quantization_is_model_error() -> None:
    """Integer weights without scales cannot be interpreted."""
    model = one_op_model("FULLY_CONNECTED", [inp((2, 3), np.int8, Quantization.of(0.1, 0)),
                                             const(np.ones((4, 3), np.int8))],
                         {}, out_quantization=Quantization.of(0.1, 0), out_shapes=[(2, 4)])
    with pytest.raises(ModelError, match="no quantization"):
        _allocate(model)


def test_transpose_conv_inconsistent_output_shape_is_model_error() -> None:
    """An output_shape that a conv of the input could not have produced."""
    model = one_op_model(
        "TRANSPOSE_CONV", [const(np.array([1, 21, 21, 2], np.int32)),
                           const(np.ones((2, 3, 3, 2), np.int8),
                                 quantization=Quantization.of(0.1, 0)),
                           inp((1, 10, 10, 2), np.int8, Quantization.of(0.1, 0))],
        {"padding": "SAME", "stride_h": 2, "stride_w": 2}, out_dtype=np.int8,
        out_quantization=Quantization.of(0.1, 0), out_shapes=[(1, 21, 21, 2)])
    with pytest.raises(ModelError, match="output_shape"):
        _allocate(model)


# -- converter-made models ----------------------------------------------------------------
CONVERTED = [(f, op, i) for f in ("quant_int8_cnn.tflite", "quant_16x8_cnn.tflite")
             for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
             for i in op_indices(fixture(f), op)]


@pytest.mark.parametrize("name,op,index", CONVERTED,
                         ids=[f"{f.split('.')[0]}-{i}-{op}" for f, op, i in CONVERTED])
def test_converter_made_ops(name: str, op: str, index: int) -> None:
    """Each conv/FC op of the full-integer int8 and 16x8 fixtures, cut out with
    its converter-chosen weights, biases, scales and version, is bit-exact."""
    model = single_op_model(fixture(name), index)
    for seed in range(3):
        exact(model, seed=seed, what=f"{name} op {index}")


@pytest.mark.parametrize("name", ["quant_int8_cnn.tflite", "quant_16x8_cnn.tflite"])
def test_converter_made_models_end_to_end(name: str) -> None:
    """Whole full-integer models (conv, depthwise, reshape, dense) are bit-exact."""
    for seed in range(3):
        exact(fixture(name), seed=seed, what=name)


def test_depthwise_int8_ignores_depth_multiplier_option() -> None:
    """LiteRT's integer depthwise kernels derive the multiplier from the
    shapes; a model whose option says 0 runs the same."""
    rng = np.random.default_rng(9)
    w_q = Quantization.of(rng.uniform(.01, .02, 6).astype(np.float32), 0, axis=3)
    model = one_op_model(
        "DEPTHWISE_CONV_2D",
        [inp((1, 6, 6, 3), np.int8, Quantization.of(0.05, 2)),
         const(rng.integers(-127, 128, (1, 3, 3, 6)).astype(np.int8), quantization=w_q),
         const(rng.integers(-500, 500, 6).astype(np.int32))],
        {"padding": "SAME", "stride_h": 1, "stride_w": 1, "depth_multiplier": 0},
        out_quantization=Quantization.of(0.1, 0), out_shapes=[(1, 6, 6, 6)])
    exact(model)
