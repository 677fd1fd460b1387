"""GATHER, GATHER_ND, SCATTER_ND and EMBEDDING_LOOKUP against LiteRT.

Gathers move data, so every comparison is exact (bit for bit). The one
float computation, hybrid EMBEDDING_LOOKUP's ``int8 * scale``, is a single
float32 multiply in both runtimes and is compared exactly too. SCATTER_ND
adds duplicate float updates in index order in both runtimes, so it is
exact as well.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import (LiteRT, Quantization, check, const, inp, one_op_model, random_array,
                    run_edgeplex, run_litert)

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.errors import InterpreterError, ModelError, UnsupportedOpError

DTYPES = [np.float32, np.float16, np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_]
INDEX_DTYPES = [np.int16, np.int32, np.int64]


def rand(shape, dtype=np.float32, seed=0):
    """Random values of any dtype (full int8/uint8/int16 range)."""
    return random_array(np.random.default_rng(seed), tuple(shape), np.dtype(dtype))


def rand_index(shape, limit, dtype=np.int32, seed=1):
    """Valid random indices in [0, limit)."""
    return np.random.default_rng(seed).integers(0, limit, shape).astype(dtype)


def litert_fails(model: bytes, inputs) -> str:
    """The error text of LiteRT running ``model`` (fails the test if it runs)."""
    with pytest.raises(RuntimeError) as info:
        run_litert(model, inputs)
    return str(info.value)


def allocate(model: bytes) -> None:
    """allocate_tensors in edgeplex (for error tests)."""
    edgeplex.Interpreter(model_content=model).allocate_tensors()


# -- GATHER ---------------------------------------------------------------------
@pytest.mark.parametrize("pshape,axis,ishape", [
    ((5,), 0, (3,)), ((5,), 0, ()), ((4, 3), 0, (2,)), ((4, 3), 1, (2, 2)),
    ((4, 3), -1, (5,)), ((2, 3, 4), 1, (2, 3)), ((2, 3, 4), -3, (1,)), ((2, 3, 4, 2), 2, (3,)),
    ((3, 4), 1, (0,)), ((1, 6, 2), 1, (2, 1, 2)), ((2, 3, 4), 1, ()), ((4, 3), -1, ()),
])
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
def test_gather_axes(pshape, axis, ishape, index_dtype):
    model = one_op_model("GATHER", [inp(pshape), inp(ishape, index_dtype)], {"axis": axis},
                         version=7)
    n = pshape[axis]
    check(model, [rand(pshape), rand_index(ishape, n, index_dtype)], exact=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_dtypes(dtype):
    model = one_op_model("GATHER", [inp((4, 5), dtype), inp((3, 2), np.int32)], {"axis": 1})
    check(model, [rand((4, 5), dtype), rand_index((3, 2), 5)], exact=True)


def test_gather_constant_params_int8_quantized():
    q = Quantization.of(0.25, -3)
    params = const(rand((6, 4), np.int8), quantization=q)
    model = one_op_model("GATHER", [params, inp((3,), np.int32)], out_quantization=q)
    check(model, [rand_index((3,), 6)], exact=True)


@pytest.mark.parametrize("pshape,ishape,axis,batch_dims", [
    ((2, 5), (2, 3), 1, 1), ((2, 3, 5), (2, 4), 2, 1), ((2, 3, 5, 2), (2, 3, 4), 2, 2),
    ((2, 3, 5), (2, 3, 4), 2, -1), ((3, 4, 2), (3, 2, 2), 1, 1), ((2, 3, 4), (2, 3), -1, 1),
])
def test_gather_batch_dims(pshape, ishape, axis, batch_dims):
    model = one_op_model("GATHER", [inp(pshape), inp(ishape, np.int32)],
                         {"axis": axis, "batch_dims": batch_dims})
    check(model, [rand(pshape), rand_index(ishape, pshape[axis])], exact=True)


@given(data=st.data())
def test_gather_hypothesis(data):
    rank = data.draw(st.integers(1, 4))
    pshape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    axis = data.draw(st.integers(0, rank - 1))
    batch_dims = data.draw(st.integers(0, axis))
    extra = data.draw(st.lists(st.integers(0, 3), max_size=2))
    ishape = pshape[:batch_dims] + tuple(extra)
    neg_axis = data.draw(st.booleans())
    model = one_op_model("GATHER", [inp(pshape), inp(ishape, np.int32)],
                         {"axis": axis - rank if neg_axis else axis, "batch_dims": batch_dims})
    check(model, [rand(pshape), rand_index(ishape, pshape[axis])], exact=True)


@pytest.mark.parametrize("bad", [3, -1, 100])
def test_gather_index_out_of_range(bad):
    model = one_op_model("GATHER", [inp((3, 4)), inp((2,), np.int32)])
    inputs = [rand((3, 4)), np.array([0, bad], np.int32)]
    assert "gather" in litert_fails(model, inputs).lower()
    with pytest.raises(InterpreterError, match=rf"GATHER.*index {bad} .*out of range \[0, 3\)"):
        run_edgeplex(model, inputs)


@pytest.mark.parametrize("bad", [3, -1])
def test_gather_scalar_index_out_of_range(bad):
    """A single index (the kernel's plain-copy path) is checked like the others."""
    model = one_op_model("GATHER", [inp((3, 4)), inp((), np.int32)])
    inputs = [rand((3, 4)), np.array(bad, np.int32)]
    assert "gather" in litert_fails(model, inputs).lower()
    with pytest.raises(InterpreterError, match=rf"GATHER.*index {bad} .*out of range \[0, 3\)"):
        run_edgeplex(model, inputs)


@pytest.mark.parametrize("options", [{"axis": 2}, {"axis": -3}, {"axis": 1, "batch_dims": 2},
                                     {"axis": 0, "batch_dims": 1}])
def test_gather_bad_axis_or_batch_dims(options):
    model = one_op_model("GATHER", [inp((3, 4)), inp((3, 2), np.int32)], options,
                         out_shapes=[(3, 2)])
    with pytest.raises(ModelError, match=r"GATHER.*(axis|batch_dims)"):
        allocate(model)


def test_gather_batch_dims_mismatch():
    model = one_op_model("GATHER", [inp((3, 4)), inp((2, 2), np.int32)],
                         {"axis": 1, "batch_dims": 1}, out_shapes=[(3, 2)])
    with pytest.raises(ModelError, match="GATHER.*must match"):
        allocate(model)


def test_gather_float_positions_unsupported():
    model = one_op_model("GATHER", [inp((3, 4)), inp((2,), np.float32)], out_shapes=[(2, 4)])
    with pytest.raises(UnsupportedOpError, match="GATHER.*positions of type FLOAT32"):
        allocate(model)


# -- GATHER_ND --------------------------------------------------------------------
@pytest.mark.parametrize("pshape,ishape", [
    ((4,), (2, 1)), ((3, 4), (2, 1)), ((3, 4), (2, 2)), ((3, 4), (5, 2, 2)),
    ((2, 3, 4), (3, 1)), ((2, 3, 4), (3, 2)), ((2, 3, 4), (2, 2, 3)), ((2, 3, 4), (2,)),
    ((3, 4), (0, 2)),
])
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
def test_gather_nd_shapes(pshape, ishape, index_dtype):
    model = one_op_model("GATHER_ND", [inp(pshape), inp(ishape, index_dtype)], version=4)
    depth = ishape[-1]
    cols = [rand_index(ishape[:-1] + (1,), pshape[d], index_dtype, seed=d) for d in range(depth)]
    idx = np.concatenate(cols, axis=-1) if cols else np.zeros(ishape, index_dtype)
    check(model, [rand(pshape), idx], exact=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_nd_dtypes(dtype):
    model = one_op_model("GATHER_ND", [inp((3, 4, 2), dtype), inp((5, 2), np.int32)])
    idx = np.stack([rand_index((5,), 3, seed=1), rand_index((5,), 4, seed=2)], axis=-1)
    check(model, [rand((3, 4, 2), dtype), idx], exact=True)


@pytest.mark.parametrize("bad_index", [[0, 4], [1, -1], [3, 0], [-1, 5]])
def test_gather_nd_index_out_of_range(bad_index):
    """Every coordinate is checked on its own (LiteRT too): [0, 4] in a 3x4
    tensor would alias element [1, 0] through the flat offset."""
    model = one_op_model("GATHER_ND", [inp((3, 4)), inp((1, 2), np.int32)])
    inputs = [rand((3, 4)), np.array([bad_index], np.int32)]
    litert_fails(model, inputs)
    with pytest.raises(InterpreterError, match="GATHER_ND.*out of range"):
        run_edgeplex(model, inputs)


def test_gather_nd_empty_index_tuples_rejected():
    model = one_op_model("GATHER_ND", [inp((2, 3)), inp((2, 0), np.int32)],
                         out_shapes=[(2, 2, 3)])
    litert_fails(model, [rand((2, 3)), np.zeros((2, 0), np.int32)])
    with pytest.raises(UnsupportedOpError, match="GATHER_ND.*empty last dimension"):
        allocate(model)


def test_gather_nd_depth_exceeds_rank():
    model = one_op_model("GATHER_ND", [inp((3, 4)), inp((1, 3), np.int32)],
                         out_shapes=[(1,)])
    with pytest.raises(ModelError, match="GATHER_ND.*index depth 3 exceeds"):
        allocate(model)


# -- SCATTER_ND -------------------------------------------------------------------
@pytest.mark.parametrize("ishape,shape", [
    ((4, 1), (6,)), ((3, 1), (5, 2)), ((3, 2), (5, 2)), ((2, 2, 2), (3, 3, 4)),
    ((4, 3), (2, 3, 2)), ((0, 1), (3, 2)),
])
def test_scatter_nd_shapes(ishape, shape):
    depth = ishape[-1]
    ushape = ishape[:-1] + shape[depth:]
    cols = [rand_index(ishape[:-1] + (1,), shape[d], seed=d) for d in range(depth)]
    idx = np.concatenate(cols, axis=-1)
    model = one_op_model("SCATTER_ND", [inp(ishape, np.int32), inp(ushape),
                                        const(shape, np.int32)], out_dtype=np.float32)
    check(model, [idx, rand(ushape)], exact=True)


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8, np.int32, np.int64, np.bool_])
def test_scatter_nd_duplicates_accumulate(dtype):
    """Duplicate indices add (integer wrap-around, OR for bool)."""
    idx = np.array([[1], [3], [1], [1], [0]], np.int32)
    model = one_op_model("SCATTER_ND", [inp((5, 1), np.int32), inp((5, 3), dtype),
                                        const([4, 3], np.int32)], out_dtype=dtype)
    check(model, [idx, rand((5, 3), dtype)], exact=True)


