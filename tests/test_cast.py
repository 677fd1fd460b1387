"""CAST between every pair of types LiteRT's kernel takes.

Tolerance: none. Casting is deterministic element by element; edgeplex
must reproduce TFLite's conversions bit for bit, including float-to-integer
saturation (NaN to the maximum), integer wrap-around, double rounding to
float16 through float32, and complex sources keeping their real part.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgeplex import Quantization
from movement_helpers import ALL_DTYPES, UnsupportedOpError, both_reject, check_exact
from oracle import inp, one_op_model

CAST = ["FLOAT32", "FLOAT16", "FLOAT64", "INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32",
        "INT64", "BOOL", "COMPLEX64"]

FLOATS = [0.0, -0.0, 0.4, -0.4, 0.5, -0.5, 1.7, -1.7, 2.5, -2.5, 127.5, -128.9, 255.9, 256.0,
          -129.0, 32767.7, -32769.0, 65535.9, 70000.3, 2147483520.0, -2147483904.0, 3e9, -3e9,
          4294967295.0, 1e19, -1e19, 9.3e18, 3.4e38, -3.4e38, 65504.0, 65520.0, 1e-8, 6e-8,
          np.inf, -np.inf, np.nan]
INTS = [0, 1, -1, 2, 127, -128, 128, 255, 256, -129, 32767, -32768, 32768, 65535, 65536,
        2**24 + 1, 2**31 - 1, -2**31, 2**31, 2**32 - 1, 2**53 + 1, 2**63 - 1, -2**63, 2049, 4097]


def edge_values(name: str) -> np.ndarray:
    """Values that exercise rounding, saturation and wrap-around."""
    dt = np.dtype(ALL_DTYPES[name])
    if dt.kind == "b":
        return np.array([True, False, True, True, False])
    if dt.kind == "c":
        re = np.array(FLOATS[:-3], np.float64)
        return (re - 1j * re[::-1]).astype(dt)
    if dt.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            return np.array(FLOATS, np.float64).astype(dt)
    info = np.iinfo(dt)
    return np.array([v for v in INTS if info.min <= v <= info.max], dt)


@pytest.mark.parametrize("src,dst", list(itertools.product(CAST, CAST)))
def test_cast_pairs(src: str, dst: str) -> None:
    x = edge_values(src)
    m = one_op_model("CAST", [inp(x.shape, ALL_DTYPES[src])],
                     {"in_data_type": src, "out_data_type": dst}, out_dtype=ALL_DTYPES[dst])
    check_exact(m, [x], what=f"{src} -> {dst}")


@pytest.mark.parametrize("src,dst", [("FLOAT32", "INT8"), ("INT32", "FLOAT32"),
                                     ("UINT8", "FLOAT32"), ("FLOAT32", "UINT8")])
def test_cast_random_values(src: str, dst: str) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 4, 5)) * 200).astype(ALL_DTYPES[src])
    m = one_op_model("CAST", [inp(x.shape, ALL_DTYPES[src])], out_dtype=ALL_DTYPES[dst])
    check_exact(m, [x])


def test_cast_ignores_quantization() -> None:
    """CAST converts stored integers, never dequantizes."""
    m = one_op_model("CAST", [inp((2, 3), np.int8, Quantization.of(0.5, 3))], out_dtype=np.float32)
    check_exact(m)


def test_cast_to_uint64_is_unsupported() -> None:
    m = one_op_model("CAST", [inp((2,), np.float32)], out_dtype=np.uint64, out_shapes=[(2,)])
    both_reject(m, UnsupportedOpError, "CAST.*UINT64")
