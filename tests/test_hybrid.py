"""Hybrid (dynamic-range) kernels against LiteRT's builtin kernels.

Tolerance: edgeplex repeats LiteRT's on-the-fly input quantization and its
float32 rescaling operation by operation, and the integer GEMMs are exact,
so outputs are compared bit for bit (exact=True). The one exception is a
fused TANH, which LiteRT evaluates with its own approximation: there the
outputs may differ by a few float32 ulps (rtol=atol=1e-6).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edgeplex
from edgeplex import ModelError, Quantization, UnsupportedOpError
from edgeplex.kernels.hybrid import quantize_asymmetric, quantize_symmetric

from fixture_ops import fixture, single_op_model
from lstm_models import LstmSpec, hybrid_lstm, run_sequence
from oracle import check, const, inp, one_op_model

CLAMPS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def int8_weights(rng: np.random.Generator, shape: tuple[int, ...], axis: int,
                 per_channel: bool) -> Any:
    """Symmetric int8 weights with log-uniform scales."""
    n = shape[axis] if per_channel else 1
    scales = np.exp(rng.uniform(np.log(1e-3), np.log(0.05), n)).astype(np.float32)
    return const(rng.integers(-127, 128, shape).astype(np.int8),
                 quantization=Quantization.of(scales, 0, axis=axis))


def float_input(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """Inputs that exercise the quantizer: mixed signs, one-signed rows, zero rows."""
    x = rng.normal(0, rng.uniform(0.1, 10), shape).astype(np.float32)
    if kind == "positive":
        x = np.abs(x) + np.float32(0.5)
    elif kind == "negative":
        x = -np.abs(x)
    elif kind == "zeros":
        x.reshape(shape[0], -1)[: max(1, shape[0] // 2)] = 0
    return x


def compare(model: bytes, x: np.ndarray, activation: str = "NONE") -> None:
    """Bit-exact, except a few ulps for LiteRT's approximated TANH."""
    if activation == "TANH":
        check(model, [x], rtol=1e-6, atol=1e-6)
    else:
        check(model, [x], exact=True)


KINDS = st.sampled_from(["mixed", "positive", "negative", "zeros"])


