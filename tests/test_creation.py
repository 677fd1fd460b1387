"""SHAPE, FILL, ZEROS_LIKE and RANGE against LiteRT.

Tolerance: none. SHAPE, FILL and ZEROS_LIKE copy or write fixed values;
float RANGE accumulates ``value += delta`` in float32 exactly as TFLite's
kernel does, so even its rounding must match bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeplex import ModelBuilder, Quantization
from movement_helpers import (SIZED, UnsupportedOpError, both_reject, check_exact, dtypes,
                                    edgeplex_rejects, i32, i64, others, quant_for)
from oracle import const, inp, one_op_model, run_edgeplex

FLOAT_INT = ("FLOAT32", "INT32", "INT64")


# -- SHAPE ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
@pytest.mark.parametrize("out_type,out_dtype", [("INT32", i32), ("INT64", i64)])
def test_shape(dtype: object, out_type: str, out_dtype: object) -> None:
    m = one_op_model("SHAPE", [inp((2, 3, 4), dtype)], {"out_type": out_type},
                     out_dtype=out_dtype)
    check_exact(m)


@pytest.mark.parametrize("shape", [(5,), (0, 3), (1, 2, 3, 4, 5, 6)])
def test_shape_ranks(shape: tuple) -> None:
    check_exact(one_op_model("SHAPE", [inp(shape)], {"out_type": "INT32"}, out_dtype=i32))


def test_shape_of_a_scalar() -> None:
    """An empty vector (LiteRT's Python API cannot return 0-element tensors)."""
    m = one_op_model("SHAPE", [inp(())], {"out_type": "INT64"}, out_dtype=i64)
    out = run_edgeplex(m, [np.float32(1)])[0]
    assert out.dtype == i64 and out.shape == (0,)


def test_shape_follows_resized_input() -> None:
    m = one_op_model("SHAPE", [inp((2, 3))], {"out_type": "INT32"}, out_dtype=i32)
    check_exact(m, [np.zeros((4, 7, 1), np.float32)])


def test_shape_out_type_must_be_an_integer() -> None:
    m = one_op_model("SHAPE", [inp((2, 3))], {"out_type": "FLOAT32"}, out_dtype=np.float32,
                     out_shapes=[(2,)])
    both_reject(m, match="SHAPE.*out_type")


def test_shape_out_type_must_match_the_output() -> None:
    m = one_op_model("SHAPE", [inp((2, 3))], {"out_type": "INT64"}, out_dtype=i32,
                     out_shapes=[(2,)])
    edgeplex_rejects(m, match="SHAPE.*INT32.*INT64")


# -- FILL -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_fill_types(dtype: object) -> None:
    q = quant_for(dtype)
    m = one_op_model("FILL", [const([2, 3], i32), inp((), dtype, q)], out_dtype=dtype,
                     out_quantization=q)
    check_exact(m)


@pytest.mark.parametrize("dims,dtype", [([], i32), ([4], i64), ([2, 0, 3], i32),
                                        ([1, 2, 3, 1, 2], i64)])
def test_fill_dims(dims: list, dtype: object) -> None:
    m = one_op_model("FILL", [const(np.array(dims, dtype)), const(np.float32(2.5))],
                     out_dtype=np.float32)
    check_exact(m, [])


def test_fill_dynamic_dims() -> None:
    m = one_op_model("FILL", [inp((3,), i32), inp((), np.int64)], out_dtype=np.int64,
                     out_shapes=[(1, 1, 1)])
    check_exact(m, [np.array([2, 1, 3], i32), np.array(-9, np.int64)])


def test_fill_negative_dims() -> None:
    m = one_op_model("FILL", [const([2, -1], i32), const(np.float32(1))], out_dtype=np.float32,
                     out_shapes=[(2, 1)])
    both_reject(m, match="FILL.*>= 0")


def test_fill_value_params_must_match_output() -> None:
    m = one_op_model("FILL", [const([2], i32), inp((), np.int8, Quantization.of(0.5, 1))],
                     out_dtype=np.int8, out_quantization=Quantization.of(0.5, 2),
                     out_shapes=[(2,)])
    both_reject(m, match="FILL.*rescale")


# -- ZEROS_LIKE -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*FLOAT_INT))
@pytest.mark.parametrize("shape", [(), (3,), (2, 0), (2, 3, 4)])
def test_zeros_like(dtype: object, shape: tuple) -> None:
    check_exact(one_op_model("ZEROS_LIKE", [inp(shape, dtype)]))


@pytest.mark.parametrize("dtype", others(*FLOAT_INT))
def test_zeros_like_unsupported_types(dtype: object) -> None:
    m = one_op_model("ZEROS_LIKE", [inp((2,), dtype)], out_shapes=[(2,)])
    both_reject(m, UnsupportedOpError, "ZEROS_LIKE.*type")


# -- RANGE ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*FLOAT_INT))
@pytest.mark.parametrize("start,limit,delta", [(0, 10, 1), (3, 18, 4), (10, -5, -3), (-2, 7, 9),
                                               (5, 6, 100)])
def test_range(dtype: object, start: int, limit: int, delta: int) -> None:
    args = [const(np.array(v, dtype)) for v in (start, limit, delta)]
    check_exact(one_op_model("RANGE", args), [])


@pytest.mark.parametrize("start,limit,delta", [(0.1, 100.0, 0.1), (-3.3, 7.7, 0.7),
                                               (1e4, -1e4, -3.7), (0.0, 1.0, 1e-3)])
def test_range_float_accumulates(start: float, limit: float, delta: float) -> None:
    args = [const(np.float32(v)) for v in (start, limit, delta)]
    check_exact(one_op_model("RANGE", args), [])


@pytest.mark.parametrize("dtype,values", [(np.float32, (1.5, 9.0, 0.75)), (i32, (-4, 11, 3)),
                                          (i64, (7, -2, -2))])
def test_range_dynamic(dtype: object, values: tuple) -> None:
    m = one_op_model("RANGE", [inp((), dtype), inp((), dtype), inp((), dtype)],
                     out_shapes=[(1,)])
    check_exact(m, [np.array(v, dtype) for v in values])


@pytest.mark.parametrize("start,limit,delta", [(0, 5, 0), (5, 0, 1), (0, 5, -1)])
def test_range_empty_or_reversed(start: int, limit: int, delta: int) -> None:
    args = [const(np.array(v, i32)) for v in (start, limit, delta)]
    both_reject(one_op_model("RANGE", args, out_shapes=[(1,)]), match="RANGE.*")


def test_range_mixed_types() -> None:
    args = [const(np.int32(0)), const(np.float32(5)), const(np.int32(1))]
    both_reject(one_op_model("RANGE", args, out_shapes=[(5,)], out_dtype=i32),
                match="RANGE.*limit")


def test_range_feeds_a_reshape() -> None:
    """A data-dependent RANGE output flows into later ops."""
    mb = ModelBuilder()
    g = mb.main
    n = g.input("n", (), np.int32)
    r = g.tensor("r", (1,), np.int32)
    g.op("RANGE", [g.constant("zero", np.int32(0)), n, g.constant("one", np.int32(1))],
         outputs=[r])
    out = g.tensor("out", (1, 1), np.int32)
    g.op("RESHAPE", [r, g.constant("to", np.array([2, -1], i32))], outputs=[out])
    g.output(out)
    check_exact(mb.build(), [np.array(6, i32)])


def test_shape_of_a_data_dependent_tensor() -> None:
    """SHAPE of RANGE's output, whose length is only known at invoke."""
    mb = ModelBuilder()
    g = mb.main
    n = g.input("n", (), np.int32)
    r = g.tensor("r", (1,), np.int32)
    g.op("RANGE", [g.constant("zero", np.int32(0)), n, g.constant("two", np.int32(2))],
         outputs=[r])
    shape = g.tensor("shape", (1,), np.int64)
    g.op("SHAPE", [r], {"out_type": "INT64"}, outputs=[shape])
    g.output(shape)
    for value in (7, 12):
        check_exact(mb.build(), [np.array(value, i32)])


def test_fill_int16_needs_zero_zero_point() -> None:
    q = Quantization.of(0.5, 5)
    m = one_op_model("FILL", [const([2], i32), inp((), np.int16, q)], out_dtype=np.int16,
                     out_quantization=q, out_shapes=[(2,)])
    both_reject(m, match="FILL.*zero point 5")
