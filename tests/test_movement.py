"""RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, REVERSE_V2, TILE, BROADCAST_TO,
DEPTH_TO_SPACE, SPACE_TO_DEPTH, SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND
against LiteRT's builtin kernels.

Tolerance: none. These ops only move bytes, so outputs must be bit-identical
(check_exact compares dtype, shape and raw bytes).
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeplex import Quantization
from movement_helpers import (SIZED, UnsupportedOpError, both_reject, check_exact,
                                    dtypes, edgeplex_rejects, i32, i64, others, quant_for)
from oracle import const, inp, one_op_model, run_edgeplex


def qin(shape: tuple, dtype: object = np.float32) -> object:
    return inp(shape, dtype, quant_for(dtype))


def model(op: str, ins: list, options: dict | None = None, dtype: object = np.float32,
          **kw: object) -> bytes:
    """One op whose output carries the input's quantization (if any)."""
    return one_op_model(op, ins, options, out_quantization=quant_for(dtype), **kw)


# -- RESHAPE -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_reshape_types(dtype: object) -> None:
    check_exact(model("RESHAPE", [qin((2, 3, 4), dtype), const([4, -1], i32)], dtype=dtype))


@pytest.mark.parametrize("in_shape,target", [
    ((2, 3, 4), [24]), ((2, 3, 4), [-1]), ((2, 3, 4), [3, -1, 2]), ((6,), [1, 6, 1]),
    ((1,), []), ((), [1, 1]), ((), [-1]), ((0, 3), [3, 0]), ((4, 0), [0, 2, 2]),
    ((2, 3, 4, 5, 1, 2), [5, 4, 3, 2, 1, 1, 2]),
])
def test_reshape_shape_input(in_shape: tuple, target: list) -> None:
    check_exact(model("RESHAPE", [inp(in_shape), const(np.array(target, i32))]))


@pytest.mark.parametrize("new_shape", [[8, 3], [-1, 4], [2, 2, 2, 3], [0]])
def test_reshape_new_shape_option(new_shape: list) -> None:
    shape = (1,) if new_shape == [0] else (2, 3, 4)   # [0] is TFLite's legacy scalar
    check_exact(model("RESHAPE", [inp(shape)], {"new_shape": new_shape}))


def test_reshape_shape_input_wins_over_option() -> None:
    check_exact(model("RESHAPE", [inp((2, 6)), const([3, 4], i32)], {"new_shape": [4, 3]}))


def test_reshape_int64_shape_input_falls_back_to_option() -> None:
    """TFLite reads only int32 shape vectors; otherwise it uses new_shape."""
    check_exact(model("RESHAPE", [inp((2, 6)), const([12], i64)], {"new_shape": [4, 3]}))
    m = model("RESHAPE", [inp((2, 6)), const([12], i64)], out_shapes=[(12,)])
    both_reject(m, match="RESHAPE.*reshape")


@pytest.mark.parametrize("target", [[4, 6], [-1, 2], [2, 3, 2, 2]])
def test_reshape_dynamic_shape(target: list) -> None:
    """A shape input that is a model input: the output shape is data dependent."""
    m = model("RESHAPE", [inp((2, 3, 4)), inp((len(target),), i32)],
              out_shapes=[[1] * len(target)])
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    check_exact(m, [x, np.array(target, i32)])


@pytest.mark.parametrize("target", [[5, 5], [-1, -1], [7, -1], [0, -1]])
def test_reshape_incompatible(target: list) -> None:
    m = model("RESHAPE", [inp((2, 3, 4)), const(np.array(target, i32))], out_shapes=[[1, 1]])
    both_reject(m, match="RESHAPE.*(reshape|-1)")


def test_reshape_incompatible_dynamic_shape_fails_at_invoke() -> None:
    m = model("RESHAPE", [inp((2, 3)), inp((2,), i32)], out_shapes=[[1, 1]])
    inputs = [np.zeros((2, 3), np.float32), np.array([4, 2], i32)]
    both_reject(m, match="RESHAPE.*reshape", inputs=inputs)


# -- SQUEEZE, EXPAND_DIMS -----------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_squeeze_types(dtype: object) -> None:
    check_exact(model("SQUEEZE", [qin((1, 3, 1, 2), dtype)], dtype=dtype))