@pytest.mark.parametrize("asymmetric", [False, True], ids=["symmetric", "asymmetric"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@given(data=st.data())
def test_hybrid_fully_connected(asymmetric: bool, per_channel: bool, data: Any) -> None:
    """Ranks 2-4, keep_num_dims, optional bias, every supported activation."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k, n = draw(st.integers(1, 48)), draw(st.integers(1, 16))
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    act = draw(st.sampled_from(CLAMPS + ["TANH"]))
    bias = const(rng.normal(size=n).astype(np.float32)) if draw(st.booleans()) else None
    model = one_op_model("FULLY_CONNECTED",
                         [inp(lead + (k,)), int8_weights(rng, (n, k), 0, per_channel), bias],
                         {"asymmetric_quantize_inputs": asymmetric,
                          "keep_num_dims": draw(st.booleans()),
                          "fused_activation_function": act}, version=9)
    compare(model, float_input(rng, lead + (k,), draw(KINDS)), act)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@given(data=st.data())
def test_hybrid_conv2d(per_channel: bool, data: Any) -> None:
    """Per-channel scales take LiteRT's asymmetric path, per-tensor the symmetric one."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c, cout = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    shape = (draw(st.integers(1, 3)), draw(st.integers(dh * (kh - 1) + 1, 8)),
             draw(st.integers(dw * (kw - 1) + 1, 8)), c)
    act = draw(st.sampled_from(CLAMPS))
    model = one_op_model(
        "CONV_2D", [inp(shape), int8_weights(rng, (cout, kh, kw, c), 0, per_channel),
                    const(rng.normal(size=cout).astype(np.float32))],
        {"padding": draw(st.sampled_from(["SAME", "VALID"])),
         "stride_h": draw(st.integers(1, 2)), "stride_w": draw(st.integers(1, 2)),
         "dilation_h_factor": dh, "dilation_w_factor": dw, "fused_activation_function": act},
        version=3)
    compare(model, float_input(rng, shape, draw(KINDS)))


@given(data=st.data())
def test_hybrid_depthwise_conv2d(data: Any) -> None:
    """Depth multipliers, dilation, strides; channels beyond the last multiple of
    four exercise LiteRT's scalar tail (a different multiplication order)."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c, mult = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    shape = (draw(st.integers(1, 3)), draw(st.integers(dh * (kh - 1) + 1, 8)),
             draw(st.integers(dw * (kw - 1) + 1, 8)), c)
    model = one_op_model(
        "DEPTHWISE_CONV_2D",
        [inp(shape), int8_weights(rng, (1, kh, kw, c * mult), 3, True),
         const(rng.normal(size=c * mult).astype(np.float32))],
        {"padding": draw(st.sampled_from(["SAME", "VALID"])),
         "stride_h": draw(st.integers(1, 2)), "stride_w": draw(st.integers(1, 2)),
         "dilation_h_factor": dh, "dilation_w_factor": dw, "depth_multiplier": mult,
         "fused_activation_function": draw(st.sampled_from(CLAMPS))}, version=3)
    compare(model, float_input(rng, shape, draw(KINDS)))


@pytest.mark.parametrize("asymmetric", [False, True], ids=["symmetric", "asymmetric"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@given(data=st.data())
def test_hybrid_batch_matmul(asymmetric: bool, per_channel: bool, data: Any) -> None:
    """adj_x / adj_y and broadcast batch dimensions against constant int8 weights."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m, k, n = draw(st.integers(1, 6)), draw(st.integers(1, 24)), draw(st.integers(1, 8))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    adj_x, adj_y = draw(st.booleans()), draw(st.booleans())
    rhs_batch = batch[draw(st.integers(0, len(batch))):]
    rhs = rhs_batch + ((n, k) if adj_y else (k, n))
    lhs = batch + ((k, m) if adj_x else (m, k))
    weights = int8_weights(rng, rhs, len(rhs) - (2 if adj_y else 1), per_channel)
    model = one_op_model("BATCH_MATMUL", [inp(lhs), weights],
                         {"adj_x": adj_x, "adj_y": adj_y,
                          "asymmetric_quantize_inputs": asymmetric}, version=4)
    compare(model, float_input(rng, lhs, draw(st.sampled_from(["mixed", "positive"]))))


# -- the quantizers on their own ---------------------------------------------------------
def test_symmetric_quantizer_zero_row_and_range() -> None:
    """An all-zero row has scale 1 and zero values; others span [-127, 127]."""
    x = np.array([[0, 0, 0], [1.0, -2.0, 0.5]], np.float32)
    q, scale = quantize_symmetric(x)
    assert scale[0] == 1 and not q[0].any()
    assert q[1].tolist() == [64, -127, 32] and scale[1] == np.float32(2) / np.float32(127)


def test_asymmetric_quantizer_one_signed_rows() -> None:
    """The range always includes zero, so a positive row has zero point -128."""
    q, scale, zp = quantize_asymmetric(np.array([[1.0, 3.0], [-1.0, -3.0]], np.float32))
    assert zp.tolist() == [-128, 127]
    assert q.min() >= -128 and q.max() <= 127
    np.testing.assert_allclose((q - zp[:, None]) * scale[:, None], [[1, 3], [-1, -3]],
                               atol=float(scale.max()))


# -- errors ------------------------------------------------------------------------------
def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_hybrid_depthwise_needs_per_channel_scales() -> None:
    """LiteRT's hybrid depthwise kernel only takes per-channel weights."""
    model = one_op_model("DEPTHWISE_CONV_2D",
                         [inp((1, 4, 4, 2)), const(np.ones((1, 3, 3, 2), np.int8),
                                                   quantization=Quantization.of(0.1, 0)),
                          const(np.zeros(2, np.float32))],
                         {"padding": "SAME", "stride_h": 1, "stride_w": 1,
                          "depth_multiplier": 1}, out_shapes=[(1, 4, 4, 2)])
    with pytest.raises(UnsupportedOpError, match="per-channel"):
        _allocate(model)


def test_hybrid_weights_with_zero_point_are_model_error() -> None:
    """Hybrid int8 weights are symmetric."""
    model = one_op_model("FULLY_CONNECTED",
                         [inp((2, 3)), const(np.ones((4, 3), np.int8),
                                             quantization=Quantization.of(0.1, 5))],
                         {}, out_shapes=[(2, 4)])
    with pytest.raises(ModelError, match="zero point"):
        _allocate(model)


def test_hybrid_conv_tanh_is_unsupported() -> None:
    """LiteRT's hybrid convolution only clamps; a TANH would be silently dropped."""
    model = one_op_model("CONV_2D",
                         [inp((1, 4, 4, 2)), const(np.ones((3, 1, 1, 2), np.int8),
                                                   quantization=Quantization.of(0.1, 0)),
                          const(np.zeros(3, np.float32))],
                         {"padding": "SAME", "stride_h": 1, "stride_w": 1,
                          "fused_activation_function": "TANH"}, out_shapes=[(1, 4, 4, 3)])
    with pytest.raises(UnsupportedOpError, match="TANH"):
        _allocate(model)


def test_hybrid_batch_matmul_follows_litert_batch_indexing() -> None:
    """With two non-broadcast batch dimensions LiteRT rescales batch (1, 0)
    with the input scale of batch (0, 1); edgeplex reproduces that, and the
    result is measurably not the per-batch dequantized product."""
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (6, 4)).astype(np.int8)
    model = one_op_model("BATCH_MATMUL",
                         [inp((2, 2, 3, 6)), const(w, quantization=Quantization.of(0.02, 0))],
                         {}, version=4)
    x = rng.normal(size=(2, 2, 3, 6)).astype(np.float32)
    x[1, 0] *= 100                                   # give batch (1, 0) its own scale
    got = check(model, [x], exact=True)[0]
    rows = x.reshape(-1, 6)
    q, scale = quantize_symmetric(rows)
    per_batch = (q @ w.astype(np.float32) * scale[:, None] * np.float32(0.02)).reshape(got.shape)
    assert not np.allclose(got[1, 0], per_batch[1, 0], rtol=1e-3)
    np.testing.assert_allclose(got[0], per_batch[0], rtol=1e-5, atol=1e-6)