def test_scatter_nd_non_constant_shape_is_dynamic():
    model = one_op_model("SCATTER_ND", [inp((3, 2), np.int32), inp((3,)),
                                        inp((2,), np.int32)], out_dtype=np.float32)
    idx = np.array([[0, 1], [2, 2], [0, 1]], np.int32)
    for shape in ([3, 3], [4, 5]):
        check(model, [idx, rand((3,)), np.array(shape, np.int32)], exact=True)


def test_scatter_nd_index_out_of_range():
    model = one_op_model("SCATTER_ND", [inp((1, 2), np.int32), inp((1,)),
                                        const([3, 4], np.int32)], out_dtype=np.float32)
    inputs = [np.array([[0, 5]], np.int32), np.ones(1, np.float32)]
    litert_fails(model, inputs)
    with pytest.raises(InterpreterError, match=r"SCATTER_ND.*index 5 .*\[0, 4\)"):
        run_edgeplex(model, inputs)


def test_scatter_nd_bad_updates_shape():
    model = one_op_model("SCATTER_ND", [inp((2, 1), np.int32), inp((2, 3)),
                                        const([4, 2], np.int32)], out_shapes=[(4, 2)],
                         out_dtype=np.float32)
    with pytest.raises(ModelError, match="SCATTER_ND.*updates have shape"):
        allocate(model)