@pytest.mark.parametrize("shape,dims", [
    ((1, 3, 1, 2), None), ((1, 3, 1, 2), [0]), ((1, 3, 1, 2), [-2]), ((1, 3, 1, 2), [2, 0]),
    ((1, 1, 1), None), ((1,), [0]), ((4, 1), [-1]), ((3, 4), None),
])
def test_squeeze_dims(shape: tuple, dims: list | None) -> None:
    check_exact(model("SQUEEZE", [inp(shape)], {"squeeze_dims": dims} if dims else None))


@pytest.mark.parametrize("dims,message", [([1], "size 3"), ([4], "out of range"),
                                          ([-5], "out of range")])
def test_squeeze_bad_dims(dims: list, message: str) -> None:
    m = model("SQUEEZE", [inp((1, 3, 1, 2))], {"squeeze_dims": dims}, out_shapes=[[3, 2]])
    both_reject(m, match=f"SQUEEZE.*{message}")


@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_expand_dims_types(dtype: object) -> None:
    check_exact(model("EXPAND_DIMS", [qin((2, 3), dtype), const(1, i32)], dtype=dtype))


@pytest.mark.parametrize("shape,axis,axis_type", [
    ((2, 3), 0, i32), ((2, 3), 2, i32), ((2, 3), -1, i32), ((2, 3), -3, i64), ((), 0, i32),
    ((4,), [-2], i64),
])
def test_expand_dims_axis(shape: tuple, axis: object, axis_type: object) -> None:
    check_exact(model("EXPAND_DIMS", [inp(shape), const(np.array(axis, axis_type))]))


def test_expand_dims_dynamic_axis() -> None:
    m = model("EXPAND_DIMS", [inp((2, 3)), inp((), i32)], out_shapes=[[1, 1, 1]])
    check_exact(m, [np.ones((2, 3), np.float32), np.array(-2, i32)])


@pytest.mark.parametrize("axis", [3, -4])
def test_expand_dims_axis_out_of_range(axis: int) -> None:
    m = model("EXPAND_DIMS", [inp((2, 3)), const(axis, i32)], out_shapes=[[2, 3, 1]])
    both_reject(m, match="EXPAND_DIMS.*out of range")


# -- TRANSPOSE ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_transpose_types(dtype: object) -> None:
    check_exact(model("TRANSPOSE", [qin((2, 3, 4), dtype), const([2, 0, 1], i32)], dtype=dtype))


@pytest.mark.parametrize("perm", [
    [0], [1, 0], [0, 2, 1], [2, 1, 0], [3, 1, 0, 2], [4, 0, 3, 1, 2], [5, 3, 1, 0, 4, 2],
    [0, 1, 2, 3],
])
def test_transpose_perms(perm: list) -> None:
    shape = (2, 3, 4, 5, 3, 2)[:len(perm)]
    check_exact(model("TRANSPOSE", [inp(shape), const(np.array(perm, i32))]))


def test_transpose_int64_perm() -> None:
    """LiteRT reads an INT64 perm as if it were INT32 (a wrong shape); edgeplex
    reads it as INT64, like TensorFlow."""
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    m = model("TRANSPOSE", [inp(x.shape), const(np.array([2, 0, 1], i64))])
    np.testing.assert_array_equal(run_edgeplex(m, [x])[0], x.transpose(2, 0, 1))


@pytest.mark.parametrize("rank", [7, 8])
def test_transpose_rank_7_and_8(rank: int) -> None:
    shape = (2, 1, 3, 1, 2, 1, 2, 1)[:rank]
    perm = np.array([rank - 1 - i for i in range(rank)], i32)
    check_exact(model("TRANSPOSE", [inp(shape), const(perm)]))


def test_transpose_dynamic_perm() -> None:
    m = model("TRANSPOSE", [inp((2, 3, 4)), inp((3,), i32)], out_shapes=[[1, 1, 1]])
    check_exact(m, [np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.array([1, 2, 0], i32)])


@pytest.mark.parametrize("perm,message", [([0, 1], "entries"),
                                          ([0, 1, 3], "not a permutation")])
