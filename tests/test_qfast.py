"""The fast integer paths: closed-form requantization, the per-shape kernel
strategies of the integer convolutions, and a structural guard that a
steady-state invoke of an int8 CNN allocates (nearly) nothing.

Every comparison is exact (==): against the step-by-step fixed-point
functions of quant_math for the closed form, and against LiteRT's builtin
kernels for the kernels. No timings are asserted.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeplex import Quantization
from edgeplex.kernels import quant_math as qm

from oracle import check, const, inp, one_op_model

ROUNDINGS = ("ruy", "double", "int64")


def stepwise(acc: np.ndarray, m: np.ndarray, s: np.ndarray, rounding: list[str],
             bias: np.ndarray, zp: int, lo: int, hi: int) -> np.ndarray:
    """The reference: quant_math's step-by-step rescale of acc + bias, per channel."""
    x = acc.astype(np.int64) + bias
    cols = []
    for c, mode in enumerate(rounding):
        f = {"ruy": qm.multiply_by_quantized_multiplier_ruy,
             "double": qm.multiply_by_quantized_multiplier,
             "int64": qm.multiply_by_quantized_multiplier_int64}[mode]
        cols.append(f(x[:, c], m[c], s[c]))
    return np.clip(np.stack(cols, axis=1) + zp, lo, hi)


