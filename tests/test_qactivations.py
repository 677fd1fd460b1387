"""Quantized activations against LiteRT, bit-exact (compared with ==).

Unary ops are checked on every input value of the type (all 256 for 8-bit;
all 65536 for int16), so a test covers the whole lookup table. Resolvers:
* int16 LEAKY_RELU: builtin only (its reference kernel differs on some inputs).
* RELU, RELU6, RELU_N1_TO_1, 8-bit LEAKY_RELU, PRELU, HARD_SWISH, 8-bit
  LOGISTIC/TANH, SOFTMAX: builtin and reference LiteRT kernels agree on these
  cases; compared with both.
* ELU: LiteRT's reference resolver has no int8 ELU; builtin only.
* int16 LOGISTIC/TANH: equal to both kernels for general scales. For
  power-of-two input scales whose shift is 0 (LOGISTIC 2^-12, TANH 2^-12 and
  2^-11) LiteRT's builtin kernel switches to gemmlowp fixed-point code while
  the reference kernel keeps the interpolated sigmoid table; edgeplex follows
  the reference kernel there (test_int16_power_of_two_scale_follows_reference).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgeplex
from edgeplex import Quantization
from oracle import const, inp, one_op_model, run_litert
from quant_cases import INT_DTYPES, check_exact, float_inputs, qparam


def every_value(dtype: Any) -> np.ndarray:
    """All values of an 8- or 16-bit type, as a 2-D array."""
    info = np.iinfo(dtype)
    return np.arange(info.min, info.max + 1).astype(dtype).reshape(-1, 256)


def _unary(op: str, dtype: Any, qin: Quantization, qout: Quantization,
           options: dict | None = None, resolvers: tuple[str, ...] = ("builtin", "ref")) -> None:
    x = every_value(dtype)
    model = one_op_model(op, [inp(x.shape, dtype, qin)], options, out_dtype=dtype,
                         out_quantization=qout)
    for r in resolvers:
        check_exact(model, [x], r, what=f"{op} {np.dtype(dtype).name} vs {r}")


# -- RELU family, LEAKY_RELU ----------------------------------------------------------------
@pytest.mark.parametrize("op, dnames", [("RELU", ["int8", "uint8", "int16"]),
                                        ("RELU6", ["int8", "uint8", "int16"]),
                                        ("RELU_N1_TO_1", ["int8", "uint8"])])
@settings(max_examples=10)
@given(data=st.data())
def test_relu_family_every_value(op: str, dnames: list[str], data: Any) -> None:
    """Rescale to the output then clamp to the activation's real range."""
    for dname in dnames:
        dtype = INT_DTYPES[dname]
        _unary(op, dtype, data.draw(qparam(dtype, -8, 1)), data.draw(qparam(dtype, -8, 1)))


@pytest.mark.parametrize("dname", list(INT_DTYPES))
@settings(max_examples=15)
@given(data=st.data(), alpha=st.floats(-2.0, 2.0))
def test_leaky_relu_every_value(dname: str, data: Any, alpha: float) -> None:
    dtype = INT_DTYPES[dname]
    # int16: LiteRT's builtin kernel (optimized_integer_ops) and its reference
    # kernel disagree on some inputs (e.g. alpha products that are exact
    # halves); edgeplex equals the builtin one.
    _unary("LEAKY_RELU", dtype, data.draw(qparam(dtype, -8, 0)), data.draw(qparam(dtype, -8, 0)),
           {"alpha": alpha}, ("builtin",) if dname == "int16" else ("builtin", "ref"))


# -- PRELU ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dname", ["int8", "uint8"])
@pytest.mark.parametrize("alpha_shape", [(3,), (1, 1, 3), (2, 1, 3), (1,)])
@settings(max_examples=10)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_prelu_broadcast_alpha(dname: str, alpha_shape: tuple, data: Any, seed: int) -> None:
    """PRELU with a constant alpha broadcast over the input (per channel etc.)."""
    dtype = INT_DTYPES[dname]
    qin, qa, qout = (data.draw(qparam(dtype, -8, 0)) for _ in range(3))
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    alpha = rng.integers(info.min, info.max + 1, alpha_shape).astype(dtype)
    model = one_op_model("PRELU", [inp((2, 4, 3), dtype, qin), const(alpha, quantization=qa)],
                         out_dtype=dtype, out_quantization=qout)
    x = float_inputs(rng, (2, 4, 3), qin, dtype)
    check_exact(model, [x], "builtin")
    check_exact(model, [x], "ref")


