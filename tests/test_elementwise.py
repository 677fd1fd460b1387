"""Oracle tests of kernels/elementwise.py against LiteRT's builtin kernels.

Tolerances:
- ADD, SUB, MUL, DIV, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, FLOOR_DIV,
  FLOOR_MOD, ABS, NEG, SQRT, RSQRT, SQUARE, FLOOR, CEIL, ROUND, SIGN (every
  type, COMPLEX64 MUL included) and the float16 SIN/COS: none. Each is one
  IEEE operation (or the same short sequence LiteRT performs, e.g. complex
  products without FMA) per element, so edgeplex must give the same values,
  with NaN and inf in the same places.
- EXP, LOG, SIN, COS, POW on float32: rtol 2.5e-7 (2 ulp). LiteRT calls libm's
  expf/logf/sinf/cosf/powf; numpy uses its own vectorised versions. Both are
  within about 1 ulp of the true value, so they may differ by up to 2 ulp
  (measured: 1.2e-7 relative). SIN/COS also get atol 1.2e-7 (1 ulp at 1.0)
  for results near a zero of the function, where the ulp of the result is tiny.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edgeplex
from edgeplex import ModelBuilder
from elementwise_helpers import (DTYPES, PATTERNS, ModelError, UnsupportedOpError,
                                       allocate_error, binary_model, both_fail_invoke,
                                       both_reject, dtype_params, oracle, unary_model, values)
from oracle import assert_close, const, inp, one_op_model, run_litert

f32, f16, i32, i64 = np.float32, np.float16, np.int32, np.int64
ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "SIGN_BIT"]

#: op -> types LiteRT's builtin kernel takes (checked by running it).
ARITH = {"ADD": ["FLOAT32", "FLOAT16", "INT32", "INT64"],
         "SUB": ["FLOAT32", "INT32", "INT64"],
         "MUL": ["FLOAT32", "FLOAT16", "INT32", "INT64", "UINT32", "COMPLEX64"],
         "DIV": ["FLOAT32", "INT32"]}
BINARY = {"SQUARED_DIFFERENCE": ["FLOAT32", "INT32"],
          "MAXIMUM": ["FLOAT32", "FLOAT16", "INT32", "INT64"],
          "MINIMUM": ["FLOAT32", "FLOAT16", "INT32", "INT64"],
          "POW": ["FLOAT32", "INT32"],
          "FLOOR_DIV": ["FLOAT32", "INT32"],
          "FLOOR_MOD": ["FLOAT32", "INT32", "INT64"]}
UNARY = {"ABS": ["FLOAT32", "INT32"], "NEG": ["FLOAT32", "FLOAT16", "INT32", "INT64"],
         "EXP": ["FLOAT32"], "LOG": ["FLOAT32"], "SQRT": ["FLOAT32"], "RSQRT": ["FLOAT32"],
         "SQUARE": ["FLOAT32"], "SIN": ["FLOAT32", "FLOAT16"], "COS": ["FLOAT32", "FLOAT16"],
         "FLOOR": ["FLOAT32", "FLOAT16"], "CEIL": ["FLOAT32"], "ROUND": ["FLOAT32", "FLOAT16"],
         "SIGN": ["FLOAT32", "INT32", "FLOAT64"]}
#: Highest version LiteRT 2.3's builtin resolver registers.
VERSIONS = {"ADD": 6, "SUB": 5, "MUL": 8, "DIV": 2, "SQUARED_DIFFERENCE": 2, "MAXIMUM": 4,
            "MINIMUM": 4, "POW": 1, "FLOOR_DIV": 3, "FLOOR_MOD": 2, "ABS": 5, "NEG": 1,
            "EXP": 2, "LOG": 2, "SQRT": 2, "RSQRT": 3, "SQUARE": 1, "SIN": 2, "COS": 2,
            "FLOOR": 1, "CEIL": 1, "ROUND": 1, "SIGN": 2}
#: Unary ops whose float32 results come from different libm implementations.
TRANSCENDENTAL = {"EXP": (2.5e-7, 0.0), "LOG": (2.5e-7, 0.0), "SIN": (2.5e-7, 1.2e-7),
                  "COS": (2.5e-7, 1.2e-7)}
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 100.0, -100.0, 3e38, -3e38, 1e-40,
           np.inf, -np.inf, np.nan]


def op_types(table: dict[str, list[str]]) -> list:
    """pytest params (op, dtype) of every supported pair in ``table``."""
    return [pytest.param(op, DTYPES[t], id=f"{op}-{t.lower()}")
            for op, types in table.items() for t in types]


def operands(op: str, sa: tuple, sb: tuple, dtype, seed: int = 0) -> list[np.ndarray]:
    """Inputs for a binary op: divisors nonzero, integer POW exponents small."""
    rng = np.random.default_rng(seed)
    a = values(rng, sa, dtype, -50 if np.dtype(dtype).kind in "iu" else -10,
               50 if np.dtype(dtype).kind in "iu" else 10)
    b = values(rng, sb, dtype, -50 if np.dtype(dtype).kind in "iu" else -10,
               50 if np.dtype(dtype).kind in "iu" else 10,
               nonzero=op in ("DIV", "FLOOR_DIV", "FLOOR_MOD"))
    if op == "POW":
        if np.dtype(dtype).kind == "i":
            a, b = values(rng, sa, dtype, -9, 9), values(rng, sb, dtype, 0, 6)
        else:
            a = np.abs(a)
    return [a, b]


def tolerance(op: str, dtype) -> tuple[float, float]:
    """(rtol, atol) for ``op`` on ``dtype`` (see the module docstring)."""
    if np.dtype(dtype) == np.float32 and op in TRANSCENDENTAL:
        return TRANSCENDENTAL[op]
    if np.dtype(dtype) == np.float32 and op == "POW":
        return 2.5e-7, 0.0
    return 0.0, 0.0


# -- ADD / SUB / MUL / DIV ---------------------------------------------------------------
@pytest.mark.parametrize("sa,sb", PATTERNS)
@pytest.mark.parametrize("op,dtype", op_types(ARITH))
def test_arith_broadcast(op: str, dtype, sa: tuple, sb: tuple) -> None:
    oracle(binary_model(op, sa, sb, dtype), operands(op, sa, sb, dtype), what=op)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("op,dtype", op_types({k: [t for t in v if t != "COMPLEX64"]
                                              for k, v in ARITH.items()}))
def test_arith_fused_activation(op: str, dtype, act: str) -> None:
    # TANH and SIGN_BIT get no clamp range in LiteRT's ADD/SUB/MUL/DIV: ignored.
    m = binary_model(op, (4, 6), (6,), dtype, {"fused_activation_function": act})
    oracle(m, operands(op, (4, 6), (6,), dtype, seed=1), what=f"{op} {act}")


@pytest.mark.parametrize("act", ["RELU", "RELU6", "TANH"])
def test_complex_mul_takes_no_activation(act: str) -> None:
    m = binary_model("MUL", (2, 3), (3,), np.complex64, {"fused_activation_function": act})
    both_reject(m, operands("MUL", (2, 3), (3,), np.complex64),
                match=f"fused activation {act} is not allowed for COMPLEX64")


def test_complex_mul_special_values() -> None:
    c = np.complex64
    a = np.array([1 + 2j, -3 + 0.5j, complex(np.inf, 1), 1e30 + 1e30j, 0, complex(0, np.nan)], c)
    b = np.array([2 - 1j, 0.5j, 1, 1e10, complex(np.nan, 0), 1], c)
    oracle(binary_model("MUL", a.shape, b.shape, c), [a, b])
    oracle(binary_model("MUL", (6, 1), (4,), c), [a[:, None], b[:4]])


@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6"])
@pytest.mark.parametrize("op,dtype", op_types({k: [t for t in v if t.startswith("FLOAT")]
                                              for k, v in ARITH.items()}))
def test_float_arith_saturates_and_keeps_nan(op: str, dtype, act: str) -> None:
    # Results clamp to the type's largest finite value even without an activation.
    with np.errstate(over="ignore"):
        a = np.array(SPECIAL, dtype)
        b = np.array([1.0, 1.0, 0.0, -0.0, 3.0, np.nan, 3e38, -2.0, 3e38, 5.0, 1e-40, 1.0, 2.0,
                      1.0], dtype)
    m = binary_model(op, a.shape, b.shape, dtype, {"fused_activation_function": act})
    oracle(m, [a, b], what=f"{op} {act}")
    oracle(binary_model(op, (14, 1), (14,), dtype), [a[:, None], b], what=f"{op} broadcast")


@pytest.mark.parametrize("op,dtype", op_types({k: [t for t in v if "INT" in t]
                                              for k, v in ARITH.items() if k != "DIV"}))
def test_int_arith_wraps(op: str, dtype) -> None:
    info = np.iinfo(dtype)
    a = np.array([info.max, info.min, info.max, info.min, info.max // 2 + 7, 3], dtype)
    b = np.array([1, 1, info.max, info.max, 5, 0], dtype)
    oracle(binary_model(op, a.shape, b.shape, dtype), [a, b])


def test_int_div_truncates_toward_zero() -> None:
    a = np.array([7, -7, 7, -7, 1, -1, 0, 2**31 - 1, -2**31, 6, -6], i32)
    b = np.array([2, 2, -2, -2, 3, 3, 5, 2, 2, -3, 4], i32)
    oracle(binary_model("DIV", a.shape, b.shape, i32), [a, b])
    oracle(binary_model("DIV", (11, 1), (3,), i32), [a[:, None], np.array([3, -4, 7], i32)])


@pytest.mark.parametrize("shape_b", [(4,), ()])
def test_int_div_by_zero_fails_at_invoke(shape_b: tuple) -> None:
    a = np.arange(8, dtype=i32).reshape(2, 4)
    b = np.zeros(shape_b, i32)
    both_fail_invoke(binary_model("DIV", a.shape, b.shape, i32), [a, b], match="zero")


def test_float_div_by_zero_saturates() -> None:
    a = np.array([1, -1, 0, np.nan, np.inf, -3], f32)
    b = np.array([0, 0, 0, 0, 0, -0.0], f32)
    for act in ("NONE", "RELU", "RELU_N1_TO_1"):
        oracle(binary_model("DIV", a.shape, b.shape, f32, {"fused_activation_function": act}),
               [a, b])


@pytest.mark.parametrize("op", ["DIV", "FLOOR_DIV", "FLOOR_MOD"])
def test_constant_zero_divisor_is_a_model_error(op: str) -> None:
    m = one_op_model(op, [inp((2, 3), i32), const([1, 0, 2], i32)], out_shapes=[(2, 3)])
    allocate_error(m, ModelError, "divisor 'const1' holds a zero")


def test_constant_divisor() -> None:
    m = one_op_model("DIV", [inp((2, 3), i32), const([3, -2, 5], i32)],
                     {"fused_activation_function": "RELU6"})
    oracle(m, [np.array([[7, -7, 100], [-100, 0, 11]], i32)])


# -- the other binary ops ----------------------------------------------------------------
@pytest.mark.parametrize("sa,sb", PATTERNS)
@pytest.mark.parametrize("op,dtype", op_types(BINARY))
def test_binary_broadcast(op: str, dtype, sa: tuple, sb: tuple) -> None:
    rtol, atol = tolerance(op, dtype)
    oracle(binary_model(op, sa, sb, dtype), operands(op, sa, sb, dtype, seed=2), rtol, atol,
           what=op)


@pytest.mark.parametrize("op,dtype", op_types({"MAXIMUM": ["FLOAT32", "FLOAT16"],
                                               "MINIMUM": ["FLOAT32", "FLOAT16"]}))
def test_max_min_nan_comes_from_second_operand(op: str, dtype) -> None:
    # LiteRT computes a > b ? a : b: a NaN in b wins, a NaN in a loses.
    a = np.array([np.nan, 1, np.nan, np.inf, -np.inf, 0.0, -0.0, 2, 65504], dtype)
    b = np.array([1, np.nan, np.nan, 1, 1, -0.0, 0.0, np.inf, -65504], dtype)
    oracle(binary_model(op, a.shape, b.shape, dtype), [a, b])
    oracle(binary_model(op, (9, 1), (1, 9), dtype), [a[:, None], b[None]])


def test_squared_difference_special_values() -> None:
    a = np.array([3e38, -3e38, np.inf, np.nan, 1e20, 2, -2], f32)
    b = np.array([-3e38, 3e38, 1, 1, -1e20, np.inf, -2], f32)
    oracle(binary_model("SQUARED_DIFFERENCE", a.shape, b.shape, f32), [a, b])
    ia = np.array([2**31 - 1, -2**31, 50000, -50000, 7], i32)
    ib = np.array([-1, 1, -50000, 50000, -7], i32)
    oracle(binary_model("SQUARED_DIFFERENCE", ia.shape, ib.shape, i32), [ia, ib])


@pytest.mark.parametrize("dtype", dtype_params("FLOAT32", "INT32", "INT64"))
def test_floor_mod_signs(dtype) -> None:
    a = np.array([7, -7, 7, -7, 1, -1, 0, 5, -5, 6, 9], dtype)
    b = np.array([2, 2, -2, -2, 3, 3, 5, 5, 5, -3, -4], dtype)
    oracle(binary_model("FLOOR_MOD", a.shape, b.shape, dtype), [a, b])


@pytest.mark.parametrize("dtype", dtype_params("FLOAT32", "INT32"))
def test_floor_div_signs(dtype) -> None:
    a = np.array([7, -7, 7, -7, 1, -1, 0, 5, -5, 6, 9], dtype)
    b = np.array([2, 2, -2, -2, 3, 3, 5, 5, 5, -3, -4], dtype)
    oracle(binary_model("FLOOR_DIV", a.shape, b.shape, dtype), [a, b])


def test_float_floor_div_rounds_in_double() -> None:
    # floor(double(a) / double(b)): 0.3f / 0.1f is just above 3; inf / 2 stays inf.
    a = np.array([7.5, -7.5, 7.5, -7.5, 1e30, -1e-30, 0.3, np.inf, np.nan, 5, 1, 16777217],
                 f32)
    b = np.array([2, 2, -2.5, -2.5, 3, 3, 0.1, 2, 1, np.inf, 1e-45, 3], f32)
    oracle(binary_model("FLOOR_DIV", a.shape, b.shape, f32), [a, b])


def test_float_floor_mod_special_values() -> None:
    a = np.array([7.5, -7.5, 7.5, -7.5, 1e30, -1e-30, 0.3, np.inf, np.nan, 5, -5, 3], f32)
    b = np.array([2, 2, -2.5, -2.5, 3, 3, 0.1, 2, 1, np.inf, np.inf, 0], f32)
    oracle(binary_model("FLOOR_MOD", a.shape, b.shape, f32), [a, b])   # x mod 0 = NaN


@pytest.mark.parametrize("op,dtype", [("FLOOR_DIV", i32), ("FLOOR_DIV", f32),
                                      ("FLOOR_MOD", i32), ("FLOOR_MOD", i64)])
def test_floor_div_mod_zero_divisor_fails(op: str, dtype) -> None:
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype)
    b = np.array([1, 0, 2], dtype)
    both_fail_invoke(binary_model(op, a.shape, b.shape, dtype), [a, b], match="zero")


def test_int_pow_goes_through_double() -> None:
    # std::pow(int, int) is a double; out-of-range results convert like C's cast.
    a = np.array([2, -2, 0, 0, 10, 3, -3, 46341, 2, 7, -1, 1], i32)
    b = np.array([3, 3, 0, 5, 10, 20, 21, 2, 31, 0, 7, 1000], i32)
    oracle(binary_model("POW", a.shape, b.shape, i32), [a, b])


def test_int_pow_negative_exponent() -> None:
    a, b = np.array([2, 3], i32), np.array([1, -1], i32)
    both_fail_invoke(binary_model("POW", a.shape, b.shape, i32), [a, b], match="non-negative")
    m = one_op_model("POW", [inp((2,), i32), const([2, -1], i32)], out_shapes=[(2,)])
    allocate_error(m, ModelError, "negative")


def test_float_pow_special_values() -> None:
    a = np.array([-2, -2, 0, 0, 0, 2, np.inf, -np.inf, np.nan, 1, 1.5, -8, 10, 0.5], f32)
    b = np.array([0.5, 3, 0, -1, 0.5, -1, -1, 3, 0, np.nan, 100, 1 / 3, 40, -200], f32)
    oracle(binary_model("POW", a.shape, b.shape, f32), [a, b], *tolerance("POW", f32))


# -- unary ops ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 4), (1, 2, 1, 3, 2, 2)])
@pytest.mark.parametrize("op,dtype", op_types(UNARY))
def test_unary(op: str, dtype, shape: tuple) -> None:
    rng = np.random.default_rng(3)
    x = values(rng, shape, dtype, -20 if np.dtype(dtype).kind == "i" else -8,
               20 if np.dtype(dtype).kind == "i" else 8)
    if op in ("LOG", "SQRT", "RSQRT"):
        x = np.abs(x)
    oracle(unary_model(op, shape, dtype), [x], *tolerance(op, dtype), what=op)


@pytest.mark.parametrize("op,dtype", op_types({k: [t for t in v if t.startswith("FLOAT")]
                                              for k, v in UNARY.items()}))
def test_unary_special_values(op: str, dtype) -> None:
    # inf/NaN placement: LOG(0) = -inf, SQRT(-1) = NaN, RSQRT(0) = inf, EXP(100) = inf, ...
    with np.errstate(all="ignore"):
        x = np.array(SPECIAL + [1.5, -0.5, 2.5, 88.0, -104.0, 1e5], np.float64).astype(dtype)
    oracle(unary_model(op, x.shape, dtype), [x], *tolerance(op, dtype), what=op)


@pytest.mark.parametrize("dtype", dtype_params("FLOAT32", "FLOAT16"))
def test_round_half_to_even(dtype) -> None:
    x = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 0.49, 0.51, -0.51, 1024.5], dtype)
    got = oracle(unary_model("ROUND", x.shape, dtype), [x])[0]
    assert got.tolist()[:7] == [0, 2, 2, 4, -0, -2, -2]


def test_int_abs_neg_sign_extremes() -> None:
    x = np.array([-2**31, 2**31 - 1, -5, 0, 5], i32)
    for op in ("ABS", "NEG", "SIGN"):
        oracle(unary_model(op, x.shape, i32), [x], what=op)
    x64 = np.array([-2**63, 2**63 - 1, -5, 0], i64)
    oracle(unary_model("NEG", x64.shape, i64), [x64])


# -- ranks, versions, types, shapes ---------------------------------------------------------
@pytest.mark.parametrize("op", ["ADD", "MUL"])
def test_add_mul_broadcast_past_rank_8(op: str) -> None:
    # LiteRT's ADD and MUL take a scalar or trailing vector at rank 9.
    shape = (2, 1, 2, 1, 2, 1, 2, 1, 3)
    x = np.random.default_rng(4).uniform(-3, 3, shape).astype(f32)
    for sb in [(), (3,)]:
        oracle(binary_model(op, shape, sb, f32), [x, np.full(sb, 1.5, f32)])


@pytest.mark.parametrize("op", ["SUB", "DIV", "MAXIMUM", "POW", "FLOOR_MOD"])
def test_broadcast_past_rank_8_is_unsupported(op: str) -> None:
    # LiteRT 2.3 aborts on these (so it is not run); edgeplex refuses cleanly.
    m = binary_model(op, (2,) * 9, (2, 1), f32)
    allocate_error(m, UnsupportedOpError, "rank 9 is not supported")


def test_same_shapes_any_rank() -> None:
    shape = (1, 2, 1, 2, 1, 2, 1, 2, 1, 2)
    a, b = operands("SUB", shape, shape, f32)
    oracle(binary_model("SUB", shape, shape, f32), [a, b])


@pytest.mark.parametrize("op", sorted(VERSIONS))
def test_versions(op: str) -> None:
    dtype = f32
    top = VERSIONS[op]
    make = binary_model if op in ARITH or op in BINARY else unary_model
    args = ((2, 3), (3,), dtype) if make is binary_model else ((2, 3), dtype)
    x = [np.full(s, 2.0, dtype) for s in args[:-1]]
    oracle(make(op, *args, version=top), x, *tolerance(op, dtype))
    both_reject(make(op, *args, version=top + 1), x, match=f"version {top + 1}")


UNSUPPORTED = [("ADD", "BOOL"), ("ADD", "COMPLEX64"), ("SUB", "FLOAT16"), ("SUB", "UINT32"), ("DIV", "INT64"),
               ("DIV", "FLOAT16"), ("SQUARED_DIFFERENCE", "INT64"), ("POW", "INT64"),
               ("FLOOR_DIV", "INT64"), ("FLOOR_MOD", "FLOAT16"), ("MAXIMUM", "BOOL"),
               ("ABS", "INT64"), ("ABS", "FLOAT16"), ("EXP", "INT32"), ("EXP", "FLOAT16"),
               ("LOG", "FLOAT16"), ("SQRT", "INT32"), ("RSQRT", "FLOAT16"),
               ("SQUARE", "INT32"), ("CEIL", "FLOAT16"), ("SIGN", "INT64"), ("NEG", "BOOL")]


@pytest.mark.parametrize("op,type_name", UNSUPPORTED)
def test_unsupported_types(op: str, type_name: str) -> None:
    dtype = DTYPES[type_name]
    make = binary_model if op in ARITH or op in BINARY else unary_model
    args = ((2, 3), (2, 3), dtype) if make is binary_model else ((2, 3), dtype)
    x = [np.ones(s, dtype) for s in args[:-1]]
    both_reject(make(op, *args), x, match=f"type {type_name} is not supported")


@pytest.mark.parametrize("op", ["ADD", "DIV", "POW", "MAXIMUM", "FLOOR_MOD"])
def test_input_type_mismatch(op: str) -> None:
    m = one_op_model(op, [inp((2, 3), f32), inp((2, 3), i32)], out_shapes=[(2, 3)])
    allocate_error(m, ModelError, "input types differ: FLOAT32 and INT32")


@pytest.mark.parametrize("op", ["ADD", "SQUARED_DIFFERENCE", "FLOOR_DIV"])
def test_shapes_that_do_not_broadcast(op: str) -> None:
    m = one_op_model(op, [inp((2, 3), f32), inp((4,), f32)], out_shapes=[(2, 3)])
    allocate_error(m, ModelError, r"input shapes \[2, 3\], \[4\] do not broadcast")


@pytest.mark.parametrize("op", ["MUL", "SQRT"])
def test_output_type_mismatch(op: str) -> None:
    ins = [inp((2, 3), f32)] * (2 if op == "MUL" else 1)
    m = one_op_model(op, ins, out_dtype=i32, out_shapes=[(2, 3)])
    allocate_error(m, ModelError, "is INT32, expected FLOAT32")


def test_resized_inputs() -> None:
    # Both runtimes resize (1, 3) and (3,) inputs to (4, 1, 3) and (2, 3): prepare reruns.
    m = binary_model("MUL", (1, 3), (3,), f32, {"fused_activation_function": "RELU"})
    a, b = operands("MUL", (4, 1, 3), (2, 3), f32, seed=5)
    oracle(m, [a, b])


def test_zero_sized_tensors() -> None:
    a, b = np.zeros((0, 3), f32), np.ones((3,), f32)
    oracle(binary_model("ADD", a.shape, b.shape, f32), [a, b])
    oracle(unary_model("EXP", (2, 0), f32), [np.zeros((2, 0), f32)])


# -- hypothesis ----------------------------------------------------------------------------
@st.composite
def broadcast_case(draw: st.DrawFn) -> tuple[str, type, tuple, tuple, int]:
    """An op, a type it takes and two shapes that broadcast (rank <= 5)."""
    op, dtype = draw(st.sampled_from([(op, DTYPES[t]) for op, ts in {**ARITH, **BINARY}.items()
                                      for t in ts]))
    out = draw(st.lists(st.integers(1, 4), min_size=0, max_size=5))
    def side() -> tuple:
        rank = draw(st.integers(0, len(out)))
        dims = out[len(out) - rank:]
        return tuple(d if draw(st.booleans()) else 1 for d in dims)
    return op, dtype, side(), side(), draw(st.integers(0, 2**16))


@given(broadcast_case())
def test_hypothesis_broadcast(case: tuple) -> None:
    op, dtype, sa, sb, seed = case
    rtol, atol = tolerance(op, dtype)
    oracle(binary_model(op, sa, sb, dtype), operands(op, sa, sb, dtype, seed), rtol, atol,
           what=f"{op} {np.dtype(dtype).name} {sa} {sb}")


# -- a multi-op model ----------------------------------------------------------------------
def test_multi_op_model() -> None:
    """((x * c - y)^2 / (|y| + 1)) floored, maxed with sqrt(|x|), RELU6 on the way."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 3, 4), f32)
    y = g.input("y", (4,), f32)
    c = g.constant("c", np.array([[1.5], [-2.0], [0.25]], f32))
    one = g.constant("one", np.array(1.0, f32))
    xc = g.op("MUL", [x, c], {"fused_activation_function": "NONE"})
    d = g.op("SUB", [xc, y], {"fused_activation_function": "RELU6"})
    sq = g.op("SQUARE", [d])
    ay = g.op("ADD", [g.op("ABS", [y]), one])
    q = g.op("FLOOR", [g.op("DIV", [sq, ay])])
    out = g.op("MAXIMUM", [q, g.op("SQRT", [g.op("ABS", [x])])])
    g.output(out, g.op("ROUND", [g.op("NEG", [xc])]))
    model = mb.build()
    rng = np.random.default_rng(7)
    inputs = [rng.uniform(-4, 4, (2, 3, 4)).astype(f32), rng.uniform(-4, 4, (4,)).astype(f32)]
    oracle(model, inputs)
    # one interpreter invoked again with new values (scratch buffers are reused)
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    for seed in (8, 9):
        r = np.random.default_rng(seed)
        xs = [r.uniform(-4, 4, (2, 3, 4)).astype(f32), r.uniform(-4, 4, (4,)).astype(f32)]
        for d_, v in zip(it.get_input_details(), xs):
            it.set_tensor(d_["index"], v)
        it.invoke()
        got = [it.get_tensor(d_["index"]) for d_ in it.get_output_details()]
        assert_close(got, run_litert(model, xs), 0, 0, what=f"invoke with seed {seed}")