# -- converter-made models ----------------------------------------------------------------
def _int8_weight_ops(name: str) -> list[tuple[str, int]]:
    """(op, index) of the fixture's ops with int8 weights (the converter keeps
    layers under 1024 weights in float)."""
    main = edgeplex.read_model(fixture(name)).main
    return [(op.op, op.index) for op in main.operators
            if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
            and main.tensors[op.inputs[1]].type_name == "INT8"]


HYBRID_OPS = _int8_weight_ops("quant_hybrid_cnn.tflite")


def test_hybrid_fixture_has_every_op() -> None:
    """The dynamic-range fixture exercises all three hybrid conv-like kernels."""
    assert {op for op, _ in HYBRID_OPS} == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


@pytest.mark.parametrize("op,index", HYBRID_OPS, ids=[f"{i}-{op}" for op, i in HYBRID_OPS])
def test_converter_made_hybrid_ops(op: str, index: int) -> None:
    """Each int8-weight op of the dynamic-range fixture, cut out with its
    converter-chosen options (e.g. asymmetric_quantize_inputs), is bit-exact."""
    model = single_op_model(fixture("quant_hybrid_cnn.tflite"), index)
    for seed in range(3):
        check(model, exact=True, seed=seed)


# -- UNIDIRECTIONAL_SEQUENCE_LSTM ---------------------------------------------------------
# Tolerance: the integer parts and the float32 gate arithmetic follow LiteRT
# operation by operation, but LiteRT evaluates sigmoid and tanh with Eigen's
# vectorized approximations, a few float32 ulps away from numpy's; through
# the recurrence that gives differences of ~1e-7 (measured). atol/rtol 1e-5
# leaves room for the rare case where such an ulp moves one on-the-fly
# quantized hidden-state value across a rounding boundary.
LSTM_TOL = {"rtol": 1e-5, "atol": 1e-5}

HYBRID_SPECS = st.sampled_from([4, 8, 13]).flatmap(lambda n: st.builds(
    LstmSpec, batch=st.integers(1, 3), time=st.integers(1, 4), n_input=st.integers(1, 12),
    n_cell=st.just(n), n_output=st.just(n), cifg=st.booleans(), peephole=st.booleans(),
    layer_norm=st.booleans(), time_major=st.booleans(), asymmetric=st.booleans(),
    cell_clip=st.sampled_from([0.0, 0.7]), activation=st.sampled_from(["TANH", "RELU"])))


def _lstm_close(model: bytes, inputs: list[np.ndarray]) -> None:
    want = run_sequence(model, inputs, "builtin")
    got = run_sequence(model, inputs)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, **LSTM_TOL)


def _float_sequences(spec: LstmSpec, seed: int, zero_rows: bool = False) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (spec.time, spec.batch, spec.n_input) if spec.time_major else \
        (spec.batch, spec.time, spec.n_input)
    xs = [rng.normal(0, 1.5, shape).astype(np.float32) for _ in range(2)]
    if zero_rows:
        xs[0][..., : max(1, shape[1] // 2), :] = 0
    return xs


@given(spec=HYBRID_SPECS, seed=st.integers(0, 1000), zero_rows=st.booleans())
def test_hybrid_lstm(spec: LstmSpec, seed: int, zero_rows: bool) -> None:
    """CIFG, peephole, layer norm, time-major, asymmetric inputs, clipping,
    all-zero input rows (LiteRT skips their products); two invokes in a row."""
    _lstm_close(hybrid_lstm(spec, seed), _float_sequences(spec, seed, zero_rows))


@pytest.mark.parametrize("asymmetric", [False, True], ids=["symmetric", "asymmetric"])
def test_hybrid_lstm_projection(asymmetric: bool) -> None:
    """The projection quantizes the hidden state on the fly as well."""
    spec = LstmSpec(n_cell=8, n_output=6, projection=True, projection_bias=True,
                    proj_clip=0.3, asymmetric=asymmetric)
    _lstm_close(hybrid_lstm(spec, 5), _float_sequences(spec, 5))


def test_converter_made_hybrid_lstm() -> None:
    """The converter's dynamic-range Keras LSTM (asymmetric inputs, cell clip)."""
    full = fixture("quant_hybrid_lstm.tflite")
    main = edgeplex.read_model(full).main
    index = next(op.index for op in main.operators if op.op == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    model = single_op_model(full, index)
    rng = np.random.default_rng(0)
    _lstm_close(model, [rng.normal(0, 1, (2, 6, 32)).astype(np.float32) for _ in range(3)])


@pytest.mark.parametrize("name", ["quant_hybrid_cnn.tflite", "quant_hybrid_lstm.tflite"])
def test_converter_made_hybrid_models_end_to_end(name: str) -> None:
    """Whole dynamic-range models. Their small layers stay float (run by the
    float kernels, whose own tolerance is a few ulps), so the same bound as
    the hybrid LSTM applies."""
    check(fixture(name), **LSTM_TOL)
