"""Quantized binary elementwise ops against LiteRT, bit-exact (compared with ==).

Goldens come from LiteRT on float inputs quantized with each case's
parameters. Resolver per op (see kernels/qelementwise.py):
* ADD, SUB, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, comparisons and int16
  MUL: LiteRT's builtin (optimized) and reference kernels agree; we compare
  with the builtin ones.
* int8 and uint8 MUL: compared with the reference kernel. The builtin x86
  kernel narrows to int16 and adds the output zero point with int16
  wrap-around, so products that saturate at -32768 come out as +127 when the
  output zero point is negative (test_mul_int8_builtin_overflow_differs_from_
  reference shows it), and uint8 products that saturate at +32767 wrap to 0
  when the zero point is positive. edgeplex saturates, as the reference does.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgeplex
from edgeplex import Quantization
from oracle import inp, one_op_model, run_litert, run_edgeplex
from quant_cases import INT_DTYPES, check_exact, float_inputs, qparam, quantize

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


@st.composite
def broadcast_shapes(draw: Any, broadcast: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes of rank <= 4; equal unless ``broadcast``."""
    out = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    if not broadcast:
        return tuple(out), tuple(out)

    def one() -> tuple[int, ...]:
        dims = [d if draw(st.booleans()) else 1 for d in out]
        return tuple(dims[draw(st.integers(0, len(dims) - 1)):])
    a, b = one(), one()
    if a == b:                                   # make sure something broadcasts
        b = b[:-1] + (1,) if len(b) else (1,)
    return a, b


def _binary_case(op: str, dtype: Any, shapes: tuple, qs: list[Quantization], act: str | None,
                 seed: int, resolver: str = "builtin") -> None:
    options = {} if act is None else {"fused_activation_function": act}
    model = one_op_model(op, [inp(shapes[0], dtype, qs[0]), inp(shapes[1], dtype, qs[1])],
                         options, out_dtype=dtype, out_quantization=qs[2])
    rng = np.random.default_rng(seed)
    a = float_inputs(rng, shapes[0], qs[0], dtype)
    b = float_inputs(rng, shapes[1], qs[1], dtype)
    check_exact(model, [a, b], resolver, what=f"{op} {np.dtype(dtype).name} {act}")


def _make_arith(op: str, dname: str, broadcast: bool, resolver: str) -> Callable[..., None]:
    dtype = INT_DTYPES[dname]

    @settings(max_examples=12)
    @given(shapes=broadcast_shapes(broadcast), q1=qparam(dtype), q2=qparam(dtype),
           qo=qparam(dtype, -8, 2 if op == "MUL" else 0), act=st.sampled_from(ACTS),
           seed=st.integers(0, 2**16))
    def test(shapes: tuple, q1: Quantization, q2: Quantization, qo: Quantization, act: str,
             seed: int) -> None:
        if op in ("ADD", "SUB"):
            # keep 2*max(s1, s2) / (2**shift * so) below 1, as TFLite requires for ADD
            qo = Quantization.of(max(float(qo.scale[0]), float(max(q1.scale[0], q2.scale[0]))
                                     * 2.0 ** -12), qo.zero_point[0])
        if dname == "int16" and op in ("ADD", "SUB"):   # power-of-two scales: own test
            qo = Quantization.of(float(qo.scale[0]) * 1.1, 0)
        _binary_case(op, dtype, shapes, [q1, q2, qo], act, seed, resolver)
    test.__name__ = f"test_{op.lower()}_{dname}_{'broadcast' if broadcast else 'same_shape'}"
    test.__doc__ = f"{op} {dname} ({'broadcast' if broadcast else 'equal shapes'}), " \
                   f"random scales, zero points and fused activation, vs LiteRT {resolver}."
    return test


