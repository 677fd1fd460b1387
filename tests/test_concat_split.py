"""CONCATENATION, PACK, UNPACK, SPLIT and SPLIT_V against LiteRT.

Tolerance: none — these ops copy values; UINT8 CONCATENATION rescaling is
integer output computed like TFLite, so it must match bit for bit too. The
one float tolerance is for CONCATENATION's fused TANH, compared with LiteRT's
separate TANH op (different tanh implementations: 2 float32 ulps).
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeplex import ModelBuilder, Quantization
from movement_helpers import (UnsupportedOpError, both_reject, check_exact, dtypes, i32,
                                    i64, others, quant_for)
from oracle import assert_close, const, inp, one_op_model, run_edgeplex, run_litert

CONCAT = ("FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "UINT32", "INT64", "BOOL")
PACK = ("FLOAT32", "INT8", "UINT8", "INT16", "INT32", "UINT32", "INT64")
UNPACK = ("FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "BOOL")
SPLIT = ("FLOAT32", "INT8", "UINT8", "INT16", "INT32", "INT64")


def qin(shape: tuple, dtype: object = np.float32) -> object:
    return inp(shape, dtype, quant_for(dtype))


# -- CONCATENATION -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*CONCAT))
def test_concat_types(dtype: object) -> None:
    m = one_op_model("CONCATENATION", [qin((2, 3), dtype), qin((2, 1), dtype), qin((2, 2), dtype)],
                     {"axis": 1}, out_quantization=quant_for(dtype))
    check_exact(m)


@pytest.mark.parametrize("shapes,axis", [
    ([(3,), (4,)], 0), ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 5)], -1), ([(2, 3, 4)] * 3, 1),
    ([(1, 2, 3, 4), (1, 2, 3, 1)], 3), ([(1, 2, 3, 4), (1, 2, 3, 4)], -4), ([(2, 0), (2, 3)], 1),
    ([(2, 2, 1, 2, 1, 2)] * 2, 4), ([(5, 2)], 0),
])
def test_concat_shapes(shapes: list, axis: int) -> None:
    check_exact(one_op_model("CONCATENATION", [inp(s) for s in shapes], {"axis": axis}))


def test_concat_with_constant_input() -> None:
    m = one_op_model("CONCATENATION", [inp((2, 3)), const(np.ones((2, 2), np.float32))],
                     {"axis": 1})
    check_exact(m)


def test_concat_constant_scalars() -> None:
    """TFLite joins constant scalars into a vector."""
    m = one_op_model("CONCATENATION", [const(np.float32(1.5)), const(np.float32(-2))],
                     {"axis": 0})
    check_exact(m, [])


@pytest.mark.parametrize("act,op", [("RELU", "RELU"), ("RELU6", "RELU6"),
                                    ("RELU_N1_TO_1", "RELU_N1_TO_1"), ("TANH", "TANH")])
def test_concat_fused_activation(act: str, op: str) -> None:
    """LiteRT's kernel refuses fused activations; edgeplex applies them and
    must equal LiteRT running CONCATENATION and then the activation op."""
    fused = one_op_model("CONCATENATION", [inp((2, 3)), inp((2, 4))],
                         {"axis": 1, "fused_activation_function": act})
    mb = ModelBuilder()
    g = mb.main
    a, b = g.input("input0", (2, 3), np.float32), g.input("input1", (2, 4), np.float32)
    joined, out = g.tensor("joined", (2, 7)), g.tensor("out", (2, 7))
    g.op("CONCATENATION", [a, b], {"axis": 1}, outputs=[joined])
    g.op(op, [joined], outputs=[out])
    g.output(out)
    rng = np.random.default_rng(0)
    x = [rng.uniform(-8, 8, (2, 3)).astype(np.float32),
         rng.uniform(-8, 8, (2, 4)).astype(np.float32)]
    got, want = run_edgeplex(fused, x), run_litert(mb.build(), x)
    if act == "TANH":   # two tanh implementations: a couple of float32 ulps
        np.testing.assert_allclose(got[0], want[0], rtol=2.5e-7, atol=1e-7)
    else:
        assert_close(got, want, 0, 0, exact=True)


def test_concat_fused_activation_needs_float() -> None:
    q = quant_for(np.int8)
    m = one_op_model("CONCATENATION", [inp((2, 3), np.int8, q), inp((2, 3), np.int8, q)],
                     {"axis": 0, "fused_activation_function": "RELU"}, out_quantization=q,
                     out_shapes=[(4, 3)])
    both_reject(m, UnsupportedOpError, "CONCATENATION.*RELU")


@pytest.mark.parametrize("q_in,q_out", [
    ((0.5, 3), (0.25, 10)), ((0.25, 10), (0.5, 3)), ((0.1, 128), (0.3, 0)), ((1.0, 0), (2.0, 0)),
    ((0.0123, 77), (0.0456, 200)), ((2.0, 255), (0.5, 0)), ((0.5, 3), (0.5, 3)),
    ((0.75, 0), (0.5, 1)),
])
def test_concat_uint8_rescales_like_tflite(q_in: tuple, q_out: tuple) -> None:
    """Every uint8 value through TFLite's float32 rescaling (ties included)."""
    qa, qo = Quantization.of(*q_in), Quantization.of(*q_out)
    m = one_op_model("CONCATENATION", [inp((16, 16), np.uint8, qa), inp((16, 2), np.uint8, qo)],
                     {"axis": 1}, out_quantization=qo)
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    check_exact(m, [values, np.arange(32, dtype=np.uint8).reshape(16, 2)])


