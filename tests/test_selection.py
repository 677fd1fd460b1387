"""SELECT, SELECT_V2, WHERE, TOPK_V2 and ONE_HOT against LiteRT.

All of these pick or place values without arithmetic, so every comparison
is exact (NaN compared as equal to NaN where it can occur).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import check, const, inp, one_op_model, random_array, run_edgeplex, run_litert

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.errors import InterpreterError, ModelError, UnsupportedOpError

DTYPES = [np.float32, np.float16, np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_]
EXACT_NAN = dict(rtol=0.0, atol=0.0)


def rand(shape, dtype=np.float32, seed=0):
    """Random values of any dtype (full int8/uint8/int16 range)."""
    return random_array(np.random.default_rng(seed), tuple(shape), np.dtype(dtype))


def allocate(model: bytes) -> None:
    """allocate_tensors in edgeplex (for error tests)."""
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def two_output_model(op, inputs, values_dtype, index_dtype, shape=None, version=1):
    """A model of an op with a values output and an index output."""
    mb = ModelBuilder()
    g = mb.main
    refs = [g.constant(f"c{i}", x.value) if hasattr(x, "value") else
            g.input(f"i{i}", x.shape, x.dtype) for i, x in enumerate(inputs)]
    outs = [g.tensor("values", shape, values_dtype), g.tensor("indices", shape, index_dtype)]
    g.op(op, refs, outputs=outs, version=version)
    g.output(*outs)
    return mb.build()


# -- SELECT / SELECT_V2 ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond_shape,shape", [((2, 3), (2, 3)), ((), (2, 3)), ((2,), (2, 3)),
                                              ((4,), (4,)), ((3,), (3, 2, 2))])
def test_select(dtype, cond_shape, shape):
    model = one_op_model("SELECT", [inp(cond_shape, np.bool_), inp(shape, dtype),
                                    inp(shape, dtype)], version=4, out_dtype=dtype)
    check(model, [rand(cond_shape, np.bool_), rand(shape, dtype, 1), rand(shape, dtype, 2)],
          exact=True)


def test_select_rejects_broadcasting():
    """SELECT (v1) does not broadcast; SELECT_V2 does."""
    model = one_op_model("SELECT", [inp((2, 3), np.bool_), inp((2, 3)), inp((1, 3))],
                         out_shapes=[(2, 3)], out_dtype=np.float32)
    with pytest.raises(ModelError, match="SELECT.*same shape"):
        allocate(model)
    model = one_op_model("SELECT", [inp((3,), np.bool_), inp((2, 3)), inp((2, 3))],
                         out_shapes=[(2, 3)], out_dtype=np.float32)
    with pytest.raises(RuntimeError):
        run_litert(model, [rand((3,), np.bool_), rand((2, 3)), rand((2, 3))])
    with pytest.raises(ModelError, match="SELECT.*condition"):
        allocate(model)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((2, 1, 1), (1, 3, 1), (4,)), ((), (2, 3), (2, 3)),
                                    ((2, 3), (), (1,)), ((1, 4), (3, 1), (3, 4))])
def test_select_v2_broadcasting(dtype, shapes):
    c, x, y = shapes
    model = one_op_model("SELECT_V2", [inp(c, np.bool_), inp(x, dtype), inp(y, dtype)],
                         version=2, out_dtype=dtype)
    check(model, [rand(c, np.bool_), rand(x, dtype, 1), rand(y, dtype, 2)], exact=True)


@given(data=st.data())
def test_select_v2_hypothesis(data):
    out = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))

    def operand():
        rank = data.draw(st.integers(0, len(out)))
        return tuple(d if data.draw(st.booleans()) else 1 for d in out[len(out) - rank:])
    c, x, y = operand(), operand(), operand()
    model = one_op_model("SELECT_V2", [inp(c, np.bool_), inp(x), inp(y)], out_dtype=np.float32)
    check(model, [rand(c, np.bool_), rand(x, seed=1), rand(y, seed=2)], exact=True)


def test_select_v2_incompatible_shapes():
    model = one_op_model("SELECT_V2", [inp((2,), np.bool_), inp((3,)), inp((3,))],
                         out_shapes=[(3,)], out_dtype=np.float32)
    with pytest.raises(ModelError, match="SELECT_V2.*do not broadcast"):
        allocate(model)


# -- WHERE ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.bool_, np.float32, np.int8, np.uint8, np.int32, np.int64])
@pytest.mark.parametrize("shape", [(6,), (3, 4), (2, 3, 2), (2, 1, 3, 2)])
def test_where(dtype, shape):
    x = rand(shape, dtype)
    x.reshape(-1)[::3] = 0
    model = one_op_model("WHERE", [inp(shape, dtype)], out_dtype=np.int64, version=2)
    check(model, [x], exact=True)


def test_where_float_nan_and_negative_zero():
    model = one_op_model("WHERE", [inp((5,))], out_dtype=np.int64)
    check(model, [np.array([0, np.nan, -0.0, 2, np.inf], np.float32)], exact=True)


def test_where_shape_follows_data():
    model = one_op_model("WHERE", [inp((3, 2), np.bool_)], out_dtype=np.int64)
    for x in (np.ones((3, 2), bool), rand((3, 2), np.bool_), np.eye(3, 2, dtype=bool)):
        got = check(model, [x], exact=True)
        assert got[0].shape == (int(x.sum()), 2)


def test_where_nothing_true():
    """LiteRT's Python binding cannot return a zero-size dynamic tensor, so
    this one compares with the definition (numpy's argwhere)."""
    model = one_op_model("WHERE", [inp((3, 2), np.bool_)], out_dtype=np.int64)
    got = run_edgeplex(model, [np.zeros((3, 2), bool)])[0]
    assert got.dtype == np.int64 and got.shape == (0, 2)


def test_where_constant_condition_has_static_shape():
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (3, 2), np.float32)
    where = g.op("WHERE", [g.constant("c", np.array([[1, 0], [0, 0], [1, 1]], bool))],
                 dtype=np.int64)
    g.output(where, x)
    model = mb.build()
    assert edgeplex.read_model(model).main.tensors[where.index].shape == (3, 2)
    check(model, [rand((3, 2))], exact=True)


