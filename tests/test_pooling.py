"""Oracle tests of AVERAGE_POOL_2D, MAX_POOL_2D and L2_POOL_2D against LiteRT.

Tolerances: MAX_POOL selects an input value, so float results must be equal.
Float AVERAGE_POOL adds each window's valid values in the same (row-major)
order as LiteRT and divides by the same count, so it is exact too; the tests
allow 1 ulp (rtol 2.4e-7) so an equivalent reordering would not fail them.
L2_POOL allows 2 ulp (rtol 2.5e-7): LiteRT's Eigen square root is
vectorized and may round differently by one ulp. Integer pooling (int8,
uint8, int16) must match bit for bit.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import check, inp, one_op_model

import edgeplex
from edgeplex import ModelError, Quantization, UnsupportedOpError

OPS = ["MAX_POOL_2D", "AVERAGE_POOL_2D", "L2_POOL_2D"]
ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
#: (rtol, atol) per float op, justified in the module docstring.
FLOAT_TOL = {"MAX_POOL_2D": (0.0, 0.0), "AVERAGE_POOL_2D": (2.4e-7, 0.0),
             "L2_POOL_2D": (2.5e-7, 0.0)}
#: Zero points per integer type (int16 pooling is used with symmetric quantization).
INT_QUANT = {np.int8: Quantization.of(0.05, -3), np.uint8: Quantization.of(0.05, 120),
             np.int16: Quantization.of(0.001, 0)}


def pool_options(padding: str, filter_hw: tuple[int, int], stride: tuple[int, int],
                 act: str = "NONE") -> dict[str, Any]:
    """Pool2DOptions fields."""
    return {"padding": padding, "filter_height": filter_hw[0], "filter_width": filter_hw[1],
            "stride_h": stride[0], "stride_w": stride[1], "fused_activation_function": act}


def check_float(op: str, model: bytes) -> None:
    """Compare with the op's tolerance (exact where it is 0)."""
    rtol, atol = FLOAT_TOL[op]
    check(model, rtol=rtol, atol=atol, exact=(rtol == 0 and atol == 0))


def allocate(model: bytes) -> None:
    """Prepare every kernel of ``model`` in edgeplex."""
    edgeplex.Interpreter(model_content=model).allocate_tensors()


# -- float ---------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("filter_hw, stride", [
    ((2, 2), (2, 2)), ((3, 3), (1, 1)), ((3, 2), (2, 3)), ((1, 1), (2, 1)), ((4, 5), (3, 2)),
])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("op", OPS)
def test_float_pool_options(op: str, padding: str, filter_hw: tuple, stride: tuple,
                            act: str) -> None:
    model = one_op_model(op, [inp((2, 9, 10, 3))], pool_options(padding, filter_hw, stride, act))
    check_float(op, model)


@pytest.mark.parametrize("in_shape, filter_hw, stride, padding", [
    ((1, 3, 3, 1), (5, 5), (1, 1), "SAME"),      # windows mostly padding
    ((1, 4, 4, 2), (4, 4), (1, 1), "VALID"),     # one window covering the input
    ((3, 1, 7, 5), (1, 3), (1, 2), "SAME"),
    ((1, 13, 11, 8), (2, 2), (2, 2), "SAME"),    # odd sizes: right/bottom padding only
    ((1, 8, 8, 4), (3, 3), (2, 2), "SAME"),
])
@pytest.mark.parametrize("op", OPS)
def test_float_pool_shapes(op: str, in_shape: tuple, filter_hw: tuple, stride: tuple,
                           padding: str) -> None:
    check_float(op, one_op_model(op, [inp(in_shape)], pool_options(padding, filter_hw, stride)))


@given(op=st.sampled_from(OPS), n=st.integers(1, 2), h=st.integers(1, 10),
       w=st.integers(1, 10), c=st.integers(1, 4), fh=st.integers(1, 4), fw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), padding=st.sampled_from(["SAME", "VALID"]))
def test_float_pool_hypothesis(op: str, n: int, h: int, w: int, c: int, fh: int, fw: int,
                               sh: int, sw: int, padding: str) -> None:
    if padding == "VALID":
        fh, fw = min(fh, h), min(fw, w)
    check_float(op, one_op_model(op, [inp((n, h, w, c))],
                                 pool_options(padding, (fh, fw), (sh, sw))))


# -- integer ---------------------------------------------------------------------------------
def int_model(op: str, dtype: Any, in_shape: tuple, options: dict[str, Any]) -> bytes:
    """A quantized pooling model (same quantization in and out, as LiteRT requires)."""
    q = INT_QUANT[dtype]
    return one_op_model(op, [inp(in_shape, dtype, quantization=q)], options, out_quantization=q)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("filter_hw, stride", [((2, 2), (2, 2)), ((3, 2), (1, 3)),
                                               ((2, 1), (1, 1)), ((5, 4), (2, 2))])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