def test_concat_int8_needs_equal_params() -> None:
    a, b = Quantization.of(0.5, 3), Quantization.of(0.25, 3)
    m = one_op_model("CONCATENATION", [inp((2, 3), np.int8, a), inp((2, 3), np.int8, b)],
                     {"axis": 0}, out_quantization=a, out_shapes=[(4, 3)])
    both_reject(m, match="CONCATENATION.*INT8 input 1")


def test_concat_int16_copies_unscaled() -> None:
    """INT16 inputs with different scales (zero point 0) are copied as-is."""
    a, b = Quantization.of(0.5, 0), Quantization.of(0.125, 0)
    m = one_op_model("CONCATENATION", [inp((2, 3), np.int16, a), inp((2, 3), np.int16, b)],
                     {"axis": 0}, out_quantization=a)
    check_exact(m)


def test_concat_int16_needs_zero_zero_point() -> None:
    a = Quantization.of(0.5, 2)
    m = one_op_model("CONCATENATION", [inp((2, 3), np.int16, a), inp((2, 3), np.int16, a)],
                     {"axis": 0}, out_quantization=a, out_shapes=[(4, 3)])
    both_reject(m, match="CONCATENATION.*zero point")


@pytest.mark.parametrize("shapes,axis,message", [
    ([(2, 3), (3, 3)], 1, "differ"), ([(2, 3), (2, 3, 1)], 0, "differ"),
    ([(2, 3), (2, 3)], 2, "out of range"), ([(2, 3), (2, 3)], -3, "out of range"),
])
def test_concat_errors(shapes: list, axis: int, message: str) -> None:
    m = one_op_model("CONCATENATION", [inp(s) for s in shapes], {"axis": axis},
                     out_shapes=[(4, 3)])
    both_reject(m, match=f"CONCATENATION.*{message}")


def test_concat_mixed_types() -> None:
    m = one_op_model("CONCATENATION", [inp((2, 3)), inp((2, 3), np.int32)], {"axis": 0},
                     out_shapes=[(4, 3)])
    both_reject(m, match="CONCATENATION.*types")


@pytest.mark.parametrize("dtype", others(*CONCAT))
def test_concat_unsupported_types(dtype: object) -> None:
    m = one_op_model("CONCATENATION", [inp((2,), dtype), inp((2,), dtype)], {"axis": 0},
                     out_shapes=[(4,)])
    both_reject(m, UnsupportedOpError, "CONCATENATION.*type")


# -- PACK, UNPACK ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*PACK))
def test_pack_types(dtype: object) -> None:
    m = one_op_model("PACK", [qin((2, 3), dtype)] * 3, {"values_count": 3, "axis": 1},
                     out_quantization=quant_for(dtype))
    check_exact(m)


@pytest.mark.parametrize("shape,n,axis", [
    ((3,), 2, 0), ((3,), 2, 1), ((3,), 4, -1), ((2, 3), 2, -3), ((2, 3, 4), 3, 2), ((), 3, 0),
    ((2, 1, 3, 1, 2), 2, 5),
])
def test_pack_axes(shape: tuple, n: int, axis: int) -> None:
    m = one_op_model("PACK", [inp(shape)] * n, {"values_count": n, "axis": axis})
    check_exact(m)