# -- TOPK_V2 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("shape,k", [((7,), 3), ((3, 5), 1), ((3, 5), 5), ((2, 3, 6), 4),
                                     ((2, 4), 0)])
def test_topk(dtype, shape, k):
    """Few distinct values, so ties are frequent: lower index first."""
    x = np.random.default_rng(k).integers(0, 4, shape).astype(dtype)
    model = two_output_model("TOPK_V2", [inp(shape, dtype), const(k, np.int32)], dtype, np.int32)
    check(model, [x], exact=True)
    check(model, [rand(shape, dtype)], exact=True)


def test_topk_int16_k_and_indices():
    model = two_output_model("TOPK_V2", [inp((3, 9)), const(4, np.int16)], np.float32, np.int16,
                             version=3)
    check(model, [rand((3, 9))], exact=True)


def test_topk_extremes_and_nan():
    """NaN sorts after -inf; equal infinities keep index order."""
    x = np.array([[np.nan, 1, np.nan, 2, -np.inf], [np.inf, 0, np.inf, -np.inf, 0]], np.float32)
    model = two_output_model("TOPK_V2", [inp((2, 5)), const(5, np.int32)], np.float32, np.int32)
    check(model, [x], **EXACT_NAN)
    ints = np.array([[-128, 127, 0, -128, 127]], np.int8)
    model = two_output_model("TOPK_V2", [inp((1, 5), np.int8), const(3, np.int32)], np.int8,
                             np.int32)
    check(model, [ints], exact=True)


def test_topk_non_constant_k():
    model = two_output_model("TOPK_V2", [inp((2, 6)), inp((), np.int32)], np.float32, np.int32)
    x = rand((2, 6))
    for k in (2, 6, 1):
        got = check(model, [x, np.array(k, np.int32)], exact=True)
        assert got[0].shape == (2, k)
    with pytest.raises(InterpreterError, match="TOPK_V2.*k = 7"):
        run_edgeplex(model, [x, np.array(7, np.int32)])


def test_topk_k_too_large():
    model = two_output_model("TOPK_V2", [inp((2, 5)), const(6, np.int32)], np.float32, np.int32,
                             shape=(2, 6))
    with pytest.raises(RuntimeError, match="higher than"):
        run_litert(model, [rand((2, 5))])
    with pytest.raises(ModelError, match=r"TOPK_V2.*k = 6 must lie in \[0, 5\]"):
        allocate(model)