def test_transpose_bad_perm(perm: list, message: str) -> None:
    m = model("TRANSPOSE", [inp((2, 3, 4)), const(np.array(perm, i32))], out_shapes=[[2, 3, 4]])
    both_reject(m, match=f"TRANSPOSE.*{message}")


@pytest.mark.parametrize("perm", [[0, 0, 1], [-1, 0, 1]])
def test_transpose_perm_litert_misreads(perm: list) -> None:
    """LiteRT accepts repeated or negative entries and returns a misshapen
    result; they are not permutations, so edgeplex refuses them."""
    m = model("TRANSPOSE", [inp((2, 3, 4)), const(np.array(perm, i32))], out_shapes=[[2, 3, 4]])
    edgeplex_rejects(m, match="TRANSPOSE.*not a permutation")


def test_transpose_rank_9_is_unsupported() -> None:
    m = model("TRANSPOSE", [inp((1,) * 9), const(np.arange(9, dtype=i32))],
              out_shapes=[(1,) * 9])
    both_reject(m, UnsupportedOpError, "TRANSPOSE.*rank 9")


# -- REVERSE_V2 --------------------------------------------------------------------
REVERSE = ("FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL")


@pytest.mark.parametrize("dtype", dtypes(*REVERSE))
def test_reverse_types(dtype: object) -> None:
    check_exact(model("REVERSE_V2", [qin((2, 3, 4), dtype), const([1], i32)], dtype=dtype))


@pytest.mark.parametrize("shape,axes", [
    ((5,), [0]), ((2, 3, 4), [0]), ((2, 3, 4), [2]), ((2, 3, 4), [-1]), ((2, 3, 4), [0, 1]),
    ((2, 3, 4, 5), [1, 2]), ((2, 3, 4), [0, 1, 2]), ((2, 3, 4), [1, 0]),
])
def test_reverse_axes(shape: tuple, axes: list) -> None:
    check_exact(model("REVERSE_V2", [inp(shape), const(np.array(axes, i32))]))


@pytest.mark.parametrize("axes", [[0, 2], [], [2, -3]])
def test_reverse_axes_litert_refuses(axes: list) -> None:
    """LiteRT rejects non-contiguous axes and crashes on an empty list; both
    have an obvious meaning (numpy's flip), which edgeplex gives."""
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    m = model("REVERSE_V2", [inp(x.shape), const(np.array(axes, i32))])
    got = run_edgeplex(m, [x])[0]
    np.testing.assert_array_equal(got, np.flip(x, axis=tuple(axes)) if axes else x)


def test_reverse_int64_axis_is_refused() -> None:
    m = model("REVERSE_V2", [inp((2, 3, 4)), const(np.array([1, 2], i64))], out_shapes=[(2, 3, 4)])
    both_reject(m, match="REVERSE_V2.*axis must be INT32")


def test_reverse_dynamic_axis() -> None:
    m = model("REVERSE_V2", [inp((3, 4)), inp((1,), i32)])
    check_exact(m, [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([-2], i32)])


@pytest.mark.parametrize("dtype", others(*REVERSE))
def test_reverse_unsupported_types(dtype: object) -> None:
    m = model("REVERSE_V2", [inp((2, 3), dtype), const([0], i32)], out_shapes=[[2, 3]])
    both_reject(m, UnsupportedOpError, "REVERSE_V2.*type")


# -- TILE, BROADCAST_TO ------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_tile_types(dtype: object) -> None:
    check_exact(model("TILE", [qin((2, 3), dtype), const([2, 3], i32)], dtype=dtype))


@pytest.mark.parametrize("shape,multiples,mtype", [
    ((3,), [4], i32), ((2, 3), [1, 1], i32), ((2, 3), [3, 1], i64), ((1, 2, 3), [2, 1, 2], i32),
    ((2, 1, 2, 1), [1, 3, 1, 2], i32), ((2, 3), [0, 2], i32),
    ((2, 2, 1, 2, 1), [1, 2, 3, 1, 2], i64),
])
def test_tile_multiples(shape: tuple, multiples: list, mtype: object) -> None:
    check_exact(model("TILE", [inp(shape), const(np.array(multiples, mtype))]))