for _op in ("ADD", "SUB", "MUL"):
    for _dname in INT_DTYPES:
        for _bc in (False, True):
            _res = "ref" if _op == "MUL" and _dname in ("int8", "uint8") else "builtin"
            _t = _make_arith(_op, _dname, _bc, _res)
            globals()[_t.__name__] = _t


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_fused_activation_int8_broadcast(op: str, act: str) -> None:
    """Every fused activation clamps in the quantized domain (int8, broadcast)."""
    qs = [Quantization.of(0.05, 3), Quantization.of(0.03, -7), Quantization.of(0.02, -20)]
    _binary_case(op, np.int8, ((2, 3, 4), (4,)), qs, act, 1,
                 "ref" if op == "MUL" else "builtin")


@pytest.mark.parametrize("op", ["ADD", "SUB"])
@pytest.mark.parametrize("pot_option", [True, False])
@pytest.mark.parametrize("shifts", [(0, 0), (-2, 0), (0, -3)])
def test_add_sub_int16_power_of_two_scales(op: str, pot_option: bool,
                                           shifts: tuple[int, int]) -> None:
    """int16 ADD/SUB with power-of-two scales use TFLite's shift-and-saturate
    path when pot_scale_int16 is set (the default), the general path if not."""
    qo = Quantization.of(2.0 ** -10)
    q1, q2 = Quantization.of(2.0 ** (-10 + shifts[0])), Quantization.of(2.0 ** (-10 + shifts[1]))
    model = one_op_model(op, [inp((3, 50), np.int16, q1), inp((3, 50), np.int16, q2)],
                         {"fused_activation_function": "NONE", "pot_scale_int16": pot_option},
                         out_dtype=np.int16, out_quantization=qo)
    rng = np.random.default_rng(3)
    a, b = (rng.integers(-32768, 32768, (3, 50)).astype(np.int16) for _ in range(2))
    a[0, :4], b[0, :4] = [32767, -32768, 32767, -32768], [32767, -32768, -32768, 32767]
    check_exact(model, [a, b])