def test_int_pool_options(op: str, dtype: Any, padding: str, filter_hw: tuple, stride: tuple,
                          act: str) -> None:
    model = int_model(op, dtype, (2, 9, 7, 3), pool_options(padding, filter_hw, stride, act))
    for seed in range(2):
        check(model, exact=True, seed=seed)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_int_average_pool_rounding(dtype: Any) -> None:
    # Sums of count 2 (filter 2x1) hit exact .5 ties, count 4..6 at SAME borders other
    # fractions, and the big window sums of several thousand; negative sums round away.
    for shape, filter_hw in [((1, 16, 16, 8), (2, 1)), ((1, 17, 17, 4), (16, 16)),
                             ((2, 6, 5, 16), (3, 2))]:
        model = int_model("AVERAGE_POOL_2D", dtype, shape, pool_options("SAME", filter_hw,
                                                                        (1, 1)))
        for seed in range(3):
            check(model, exact=True, seed=seed)


@given(op=st.sampled_from(["MAX_POOL_2D", "AVERAGE_POOL_2D"]),
       dtype=st.sampled_from([np.int8, np.uint8, np.int16]), h=st.integers(1, 9),
       w=st.integers(1, 9), fh=st.integers(1, 5), fw=st.integers(1, 5), sh=st.integers(1, 3),
       sw=st.integers(1, 3), padding=st.sampled_from(["SAME", "VALID"]),
       act=st.sampled_from(ACTIVATIONS), seed=st.integers(0, 100))
def test_int_pool_hypothesis(op: str, dtype: Any, h: int, w: int, fh: int, fw: int, sh: int,
                             sw: int, padding: str, act: str, seed: int) -> None:
    if padding == "VALID":
        fh, fw = min(fh, h), min(fw, w)
    model = int_model(op, dtype, (1, h, w, 3), pool_options(padding, (fh, fw), (sh, sw), act))
    check(model, exact=True, seed=seed)


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("act", ["TANH", "SIGN_BIT"])
def test_unsupported_float_activation(op: str, act: str) -> None:
    # LiteRT's pooling kernels silently skip these activations; edgeplex refuses them.
    model = one_op_model(op, [inp((1, 4, 4, 2))], pool_options("SAME", (2, 2), (1, 1), act),
                         out_shapes=[(1, 4, 4, 2)])
    with pytest.raises(UnsupportedOpError, match=f"{op}.*{act}"):
        allocate(model)


def test_unsupported_int_activation() -> None:
    q = INT_QUANT[np.int8]
    model = one_op_model("MAX_POOL_2D", [inp((1, 4, 4, 2), np.int8, quantization=q)],
                         pool_options("SAME", (2, 2), (1, 1), "TANH"), out_quantization=q,
                         out_shapes=[(1, 4, 4, 2)])
    with pytest.raises(UnsupportedOpError, match="MAX_POOL_2D.*TANH"):
        allocate(model)


def test_l2_pool_integer_is_unsupported() -> None:
    q = INT_QUANT[np.int8]
    model = one_op_model("L2_POOL_2D", [inp((1, 4, 4, 2), np.int8, quantization=q)],
                         pool_options("SAME", (2, 2), (1, 1)), out_quantization=q,
                         out_shapes=[(1, 4, 4, 2)])
    with pytest.raises(UnsupportedOpError, match="L2_POOL_2D.*INT8"):
        allocate(model)


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
def test_int_pool_quantization_mismatch(op: str) -> None:
    model = one_op_model(op, [inp((1, 4, 4, 2), np.int8, quantization=Quantization.of(0.1, 0))],
                         pool_options("SAME", (2, 2), (1, 1)),
                         out_quantization=Quantization.of(0.2, 0), out_shapes=[(1, 4, 4, 2)])
    with pytest.raises(ModelError, match=f"{op}.*quantization differ"):
        allocate(model)


@pytest.mark.parametrize("options, in_shape, message", [
    (pool_options("SAME", (2, 2), (1, 1)), (1, 4, 4), "rank 4"),
    (pool_options("SAME", (0, 2), (1, 1)), (1, 4, 4, 2), "filter size 0"),
    (pool_options("VALID", (2, 2), (0, 1)), (1, 4, 4, 2), "stride 0"),
])
def test_malformed_pool(options: dict[str, Any], in_shape: tuple, message: str) -> None:
    model = one_op_model("AVERAGE_POOL_2D", [inp(in_shape)], options, out_shapes=[(1, 4, 4, 2)])
    with pytest.raises(ModelError, match=f"AVERAGE_POOL_2D.*{message}"):
        allocate(model)
