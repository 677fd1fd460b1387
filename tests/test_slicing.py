"""SLICE and STRIDED_SLICE against LiteRT, STRIDED_SLICE's masks and strides
explored with hypothesis.

Tolerance: none — slicing copies values, outputs must be bit-identical.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import edgeplex
from edgeplex import ModelError
from movement_helpers import (SIZED, both_reject, check_exact, dtypes, i32, i64,
                                    quant_for)
from oracle import assert_close, const, inp, one_op_model, run_edgeplex, run_litert


# -- SLICE -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_slice_types(dtype: object) -> None:
    q = quant_for(dtype)
    m = one_op_model("SLICE", [inp((3, 4), dtype, q), const([1, 0], i32), const([2, -1], i32)],
                     out_quantization=q)
    check_exact(m)


@pytest.mark.parametrize("shape,begin,size,itype", [
    ((5,), [0], [5], i32), ((5,), [2], [-1], i32), ((4, 5, 6), [1, 0, 2], [2, -1, 3], i64),
    ((2, 3, 4, 5), [1, 1, 1, 1], [1, 2, 3, 4], i32), ((2, 3, 4, 5, 6), [0, 1, 2, 3, 4],
                                                       [-1, -1, -1, -1, -1], i32),
    ((3, 4), [3, 0], [0, 4], i32), ((3, 4), [1, 2], [2, 0], i64),
])
def test_slice_shapes(shape: tuple, begin: list, size: list, itype: object) -> None:
    ins = [inp(shape), const(np.array(begin, itype)), const(np.array(size, itype))]
    check_exact(one_op_model("SLICE", ins))


def test_slice_dynamic_begin_and_size() -> None:
    # LiteRT trusts a fully specified output shape in the model, so declare the right one.
    m = one_op_model("SLICE", [inp((4, 5)), inp((2,), i32), inp((2,), i32)], out_shapes=[(3, 2)])
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    check_exact(m, [x, np.array([1, 2], i32), np.array([-1, 2], i32)])


@pytest.mark.parametrize("begin,size", [([2, 0], [3, 1]), ([0, 0], [1, -2]), ([0, 0], [4, 6])])
def test_slice_out_of_range(begin: list, size: list) -> None:
    ins = [inp((4, 5)), const(np.array(begin, i32)), const(np.array(size, i32))]
    both_reject(one_op_model("SLICE", ins, out_shapes=[(1, 1)]), match="SLICE.*")


def test_slice_begin_length_must_match_rank() -> None:
    ins = [inp((4, 5)), const([1], i32), const([1], i32)]
    m = one_op_model("SLICE", ins, out_shapes=[(1, 5)])
    with pytest.raises(ModelError, match="SLICE.*2 entries"):
        edgeplex.Interpreter(model_content=m).allocate_tensors()


# -- STRIDED_SLICE: fixed cases -------------------------------------------------------
def strided(shape: tuple, begin: list, end: list, strides: list, dtype: object = np.float32,
            **options: object) -> bytes:
    q = quant_for(dtype)
    ins = [inp(shape, dtype, q), const(np.array(begin, i32)), const(np.array(end, i32)),
           const(np.array(strides, i32))]
    return one_op_model("STRIDED_SLICE", ins, options or None, out_quantization=q)


@pytest.mark.parametrize("dtype", dtypes(*SIZED))
def test_strided_slice_types(dtype: object) -> None:
    check_exact(strided((4, 6), [3, 1], [0, 6], [-1, 2], dtype))


@pytest.mark.parametrize("args,options", [
    (((5,), [1], [4], [1]), {}),
    (((5,), [-1], [-6], [-1]), {}),
    (((5,), [4], [0], [-2]), {"end_mask": 1}),
    (((4, 5, 6), [1, 0, 2], [3, 5, 6], [1, 2, 1]), {}),
    (((4, 5, 6), [-1, 4, 2], [0, 0, 6], [-1, -2, 1]), {"begin_mask": 2}),
    (((4, 5, 6), [0, 1], [0, 3], [1, 1]), {"ellipsis_mask": 1}),
    (((4, 5, 6), [1, 0], [3, 0], [1, 1]), {"ellipsis_mask": 2}),
    (((4, 5, 6), [0, 0, 1], [0, 1, 3], [1, 1, 1]), {"new_axis_mask": 1, "shrink_axis_mask": 2}),
    (((4, 5, 6), [1, 1], [2, 3], [1, 1]), {"ellipsis_mask": 2, "new_axis_mask": 1}),
    (((4, 5, 6), [2, 0, 0], [3, 0, 0], [1, 1, 1]), {"shrink_axis_mask": 1, "end_mask": 6}),
    (((4, 5, 6), [-1, -1, -1], [0, 0, 0], [1, 1, 1]), {"shrink_axis_mask": 7}),
    (((2, 3, 4, 5, 6), [0, 1, 0, 4, 1], [2, 3, 4, 0, 6], [1, 1, 2, -1, 3]), {}),
    (((3, 4), [0], [2], [1]), {}),
    (((3, 4), [9, -9], [-9, 9], [-1, 1]), {}),
])
def test_strided_slice_cases(args: tuple, options: dict) -> None:
    check_exact(strided(*args, **options))


@pytest.mark.parametrize("shape,begin,end,strides", [
    ((6,), [1], [3], [1]), ((6,), [-4], [3], [2]), ((4, 5), [1, 2], [2, 3], [1, 1]),
    ((4, 5), [0, 1], [4, 2], [2, 1]),
])
def test_strided_slice_offset(shape: tuple, begin: list, end: list, strides: list) -> None:
    """offset=True: end is a length counted from begin."""
    check_exact(strided(shape, begin, end, strides, offset=True))


def test_strided_slice_offset_with_dynamic_begin() -> None:
    """With offset the output shape is static even when begin is an input."""
    ins = [inp((5, 6)), inp((2,), i32), const([2, 3], i32), const([1, 1], i32)]
    m = one_op_model("STRIDED_SLICE", ins, {"offset": True})
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    for begin in ([0, 0], [3, 2], [-2, 1]):
        check_exact(m, [x, np.array(begin, i32)])


def test_strided_slice_offset_past_the_end_fails_at_invoke() -> None:
    ins = [inp((5, 6)), inp((2,), i32), const([2, 3], i32), const([1, 1], i32)]
    it = edgeplex.Interpreter(model_content=one_op_model("STRIDED_SLICE", ins, {"offset": True}))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.zeros((5, 6), np.float32))
    it.set_tensor(it.get_input_details()[1]["index"], np.array([4, 0], i32))
    with pytest.raises(ModelError, match="STRIDED_SLICE.*selects shape"):
        it.invoke()


def test_strided_slice_dynamic_indices() -> None:
    ins = [inp((5, 6)), inp((2,), i32), inp((2,), i32), inp((2,), i32)]
    m = one_op_model("STRIDED_SLICE", ins, {"end_mask": 2}, out_shapes=[(1, 1)])
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    check_exact(m, [x, np.array([4, 1], i32), np.array([0, 0], i32), np.array([-2, 2], i32)])


def test_strided_slice_zero_stride() -> None:
    ins = [inp((4,)), const([0], i32), const([4], i32), const([0], i32)]
    both_reject(one_op_model("STRIDED_SLICE", ins, out_shapes=[(4,)]),
                match="STRIDED_SLICE.*stride")


def test_strided_slice_shrink_out_of_range() -> None:
    """LiteRT writes nothing for a shrunk axis indexed past its end."""
    m = one_op_model("STRIDED_SLICE", [inp((4, 5)), const([4, 0], i32), const([5, 5], i32),
                                       const([1, 1], i32)], {"shrink_axis_mask": 1},
                     out_shapes=[(5,)])
    with pytest.raises(ModelError, match="STRIDED_SLICE.*out of range"):
        edgeplex.Interpreter(model_content=m).allocate_tensors()


def test_strided_slice_int64_indices_refused() -> None:
    ins = [inp((4,)), const([0], i64), const([4], i64), const([1], i64)]
    both_reject(one_op_model("STRIDED_SLICE", ins, out_shapes=[(4,)]),
                match="STRIDED_SLICE.*INT32")


# -- STRIDED_SLICE: hypothesis ------------------------------------------------------------
@st.composite
def strided_specs(draw: st.DrawFn) -> tuple:
    """Random shapes, begin/end/strides and masks within what LiteRT defines:
    at most one ellipsis, effective rank <= 5, positive strides on shrunk
    axes (LiteRT leaves those outputs unwritten for negative strides)."""
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    count = draw(st.integers(1, rank + 1))
    ellipsis = draw(st.sampled_from([0] + [1 << i for i in range(count)]))
    new_axis = draw(st.integers(0, (1 << count) - 1))
    added = sum(1 for i in range(count) if new_axis >> i & 1 and not ellipsis >> i & 1)
    assume(rank + added <= 5 and count - added <= rank)
    shrink = draw(st.integers(0, (1 << count) - 1))
    strides = [draw(st.integers(1, 3)) if shrink >> i & 1 else
               draw(st.sampled_from([-3, -2, -1, 1, 2, 3])) for i in range(count)]
    begin = draw(st.lists(st.integers(-7, 7), min_size=count, max_size=count))
    end = draw(st.lists(st.integers(-7, 7), min_size=count, max_size=count))
    options = {"begin_mask": draw(st.integers(0, (1 << count) - 1)),
               "end_mask": draw(st.integers(0, (1 << count) - 1)),
               "ellipsis_mask": ellipsis, "new_axis_mask": new_axis,
               "shrink_axis_mask": shrink}
    return shape, begin, end, strides, options


@given(strided_specs())
def test_strided_slice_hypothesis(spec: tuple) -> None:
    shape, begin, end, strides, options = spec
    ins = [inp(shape), const(np.array(begin, i32)), const(np.array(end, i32)),
           const(np.array(strides, i32))]
    try:
        m = one_op_model("STRIDED_SLICE", ins, options)
    except ModelError as e:   # a shrunk axis indexed past its end: LiteRT is undefined there
        assume("out of range" not in str(e))
        raise
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    assert_close(run_edgeplex(m, [x]), run_litert(m, [x]), 0, 0, exact=True,
                 what=f"{shape} {begin} {end} {strides} {options}")