# -- ELU, HARD_SWISH -------------------------------------------------------------------------
@settings(max_examples=20)
@given(qin=qparam(np.int8, -7, 0), qout=qparam(np.int8, -7, 0))
def test_elu_int8_every_value(qin: Quantization, qout: Quantization) -> None:
    _unary("ELU", np.int8, qin, qout, resolvers=("builtin",))


@pytest.mark.parametrize("dname", ["int8", "uint8"])
@settings(max_examples=20)
@given(data=st.data())
def test_hard_swish_every_value(dname: str, data: Any) -> None:
    """HARD_SWISH's int16 fixed-point pipeline; output scale chosen so that
    TFLite's output exponent is <= 0 (it rejects the rest, as edgeplex does)."""
    dtype = INT_DTYPES[dname]
    qin = data.draw(qparam(dtype, -8, 2))
    qout = data.draw(qparam(dtype, -8, 2))
    floor = float(qin.scale[0]) / 128 * 1.01
    qout = Quantization.of(max(float(qout.scale[0]), floor), qout.zero_point[0])
    _unary("HARD_SWISH", dtype, qin, qout)


# -- LOGISTIC / TANH ----------------------------------------------------------------------
FIXED_OUT = {("LOGISTIC", "int8"): (1 / 256, -128), ("LOGISTIC", "uint8"): (1 / 256, 0),
             ("TANH", "int8"): (1 / 128, 0), ("TANH", "uint8"): (1 / 128, 128),
             ("LOGISTIC", "int16"): (1 / 32768, 0), ("TANH", "int16"): (1 / 32768, 0)}


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("dname", list(INT_DTYPES))
@settings(max_examples=12)
@given(data=st.data())
def test_logistic_tanh_every_value(op: str, dname: str, data: Any) -> None:
    """8-bit: TFLite's float32 LUT. int16: the interpolated sigmoid table over
    all 65536 inputs (this also pins down every entry of that table)."""
    dtype = INT_DTYPES[dname]
    qin = data.draw(qparam(dtype, -12, 0))
    if dname == "int16" and float(np.log2(qin.scale[0])).is_integer():
        qin = Quantization.of(float(qin.scale[0]) * 1.01, 0)   # see the POT test below
    _unary(op, dtype, qin, Quantization.of(*FIXED_OUT[(op, dname)]))


@pytest.mark.parametrize("op, log2_scale", [("LOGISTIC", -12), ("TANH", -12), ("TANH", -11),
                                            ("LOGISTIC", -9), ("TANH", -13)])
def test_int16_power_of_two_scale_follows_reference(op: str, log2_scale: int) -> None:
    qin, qout = Quantization.of(2.0 ** log2_scale), Quantization.of(1 / 32768)
    _unary(op, np.int16, qin, qout, resolvers=("ref",))
    shift = 12 + log2_scale
    fixed_point_path = shift == 0 or (op == "TANH" and shift == 1)
    x = every_value(np.int16)
    model = one_op_model(op, [inp(x.shape, np.int16, qin)], out_dtype=np.int16,
                         out_quantization=qout)
    same = np.array_equal(run_litert(model, [x])[0], run_litert(model, [x], "ref")[0])
    assert same != fixed_point_path


# -- SOFTMAX ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dname", list(INT_DTYPES))
@pytest.mark.parametrize("shape", [(7,), (3, 10), (2, 3, 17), (2, 2, 2, 33)])
@settings(max_examples=10)
@given(data=st.data(), beta=st.sampled_from([1.0, 0.5, 2.0, 0.3]), seed=st.integers(0, 2**16))
def test_softmax_beta(dname: str, shape: tuple, data: Any, beta: float, seed: int) -> None:
    """Softmax over the last axis with beta; inputs spread over a few dozen
    quantization steps so the outputs are not all zero but one."""
    dtype = INT_DTYPES[dname]
    qin = data.draw(qparam(dtype, -6, 0))
    qout = Quantization.of(*{"int8": (1 / 256, -128), "uint8": (1 / 256, 0),
                             "int16": (1 / 32768, 0)}[dname])
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    zp = int(qin.zero_point[0])
    spread = int(rng.integers(2, 200 if dname != "int16" else 4000))
    x = np.clip(zp + rng.integers(-spread, spread + 1, shape), info.min, info.max).astype(dtype)
    model = one_op_model("SOFTMAX", [inp(shape, dtype, qin)], {"beta": beta}, out_dtype=dtype,
                         out_quantization=qout)
    check_exact(model, [x], "builtin")
    check_exact(model, [x], "ref")


