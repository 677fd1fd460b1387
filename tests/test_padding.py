"""PAD, PADV2 and MIRROR_PAD against LiteRT.

Tolerance: none — padding copies values and writes a constant; outputs must
be bit-identical, quantized ones included.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeplex import Quantization
from movement_helpers import (SIZED, UnsupportedOpError, both_reject, check_exact, dtypes,
                                    edgeplex_rejects, i32, i64, others, quant_for)
from oracle import const, inp, one_op_model, run_edgeplex

PAD = ("FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL")


# -- PAD, PADV2 ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*PAD))
def test_pad_types(dtype: object) -> None:
    q = quant_for(dtype)
    m = one_op_model("PAD", [inp((2, 3), dtype, q), const([[1, 0], [2, 1]], i32)],
                     out_quantization=q)
    check_exact(m)


@pytest.mark.parametrize("dtype", dtypes(*PAD))
def test_padv2_types(dtype: object) -> None:
    q = quant_for(dtype)
    value = const(np.array(1, dtype), quantization=q)
    m = one_op_model("PADV2", [inp((2, 3), dtype, q), const([[1, 0], [2, 1]], i32), value],
                     out_quantization=q)
    check_exact(m)


@pytest.mark.parametrize("shape,pads,ptype", [
    ((3,), [[2, 1]], i32), ((2, 3), [[0, 0], [0, 0]], i32), ((1, 3, 3, 2), [[0, 0], [1, 2], [2, 1],
                                                                            [0, 0]], i32),
    ((2, 3, 4), [[1, 1], [0, 2], [3, 0]], i64), ((2, 2, 2, 2, 2), [[1, 0]] * 5, i32),
    ((0, 3), [[1, 1], [0, 0]], i32),
])
def test_pad_shapes(shape: tuple, pads: list, ptype: object) -> None:
    check_exact(one_op_model("PAD", [inp(shape), const(np.array(pads, ptype))]))


def test_pad_rank_6() -> None:
    """LiteRT pads at most 5 dimensions; edgeplex has no such limit (np.pad)."""
    x = np.arange(32, dtype=np.float32).reshape(2, 1, 2, 2, 2, 2)
    pads = [[0, 1], [1, 0], [0, 0], [2, 1], [0, 0], [1, 1]]
    m = one_op_model("PAD", [inp(x.shape), const(np.array(pads, i32))])
    np.testing.assert_array_equal(run_edgeplex(m, [x])[0], np.pad(x, pads))


@pytest.mark.parametrize("dtype,zero_point", [(np.uint8, 200), (np.int8, -7), (np.int16, 0)])
def test_pad_quantized_uses_zero_point(dtype: object, zero_point: int) -> None:
    """Quantized PAD fills with the output zero point (real value 0)."""
    q = Quantization.of(0.5, zero_point)
    m = one_op_model("PAD", [inp((2, 2), dtype, q), const([[1, 1], [1, 1]], i32)],
                     out_quantization=q)
    out = check_exact(m, [np.full((2, 2), 5, dtype)])[0]
    assert (out == zero_point).sum() == 12


def test_pad_unquantized_int8_uses_zero() -> None:
    m = one_op_model("PAD", [inp((2, 2), np.int8), const([[1, 1], [1, 1]], i32)])
    out = check_exact(m, [np.full((2, 2), 5, np.int8)])[0]
    assert (out == 0).sum() == 12


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.bool_])
def test_padv2_dynamic_constant_value(dtype: object) -> None:
    m = one_op_model("PADV2", [inp((2, 3), dtype), const([[1, 0], [0, 2]], i32), inp((), dtype)])
    check_exact(m)


def test_pad_dynamic_paddings() -> None:
    m = one_op_model("PAD", [inp((2, 3)), inp((2, 2), i32)], out_shapes=[(1, 1)])
    check_exact(m, [np.ones((2, 3), np.float32), np.array([[1, 2], [0, 3]], i32)])


def test_padv2_value_params_must_match_output() -> None:
    q, other = Quantization.of(0.5, 3), Quantization.of(0.25, 3)
    ins = [inp((2, 2), np.uint8, q), const([[1, 1], [1, 1]], i32),
           const(np.array(1, np.uint8), quantization=other)]
    both_reject(one_op_model("PADV2", ins, out_quantization=q, out_shapes=[(4, 4)]),
                match="PADV2.*constant_values")


@pytest.mark.parametrize("pads,message", [([[1, -1], [0, 0]], ">= 0"), ([[1, 1]], "shape")])
def test_pad_bad_paddings(pads: list, message: str) -> None:
    m = one_op_model("PAD", [inp((2, 3)), const(np.array(pads, i32))], out_shapes=[(4, 3)])
    both_reject(m, match=f"PAD.*{message}")


@pytest.mark.parametrize("dtype", others(*PAD))
def test_pad_unsupported_types(dtype: object) -> None:
    m = one_op_model("PAD", [inp((2,), dtype), const([[1, 1]], i32)], out_shapes=[(4,)])
    both_reject(m, UnsupportedOpError, "PAD.*type")


# -- MIRROR_PAD --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
@pytest.mark.parametrize("mode", ["REFLECT", "SYMMETRIC"])
def test_mirror_pad_types(dtype: object, mode: str) -> None:
    q = quant_for(dtype)
    m = one_op_model("MIRROR_PAD", [inp((3, 4), dtype, q), const([[2, 1], [1, 2]], i32)],
                     {"mode": mode}, out_quantization=q)
    check_exact(m)


@pytest.mark.parametrize("mode", ["REFLECT", "SYMMETRIC"])
@pytest.mark.parametrize("shape,pads,ptype", [
    ((5,), [[2, 3]], i32), ((4, 5), [[3, 0], [0, 4]], i64), ((2, 3, 4), [[1, 1], [2, 2], [3, 3]],
                                                           i32),
    ((1, 4, 4, 2), [[0, 0], [3, 3], [1, 2], [0, 0]], i32), ((3, 3), [[0, 0], [0, 0]], i32),
    ((2, 2, 2, 2, 2), [[1, 1]] * 5, i32),
])
def test_mirror_pad_shapes(mode: str, shape: tuple, pads: list, ptype: object) -> None:
    if mode == "REFLECT":   # reflect cannot reach past the last interior element
        pads = [[min(a, d - 1), min(b, d - 1)] for (a, b), d in zip(pads, shape)]
    m = one_op_model("MIRROR_PAD", [inp(shape), const(np.array(pads, ptype))], {"mode": mode})
    check_exact(m)


def test_mirror_pad_dynamic_paddings() -> None:
    m = one_op_model("MIRROR_PAD", [inp((3, 4)), inp((2, 2), i32)], {"mode": "SYMMETRIC"},
                     out_shapes=[(1, 1)])
    check_exact(m, [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([[2, 3], [1, 0]], i32)])


@pytest.mark.parametrize("mode,pads", [("REFLECT", [[3, 0]]), ("SYMMETRIC", [[0, 4]])])
def test_mirror_pad_too_wide(mode: str, pads: list) -> None:
    """TF limits mirror padding to the input size (minus one for REFLECT)."""
    m = one_op_model("MIRROR_PAD", [inp((3,)), const(np.array(pads, i32))], {"mode": mode},
                     out_shapes=[(6,)])
    edgeplex_rejects(m, match=f"MIRROR_PAD.*{mode}")


def test_mirror_pad_quantized_params_must_match() -> None:
    ins = [inp((3, 3), np.int8, Quantization.of(0.5, 1)), const([[1, 1], [1, 1]], i32)]
    m = one_op_model("MIRROR_PAD", ins, {"mode": "REFLECT"},
                     out_quantization=Quantization.of(0.5, 2), out_shapes=[(5, 5)])
    both_reject(m, match="MIRROR_PAD.*quantized")


def test_mirror_pad_int16_needs_zero_zero_point() -> None:
    q = Quantization.of(0.5, 5)
    m = one_op_model("MIRROR_PAD", [inp((3, 3), np.int16, q), const([[1, 1], [1, 1]], i32)],
                     {"mode": "REFLECT"}, out_quantization=q, out_shapes=[(5, 5)])
    both_reject(m, match="MIRROR_PAD.*zero point 5")
