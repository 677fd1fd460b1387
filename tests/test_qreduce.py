"""Quantized MEAN and SUM against LiteRT, bit-exact (compared with ==).

Resolvers (see kernels/qreduce.py):
* MEAN: compared with LiteRT's builtin kernels. Away from the 4-D spatial
  case builtin and reference agree; for int8/uint8 4-D keep_dims MEAN over
  axes {1, 2} the builtin kernel has its own formula, which edgeplex follows
  (test_mean_spatial_builtin_differs_from_reference shows the difference).
* SUM: compared with the builtin kernel only; LiteRT's reference SUM kernel
  disagrees with it on most outputs.
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


@st.composite
def shape_and_axes(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A shape of rank 1-4 and 1..rank axes (possibly negative, repeated)."""
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    rank = len(shape)
    axes = draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank))
    return shape, tuple(axes)


def _case(op: str, dname: str, shape: tuple, axes: tuple, keep: bool, qin: Quantization,
          qout: Quantization, seed: int, resolver: str = "builtin") -> list[np.ndarray]:
    dtype = INT_DTYPES[dname]
    model = one_op_model(op, [inp(shape, dtype, qin), const(np.array(axes, np.int32))],
                         {"keep_dims": keep}, out_dtype=dtype, out_quantization=qout)
    x = float_inputs(np.random.default_rng(seed), shape, qin, dtype)
    return check_exact(model, [x], resolver, what=f"{op} {dname} {shape} {axes} {keep}")


@pytest.mark.parametrize("op", ["MEAN", "SUM"])
@pytest.mark.parametrize("dname", list(INT_DTYPES))
@settings(max_examples=20)
@given(case=shape_and_axes(), keep=st.booleans(), data=st.data(), seed=st.integers(0, 2**16))
def test_reduce_any_axes(op: str, dname: str, case: tuple, keep: bool, data: Any,
                         seed: int) -> None:
    """MEAN/SUM over random axes, keep_dims on and off, requantized."""
    dtype = INT_DTYPES[dname]
    qin = data.draw(qparam(dtype, -6, 0))
    qout = data.draw(qparam(dtype, -6, 3 if op == "SUM" else 0))
    _case(op, dname, case[0], case[1], keep, qin, qout, seed)


@pytest.mark.parametrize("dname", ["int8", "uint8"])
@pytest.mark.parametrize("depth", [5, 16, 35])
@settings(max_examples=10)
@given(data=st.data(), hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
       axes=st.sampled_from([(1, 2), (2, 1), (-3, -2)]), seed=st.integers(0, 2**16))
def test_mean_int8_spatial_keep_dims(dname: str, depth: int, data: Any, hw: tuple,
                                     axes: tuple, seed: int) -> None:
    """Global average pooling as MEAN: LiteRT's dedicated builtin path,
    including channel counts with and without whole blocks of 16."""
    dtype = INT_DTYPES[dname]
    qin, qout = data.draw(qparam(dtype, -6, 0)), data.draw(qparam(dtype, -6, 0))
    _case("MEAN", dname, (2, hw[0], hw[1], depth), axes, True, qin, qout, seed)


def test_mean_spatial_builtin_differs_from_reference() -> None:
    """The spatial builtin path rounds differently from the reference formula;
    edgeplex equals the builtin kernel."""
    q_in, q_out = Quantization.of(0.05, 3), Quantization.of(0.04, -5)
    model = one_op_model("MEAN", [inp((1, 4, 4, 32), np.int8, q_in),
                                  const(np.array([1, 2], np.int32))],
                         {"keep_dims": True}, out_dtype=np.int8, out_quantization=q_out)
    x = float_inputs(np.random.default_rng(7), (1, 4, 4, 32), q_in, np.int8)
    got = check_exact(model, [x], "builtin")[0]
    assert not np.array_equal(got, run_litert(model, [x], "ref")[0])


def test_sum_saturates_large_sums() -> None:
    q = Quantization.of(0.1, 0)
    model = one_op_model("SUM", [inp((2, 50), np.int8, q), const(np.array([1], np.int32))],
                         {"keep_dims": False}, out_dtype=np.int8, out_quantization=q)
    x = np.full((2, 50), 100, np.int8)
    x[1] = -100
    got = check_exact(model, [x])[0]
    assert got.tolist() == [127, -128]


# -- errors ---------------------------------------------------------------------------------
def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_mean_int16_nonzero_zero_point_is_unsupported() -> None:
    model = one_op_model("MEAN", [inp((2, 3), np.int16, Quantization.of(0.1, 4)),
                                  const(np.array([1], np.int32))], {"keep_dims": False},
                         out_dtype=np.int16, out_quantization=Quantization.of(0.1),
                         out_shapes=[(2,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="zero point 0"):
        _allocate(model)


def test_mean_dynamic_axis_is_unsupported() -> None:
    model = one_op_model("MEAN", [inp((2, 3), np.int8, Quantization.of(0.1)),
                                  inp((1,), np.int32)], {"keep_dims": False},
                         out_dtype=np.int8, out_quantization=Quantization.of(0.1),
                         out_shapes=[(2,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="constant axis"):
        _allocate(model)


def test_sum_axis_out_of_range_is_a_model_error() -> None:
    model = one_op_model("SUM", [inp((2, 3), np.int8, Quantization.of(0.1)),
                                 const(np.array([2], np.int32))], {"keep_dims": False},
                         out_dtype=np.int8, out_quantization=Quantization.of(0.1),
                         out_shapes=[(2,)])
    with pytest.raises(edgeplex.ModelError, match="axis 2 is out of range"):
        _allocate(model)
