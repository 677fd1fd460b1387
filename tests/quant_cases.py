"""Helpers for the quantized-kernel tests: parameter strategies, quantizing
float inputs with a case's parameters, and the exact oracle comparison."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from hypothesis import strategies as st

from edgeplex import Quantization
from edgeplex.kernels.quant_math import round_half_away
from oracle import check

INT_DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16}


def scales(lo: float = -8.0, hi: float = 0.0) -> st.SearchStrategy[float]:
    """Log-uniform float32 scales 2**lo .. 2**hi."""
    return st.floats(lo, hi).map(lambda e: float(np.float32(2.0 ** e)))


def zero_points(dtype: Any) -> st.SearchStrategy[int]:
    """Zero points for ``dtype``: 0 for int16 (symmetric), else inside the range."""
    if np.dtype(dtype) == np.int16:
        return st.just(0)
    info = np.iinfo(dtype)
    return st.integers(info.min + 28, info.max - 28)


def qparam(dtype: Any, lo: float = -8.0, hi: float = 0.0) -> st.SearchStrategy[Quantization]:
    """A per-tensor Quantization for ``dtype``."""
    return st.builds(Quantization.of, scales(lo, hi), zero_points(dtype))


def quantize(x: np.ndarray, q: Quantization, dtype: Any) -> np.ndarray:
    """Float values quantized with ``q`` (round half away, saturate)."""
    info = np.iinfo(dtype)
    v = round_half_away(np.asarray(x, np.float32) / q.scale[0]) + q.zero_point[0]
    return np.clip(v, info.min, info.max).astype(dtype)


def real_range(q: Quantization, dtype: Any) -> tuple[float, float]:
    """The real interval the quantized type covers under ``q``."""
    info = np.iinfo(dtype)
    s, z = float(q.scale[0]), int(q.zero_point[0])
    return s * (info.min - z), s * (info.max - z)


def float_inputs(rng: np.random.Generator, shape: Sequence[int], q: Quantization, dtype: Any,
                 spread: float = 1.1) -> np.ndarray:
    """Random reals over (slightly beyond) the range of ``q``, quantized."""
    lo, hi = real_range(q, dtype)
    mid, half = (lo + hi) / 2, (hi - lo) / 2 * spread
    return quantize(rng.uniform(mid - half, mid + half, shape), q, dtype)


def check_exact(model: bytes, inputs: Sequence[np.ndarray], resolver: str = "builtin",
                what: str = "") -> list[np.ndarray]:
    """edgeplex equals LiteRT (``resolver``) bit for bit."""
    return check(model, inputs, exact=True, resolver=resolver, what=what)