def test_tile_dynamic_multiples() -> None:
    m = model("TILE", [inp((2, 3)), inp((2,), i32)], out_shapes=[[1, 1]])
    check_exact(m, [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([2, 3], i32)])


def test_tile_wrong_multiples_length() -> None:
    m = model("TILE", [inp((2, 3)), const([2], i32)], out_shapes=[[4, 3]])
    both_reject(m, match="TILE.*multiples")


@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_broadcast_to_types(dtype: object) -> None:
    check_exact(model("BROADCAST_TO", [qin((3, 1), dtype), const([2, 3, 4], i32)], dtype=dtype,
                      version=2))


@pytest.mark.parametrize("shape,target,ttype", [
    ((3,), [2, 3], i32), ((1, 3), [4, 3], i64), ((2, 1, 4), [2, 3, 4], i32), ((), [2, 2], i32),
    ((1,), [1, 1, 1, 1, 1, 1, 1, 5], i32), ((2, 3), [2, 3], i32), ((1, 1), [0, 3], i32),
])
def test_broadcast_to_shapes(shape: tuple, target: list, ttype: object) -> None:
    check_exact(model("BROADCAST_TO", [inp(shape), const(np.array(target, ttype))], version=2))


def test_broadcast_to_dynamic_shape() -> None:
    m = model("BROADCAST_TO", [inp((3, 1)), inp((3,), i32)], version=2, out_shapes=[[1, 1, 1]])
    check_exact(m, [np.arange(3, dtype=np.float32).reshape(3, 1), np.array([2, 3, 4], i32)])


@pytest.mark.parametrize("shape,target", [((2, 3), [2, 4]), ((2, 3), [3])])
def test_broadcast_to_incompatible(shape: tuple, target: list) -> None:
    m = model("BROADCAST_TO", [inp(shape), const(np.array(target, i32))], version=2,
              out_shapes=[target])
    both_reject(m, match="BROADCAST_TO.*broadcast")


# -- DEPTH_TO_SPACE, SPACE_TO_DEPTH ------------------------------------------------
DEPTH_SPACE = ("FLOAT32", "INT8", "UINT8", "INT32", "INT64")


@pytest.mark.parametrize("dtype", dtypes(*DEPTH_SPACE))
@pytest.mark.parametrize("shape,block", [((1, 2, 3, 8), 2), ((2, 1, 2, 9), 3), ((1, 2, 2, 3), 1)])
def test_depth_to_space(dtype: object, shape: tuple, block: int) -> None:
    check_exact(model("DEPTH_TO_SPACE", [qin(shape, dtype)], {"block_size": block}, dtype=dtype))


@pytest.mark.parametrize("dtype", dtypes(*DEPTH_SPACE))
@pytest.mark.parametrize("shape,block", [((1, 4, 6, 3), 2), ((2, 3, 6, 1), 3), ((1, 2, 2, 5), 1)])
def test_space_to_depth(dtype: object, shape: tuple, block: int) -> None:
    check_exact(model("SPACE_TO_DEPTH", [qin(shape, dtype)], {"block_size": block}, dtype=dtype))


@pytest.mark.parametrize("op", ["DEPTH_TO_SPACE", "SPACE_TO_DEPTH"])
@pytest.mark.parametrize("dtype", others(*DEPTH_SPACE))
def test_depth_space_unsupported_types(op: str, dtype: object) -> None:
    m = model(op, [inp((1, 2, 2, 4), dtype)], {"block_size": 2}, out_shapes=[[1, 1, 1, 1]])
    both_reject(m, UnsupportedOpError, f"{op}.*type")


@pytest.mark.parametrize("op,shape", [("DEPTH_TO_SPACE", (1, 2, 2, 6)),
                                      ("SPACE_TO_DEPTH", (1, 3, 4, 2))])
def test_depth_space_indivisible(op: str, shape: tuple) -> None:
    m = model(op, [inp(shape)], {"block_size": 2}, out_shapes=[[1, 1, 1, 1]])
    both_reject(m, match=f"{op}.*multiple")