def tie_heavy_acc(rng: np.random.Generator, m: np.ndarray, s: np.ndarray, bias: np.ndarray,
                  bound: int, rows: int) -> np.ndarray:
    """Accumulators spread over [-bound, bound], half of them placed on or next
    to the exact halfway points of the final rounding (where modes differ)."""
    acc = rng.integers(-bound, bound + 1, (rows, m.size))
    k = rng.integers(-400, 400, (rows // 2, m.size))
    step = np.ldexp(1.0, (31 - s).astype(int)) / np.maximum(m, 1)   # x per output step
    ties = np.round((k + 0.5) * step) - bias + rng.integers(-1, 2, k.shape)
    acc[: rows // 2] = np.clip(ties, -bound, bound).astype(np.int64)
    return acc


@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(ROUNDINGS + ("mixed",)),
       n=st.integers(1, 12), bound_bits=st.integers(6, 26), exact_half=st.booleans())
def test_closed_form_requant_equals_the_stepwise_functions(seed: int, mode: str, n: int,
                                                            bound_bits: int,
                                                            exact_half: bool) -> None:
    """Random multipliers (Q31 = 2**30 gives the most exact ties), shifts from
    2**-24 to 2**3, biases, zero points and clamps: the closed form equals
    quant_math's step-by-step rescale whenever it accepts the parameters."""
    rng = np.random.default_rng(seed)
    m = np.full(n, 1 << 30) if exact_half else rng.integers(1 << 30, 1 << 31, n)
    s = rng.integers(-24, 4, n)
    rounding = [str(r) for r in rng.choice(ROUNDINGS, n)] if mode == "mixed" else [mode] * n
    bound = 1 << bound_bits
    bias = rng.integers(-bound, bound + 1, n)
    zp = int(rng.integers(-128, 128))
    lo = int(rng.integers(-128, 0))
    hi = int(rng.integers(lo, 128))
    closed = qm.closed_form_requant(m, s, rounding, bias, zp, lo, hi, bound)
    if closed is None:           # refused: only where x << shift might wrap int32
        assert any(r != "int64" and s[c] > 0 for c, r in enumerate(rounding)) or \
            bound_bits > 24
        return
    acc = tie_heavy_acc(rng, m, s, bias, bound, 400)
    work = np.empty(acc.shape, np.int64)
    mask = np.empty(acc.shape, bool)
    got = np.empty(acc.shape, np.int16)
    closed(acc.astype(np.float64), work, got, mask)
    np.testing.assert_array_equal(got, stepwise(acc, m, s, rounding, bias, zp, lo, hi))


@pytest.mark.parametrize("mode", ROUNDINGS)
def test_closed_form_takes_typical_int8_layers(mode: str) -> None:
    """A 3x3x64 int8 layer (|acc| < 2**21, multipliers ~1e-4) must get the
    closed form, in every rounding mode, with one shift for all channels."""
    real = np.geomspace(2e-5, 3e-3, 64)
    m, s = qm.quantize_multiplier(real)
    closed = qm.closed_form_requant(m, s, mode, np.arange(-32, 32) * 997, -3, -128, 127,
                                    128 * 127 * 9 * 64)
    assert closed is not None
    assert np.ndim(closed.shift) == 0
    assert closed.needs_mask == (mode == "double")


def test_closed_form_refuses_what_could_wrap() -> None:
    """A left shift (multiplier > 1) of accumulators that could pass 2**31
    wraps in TFLite's int32 arithmetic: no closed form then."""
    m, s = qm.quantize_multiplier(np.array([3.0]))
    assert qm.closed_form_requant(m, s, "ruy", [0], 0, -128, 127, 1 << 29) is None
    assert qm.closed_form_requant(m, s, "ruy", [0], 0, -128, 127, 1 << 20) is not None
    assert qm.closed_form_requant(m, s, "float", [0], 0, -128, 127, 1 << 20) is None


# -- kernel strategies, each against LiteRT -----------------------------------------------
def int8_weights(rng: np.random.Generator, shape: tuple[int, ...], axis: int
                 ) -> tuple[np.ndarray, Quantization]:
    scales = rng.uniform(0.002, 0.02, shape[axis]).astype(np.float32)
    return rng.integers(-127, 128, shape).astype(np.int8), Quantization.of(scales, 0, axis=axis)


def bias_for(rng: np.random.Generator, n: int, x_scale: float, w_q: Quantization,
             dtype: Any = np.int32) -> Any:
    scale = (np.float32(x_scale) * w_q.scale).astype(np.float32)
    return const(rng.integers(-3000, 3000, n).astype(dtype), dtype, Quantization.of(scale, 0))


@pytest.mark.parametrize("c,mult,stride,dilation,padding", [
    (40, 1, (1, 1), (1, 1), "SAME"),      # stride_w 1: width and channels merged
    (8, 2, (2, 1), (2, 2), "VALID"),      # merged, with stride_h, dilation, multiplier
    (36, 1, (2, 2), (1, 1), "SAME"),      # strided, >= 32 channels: windowed einsum
    (16, 2, (1, 2), (1, 2), "SAME"),      # strided, 32 channels via the multiplier
    (12, 1, (2, 2), (1, 1), "VALID"),     # strided, few channels: tap by tap
])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16"])
def test_depthwise_strategies(c: int, mult: int, stride: tuple[int, int],
                              dilation: tuple[int, int], padding: str, dtype: str) -> None:
    """Each of the three depthwise strategies, in each integer flavour, == LiteRT."""
    rng = np.random.default_rng(c * 7 + mult)
    cout = c * mult
    if dtype == "uint8":
        wv, w_q = rng.integers(0, 256, (1, 3, 3, cout)).astype(np.uint8), \
            Quantization.of(0.01, 131)
        x = inp((2, 11, 13, c), np.uint8, Quantization.of(0.05, 120))
    else:
        wv, w_q = int8_weights(rng, (1, 3, 3, cout), 3)
        act = np.int8 if dtype == "int8" else np.int16
        x = inp((2, 11, 13, c), act, Quantization.of(0.05 if dtype == "int8" else 2e-4,
                                                     -7 if dtype == "int8" else 0))
    bias_type = np.int64 if dtype == "int16" else np.int32
    out_q = Quantization.of(0.3, 4) if dtype != "int16" else Quantization.of(5e-4, 0)
    model = one_op_model(
        "DEPTHWISE_CONV_2D",
        [x, const(wv, quantization=w_q), bias_for(rng, cout, float(x.quantization.scale[0]),
                                                   w_q, bias_type)],
        {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
         "dilation_h_factor": dilation[0], "dilation_w_factor": dilation[1],
         "depth_multiplier": mult, "fused_activation_function": "RELU6"},
        out_quantization=out_q, version=3 if dtype != "int16" else 5)
    check(model, exact=True)


@pytest.mark.parametrize("kernel,stride,padding,groups", [
    ((1, 1), (1, 1), "SAME", 1),          # pointwise: the input itself is the GEMM operand
    ((1, 1), (2, 2), "VALID", 1),         # strided 1x1: window view of the input
    ((3, 3), (1, 2), "VALID", 1),         # unpadded windows straight from the input
    ((3, 2), (2, 1), "SAME", 1),          # padded windows
    ((3, 3), (1, 1), "SAME", 2),          # grouped
])
def test_conv_strategies(kernel: tuple[int, int], stride: tuple[int, int], padding: str,
                         groups: int) -> None:
    """Each CONV_2D operand layout == LiteRT (int8, per-channel weights)."""
    rng = np.random.default_rng(kernel[0] * 10 + stride[1] + groups)
    cin, cout = 12, 10
    wv, w_q = int8_weights(rng, (cout, *kernel, cin // groups), 0)
    x_q = Quantization.of(0.04, 9)
    model = one_op_model(
        "CONV_2D",
        [inp((2, 9, 10, cin), np.int8, x_q), const(wv, quantization=w_q),
         bias_for(rng, cout, 0.04, w_q)],
        {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
         "fused_activation_function": "RELU"},
        out_quantization=Quantization.of(0.25, -10), version=5)
    check(model, exact=True)


@pytest.mark.parametrize("shape,filt,stride,padding", [
    ((1, 25, 5, 64), (25, 5), (1, 1), "VALID"),   # global: one reduction over a window view
    ((2, 9, 7, 6), (3, 3), (2, 2), "SAME"),       # tap by tap, padded windows counted right
])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantized_average_pool_paths(shape: tuple[int, ...], filt: tuple[int, int],
                                      stride: tuple[int, int], padding: str, dtype: Any) -> None:
    """Both integer AVERAGE_POOL_2D summations == LiteRT."""
    q = Quantization.of(0.07, 3 if dtype == np.int8 else 130)
    model = one_op_model("AVERAGE_POOL_2D", [inp(shape, dtype, q)],
                         {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
                          "filter_height": filt[0], "filter_width": filt[1],
                          "fused_activation_function": "NONE"},
                         out_dtype=dtype, out_quantization=q)
    check(model, exact=True)


# -- the structural guard: a steady-state invoke allocates (nearly) nothing ------------------
def _int8_mobilenet() -> bytes:
    from edgeplex.hwlab import builders
    from edgeplex.hwlab.ptq import quantize_model
    import edgeplex
    model = builders.mobilenet_v2(96, 0.35, 10)
    details = edgeplex.Interpreter(model_content=model).get_input_details()
    rng = np.random.default_rng(0)
    calibration = [[rng.uniform(-1, 1, d["shape"]).astype(np.float32) for d in details]
                    for _ in range(2)]
    return quantize_model(model, calibration, "int8")


def test_int8_mobilenet_invoke_allocates_nearly_nothing() -> None:
    """Every buffer of the integer kernels is made at allocate_tensors: the
    traced peak of a second invoke of an int8 MobileNetV2 (conv, depthwise,
    add, mean, fully connected, softmax) stays under 5% of the planned
    activation + scratch bytes, and under the bytes of its largest int8
    activation (so no per-element temporary of it, even one byte wide).
    What remains is numpy's fixed-size iterator buffer for broadcast
    operands and small Python objects."""
    import tracemalloc

    import edgeplex
    it = edgeplex.Interpreter(model_content=_int8_mobilenet())
    it.allocate_tensors()
    ops = {op.op for op in it.model.main.operators}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "SOFTMAX"} <= ops
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(1).integers(-128, 128, d["shape"]
                                                                ).astype(d["dtype"]))
    it.invoke()
    report = it.memory_report()
    planned = report["planned_activation_bytes"] + report["scratch_bytes"]
    largest = max(int(np.prod(t.shape)) for t in it.model.main.tensors
                  if t.data is None and t.type_name == "INT8")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        it.invoke()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * planned, (peak, planned)
    assert peak < largest, (peak, largest)


@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(ROUNDINGS + ("mixed",)),
       n=st.integers(1, 12), bound_bits=st.integers(6, 21), exact_half=st.booleans(),
       out=st.sampled_from(["int8", "uint8", "int16"]))
def test_scaled_requant_equals_the_stepwise_functions(seed: int, mode: str, n: int,
                                                       bound_bits: int, exact_half: bool,
                                                       out: str) -> None:
    """The float64 form (GEMM-ready scale and offset, clamp, truncating cast,
    sign flip) equals the step-by-step rescale for every output type."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(out)
    info = np.iinfo(dtype)
    m = np.full(n, 1 << 30) if exact_half else rng.integers(1 << 30, 1 << 31, n)
    s = rng.integers(-16, 2, n)
    rounding = [str(r) for r in rng.choice(ROUNDINGS, n)] if mode == "mixed" else [mode] * n
    bound = 1 << bound_bits
    bias = rng.integers(-bound, bound + 1, n)
    zp = 0 if out == "int16" else int(rng.integers(info.min, info.max + 1))
    lo = int(rng.integers(info.min, zp + 1))
    hi = int(rng.integers(max(lo, zp), info.max + 1))
    scaled = qm.scaled_requant(m, s, rounding, bias, zp, lo, hi, bound, dtype)
    # Exactness needs |x| * M + |output range| * 2**S < 2**53 (S = 31 + right
    # shift, or 15 - shift for int64 rounding); a conservative sufficient test:
    exps = [int(15 - v if r == "int64" else 31 - v) for v, r in zip(s, rounding)]
    surely_exact = all(v <= 0 for v in s) and all(
        2 ** (bound_bits + 33) + 2 ** (8 * dtype.itemsize + 1 + e) < 2 ** 53 for e in exps)
    if scaled is None:
        assert not surely_exact
        return
    acc = tie_heavy_acc(rng, m, s, bias, bound, 400)
    got = np.empty(acc.shape, dtype)
    scaled(acc.astype(np.float32), np.empty(acc.shape), got, np.empty(acc.shape, bool))
    np.testing.assert_array_equal(got, stepwise(acc, m, s, rounding, bias, zp, lo, hi))


@pytest.mark.parametrize("rows,depth,units", [
    (32, 20, 30),     # widening: requantized inside a float64 GEMM
    (32, 100, 10),    # narrowing: float32 GEMM, then the rescale
    (1, 64, 12),      # one row (a GEMV): float32
])
@pytest.mark.parametrize("dtype,bias_type", [(np.int8, np.int32), (np.uint8, np.int32),
                                             (np.int16, np.int64)])
def test_fully_connected_strategies(rows: int, depth: int, units: int, dtype: Any,
                                    bias_type: Any) -> None:
    """Both FULLY_CONNECTED GEMM forms, per integer flavour, == LiteRT."""
    rng = np.random.default_rng(rows + depth)
    if dtype == np.uint8:
        wv, w_q = rng.integers(0, 256, (units, depth)).astype(np.uint8), \
            Quantization.of(0.01, 120)
        x_q = Quantization.of(0.05, 131)
    else:
        wv, w_q = int8_weights(rng, (units, depth), 0)
        x_q = Quantization.of(0.05, -9) if dtype == np.int8 else Quantization.of(3e-4, 0)
    out_q = Quantization.of(0.4, 7) if dtype != np.int16 else Quantization.of(2e-3, 0)
    model = one_op_model(
        "FULLY_CONNECTED",
        [inp((rows, depth), dtype, x_q), const(wv, quantization=w_q),
         bias_for(rng, units, float(x_q.scale[0]), w_q, bias_type)],
        {"fused_activation_function": "RELU"}, out_quantization=out_q,
        version=7 if dtype == np.int16 else 5)
    check(model, exact=True)
