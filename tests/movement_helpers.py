"""Helpers for the shape/data-movement oracle tests.

These ops do no arithmetic (CAST and UINT8 CONCATENATION rescaling aside),
so every comparison with LiteRT is exact: same dtype, same shape, same bits.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest

import edgeplex
from edgeplex import ModelError, Quantization, UnsupportedOpError
from oracle import assert_close, random_array, run_edgeplex, run_litert

#: Every numpy dtype a TFLite tensor can have here, by TFLite name.
ALL_DTYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT8": np.int8,
    "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16, "INT32": np.int32,
    "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64, "BOOL": np.bool_,
    "COMPLEX64": np.complex64,
}
#: Types of 1, 2, 4 or 8 bytes, which TFLite's size-generic kernels accept.
SIZED = list(ALL_DTYPES)
i32, i64 = np.int32, np.int64


def dtypes(*names: str) -> list:
    """pytest params of numpy dtypes, with readable ids."""
    return [pytest.param(ALL_DTYPES[n], id=n.lower()) for n in names]


def others(*names: str) -> list:
    """pytest params of every dtype not in ``names``."""
    return dtypes(*[n for n in ALL_DTYPES if n not in names])


def quant_for(dtype: Any, scale: float = 0.25, zero_point: int = 3) -> Quantization | None:
    """Typical per-tensor parameters for 8/16-bit integers (int16: zero point 0)."""
    dt = np.dtype(dtype)
    if dt == np.int16:
        return Quantization.of(scale, 0)
    if dt in (np.int8, np.uint8):
        return Quantization.of(scale, zero_point)
    return None


def sample(rng: np.random.Generator, shape: Sequence[int], dtype: Any) -> np.ndarray:
    """Random values of any dtype (complex included)."""
    dt = np.dtype(dtype)
    if dt.kind == "c":
        return (rng.uniform(-3, 3, shape) + 1j * rng.uniform(-3, 3, shape)).astype(dt)
    return random_array(rng, tuple(shape), dt)


def model_inputs(model: bytes, seed: int = 0) -> list[np.ndarray]:
    """Random values for every input of ``model``."""
    rng = np.random.default_rng(seed)
    it = edgeplex.Interpreter(model_content=model)
    return [sample(rng, d["shape"], d["dtype"]) for d in it.get_input_details()]


def check_exact(model: bytes, inputs: Sequence[np.ndarray] | None = None, seed: int = 0,
                what: str = "") -> list[np.ndarray]:
    """edgeplex and LiteRT give bit-identical outputs (dtype, shape, values)."""
    if inputs is None:
        inputs = model_inputs(model, seed)
    want = run_litert(model, inputs)
    got = run_edgeplex(model, inputs)
    assert len(got) == len(want), f"{what}: {len(got)} outputs vs LiteRT {len(want)}"
    for g, w in zip(got, want):
        if g.dtype != w.dtype or g.shape != w.shape or g.tobytes() != w.tobytes():
            # Not the same bits (NaNs included): let assert_close describe the difference.
            assert_close([g], [w], 0, 0, exact=True, what=what)
            raise AssertionError(f"{what}: same values but different bits (NaN payload or "
                                 "signed zero)")
    return got


def edgeplex_rejects(model: bytes, error: type = ModelError, match: str = "",
                     inputs: Sequence[np.ndarray] | None = None) -> None:
    """allocate_tensors (or, for a data-dependent shape, invoke) raises
    ``error`` with a message matching ``match``."""
    it = edgeplex.Interpreter(model_content=model)
    with pytest.raises(error, match=match):
        it.allocate_tensors()
        for d, x in zip(it.get_input_details(), inputs or []):
            it.set_tensor(d["index"], x)
        it.invoke()


def litert_rejects(model: bytes, inputs: Sequence[np.ndarray] | None = None) -> None:
    """LiteRT refuses the model too (at allocation or invoke)."""
    with pytest.raises((RuntimeError, ValueError)):
        run_litert(model, inputs if inputs is not None else model_inputs(model))


def both_reject(model: bytes, error: type = ModelError, match: str = "",
                inputs: Sequence[np.ndarray] | None = None) -> None:
    """LiteRT and edgeplex both refuse; edgeplex with ``error`` naming the op."""
    litert_rejects(model, inputs)
    edgeplex_rejects(model, error, match, inputs)


__all__ = ["ALL_DTYPES", "SIZED", "dtypes", "others", "quant_for", "sample", "model_inputs",
           "check_exact", "edgeplex_rejects", "litert_rejects", "both_reject", "i32", "i64",
           "ModelError", "UnsupportedOpError"]