# -- SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND ------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_space_to_batch_types(dtype: object) -> None:
    ins = [qin((1, 3, 4, 2), dtype), const([2, 2], i32), const([[1, 0], [0, 0]], i32)]
    check_exact(model("SPACE_TO_BATCH_ND", ins, dtype=dtype))


@pytest.mark.parametrize("shape,block,pads", [
    ((1, 4, 4, 1), [2, 2], [[0, 0], [0, 0]]), ((2, 3, 5, 3), [2, 3], [[1, 0], [0, 1]]),
    ((1, 2, 2, 1), [3, 1], [[2, 2], [1, 0]]), ((3, 5, 2), [5], [[0, 0]]),
    ((2, 4, 2), [2], [[1, 1]]),
])
def test_space_to_batch(shape: tuple, block: list, pads: list) -> None:
    ins = [inp(shape), const(np.array(block, i32)), const(np.array(pads, i32))]
    check_exact(model("SPACE_TO_BATCH_ND", ins))


@pytest.mark.parametrize("dtype,zero_point", [(np.uint8, 128), (np.int8, -5), (np.int16, 0)])
def test_space_to_batch_pads_with_zero_point(dtype: object, zero_point: int) -> None:
    """Quantized padding is the zero point (real value 0)."""
    q = quant_for(dtype, 0.5, zero_point)
    ins = [inp((1, 3, 3, 1), dtype, q), const([2, 2], i32), const([[1, 0], [0, 1]], i32)]
    x = np.full((1, 3, 3, 1), 9, dtype)
    out = check_exact(one_op_model("SPACE_TO_BATCH_ND", ins, out_quantization=q), [x])[0]
    assert (out == zero_point).sum() == 7


@pytest.mark.parametrize("op,ins,out_shape", [
    ("EXPAND_DIMS", [const(0, i32)], (1, 4, 4, 1)),
    ("SPACE_TO_BATCH_ND", [const([2, 2], i32), const([[0, 0], [0, 0]], i32)], (4, 2, 2, 1)),
    ("BATCH_TO_SPACE_ND", [const([2, 2], i32), const([[0, 0], [0, 0]], i32)], (1, 8, 8, 1)),
])
@pytest.mark.parametrize("dtype", dtypes("INT8", "UINT8", "INT16"))
@pytest.mark.parametrize("out_q", [(0.25, 0), (0.5, 0)])
def test_quantized_params_must_match(op: str, ins: list, out_shape: tuple, dtype: object,
                                     out_q: tuple) -> None:
    """TFLite refuses these ops when input and output quantization differ
    (they copy values unchanged); so does edgeplex, naming the op."""
    m = one_op_model(op, [inp((4, 4, 4, 1), dtype, Quantization.of(0.5, 1))] + ins,
                     out_quantization=Quantization.of(*out_q), out_shapes=[out_shape])
    both_reject(m, match=f"{op}.*quantized")


def test_space_to_batch_dynamic_paddings() -> None:
    m = model("SPACE_TO_BATCH_ND", [inp((1, 3, 3, 1)), const([2, 2], i32), inp((2, 2), i32)],
              out_shapes=[[1, 1, 1, 1]])
    check_exact(m, [np.ones((1, 3, 3, 1), np.float32), np.array([[1, 0], [0, 1]], i32)])


@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_batch_to_space_types(dtype: object) -> None:
    ins = [qin((4, 2, 2, 1), dtype), const([2, 2], i32), const([[1, 0], [0, 1]], i32)]
    check_exact(model("BATCH_TO_SPACE_ND", ins, dtype=dtype))


@pytest.mark.parametrize("shape,block,crops", [
    ((4, 2, 2, 1), [2, 2], [[0, 0], [0, 0]]), ((12, 2, 3, 3), [2, 3], [[1, 0], [0, 2]]),
    ((6, 2, 1, 2), [3, 1], [[2, 3], [0, 0]]), ((10, 3, 2), [5], [[1, 2]]),
    ((4, 2, 2), [2], [[0, 0]]),
])
def test_batch_to_space(shape: tuple, block: list, crops: list) -> None:
    ins = [inp(shape), const(np.array(block, i32)), const(np.array(crops, i32))]
    check_exact(model("BATCH_TO_SPACE_ND", ins))


