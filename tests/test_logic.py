"""Oracle tests of kernels/logic.py against LiteRT's builtin kernels.

Tolerance: none. Comparisons and logical ops give BOOL outputs, and an IEEE
comparison has one answer (NaN compares unequal to everything, -0 == 0).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeplex import ModelBuilder
from elementwise_helpers import (DTYPES, PATTERNS, ModelError, allocate_error,
                                       binary_model, both_reject, oracle, unary_model)
from oracle import const, inp, one_op_model

f32, f16, i32, i64, b8 = np.float32, np.float16, np.int32, np.int64, np.bool_
ORDERED = ["FLOAT32", "FLOAT16", "INT32", "INT64"]
#: op -> (types LiteRT takes, its highest version)
COMPARISONS = {"EQUAL": (ORDERED + ["BOOL"], 5), "NOT_EQUAL": (ORDERED + ["BOOL"], 4),
               "LESS": (ORDERED, 3), "LESS_EQUAL": (ORDERED, 2), "GREATER": (ORDERED, 2),
               "GREATER_EQUAL": (ORDERED, 3)}
LOGICAL = ["LOGICAL_AND", "LOGICAL_OR"]


def comparison_params() -> list:
    """pytest params (op, dtype) for every comparison and type it takes."""
    return [pytest.param(op, DTYPES[t], id=f"{op}-{t.lower()}")
            for op, (types, _) in COMPARISONS.items() for t in types]


def few_values(rng: np.random.Generator, shape: tuple, dtype) -> np.ndarray:
    """Values from a small set, so equal pairs are common (floats with -0, inf, NaN)."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    pool = [-3, -1, 0, 1, 2, 7]
    if dt.kind == "f":
        pool += [-0.0, 0.5, np.inf, -np.inf, np.nan]
    if dt == np.int64:
        pool += [2**40, -2**40]
    return np.array(pool, np.float64 if dt.kind == "f" else np.int64)[
        rng.integers(0, len(pool), shape)].astype(dt)


@pytest.mark.parametrize("sa,sb", PATTERNS)
@pytest.mark.parametrize("op,dtype", comparison_params())
def test_comparison(op: str, dtype, sa: tuple, sb: tuple) -> None:
    rng = np.random.default_rng(0)
    x = [few_values(rng, sa, dtype), few_values(rng, sb, dtype)]
    oracle(binary_model(op, sa, sb, dtype, out_dtype=b8), x, what=op)


@pytest.mark.parametrize("op", list(COMPARISONS))
def test_comparison_nan_and_signed_zero(op: str) -> None:
    a = np.array([np.nan, np.nan, 1.0, 0.0, -0.0, np.inf, -np.inf, np.inf], f32)
    b = np.array([np.nan, 1.0, np.nan, -0.0, 0.0, np.inf, np.inf, 3e38], f32)
    got = oracle(binary_model(op, a.shape, b.shape, f32, out_dtype=b8), [a, b])[0]
    assert got.dtype == np.bool_


def test_comparison_with_constant() -> None:
    m = one_op_model("GREATER", [inp((2, 3), i64), const([[1], [5]], i64)], out_dtype=b8)
    oracle(m, [np.array([[0, 1, 2], [4, 5, 6]], i64)])


@pytest.mark.parametrize("sa,sb", PATTERNS)
@pytest.mark.parametrize("op", LOGICAL)
def test_logical(op: str, sa: tuple, sb: tuple) -> None:
    rng = np.random.default_rng(1)
    x = [few_values(rng, sa, b8), few_values(rng, sb, b8)]
    oracle(binary_model(op, sa, sb, b8), x, what=op)


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 1, 3, 2, 2)])
def test_logical_not(shape: tuple) -> None:
    x = few_values(np.random.default_rng(2), shape, b8)
    oracle(unary_model("LOGICAL_NOT", shape, b8), [x])


@given(st.sampled_from([(op, DTYPES[t]) for op, (ts, _) in COMPARISONS.items() for t in ts]
                       + [(op, b8) for op in LOGICAL]),
       st.lists(st.integers(1, 4), max_size=5), st.integers(0, 2**16))
def test_hypothesis_broadcast(case: tuple, out: list, seed: int) -> None:
    op, dtype = case
    rng = np.random.default_rng(seed)
    sa = tuple(d if rng.integers(2) else 1 for d in out[rng.integers(0, len(out) + 1):])
    sb = tuple(d if rng.integers(2) else 1 for d in out[rng.integers(0, len(out) + 1):])
    x = [few_values(rng, sa, dtype), few_values(rng, sb, dtype)]
    oracle(binary_model(op, sa, sb, dtype, out_dtype=b8), x, what=f"{op} {sa} {sb}")