@pytest.mark.parametrize("options,shapes,message", [
    ({"values_count": 3, "axis": 0}, [(2,), (2,)], "values_count"),
    ({"values_count": 2, "axis": 3}, [(2,), (2,)], "out of range"),
    ({"values_count": 2, "axis": 0}, [(2,), (3,)], "input 1"),
])
def test_pack_errors(options: dict, shapes: list, message: str) -> None:
    m = one_op_model("PACK", [inp(s) for s in shapes], options, out_shapes=[(2, 2)])
    both_reject(m, match=f"PACK.*{message}")


def test_pack_needs_equal_params() -> None:
    q = Quantization.of(0.5, 1)
    m = one_op_model("PACK", [inp((2,), np.uint8, q)] * 2, {"values_count": 2},
                     out_quantization=Quantization.of(0.25, 1), out_shapes=[(2, 2)])
    both_reject(m, match="PACK.*rescale")


@pytest.mark.parametrize("dtype", dtypes(*UNPACK))
def test_unpack_types(dtype: object) -> None:
    m = one_op_model("UNPACK", [qin((2, 3), dtype)], {"num": 3, "axis": 1}, outputs=3,
                     out_quantization=quant_for(dtype))
    check_exact(m)


@pytest.mark.parametrize("shape,axis", [((3,), 0), ((2, 3), -1), ((2, 3, 4), 1), ((4, 1, 2), 0),
                                        ((1, 2, 1, 2, 1, 2), 3)])
def test_unpack_axes(shape: tuple, axis: int) -> None:
    n = shape[axis]
    check_exact(one_op_model("UNPACK", [inp(shape)], {"num": n, "axis": axis}, outputs=n))


@pytest.mark.parametrize("num,outputs", [(2, 2), (0, 3)])
def test_unpack_wrong_num(num: int, outputs: int) -> None:
    m = one_op_model("UNPACK", [inp((2, 3))], {"num": num, "axis": 1}, outputs=outputs,
                     out_shapes=[(2,)] * outputs)
    both_reject(m, match="UNPACK.*num")


def test_unpack_needs_equal_params() -> None:
    m = one_op_model("UNPACK", [inp((2, 3), np.int32, Quantization.of(0.5, 1))],
                     {"num": 2, "axis": 0}, outputs=2, out_shapes=[(3,), (3,)])
    both_reject(m, match="UNPACK.*rescale")


@pytest.mark.parametrize("dtype", others(*PACK))
def test_pack_unsupported_types(dtype: object) -> None:
    m = one_op_model("PACK", [inp((2,), dtype)] * 2, {"values_count": 2}, out_shapes=[(2, 2)])
    both_reject(m, UnsupportedOpError, "PACK.*type")


@pytest.mark.parametrize("dtype", others(*UNPACK))
def test_unpack_unsupported_types(dtype: object) -> None:
    m = one_op_model("UNPACK", [inp((2, 2), dtype)], {"num": 2}, outputs=2,
                     out_shapes=[(2,), (2,)])
    both_reject(m, UnsupportedOpError, "UNPACK.*type")


# -- SPLIT, SPLIT_V -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtypes(*SPLIT))
def test_split_types(dtype: object) -> None:
    m = one_op_model("SPLIT", [const(1, i32), qin((2, 6), dtype)], {"num_splits": 3}, outputs=3,
                     out_dtype=dtype, out_quantization=quant_for(dtype))
    check_exact(m)


@pytest.mark.parametrize("shape,axis,n", [((6,), 0, 3), ((2, 6), -1, 2), ((4, 3, 2), 0, 4),
                                          ((2, 3, 4), 2, 1), ((2, 2, 2, 2, 2, 6), 5, 3),
                                          ((4, 2), [-2], 2)])
def test_split_axes(shape: tuple, axis: object, n: int) -> None:
    m = one_op_model("SPLIT", [const(np.array(axis, i32)), inp(shape)], {"num_splits": n},
                     outputs=n, out_dtype=np.float32)
    check_exact(m)


def test_split_dynamic_axis() -> None:
    m = one_op_model("SPLIT", [inp((), i32), inp((4, 6))], {"num_splits": 2}, outputs=2,
                     out_dtype=np.float32, out_shapes=[(1, 1), (1, 1)])
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    check_exact(m, [np.array(-1, i32), x])