def test_batch_to_space_dynamic_crops() -> None:
    m = model("BATCH_TO_SPACE_ND", [inp((4, 2, 2, 1)), const([2, 2], i32), inp((2, 2), i32)],
              out_shapes=[[1, 1, 1, 1]])
    check_exact(m, [np.arange(16, dtype=np.float32).reshape(4, 2, 2, 1),
                    np.array([[0, 1], [1, 0]], i32)])


@pytest.mark.parametrize("op,shape,block,pads,message", [
    ("SPACE_TO_BATCH_ND", (1, 3, 4, 1), [2, 2], [[0, 0], [0, 0]], "multiple"),
    ("SPACE_TO_BATCH_ND", (1, 4, 4, 1), [2, 0], [[0, 0], [0, 0]], "block_shape"),
    ("BATCH_TO_SPACE_ND", (3, 2, 2, 1), [2, 2], [[0, 0], [0, 0]], "multiple"),
    ("BATCH_TO_SPACE_ND", (4, 2, 2, 1), [2, 2], [[-1, 0], [0, 0]], "crops"),
])
def test_batch_space_errors(op: str, shape: tuple, block: list, pads: list, message: str) -> None:
    ins = [inp(shape), const(np.array(block, i32)), const(np.array(pads, i32))]
    both_reject(model(op, ins, out_shapes=[[1, 1, 1, 1]]), match=f"{op}.*{message}")


def test_space_to_batch_negative_paddings() -> None:
    """LiteRT silently crops for negative paddings; TF defines them as
    invalid and edgeplex refuses them."""
    ins = [inp((1, 4, 4, 1)), const([2, 2], i32), const([[-2, 0], [0, 0]], i32)]
    edgeplex_rejects(model("SPACE_TO_BATCH_ND", ins, out_shapes=[[4, 1, 2, 1]]),
                     match="SPACE_TO_BATCH_ND.*paddings")


# -- several ops in one model ---------------------------------------------------------
def test_multi_op_model() -> None:
    """A chain mixing static and data-dependent shapes, checked end to end."""
    from edgeplex import ModelBuilder
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 3, 4), np.float32)
    shape = g.input("shape", (2,), np.int32)
    t = g.op("TRANSPOSE", [x, g.constant("perm", np.array([1, 2, 0], i32))])
    r = g.op("RESHAPE", [t, g.constant("to", np.array([6, 4], i32))])
    flip = g.op("REVERSE_V2", [r, g.constant("axis", np.array([0], i32))])
    tiled = g.op("TILE", [flip, g.constant("mult", np.array([1, 2], i32))])
    e = g.op("EXPAND_DIMS", [tiled, g.constant("ax", np.array(0, i32))])
    s2d = g.op("SPACE_TO_DEPTH", [g.op("RESHAPE", [e, g.constant("to4", np.array([1, 6, 8, 1],
                                                                                  i32))])],
               {"block_size": 2})
    out_static = g.op("SQUEEZE", [s2d], {"squeeze_dims": [0]})
    dyn = g.tensor("dynamic", (1, 1), np.float32)
    g.op("RESHAPE", [tiled, shape], outputs=[dyn])
    g.output(out_static, dyn)
    x_val = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    check_exact(mb.build(), [x_val, np.array([8, 6], i32)])


@pytest.mark.parametrize("op,ins,out_shape", [
    ("EXPAND_DIMS", [const(0, i32)], (1, 4, 4, 1)),
    ("SPACE_TO_BATCH_ND", [const([2, 2], i32), const([[0, 0], [0, 0]], i32)], (4, 2, 2, 1)),
    ("BATCH_TO_SPACE_ND", [const([2, 2], i32), const([[0, 0], [0, 0]], i32)], (1, 8, 8, 1)),
])
def test_int16_needs_zero_zero_point(op: str, ins: list, out_shape: tuple) -> None:
    q = Quantization.of(0.5, 5)
    m = one_op_model(op, [inp((4, 4, 4, 1), np.int16, q)] + ins, out_quantization=q,
                     out_shapes=[out_shape])
    both_reject(m, match=f"{op}.*zero point 5")