# -- versions, types, shapes ------------------------------------------------------------------
@pytest.mark.parametrize("op", [*COMPARISONS, *LOGICAL, "LOGICAL_NOT"])
def test_versions(op: str) -> None:
    top = COMPARISONS[op][1] if op in COMPARISONS else 1
    dtype = f32 if op in COMPARISONS else b8
    def model(version: int) -> bytes:
        if op == "LOGICAL_NOT":
            return unary_model(op, (2, 3), b8, version=version)
        return binary_model(op, (2, 3), (3,), dtype, out_dtype=b8, version=version)
    x = [np.ones((2, 3), dtype)] + ([] if op == "LOGICAL_NOT" else [np.zeros(3, dtype)])
    oracle(model(top), x)
    both_reject(model(top + 1), x, match=f"version {top + 1}")


UNSUPPORTED = [("LESS", "BOOL"), ("LESS_EQUAL", "BOOL"), ("GREATER", "BOOL"),
               ("GREATER_EQUAL", "BOOL"), ("LOGICAL_AND", "FLOAT32"), ("LOGICAL_OR", "INT32"),
               ("LOGICAL_NOT", "INT32"), ("LOGICAL_NOT", "FLOAT32")]


@pytest.mark.parametrize("op,type_name", UNSUPPORTED)
def test_unsupported_types(op: str, type_name: str) -> None:
    dtype = DTYPES[type_name]
    out = b8 if op != "LOGICAL_NOT" else dtype
    m = (unary_model(op, (2, 3), dtype, out_dtype=out) if op == "LOGICAL_NOT"
         else binary_model(op, (2, 3), (2, 3), dtype, out_dtype=out))
    x = [np.ones((2, 3), dtype)] * (1 if op == "LOGICAL_NOT" else 2)
    both_reject(m, x, match=f"type {type_name} is not supported")


@pytest.mark.parametrize("op", ["EQUAL", "LESS", "LOGICAL_OR"])
def test_output_must_be_bool(op: str) -> None:
    dtype = b8 if op == "LOGICAL_OR" else f32
    m = binary_model(op, (2, 3), (3,), dtype, out_dtype=i32)
    allocate_error(m, ModelError, "is INT32, expected BOOL")


def test_input_type_mismatch() -> None:
    m = one_op_model("EQUAL", [inp((3,), f32), inp((3,), f16)], out_dtype=b8, out_shapes=[(3,)])
    allocate_error(m, ModelError, "input types differ: FLOAT32 and FLOAT16")


def test_shapes_that_do_not_broadcast() -> None:
    m = one_op_model("LESS", [inp((2, 3), i32), inp((2,), i32)], out_dtype=b8,
                     out_shapes=[(2, 3)])
    allocate_error(m, ModelError, "do not broadcast")


def test_zero_sized() -> None:
    oracle(binary_model("EQUAL", (0, 3), (3,), i32, out_dtype=b8),
           [np.zeros((0, 3), i32), np.ones(3, i32)])


# -- a multi-op model ------------------------------------------------------------------------
def test_multi_op_model() -> None:
    """in_range = (lo <= x) & (x < hi) & !(x == skip); odd = (i mod 2) != 0;
    out = in_range | odd, plus two side comparisons."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (3, 5), f32)
    i = g.input("i", (5,), i64)
    lo, hi = g.constant("lo", np.float32(-1.0)), g.constant("hi", np.array([2.0], f32))
    skip = g.constant("skip", np.array([[0.5], [0.0], [1.0]], f32))
    ge = g.op("LESS_EQUAL", [lo, x], dtype=b8)
    lt = g.op("LESS", [x, hi], dtype=b8)
    eq = g.op("EQUAL", [x, skip], dtype=b8)
    in_range = g.op("LOGICAL_AND", [g.op("LOGICAL_AND", [ge, lt]), g.op("LOGICAL_NOT", [eq])])
    odd = g.op("NOT_EQUAL", [g.op("FLOOR_MOD", [i, g.constant("two", np.array(2, i64))]),
                             g.constant("zero", np.array(0, i64))], dtype=b8)
    out = g.op("LOGICAL_OR", [in_range, odd])
    g.output(out, g.op("GREATER", [x, g.op("MAXIMUM", [x, lo])], dtype=b8),
             g.op("GREATER_EQUAL", [i, g.constant("three", np.array(3, i64))], dtype=b8))
    model = mb.build()
    rng = np.random.default_rng(3)
    xs = [few_values(rng, (3, 5), f32), rng.integers(-10, 10, 5).astype(i64)]
    oracle(model, xs)