# -- errors ---------------------------------------------------------------------------------
def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def _model(op: str, dtype: Any, qin: Quantization | None, qout: Quantization | None,
           options: dict | None = None) -> bytes:
    return one_op_model(op, [inp((4,), dtype, qin)], options, out_dtype=dtype,
                        out_quantization=qout, out_shapes=[(4,)])


def test_logistic_int8_wrong_output_scale_is_unsupported() -> None:
    with pytest.raises(edgeplex.UnsupportedOpError, match="output scale 1/256"):
        _allocate(_model("LOGISTIC", np.int8, Quantization.of(0.1), Quantization.of(0.01)))


def test_softmax_int8_wrong_output_zero_point_is_unsupported() -> None:
    with pytest.raises(edgeplex.UnsupportedOpError, match="zero point -128"):
        _allocate(_model("SOFTMAX", np.int8, Quantization.of(0.1),
                         Quantization.of(1 / 256, 0), {"beta": 1.0}))


@pytest.mark.parametrize("op", ["RELU", "LEAKY_RELU", "TANH", "SOFTMAX"])
def test_int16_nonzero_zero_point_is_unsupported(op: str) -> None:
    with pytest.raises(edgeplex.UnsupportedOpError, match="zero point 0"):
        _allocate(_model(op, np.int16, Quantization.of(0.01, 3), Quantization.of(1 / 32768)))


def test_tanh_int16_output_scale_must_be_2_pow_minus_15() -> None:
    with pytest.raises(edgeplex.UnsupportedOpError, match="2\\^-15"):
        _allocate(_model("TANH", np.int16, Quantization.of(0.001), Quantization.of(0.001)))


def test_relu_int8_missing_output_quantization_is_a_model_error() -> None:
    with pytest.raises(edgeplex.ModelError, match="output 'output0' is INT8 but has no"):
        _allocate(_model("RELU", np.int8, Quantization.of(0.1), None))


def test_prelu_alpha_type_must_match() -> None:
    model = one_op_model("PRELU", [inp((2, 3), np.int8, Quantization.of(0.1)),
                                   const(np.ones(3, np.uint8), quantization=Quantization.of(
                                       0.1, 128))],
                         out_dtype=np.int8, out_quantization=Quantization.of(0.1),
                         out_shapes=[(2, 3)])
    with pytest.raises(edgeplex.ModelError, match="types differ"):
        _allocate(model)


# -- L2_NORMALIZATION --------------------------------------------------------------------
@pytest.mark.parametrize("dname", ["int8", "uint8"])
@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 3, 50), (1, 2, 2, 300)])
@settings(max_examples=10)
@given(q=st.data(), seed=st.integers(0, 2**16), spread=st.sampled_from([0, 1, 3, 300]))
def test_l2_normalization(dname: str, shape: tuple, q: Any, seed: int, spread: int) -> None:
    """Rows of every magnitude, including all-zero rows (1/sqrt of 0 and 1)."""
    dtype = INT_DTYPES[dname]
    qin = q.draw(qparam(dtype, -6, 0))
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    x = np.clip(int(qin.zero_point[0]) + rng.integers(-spread, spread + 1, shape),
                info.min, info.max).astype(dtype)
    qout = Quantization.of(1 / 128, 0 if dname == "int8" else 128)
    model = one_op_model("L2_NORMALIZATION", [inp(shape, dtype, qin)],
                         {"fused_activation_function": "NONE"}, out_dtype=dtype,
                         out_quantization=qout)
    check_exact(model, [x], "builtin")
    check_exact(model, [x], "ref")


def test_l2_normalization_output_quantization_is_checked() -> None:
    with pytest.raises(edgeplex.UnsupportedOpError, match="1/128"):
        _allocate(_model("L2_NORMALIZATION", np.int8, Quantization.of(0.1),
                         Quantization.of(1 / 128, 5), {"fused_activation_function": "NONE"}))