# -- EMBEDDING_LOOKUP ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("vshape", [(5, 3), (4, 2, 3)])
def test_embedding_lookup(dtype, vshape):
    model = one_op_model("EMBEDDING_LOOKUP", [inp((6,), np.int32), inp(vshape, dtype)],
                         version=3, out_dtype=dtype)
    check(model, [rand_index((6,), vshape[0]), rand(vshape, dtype)], exact=True)


@pytest.mark.parametrize("vtype", [np.int8, np.uint8])
@pytest.mark.parametrize("otype", [np.float32, np.float16])
@pytest.mark.parametrize("per_row", [False, True])
def test_embedding_lookup_hybrid(vtype, otype, per_row):
    """Quantized rows with a float output are dequantized (uint8 bytes are read
    as int8, as TFLite does)."""
    rng = np.random.default_rng(3)
    scale = rng.uniform(0.01, 0.5, 5 if per_row else 1)
    q = Quantization.of(scale, 0, axis=0)
    value = const(rand((5, 2, 3), vtype), quantization=q)
    model = one_op_model("EMBEDDING_LOOKUP", [inp((4,), np.int32), value], out_dtype=otype)
    check(model, [rand_index((4,), 5)], exact=True)


def test_embedding_lookup_index_out_of_range():
    model = one_op_model("EMBEDDING_LOOKUP", [inp((2,), np.int32), inp((3, 4))],
                         out_dtype=np.float32)
    inputs = [np.array([0, 3], np.int32), rand((3, 4))]
    assert "out of bounds" in litert_fails(model, inputs)
    with pytest.raises(InterpreterError, match=r"EMBEDDING_LOOKUP.*index 3 .*\[0, 3\)"):
        run_edgeplex(model, inputs)