@pytest.mark.parametrize("axis,n,message", [(1, 4, "evenly"), (2, 2, "out of range")])
def test_split_errors(axis: int, n: int, message: str) -> None:
    m = one_op_model("SPLIT", [const(axis, i32), inp((2, 6))], {"num_splits": n}, outputs=n,
                     out_dtype=np.float32, out_shapes=[(2, 1)] * n)
    both_reject(m, match=f"SPLIT.*{message}")


@pytest.mark.parametrize("dtype", dtypes(*SPLIT))
def test_split_v_types(dtype: object) -> None:
    m = one_op_model("SPLIT_V", [qin((2, 6), dtype), const([1, 3, 2], i32), const(1, i32)],
                     {"num_splits": 3}, outputs=3, out_quantization=quant_for(dtype))
    check_exact(m)


@pytest.mark.parametrize("shape,sizes,stype,axis", [
    ((6,), [1, 2, 3], i32, 0), ((2, 7), [3, -1], i64, 1), ((5, 2), [-1, 0, 5], i32, 0),
    ((3, 4, 5), [2, 1, 2], i32, -1), ((4, 2), [4], i32, 0),
])
def test_split_v_sizes(shape: tuple, sizes: list, stype: object, axis: int) -> None:
    m = one_op_model("SPLIT_V", [inp(shape), const(np.array(sizes, stype)), const(axis, i32)],
                     {"num_splits": len(sizes)}, outputs=len(sizes))
    check_exact(m)


def test_split_v_dynamic_sizes() -> None:
    m = one_op_model("SPLIT_V", [inp((2, 7)), inp((2,), i32), const(1, i32)], {"num_splits": 2},
                     outputs=2, out_shapes=[(1, 1), (1, 1)])
    check_exact(m, [np.arange(14, dtype=np.float32).reshape(2, 7), np.array([5, 2], i32)])


@pytest.mark.parametrize("sizes", [[2, 2], [-1, -1], [4, -1]])
def test_split_v_bad_sizes(sizes: list) -> None:
    m = one_op_model("SPLIT_V", [inp((2, 3)), const(np.array(sizes, i32)), const(1, i32)],
                     {"num_splits": 2}, outputs=2, out_shapes=[(2, 1), (2, 2)])
    both_reject(m, match="SPLIT_V.*size_splits")


@pytest.mark.parametrize("op", ["SPLIT", "SPLIT_V"])
@pytest.mark.parametrize("dtype", others(*SPLIT))
def test_split_unsupported_types(op: str, dtype: object) -> None:
    if op == "SPLIT":
        ins = [const(0, i32), inp((2,), dtype)]
    else:
        ins = [inp((2,), dtype), const([1, 1], i32), const(0, i32)]
    m = one_op_model(op, ins, {"num_splits": 2}, outputs=2, out_dtype=dtype,
                     out_shapes=[(1,), (1,)])
    both_reject(m, UnsupportedOpError, f"{op}.*type")


def test_quantized_multi_op_model() -> None:
    """uint8 inputs with different scales joined, padded, re-laid-out and split."""
    q1, q2, q3 = Quantization.of(0.05, 10), Quantization.of(0.2, 128), Quantization.of(0.1, 0)
    mb = ModelBuilder()
    g = mb.main
    a = g.input("a", (1, 4, 4, 3), np.uint8, quantization=q1)
    b = g.input("b", (1, 4, 4, 2), np.uint8, quantization=q2)
    joined = g.op("CONCATENATION", [a, b], {"axis": -1}, quantization=q3)
    padded = g.op("PAD", [joined, g.constant("pads", np.array([[0, 0], [1, 1], [1, 1], [0, 0]],
                                                              i32))], quantization=q3)
    s2b = g.op("SPACE_TO_BATCH_ND", [padded, g.constant("block", np.array([2, 2], i32)),
                                     g.constant("zero", np.zeros((2, 2), i32))], quantization=q3)
    flat = g.op("TRANSPOSE", [s2b, g.constant("perm", np.array([3, 1, 2, 0], i32))],
                quantization=q3)
    parts = g.op("SPLIT", [g.constant("axis", np.array(0, i32)), flat], {"num_splits": 5},
                 outputs=5, dtype=np.uint8, quantization=q3)
    g.output(g.op("CAST", [parts[4]], dtype=np.int32), parts[0])
    check_exact(mb.build())