def test_add_int16_power_of_two_broadcast_is_unsupported() -> None:
    """TFLite's power-of-two int16 ADD kernel has no broadcasting (it aborts)."""
    q = Quantization.of(2.0 ** -10)
    model = one_op_model("ADD", [inp((2, 3), np.int16, q), inp((3,), np.int16, q)],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int16,
                         out_quantization=q, out_shapes=[(2, 3)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="does not broadcast"):
        _allocate(model)


@pytest.mark.parametrize("out_dtype, zp", [(np.int8, -3), (np.uint8, 128)])
@pytest.mark.parametrize("act", ["NONE", "RELU"])
def test_mul_int16_to_8bit_output(out_dtype: Any, zp: int, act: str) -> None:
    """LSTM-style int16 x int16 -> 8-bit MUL (a Q0.15 product, no rescaling)."""
    q = Quantization.of(1 / 32768)
    model = one_op_model("MUL", [inp((3, 40), np.int16, q), inp((3, 40), np.int16, q)],
                         {"fused_activation_function": act}, out_dtype=out_dtype,
                         out_quantization=Quantization.of(1 / 128, zp))
    rng = np.random.default_rng(5)
    a, b = (rng.integers(-32768, 32768, (3, 40)).astype(np.int16) for _ in range(2))
    check_exact(model, [a, b])
    check_exact(model, [a, b], "ref")


def test_mul_int16_to_int8_broadcast_is_unsupported() -> None:
    """TFLite's int16 -> int8 MUL kernel has no broadcasting (it aborts)."""
    q = Quantization.of(1 / 32768)
    model = one_op_model("MUL", [inp((3, 4), np.int16, q), inp((4,), np.int16, q)],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int8,
                         out_quantization=Quantization.of(1 / 128), out_shapes=[(3, 4)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="does not broadcast"):
        _allocate(model)


def test_mul_int8_builtin_overflow_differs_from_reference() -> None:
    """Documents the LiteRT builtin int8 MUL overflow edgeplex does not copy."""
    qs = [Quantization.of(0.22, 16), Quantization.of(0.08, 55), Quantization.of(0.0047, -32)]
    model = one_op_model("MUL", [inp((32,), np.int8, qs[0]), inp((32,), np.int8, qs[1])],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int8,
                         out_quantization=qs[2])
    a = np.full(32, -128, np.int8)
    b = np.full(32, 127, np.int8)      # (-144 * 72) * 3.74 < -32768 saturates in int16
    ref = run_litert(model, [a, b], "ref")[0]
    builtin = run_litert(model, [a, b])[0]
    got = run_edgeplex(model, [a, b])[0]
    assert np.all(ref == -128) and np.all(builtin == 127)
    assert np.array_equal(got, ref)


# -- SQUARED_DIFFERENCE, MAXIMUM, MINIMUM -----------------------------------------------
@given(shapes=broadcast_shapes(True), q1=qparam(np.int8), q2=qparam(np.int8),
       qo=qparam(np.int8, -6, 4), seed=st.integers(0, 2**16))
def test_squared_difference_int8_broadcast(shapes: tuple, q1: Quantization, q2: Quantization,
                                           qo: Quantization, seed: int) -> None:
    """int8 SQUARED_DIFFERENCE with independent scales, broadcasting."""
    big = float(max(q1.scale[0], q2.scale[0]))
    qo = Quantization.of(max(float(qo.scale[0]), 4 * big * big * 2.0 ** -13), qo.zero_point[0])
    _binary_case("SQUARED_DIFFERENCE", np.int8, shapes, [q1, q2, qo], None, seed)


@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM"])
@pytest.mark.parametrize("dname", list(INT_DTYPES))
@settings(max_examples=8)
@given(shapes=broadcast_shapes(True), q=qparam(np.int8), seed=st.integers(0, 2**16))
def test_maximum_minimum_broadcast(op: str, dname: str, shapes: tuple, q: Quantization,
                                   seed: int) -> None:
    """MAXIMUM/MINIMUM on raw values; all three tensors share quantization."""
    dtype = INT_DTYPES[dname]
    q = Quantization.of(q.scale[0], 0 if dname == "int16" else
                        q.zero_point[0] + (128 if dname == "uint8" else 0))
    _binary_case(op, dtype, shapes, [q, q, q], None, seed)


@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM"])
@pytest.mark.parametrize("dname", list(INT_DTYPES))
def test_maximum_minimum_without_quantization(op: str, dname: str) -> None:
    """Plain (unquantized) small integers: raw elementwise max/min."""
    dtype = INT_DTYPES[dname]
    info = np.iinfo(dtype)
    rng = np.random.default_rng(2)
    model = one_op_model(op, [inp((3, 5), dtype), inp((5,), dtype)], out_dtype=dtype)
    a = rng.integers(info.min, info.max + 1, (3, 5)).astype(dtype)
    b = rng.integers(info.min, info.max + 1, (5,)).astype(dtype)
    check_exact(model, [a, b])


def test_add_int16_without_quantization_is_unsupported() -> None:
    model = one_op_model("ADD", [inp((4,), np.int16), inp((4,), np.int16)],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int16,
                         out_shapes=[(4,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="INT16 without quantization"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_maximum_rejects_mismatched_quantization() -> None:
    """LiteRT takes raw max of differently quantized inputs (a silently wrong
    result); edgeplex refuses at allocate_tensors."""
    model = one_op_model("MAXIMUM", [inp((4,), np.int8, Quantization.of(0.1, 0)),
                                     inp((4,), np.int8, Quantization.of(0.2, 0))],
                         out_dtype=np.int8, out_quantization=Quantization.of(0.1, 0),
                         out_shapes=[(4,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="equal quantization"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


# -- comparisons ---------------------------------------------------------------------------
COMPARISONS = ["EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL"]


@pytest.mark.parametrize("op", COMPARISONS)
@pytest.mark.parametrize("dname", ["int8", "uint8"])
@settings(max_examples=10)
@given(shapes=broadcast_shapes(True), q1=qparam(np.int8, -8, -0.1),
       q2=qparam(np.int8, -8, -0.1), same=st.booleans(), seed=st.integers(0, 2**16))
def test_comparison_rescales_both_sides(op: str, dname: str, shapes: tuple, q1: Quantization,
                                        q2: Quantization, same: bool, seed: int) -> None:
    """Comparisons of differently (or identically) quantized inputs; values on
    a coarse real grid so that equal reals occur under both quantizations."""
    dtype = INT_DTYPES[dname]
    shift = 128 if dname == "uint8" else 0
    q1 = Quantization.of(q1.scale[0], q1.zero_point[0] // 2 + shift)
    q2 = q1 if same else Quantization.of(q2.scale[0], q2.zero_point[0] // 2 + shift)
    rng = np.random.default_rng(seed)
    step = float(max(q1.scale[0], q2.scale[0])) * 4
    grid = lambda shape: rng.integers(-8, 9, shape) * step  # noqa: E731
    model = one_op_model(op, [inp(shapes[0], dtype, q1), inp(shapes[1], dtype, q2)],
                         out_dtype=np.bool_)
    a, b = quantize(grid(shapes[0]), q1, dtype), quantize(grid(shapes[1]), q2, dtype)
    check_exact(model, [a, b], what=op)


# -- errors ---------------------------------------------------------------------------------
def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_add_int8_missing_quantization_is_a_model_error() -> None:
    model = one_op_model("ADD", [inp((4,), np.int8, Quantization.of(0.1, 0)), inp((4,), np.int8)],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int8,
                         out_quantization=Quantization.of(0.1, 0), out_shapes=[(4,)])
    with pytest.raises(edgeplex.ModelError, match="input 1 'input1' is INT8 but has no "
                                                  "quantization"):
        _allocate(model)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_int16_nonzero_zero_point_is_unsupported(op: str) -> None:
    q, q5 = Quantization.of(0.01, 0), Quantization.of(0.01, 5)
    model = one_op_model(op, [inp((4,), np.int16, q), inp((4,), np.int16, q5)],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int16,
                         out_quantization=q, out_shapes=[(4,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="int16 quantization needs zero point 0"):
        _allocate(model)


def test_add_rejects_per_channel_activation_quantization() -> None:
    q = Quantization.of([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], axis=0)
    model = one_op_model("ADD", [inp((4,), np.int8, q), inp((4,), np.int8, Quantization.of(0.1))],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int8,
                         out_quantization=Quantization.of(0.1), out_shapes=[(4,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="per-channel"):
        _allocate(model)


def test_add_int8_unsupported_fused_tanh() -> None:
    q = Quantization.of(0.1, 0)
    model = one_op_model("ADD", [inp((4,), np.int8, q), inp((4,), np.int8, q)],
                         {"fused_activation_function": "TANH"}, out_dtype=np.int8,
                         out_quantization=q, out_shapes=[(4,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="TANH"):
        _allocate(model)


@pytest.mark.parametrize("op", ["ADD", "SUB"])
def test_add_sub_output_scale_too_small_is_unsupported(op: str) -> None:
    """2*max(s1,s2) / (2**20 * so) >= 1: TFLite's ADD aborts and its SUB shifts
    by a negative amount (undefined behaviour); edgeplex refuses and says why."""
    q = Quantization.of(0.5, 0)
    model = one_op_model(op, [inp((4,), np.int8, q), inp((4,), np.int8, q)],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int8,
                         out_quantization=Quantization.of(1e-7, 0), out_shapes=[(4,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="rescale factor"):
        _allocate(model)


def test_mixed_input_types_are_a_model_error() -> None:
    model = one_op_model("ADD", [inp((4,), np.int8, Quantization.of(0.1)),
                                 inp((4,), np.uint8, Quantization.of(0.1, 128))],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int8,
                         out_quantization=Quantization.of(0.1), out_shapes=[(4,)])
    with pytest.raises(edgeplex.ModelError, match="types differ"):
        _allocate(model)
