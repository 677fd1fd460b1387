"""Oracle tests of kernels/activations.py against LiteRT's builtin kernels.

Tolerances (the RELU family, LEAKY_RELU and PRELU must match exactly):
- float16 LOGISTIC, TANH, GELU: rtol 1e-3 (one float16 ulp). Both runtimes
  compute in float32 (LiteRT with Eigen's approximations) and round to
  float16; a float32 difference of a few ulp that straddles a float16
  rounding boundary shows as 1 ulp (measured: 0 of 24000 values for
  LOGISTIC, TANH and approximate GELU, 1 of 33000 for exact GELU).
- LOGISTIC, TANH: rtol 1e-6. LiteRT evaluates Eigen's vectorised rational
  approximations, a few ulp from the true value; numpy's are within 1 ulp
  (measured difference up to 5.2e-7 relative).
- GELU (exact): rtol 1e-6. Both compute 0.5*x*erfc(-x/sqrt 2) with the
  argument rounded to float; LiteRT's Eigen erfc and our double-precision
  erfc (1.2e-7 relative) differ by up to 5.1e-7 relative.
- GELU (approximate): atol 2e-6. Both compute 1 + tanh(...) in float32, which
  cancels for x << 0, so the tanh implementations' ulp-level difference
  shows as an absolute error of ~|x| * 6e-8 there.
- HARD_SWISH, ELU: rtol 2.5e-7 (2 ulp): the product/division order and
  expm1 implementations differ by at most 1 rounding (measured 1.5e-7).
- SOFTMAX: rtol 1e-6. exp((x - max) * beta) and the row sum: LiteRT's Eigen
  exp is a few ulp from numpy's (measured 4.8e-7). Float16 SOFTMAX: rtol 1e-3
  (one float16 ulp) and atol 6e-8 (the smallest float16 subnormal). Both
  compute in float32 and round to float16 the same way, so only a float32
  difference that straddles a float16 rounding boundary shows (measured: 3 of
  5000 values, by 1 ulp).
- LOG_SOFTMAX: rtol 2.5e-7 and atol 4e-6: results near 0 carry the rounding
  of (x - max) and log(sum), values up to ~30 here (ulp 1.9e-6).
- Results below the float32 normal range (LiteRT's approximations flush some
  of them): atol 1e-35 where they occur.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeplex import ModelBuilder
from elementwise_helpers import (DTYPES, ModelError, UnsupportedOpError, allocate_error,
                                       both_reject, dtype_params, litert_fails, oracle,
                                       unary_model, values)
from oracle import const, inp, one_op_model

f32, f16, i32 = np.float32, np.float16, np.int32
SPECIAL = [0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 6.5, -0.5, 0.5, 1e-40, -1e-40, 20.0, -20.0,
           88.0, -88.0, -104.0, 3e38, -3e38, np.inf, -np.inf, np.nan]
CLAMPS = ["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"]
#: op, options, types, (rtol, atol) on float32 (float16 is exact).
SMOOTH = [
    ("LOGISTIC", None, ["FLOAT32", "FLOAT16"], (1e-6, 1e-35)),
    ("TANH", None, ["FLOAT32", "FLOAT16"], (1e-6, 1e-35)),
    ("GELU", {"approximate": False}, ["FLOAT32", "FLOAT16"], (1e-6, 1e-35)),
    ("GELU", {"approximate": True}, ["FLOAT32", "FLOAT16"], (1e-6, 2e-6)),
    ("HARD_SWISH", None, ["FLOAT32"], (2.5e-7, 1e-44)),
    ("ELU", None, ["FLOAT32"], (2.5e-7, 0.0)),
]
F16_TOL = (1e-3, 0.0)
SOFTMAX_TOL = {f32: (1e-6, 1e-35), f16: (1e-3, 6e-8)}
LOG_SOFTMAX_TOL = (2.5e-7, 4e-6)
VERSIONS = {"RELU": 3, "RELU6": 3, "RELU_N1_TO_1": 1, "RELU_0_TO_1": 1, "LEAKY_RELU": 2,
            "PRELU": 1, "LOGISTIC": 3, "TANH": 3, "HARD_SWISH": 1, "GELU": 3, "ELU": 1,
            "SOFTMAX": 4, "LOG_SOFTMAX": 2}
SHAPES = [(), (9,), (3, 7), (2, 3, 5), (2, 1, 3, 4), (1, 2, 2, 1, 3, 2)]


def smooth_params() -> list:
    """pytest params (op, options, dtype, rtol, atol) for the smooth activations."""
    out = []
    for op, opts, types, tol in SMOOTH:
        for t in types:
            rtol, atol = tol if t == "FLOAT32" else F16_TOL
            tag = "" if opts is None else f"-{'approx' if opts['approximate'] else 'exact'}"
            out.append(pytest.param(op, opts, DTYPES[t], rtol, atol,
                                    id=f"{op}{tag}-{t.lower()}"))
    return out


def special(dtype) -> np.ndarray:
    """SPECIAL as ``dtype`` (values out of float16's range become inf)."""
    with np.errstate(over="ignore"):
        return np.array(SPECIAL, np.float64).astype(dtype)


# -- clamps, LEAKY_RELU, PRELU -------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", CLAMPS)
def test_clamps(op: str, shape: tuple) -> None:
    x = values(np.random.default_rng(0), shape, f32, -8, 8)
    oracle(unary_model(op, shape, f32), [x], what=op)


@pytest.mark.parametrize("op", CLAMPS)
def test_clamps_special_values(op: str) -> None:
    x = special(f32)
    oracle(unary_model(op, x.shape, f32), [x])


@pytest.mark.parametrize("alpha", [0.2, 0.0, -0.5, 1.0, 1.7, 1e-3, 25.0, np.inf, np.nan])
def test_leaky_relu(alpha: float) -> None:
    x = np.concatenate([special(f32), values(np.random.default_rng(1), (40,), f32)])
    oracle(unary_model("LEAKY_RELU", x.shape, f32, {"alpha": alpha}), [x])
    oracle(unary_model("LEAKY_RELU", (2, 31), f32, {"alpha": alpha}), [x.reshape(2, 31)])


PRELU_SHAPES = [
    pytest.param((2, 3, 4), (2, 3, 4), id="same"),
    pytest.param((1, 4, 4, 3), (3,), id="per-channel"),
    pytest.param((1, 4, 4, 3), (1, 1, 3), id="nhwc-alpha"),
    pytest.param((2, 5), (1,), id="one"),
    pytest.param((2, 5), (), id="scalar"),
    pytest.param((2, 3, 4), (3, 1), id="middle-axis"),
    pytest.param((2, 2, 3, 2, 4), (1, 1, 1, 4), id="rank5"),
    pytest.param((7,), (7,), id="rank1"),
]


#: alpha ranges that take each of the kernel's code paths (max, min, split, masked copy)
ALPHAS = {"below-one": (-1.5, 0.9), "above-one": (1.1, 3.0), "mixed": (-1.5, 1.5),
          "non-finite": (-1.0, 1.0)}


@pytest.mark.parametrize("alphas", list(ALPHAS))
@pytest.mark.parametrize("constant", [True, False], ids=["const-alpha", "input-alpha"])
@pytest.mark.parametrize("xs,alpha_shape", PRELU_SHAPES)
def test_prelu(xs: tuple, alpha_shape: tuple, constant: bool, alphas: str) -> None:
    rng = np.random.default_rng(2)
    x = values(rng, xs, f32, -5, 5)
    x.reshape(-1)[:5] = [np.nan, -np.inf, np.inf, -0.0, 0.0][:x.size]
    alpha = values(rng, alpha_shape, f32, *ALPHAS[alphas])
    if alphas == "non-finite":
        alpha.reshape(-1)[0] = np.inf if alpha.size > 1 else np.nan
        alpha.reshape(-1)[-1:] = np.nan
    if constant:
        m = one_op_model("PRELU", [inp(xs, f32), const(alpha)])
        oracle(m, [x])
    else:
        m = one_op_model("PRELU", [inp(xs, f32), inp(alpha_shape, f32)])
        oracle(m, [x, alpha])


@pytest.mark.parametrize("x_shape,alpha_shape",
                         [((1, 3, 4), (2, 1, 4)), ((2, 3, 4), (1, 2, 3, 4))])
def test_prelu_alpha_must_not_grow_the_input(x_shape: tuple, alpha_shape: tuple) -> None:
    m = one_op_model("PRELU", [inp(x_shape, f32), inp(alpha_shape, f32)], out_shapes=[x_shape])
    litert_fails(m, [np.ones(x_shape, f32), np.ones(alpha_shape, f32)])
    allocate_error(m, ModelError, "does not broadcast to the input shape")


def test_prelu_alpha_not_broadcastable() -> None:
    m = one_op_model("PRELU", [inp((2, 3), f32), inp((2,), f32)], out_shapes=[(2, 3)])
    litert_fails(m, [np.ones((2, 3), f32), np.ones(2, f32)])
    allocate_error(m, ModelError, "do not broadcast")


def test_prelu_alpha_type_mismatch() -> None:
    m = one_op_model("PRELU", [inp((2, 3), f32), inp((3,), i32)], out_shapes=[(2, 3)])
    allocate_error(m, ModelError, "input types differ")


# -- smooth activations ----------------------------------------------------------------------
@pytest.mark.parametrize("op,opts,dtype,rtol,atol", smooth_params())
def test_smooth(op: str, opts: dict | None, dtype, rtol: float, atol: float) -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([values(rng, (300,), dtype, -12, 12),
                        values(rng, (40,), dtype, -0.01, 0.01), special(dtype)])
    oracle(unary_model(op, x.shape, dtype, opts), [x], rtol, atol, what=op)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op,opts,dtype,rtol,atol", smooth_params())
def test_smooth_shapes(op: str, opts: dict | None, dtype, rtol: float, atol: float,
                       shape: tuple) -> None:
    x = values(np.random.default_rng(4), shape, dtype, -4, 4)
    oracle(unary_model(op, shape, dtype, opts), [x], rtol, atol, what=op)


@pytest.mark.parametrize("dtype", dtype_params("FLOAT32", "FLOAT16"))
def test_gelu_exact_across_blocks(dtype) -> None:
    # The erfc runs in blocks of 32768 elements: cover a partial last block.
    x = values(np.random.default_rng(9), (3, 11001), dtype, -9, 9)
    rtol, atol = (1e-6, 1e-35) if dtype == f32 else F16_TOL
    oracle(unary_model("GELU", x.shape, dtype, {"approximate": False}), [x], rtol, atol)


# -- SOFTMAX / LOG_SOFTMAX --------------------------------------------------------------------
@pytest.mark.parametrize("beta", [1.0, 0.0, 0.37, 2.5, -0.5])
@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("dtype", dtype_params("FLOAT32", "FLOAT16"))
def test_softmax(dtype, shape: tuple, beta: float) -> None:
    x = values(np.random.default_rng(5), shape, dtype, -10, 10)
    oracle(unary_model("SOFTMAX", shape, dtype, {"beta": beta}), [x], *SOFTMAX_TOL[dtype])


@pytest.mark.parametrize("dtype", dtype_params("FLOAT32", "FLOAT16"))
def test_softmax_special_rows(dtype) -> None:
    # +inf or NaN poisons its row; -inf entries get 0; an all -inf row is NaN.
    x = np.array([[np.inf, 1, 2], [np.nan, 1, 2], [-np.inf, 1, 2], [-np.inf] * 3,
                  [60000, -60000, 0], [1, 1, 1]], dtype)
    for beta in (1.0, 0.0):
        oracle(unary_model("SOFTMAX", x.shape, dtype, {"beta": beta}), [x],
               *SOFTMAX_TOL[dtype])


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_log_softmax(shape: tuple) -> None:
    x = values(np.random.default_rng(6), shape, f32, -10, 10)
    oracle(unary_model("LOG_SOFTMAX", shape, f32), [x], *LOG_SOFTMAX_TOL)


def test_log_softmax_special_rows() -> None:
    x = np.array([[np.inf, 1, 2], [np.nan, 1, 2], [-np.inf, 1, 2], [-np.inf] * 3,
                  [1e30, -1e30, 0], [1, 1, 1]], f32)
    oracle(unary_model("LOG_SOFTMAX", x.shape, f32), [x], *LOG_SOFTMAX_TOL)


@pytest.mark.parametrize("op", ["SOFTMAX", "LOG_SOFTMAX"])
def test_softmax_needs_rank_1(op: str) -> None:
    # LiteRT rejects a scalar SOFTMAX; its scalar LOG_SOFTMAX reads garbage (not compared).
    m = unary_model(op, (), f32, {"beta": 1.0} if op == "SOFTMAX" else None)
    if op == "SOFTMAX":
        litert_fails(m, [np.array(1.0, f32)])
    allocate_error(m, ModelError, "rank >= 1")


@given(st.lists(st.integers(1, 6), min_size=1, max_size=5),
       st.floats(-3, 3, allow_nan=False, width=32), st.integers(0, 2**16),
       st.sampled_from([f32, f16]))
def test_hypothesis_softmax(shape: list, beta: float, seed: int, dtype) -> None:
    x = values(np.random.default_rng(seed), shape, dtype, -20, 20)
    oracle(unary_model("SOFTMAX", shape, dtype, {"beta": beta}), [x], *SOFTMAX_TOL[dtype],
           what=f"shape {shape} beta {beta}")


# -- versions, types -------------------------------------------------------------------------
def _model(op: str, dtype, version: int = 1) -> tuple[bytes, list[np.ndarray]]:
    x = np.linspace(-3, 3, 6).astype(dtype).reshape(2, 3)
    if op == "PRELU":
        m = one_op_model(op, [inp((2, 3), dtype), inp((3,), dtype)], out_shapes=[(2, 3)],
                         version=version)
        return m, [x, np.full(3, 0.25, dtype)]
    opts = {"beta": 1.0} if op == "SOFTMAX" else None
    return unary_model(op, (2, 3), dtype, opts, version=version), [x]


@pytest.mark.parametrize("op", sorted(VERSIONS))
def test_versions(op: str) -> None:
    top = VERSIONS[op]
    m, x = _model(op, f32, top)
    oracle(m, x, 1e-6, 1e-6)
    m, x = _model(op, f32, top + 1)
    both_reject(m, x, match=f"version {top + 1}")


UNSUPPORTED = [("RELU", "INT32"), ("RELU6", "FLOAT16"), ("RELU_0_TO_1", "INT32"),
               ("LEAKY_RELU", "FLOAT16"), ("PRELU", "FLOAT16"), ("PRELU", "INT32"),
               ("LOGISTIC", "INT32"), ("TANH", "INT64"), ("HARD_SWISH", "FLOAT16"),
               ("GELU", "INT32"), ("ELU", "FLOAT16"), ("SOFTMAX", "INT32"),
               ("LOG_SOFTMAX", "FLOAT16")]


@pytest.mark.parametrize("op,type_name", UNSUPPORTED)
def test_unsupported_types(op: str, type_name: str) -> None:
    m, x = _model(op, DTYPES[type_name])
    both_reject(m, x, match=f"type {type_name} is not supported")


@pytest.mark.parametrize("op", ["RELU", "GELU", "SOFTMAX", "PRELU"])
def test_output_type_mismatch(op: str) -> None:
    ins = [inp((2, 3), f32)] + ([inp((3,), f32)] if op == "PRELU" else [])
    m = one_op_model(op, ins, {"beta": 1.0} if op == "SOFTMAX" else None,
                     out_dtype=f16, out_shapes=[(2, 3)])
    allocate_error(m, ModelError, "is FLOAT16, expected FLOAT32")


def test_unsupported_error_names_the_op() -> None:
    m, _ = _model("ELU", DTYPES["INT32"])
    msg = allocate_error(m, UnsupportedOpError)
    assert "ELU" in msg and "op 0" in msg


# -- a multi-op model ------------------------------------------------------------------------
def test_multi_op_model() -> None:
    """A small classifier head: PRELU -> GELU -> LEAKY_RELU -> HARD_SWISH -> SOFTMAX, with
    TANH/LOGISTIC/ELU/LOG_SOFTMAX/RELU6 side outputs."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 4, 6), f32)
    p = g.op("PRELU", [x, g.constant("alpha", np.linspace(-0.5, 0.5, 6).astype(f32))])
    h = g.op("GELU", [p], {"approximate": False})
    h = g.op("LEAKY_RELU", [h], {"alpha": 0.1})
    h = g.op("HARD_SWISH", [h])
    probs = g.op("SOFTMAX", [h], {"beta": 1.5})
    gate = g.op("LOGISTIC", [g.op("TANH", [x])])
    g.output(probs, gate, g.op("LOG_SOFTMAX", [g.op("ELU", [x])]), g.op("RELU6", [x]))
    model = mb.build()
    x0 = np.random.default_rng(8).uniform(-4, 4, (2, 4, 6)).astype(f32)
    oracle(model, [x0], 2e-6, 4e-6)
