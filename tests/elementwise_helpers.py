"""Helpers for the elementwise, activation and logic oracle tests."""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pytest

import edgeplex
from edgeplex import ModelError, UnsupportedOpError
from oracle import assert_close, inp, one_op_model, run_edgeplex, run_litert

#: numpy dtype per TFLite type name used here.
DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64,
          "INT32": np.int32, "INT64": np.int64, "UINT32": np.uint32, "BOOL": np.bool_,
          "COMPLEX64": np.complex64}

#: (shape a, shape b) broadcast patterns: same, scalar, row, column, rank 4 vs 1,
#: reversed, rank 5 and rank 6 broadcasts, a rank-8 one (LiteRT's limit).
PATTERNS = [
    pytest.param((2, 3, 4), (2, 3, 4), id="same"),
    pytest.param((2, 3, 4), (), id="scalar"),
    pytest.param((), (3, 2), id="scalar-first"),
    pytest.param((3, 4), (4,), id="row"),
    pytest.param((3, 4), (3, 1), id="column"),
    pytest.param((2, 3, 4, 5), (5,), id="rank4-vs-1"),
    pytest.param((1, 5), (3, 1, 1), id="both-grow"),
    pytest.param((2, 1, 3, 1, 2), (3, 4, 1), id="rank5"),
    pytest.param((2, 1, 2, 1, 2, 3), (3, 2, 1, 2, 1), id="rank6"),
    pytest.param((2, 1, 2, 1, 2, 1, 2, 1), (1, 3, 1, 2), id="rank8"),
]


def dtype_params(*names: str) -> list:
    """pytest params of numpy dtypes with readable ids."""
    return [pytest.param(DTYPES[n], id=n.lower()) for n in names]


def values(rng: np.random.Generator, shape: Sequence[int], dtype: Any, low: float = -10,
           high: float = 10, nonzero: bool = False) -> np.ndarray:
    """Random values (negatives included); ``nonzero`` replaces zeros by a nonzero value."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind == "c":
        return (values(rng, shape, np.float32, low, high, nonzero)
                + 1j * values(rng, shape, np.float32, low, high, nonzero)).astype(dt)
    if dt.kind in "iu":
        lo = max(int(low), 0) if dt.kind == "u" else int(low)
        v = rng.integers(lo, int(high), shape, endpoint=True).astype(dt)
    else:
        v = rng.uniform(low, high, shape).astype(dt)
    if nonzero:
        v[v == 0] = 3
    return v


def binary_model(op: str, sa: Sequence[int], sb: Sequence[int], dtype: Any,
                 options: dict | None = None, out_dtype: Any = None, version: int = 1) -> bytes:
    """A one-op model with two same-typed inputs (output shape given, no inference)."""
    shape = np.broadcast_shapes(tuple(sa), tuple(sb))
    return one_op_model(op, [inp(sa, dtype), inp(sb, dtype)], options, out_dtype=out_dtype,
                        out_shapes=[shape], version=version)


def unary_model(op: str, shape: Sequence[int], dtype: Any, options: dict | None = None,
                out_dtype: Any = None, version: int = 1) -> bytes:
    """A one-op model with one input (output shape given, no inference)."""
    return one_op_model(op, [inp(shape, dtype)], options, out_dtype=out_dtype,
                        out_shapes=[tuple(shape)], version=version)


def oracle(model: bytes, inputs: Sequence[np.ndarray], rtol: float = 0.0, atol: float = 0.0,
           what: str = "") -> list[np.ndarray]:
    """edgeplex matches LiteRT: dtype and shape exactly, values within rtol/atol.

    With both zero, floats must be equal value for value (NaN where LiteRT has
    NaN, infinities alike; only the sign of zero may differ). edgeplex must not
    emit numpy warnings for inf/NaN results.
    """
    want = run_litert(model, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = run_edgeplex(model, inputs)
    assert_close(got, want, rtol, atol, what=what)
    return got


def litert_fails(model: bytes, inputs: Sequence[np.ndarray]) -> str:
    """LiteRT refuses the model (prepare or invoke); returns its message."""
    with pytest.raises(Exception) as info:
        run_litert(model, inputs)
    return str(info.value)


def allocate_error(model: bytes, error: type = UnsupportedOpError, match: str | None = None
                   ) -> str:
    """edgeplex raises ``error`` (matching ``match``) at allocate_tensors."""
    it = edgeplex.Interpreter(model_content=model)
    with pytest.raises(error, match=match) as info:
        it.allocate_tensors()
    return str(info.value)


def both_reject(model: bytes, inputs: Sequence[np.ndarray], error: type = UnsupportedOpError,
                match: str | None = None) -> None:
    """LiteRT refuses the model and edgeplex raises ``error`` at allocate_tensors."""
    litert_fails(model, inputs)
    allocate_error(model, error, match)


def both_fail_invoke(model: bytes, inputs: Sequence[np.ndarray], match: str | None = None
                     ) -> None:
    """Both runtimes accept the model but fail to invoke it on ``inputs``."""
    litert_fails(model, inputs)
    with pytest.raises(edgeplex.InterpreterError, match=match):
        run_edgeplex(model, inputs)


__all__ = ["DTYPES", "PATTERNS", "ModelError", "UnsupportedOpError", "dtype_params", "values",
           "binary_model", "unary_model", "oracle", "litert_fails", "allocate_error",
           "both_reject", "both_fail_invoke"]