def test_topk_float_index_output_unsupported():
    model = two_output_model("TOPK_V2", [inp((2, 5)), const(2, np.int32)], np.float32,
                             np.float32, shape=(2, 2))
    with pytest.raises(UnsupportedOpError, match="TOPK_V2.*index output type FLOAT32"):
        allocate(model)


# -- ONE_HOT ----------------------------------------------------------------------------------
def one_hot_model(ishape, depth, on, off, axis, dtype=np.float32, index_dtype=np.int32):
    """ONE_HOT with constant depth/on/off."""
    return one_op_model("ONE_HOT", [inp(ishape, index_dtype), const(depth, np.int32),
                                    const(on, dtype), const(off, dtype)], {"axis": axis},
                        out_dtype=dtype)


@pytest.mark.parametrize("ishape,axis", [((4,), -1), ((4,), 0), ((4,), 1), ((2, 3), -1),
                                         ((2, 3), 0), ((2, 3), 1), ((2, 3), 2), ((), -1),
                                         ((2, 1, 3), 2)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_one_hot_axes(ishape, axis, index_dtype):
    """Indices include -1 and depth: those rows are all off."""
    idx = np.random.default_rng(1).integers(-1, 6, ishape).astype(index_dtype)
    check(one_hot_model(ishape, 5, 2.5, -1.0, axis, index_dtype=index_dtype), [idx],
          exact=True)


@pytest.mark.parametrize("dtype,on,off", [(np.float32, 1.0, 0.0), (np.int8, -3, 7),
                                          (np.uint8, 200, 1), (np.int32, 5, -5),
                                          (np.int64, 2**40, -1), (np.bool_, True, False)])
def test_one_hot_types(dtype, on, off):
    check(one_hot_model((3, 2), 4, on, off, -1, dtype), [np.array([[0, 3], [1, 9], [2, 2]],
                                                                  np.int32)], exact=True)


def test_one_hot_depth_zero():
    check(one_hot_model((3,), 0, 1.0, 0.0, -1), [np.array([0, 1, 2], np.int32)], exact=True)


def test_one_hot_non_constant_depth_and_values():
    model = one_op_model("ONE_HOT", [inp((3,), np.int32), inp((), np.int32), inp(()), inp(())],
                         {"axis": 0}, out_dtype=np.float32)
    idx = np.array([0, 2, 4], np.int32)
    for depth in (3, 5):
        got = check(model, [idx, np.array(depth, np.int32), np.array(7, np.float32),
                            np.array(-2, np.float32)], exact=True)
        assert got[0].shape == (depth, 3)


@pytest.mark.parametrize("depth,axis,on_dtype,match", [
    (-1, -1, np.float32, "depth -1"), (3, 2, np.float32, "axis 2"),
    (3, -2, np.float32, "axis -2"), (3, -1, np.int32, "must share"),
])
def test_one_hot_errors(depth, axis, on_dtype, match):
    model = one_op_model("ONE_HOT", [inp((3,), np.int32), const(depth, np.int32),
                                     const(1, on_dtype), const(0.0, np.float32)],
                         {"axis": axis}, out_dtype=np.float32, out_shapes=[(3, 3)])
    with pytest.raises(ModelError, match=f"ONE_HOT.*{match}"):
        allocate(model)


# -- a model of the family -----------------------------------------------------------------------
def test_selection_model():
    """TOPK_V2 -> ONE_HOT of the winners -> SELECT_V2 against a mask -> WHERE."""
    mb = ModelBuilder()
    g = mb.main
    scores = g.input("scores", (2, 6), np.float32)
    values = g.tensor("values", None, np.float32)
    indices = g.tensor("indices", None, np.int32)
    g.op("TOPK_V2", [scores, g.constant("k", np.array(2, np.int32))],
         outputs=[values, indices])
    hot = g.op("ONE_HOT", [indices, g.constant("depth", np.array(6, np.int32)),
                           g.constant("on", np.array(True)), g.constant("off", np.array(False))],
               {"axis": -1}, dtype=np.bool_)
    mask = g.op("REDUCE_ANY", [hot, g.constant("ax", np.array([1], np.int32))])
    kept = g.op("SELECT_V2", [mask, scores, g.constant("zero", np.float32(0))], dtype=np.float32)
    where = g.op("WHERE", [mask], dtype=np.int64)
    g.output(values, kept, where)
    check(mb.build(), [rand((2, 6))], exact=True)
