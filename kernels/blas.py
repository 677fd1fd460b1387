"""``c += a @ b`` straight through BLAS ``sgemm`` (beta = 1).

numpy's matmul always overwrites its output, so a convolution followed by a
bias and a residual add costs the product plus two more passes over the
output. With BLAS's own accumulate the output is first filled with
``residual + bias`` (one pass) and the product is added in place. The
library is numpy's own (found through threadpoolctl, as the interpreter's
thread limit is); when it cannot be called this way :func:`accumulate`
returns None and kernels fall back to numpy.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Any

import numpy as np

#: CBLAS enums
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
#: sgemm entry points: name and integer type (ILP64 builds end in 64_)
_SYMBOLS = (("scipy_cblas_sgemm64_", ctypes.c_int64), ("cblas_sgemm64_", ctypes.c_int64),
            ("scipy_cblas_sgemm", ctypes.c_int32), ("cblas_sgemm", ctypes.c_int32))


@lru_cache(maxsize=1)
def _sgemm() -> Any:
    """The cblas_sgemm of numpy's BLAS, or None."""
    try:
        from threadpoolctl import ThreadpoolController
        libs = ThreadpoolController().select(user_api="blas").lib_controllers
    except Exception:  # pragma: no cover - threadpoolctl is a dependency
        return None
    for lib in libs:
        try:
            dll = ctypes.CDLL(lib.filepath)
        except OSError:  # pragma: no cover
            continue
        for name, integer in _SYMBOLS:
            fn = getattr(dll, name, None)
            if fn is None:
                continue
            fn.restype = None
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer,
                           ctypes.c_float, ctypes.c_void_p, integer, ctypes.c_void_p, integer,
                           ctypes.c_float, ctypes.c_void_p, integer]
            return fn
    return None


def _layout(a: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a 2-D float32 matrix BLAS can read."""
    if a.ndim != 2 or a.dtype != np.float32 or not a.flags.aligned:
        return None
    rows, cols = a.strides
    if cols == 4 and rows % 4 == 0 and rows >= 4 * max(a.shape[1], 1):
        return _NO_TRANS, rows // 4
    if rows == 4 and cols % 4 == 0 and cols >= 4 * max(a.shape[0], 1):
        return _TRANS, cols // 4
    return None


class _Accumulate:
    """A ready ``c += a @ b`` call (holds the arrays its pointers point into)."""

    def __init__(self, fn: Any, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                 la: tuple[int, int], lb: tuple[int, int], ldc: int) -> None:
        self.arrays = (a, b, c)
        m, k = a.shape
        n = b.shape[1]
        self.args = (_ROW_MAJOR, la[0], lb[0], m, n, k, 1.0, a.ctypes.data, la[1],
                     b.ctypes.data, lb[1], 1.0, c.ctypes.data, ldc)
        self.fn = fn

    def __call__(self) -> None:
        self.fn(*self.args)


def accumulate(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> _Accumulate | None:
    """A call doing ``c += a @ b`` through BLAS, or None (no usable BLAS, or a
    layout it cannot take: then use numpy)."""
    fn = _sgemm()
    la, lb = _layout(a), _layout(b)
    if (fn is None or la is None or lb is None or c.ndim != 2 or c.dtype != np.float32
            or c.strides[1] != 4 or c.strides[0] % 4 or c.strides[0] < 4 * max(c.shape[1], 1)
            or a.shape[1] != b.shape[0] or c.shape != (a.shape[0], b.shape[1])
            or not c.flags.writeable or 0 in a.shape or 0 in b.shape):
        return None
    return _Accumulate(fn, a, b, c, la, lb, c.strides[0] // 4)
