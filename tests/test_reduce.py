"""Reductions, ARG_MAX/ARG_MIN and CUMSUM against LiteRT.

Exact for every integer and boolean result, for MAX/MIN (a selection, also
in float), ARG_* and CUMSUM (both runtimes add strictly left to right).
Float SUM and MEAN use numpy's pairwise summation while LiteRT adds in
memory order (or with Eigen for a last-axis mean): for n <= 60 values in
[-3, 3] the two orders differ by at most about n * eps * 3 ~ 2e-5 absolute,
hence atol=5e-5 for SUM and 1e-5 for MEAN (the sum divided by n >= 2,
or a copy). Float PROD multiplies in a different order too: relative error
n * eps ~ 4e-6, hence rtol=1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import (Quantization, check, const, inp, one_op_model, random_array, run_edgeplex,
                    run_litert)

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.errors import InterpreterError, ModelError, UnsupportedOpError
from edgeplex.kernels.registry import OpResolver, builtin_registrations

TOLERANCE = {"SUM": dict(rtol=1e-5, atol=5e-5), "MEAN": dict(rtol=1e-5, atol=1e-5),
             "REDUCE_PROD": dict(rtol=1e-5, atol=1e-6)}
VERSION = {"MEAN": 3, "SUM": 2, "REDUCE_PROD": 2, "REDUCE_MAX": 3, "REDUCE_MIN": 3,
           "REDUCE_ANY": 1, "REDUCE_ALL": 1}
OP_TYPES = {
    "MEAN": [np.float32, np.int32, np.int64],
    "SUM": [np.float32, np.int32, np.int64],
    "REDUCE_PROD": [np.float32, np.int32, np.int64],
    "REDUCE_MAX": [np.float32, np.int8, np.uint8, np.int16, np.int32, np.int64],
    "REDUCE_MIN": [np.float32, np.int8, np.uint8, np.int16, np.int32, np.int64],
    "REDUCE_ANY": [np.bool_],
    "REDUCE_ALL": [np.bool_],
}
CASES = [(op, dt) for op, types in OP_TYPES.items() for dt in types]


def rand(shape, dtype=np.float32, seed=0):
    """Random values of any dtype (ints within +-100 for 32/64 bit)."""
    return random_array(np.random.default_rng(seed), tuple(shape), np.dtype(dtype))


def reduce_model(op, shape, axes, dtype, keep_dims=False, const_axis=True):
    """A one-op reduction model; the axis tensor is constant or an input."""
    axis = const(np.asarray(axes, np.int32)) if const_axis else inp(np.shape(axes), np.int32)
    return one_op_model(op, [inp(shape, dtype), axis], {"keep_dims": keep_dims},
                        version=VERSION[op])


#: Exact comparison that also takes NaN == NaN (numpy's assert_allclose, zero tolerance).
EXACT = dict(rtol=0.0, atol=0.0)


def check_reduce(op, model, inputs):
    """Compare, exactly unless the op is a float sum or product."""
    if inputs[0].dtype != np.float32 or op not in TOLERANCE:
        return check(model, inputs, **EXACT)
    return check(model, inputs, **TOLERANCE[op])


AXES = [((2, 3, 4), [1]), ((2, 3, 4), [0, 2]), ((2, 3, 4), [-1]), ((2, 3, 4), [2, -1, 2]),
        ((2, 3, 4), [0, 1, 2]), ((5,), [0]), ((1, 4, 4, 3), [1, 2]),
        ((3, 1, 2, 2, 2), [4, 0, -2])]


@pytest.mark.parametrize("op,dtype", CASES)
@pytest.mark.parametrize("keep_dims", [False, True])
def test_reduce_axes(op, dtype, keep_dims):
    """Negative, repeated, all and no axes, for every op and type."""
    for shape, axes in AXES:
        model = reduce_model(op, shape, axes, dtype, keep_dims)
        check_reduce(op, model, [rand(shape, dtype, seed=len(axes))])


@given(data=st.data())
def test_reduce_axis_sets_hypothesis(data):
    op, dtype = data.draw(st.sampled_from(CASES))
    rank = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank + 1))
    keep = data.draw(st.booleans())
    model = reduce_model(op, shape, axes, dtype, keep)
    check_reduce(op, model, [rand(shape, dtype, seed=rank)])


@pytest.mark.parametrize("op,dtype", CASES)
def test_reduce_empty_input(op, dtype):
    """No element to reduce: LiteRT writes the identity (MEAN: NaN / 0)."""
    model = reduce_model(op, (0, 3), [0], dtype)
    got = check(model, [np.zeros((0, 3), dtype)], **EXACT)
    assert got[0].shape == (3,)


@pytest.mark.parametrize("op,dtype", CASES)
def test_reduce_no_axes_is_a_copy(op, dtype):
    """An empty axis list. (It is given as an input: edgeplex's reader does not
    keep zero-element constants, which LiteRT treats as arena tensors anyway.)"""
    model = reduce_model(op, (2, 3), np.zeros(0, np.int32), dtype, const_axis=False)
    check(model, [rand((2, 3), dtype), np.zeros(0, np.int32)], exact=True)


@pytest.mark.parametrize("op", ["SUM", "REDUCE_MAX", "MEAN"])
def test_reduce_scalar_input_is_copied(op):
    model = reduce_model(op, (), [0], np.float32)
    check(model, [np.array(2.5, np.float32)], exact=True)


def test_integer_mean_truncates_toward_zero():
    model = reduce_model("MEAN", (3, 3), [1], np.int32)
    check(model, [np.array([[1, 2, 2], [-1, -2, -2], [7, -8, 0]], np.int32)], exact=True)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", ["SUM", "REDUCE_PROD"])
def test_integer_reductions_wrap(op, dtype):
    big = np.iinfo(dtype).max // 3
    x = np.array([[big, big, big, big], [-big, big, -3, 5]], dtype)
    check(reduce_model(op, (2, 4), [1], dtype), [x], exact=True)


@pytest.mark.parametrize("op", ["REDUCE_MAX", "REDUCE_MIN"])
@pytest.mark.parametrize("row", [[1, np.nan, 0, -1], [np.nan, 1, 2, 0], [1, 2, 3, np.nan],
                                 [np.nan, np.nan, np.nan, np.nan], [-np.inf, -np.inf, 2, 1],
                                 [np.inf, np.nan, np.inf, np.nan]])
def test_minmax_nan_and_inf_follow_litert(op, row):
    x = np.array([row, [3, 1, 2, 0]], np.float32)
    for axes in ([1], [0, 1]):
        check(reduce_model(op, (2, 4), axes, np.float32), [x], **EXACT)


@pytest.mark.parametrize("op,dtype", [("REDUCE_MAX", np.int8), ("REDUCE_MIN", np.uint8),
                                      ("REDUCE_MAX", np.int16)])
def test_minmax_quantized_raw(op, dtype):
    q = Quantization.of(0.05, 0 if dtype == np.int16 else 3)
    model = one_op_model(op, [inp((2, 5, 3), dtype, quantization=q), const([1], np.int32)],
                         {"keep_dims": True}, out_quantization=q)
    check(model, [rand((2, 5, 3), dtype)], exact=True)


def test_minmax_quantization_mismatch_rejected():
    model = one_op_model("REDUCE_MAX", [inp((2, 5), np.int8, quantization=Quantization.of(0.1)),
                                        const([1], np.int32)],
                         out_quantization=Quantization.of(0.2), out_shapes=[(2,)])
    with pytest.raises(ModelError, match="REDUCE_MAX.*quantization differ"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_prod_of_unquantized_small_ints(dtype):
    x = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype) * (1 if dtype == np.uint8 else -1)
    check(reduce_model("REDUCE_PROD", (2, 4), [1], dtype), [x], exact=True)


@pytest.mark.parametrize("op,dtype", [("MEAN", np.float32), ("SUM", np.int32),
                                      ("REDUCE_ANY", np.bool_)])
def test_reduce_non_constant_axes(op, dtype):
    """Axes computed at invoke: the output shape follows them."""
    model = reduce_model(op, (2, 3, 4), [0, 0], dtype, const_axis=False)
    x = rand((2, 3, 4), dtype)
    for axes in ([0, 2], [-1, 1], [1, 1]):
        check_reduce(op, model, [x, np.array(axes, np.int32)])


@pytest.mark.parametrize("keep_dims", [False, True])
def test_reduce_bad_axis(keep_dims):
    model = one_op_model("SUM", [inp((2, 3)), const([2], np.int32)], {"keep_dims": keep_dims},
                         out_shapes=[(2, 3)])
    with pytest.raises(RuntimeError):
        run_litert(model, [rand((2, 3))])
    with pytest.raises(ModelError, match="SUM.*axis 2 is out of range"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_reduce_bad_axis_at_invoke():
    model = reduce_model("REDUCE_MAX", (2, 3), [0], np.float32, const_axis=False)
    inputs = [rand((2, 3)), np.array([-3], np.int32)]
    with pytest.raises(RuntimeError, match="Invalid axis"):
        run_litert(model, inputs)
    with pytest.raises(InterpreterError, match="REDUCE_MAX.*axis -3 is out of range"):
        run_edgeplex(model, inputs)


@pytest.mark.parametrize("op", ["MEAN", "SUM", "REDUCE_PROD"])
def test_quantized_mean_sum_prod_left_to_integer_kernels(op):
    """Quantized MEAN/SUM/PROD requantize; this module does not claim them."""
    q = Quantization.of(0.1, 2)
    model = one_op_model(op, [inp((2, 3), np.int8, quantization=q), const([1], np.int32)],
                         out_quantization=q, out_shapes=[(2,)])
    ours = OpResolver(r for r in builtin_registrations()
                      if r.name.startswith("edgeplex.kernels.reduce."))
    with pytest.raises(UnsupportedOpError, match=f"{op}.*type INT8"):
        edgeplex.Interpreter(model_content=model, resolver=ours).allocate_tensors()


# -- ARG_MAX / ARG_MIN ------------------------------------------------------------------------
ARG_TYPES = [np.float32, np.int8, np.uint8, np.int32, np.bool_]


@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
@pytest.mark.parametrize("dtype", ARG_TYPES)
@pytest.mark.parametrize("shape,axis", [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), -2),
                                        ((2, 1, 6), 2)])
def test_arg_min_max(op, dtype, shape, axis):
    """Ties (few distinct values) go to the first index."""
    x = np.random.default_rng(axis + 5).integers(0, 3, shape).astype(dtype)
    for out_type, axis_dtype in [("INT32", np.int32), ("INT64", np.int64)]:
        model = one_op_model(op, [inp(shape, dtype), const([axis], axis_dtype)],
                             {"output_type": out_type}, out_dtype=out_type.lower(),
                             version=2)
        check(model, [x], exact=True)


@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
def test_arg_min_max_nan_rows(op):
    x = np.array([[1, np.nan, 3, 2], [np.nan, 5, 0, 1], [np.nan] * 4, [-np.inf] * 2 + [np.nan] * 2,
                  [2, 2, np.nan, 2]], np.float32)
    model = one_op_model(op, [inp(x.shape), const(1, np.int32)], {"output_type": "INT32"},
                         out_dtype=np.int32)
    check(model, [x], exact=True)


def test_arg_max_non_constant_axis():
    model = one_op_model("ARG_MAX", [inp((3, 4)), inp((1,), np.int32)],
                         {"output_type": "INT64"}, out_dtype=np.int64)
    x = rand((3, 4))
    for axis in (0, 1, -1):
        got = check(model, [x, np.array([axis], np.int32)], exact=True)
        assert got[0].shape == ((4,) if axis == 0 else (3,))


@pytest.mark.parametrize("options,axis,out_dtype,error,match", [
    ({}, [1], np.float32, UnsupportedOpError, "output_type FLOAT32"),
    ({"output_type": "INT32"}, [0, 1], np.int32, ModelError, "one value"),
    ({"output_type": "INT32"}, [2], np.int32, ModelError, "axis 2 is out of range"),
    ({"output_type": "INT64"}, [1], np.int32, ModelError, "differs from output_type"),
])
def test_arg_max_errors(options, axis, out_dtype, error, match):
    model = one_op_model("ARG_MAX", [inp((3, 4)), const(axis, np.int32)], options,
                         out_dtype=out_dtype, out_shapes=[(3,)])
    with pytest.raises(error, match=f"ARG_MAX.*{match}"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


# -- CUMSUM ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shape,axis", [((6,), 0), ((3, 5), 1), ((3, 5), -2), ((2, 3, 4), 1),
                                        ((2, 1, 3), 1)])
def test_cumsum(dtype, exclusive, reverse, shape, axis):
    model = one_op_model("CUMSUM", [inp(shape, dtype), const(axis, np.int32)],
                         {"exclusive": exclusive, "reverse": reverse})
    check(model, [rand(shape, dtype)], exact=True)


def test_cumsum_non_constant_axis():
    model = one_op_model("CUMSUM", [inp((3, 4)), inp((), np.int32)], {"exclusive": True})
    x = rand((3, 4))
    for axis in (0, 1, -1):
        check(model, [x, np.array(axis, np.int32)], exact=True)


def test_cumsum_bad_axis():
    model = one_op_model("CUMSUM", [inp((3, 4)), const(2, np.int32)], out_shapes=[(3, 4)])
    with pytest.raises(ModelError, match="CUMSUM.*axis 2 is out of range"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


# -- a model of the family ---------------------------------------------------------------------
def test_reduction_chain_model():
    """MEAN (keep_dims) -> REDUCE_MAX -> CUMSUM, and ARG_MAX of the input."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 4, 5, 3), np.float32)
    mean = g.op("MEAN", [x, g.constant("a1", np.array([1], np.int32))], {"keep_dims": True})
    peak = g.op("REDUCE_MAX", [mean, g.constant("a2", np.array([-1, 1], np.int32))])
    run = g.op("CUMSUM", [peak, g.constant("a3", np.array(1, np.int32))], {"reverse": True})
    arg = g.op("ARG_MAX", [x, g.constant("a4", np.array([3], np.int32))],
               {"output_type": "INT32"}, dtype=np.int32)
    g.output(run, arg)
    check(mb.build(), [rand((2, 4, 5, 3))], rtol=1e-5, atol=1e-5)