def test_embedding_lookup_hybrid_asymmetric_rejected():
    value = const(rand((5, 3), np.int8), quantization=Quantization.of(0.1, 4))
    model = one_op_model("EMBEDDING_LOOKUP", [inp((2,), np.int32), value],
                         out_dtype=np.float32, out_shapes=[(2, 3)])
    with pytest.raises(ModelError, match="EMBEDDING_LOOKUP.*symmetric"):
        allocate(model)


# -- a model chaining the family ------------------------------------------------------
def test_gather_family_model():
    """ids -> EMBEDDING_LOOKUP -> GATHER (axis 1) -> GATHER_ND -> SCATTER_ND."""
    mb = ModelBuilder()
    g = mb.main
    ids = g.input("ids", (4,), np.int32)
    table = g.constant("table", rand((10, 6, 3)))
    pick = g.input("pick", (2,), np.int32)
    nd = g.constant("nd", np.array([[0, 1], [3, 0], [2, 1]], np.int32))
    emb = g.op("EMBEDDING_LOOKUP", [ids, table], dtype=np.float32)
    cols = g.op("GATHER", [emb, pick], {"axis": 1})
    rows = g.op("GATHER_ND", [cols, nd])
    where = g.constant("where", np.array([[4], [0], [4]], np.int32))
    shape = g.constant("shape", np.array([5, 3], np.int32))
    out = g.op("SCATTER_ND", [where, rows, shape], dtype=np.float32)
    g.output(cols, out)
    model = mb.build()
    check(model, [rand_index((4,), 10), rand_index((2,), 6)], exact=True)


def test_litert_oracle_is_live():
    """The harness compares real values: a wrong answer must fail."""
    model = one_op_model("GATHER", [inp((3,)), inp((1,), np.int32)])
    got = run_litert(model, [np.array([1, 2, 3], np.float32), np.array([2], np.int32)])
    assert got[0].tolist() == [3.0]
    assert LiteRT is not None
