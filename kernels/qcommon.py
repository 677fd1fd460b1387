"""Checks and helpers shared by the integer (quantized) kernel families:
reading a tensor's per-tensor quantization, type agreement, 8-bit pair tables.

Not a kernel module itself (it registers nothing); qelementwise, qactivations
and quantize import it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, TensorSpec

EIGHT_BIT = frozenset({"INT8", "UINT8"})
PairFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class QParams:
    """Per-tensor quantization of one tensor: float32 scale, int zero point."""

    scale: np.float32
    zero_point: int
    dtype: np.dtype

    @property
    def scale64(self) -> float:
        """The scale widened to double, as ``static_cast<double>(scale)``."""
        return float(self.scale)


def qparams(ctx: OpContext, spec: TensorSpec, role: str, *, symmetric_int16: bool = True
            ) -> QParams:
    """Per-tensor quantization of ``spec``; a ModelError when it is missing and
    UnsupportedOpError for per-channel parameters or an int16 zero point != 0."""
    q = spec.quantization
    if q is None or q.scale.size == 0:
        raise ctx.invalid(f"{role} {spec.name!r} is {spec.type_name} but has no "
                          "quantization parameters")
    if q.scale.size > 1:
        ctx.fail(f"{role} {spec.name!r} has per-channel quantization "
                 f"({q.scale.size} scales); this op needs one scale per tensor")
    scale = np.float32(q.scale.reshape(-1)[0])
    zp = int(q.zero_point.reshape(-1)[0]) if q.zero_point.size else 0
    if not scale > 0:
        raise ctx.invalid(f"{role} {spec.name!r} has non-positive scale {float(scale)}")
    info = np.iinfo(spec.dtype)
    if not info.min <= zp <= info.max:
        raise ctx.invalid(f"{role} {spec.name!r} zero point {zp} is outside "
                          f"{spec.type_name}'s range")
    if symmetric_int16 and spec.type_name == "INT16" and zp != 0:
        ctx.fail(f"{role} {spec.name!r}: int16 quantization needs zero point 0, got {zp}")
    return QParams(scale, zp, spec.dtype)


def same_type(ctx: OpContext, *specs: TensorSpec) -> None:
    """All ``specs`` share one type, else a ModelError naming them."""
    names = {s.type_name for s in specs}
    if len(names) > 1:
        raise ctx.invalid("tensor types differ: " + ", ".join(
            f"{s.name!r} is {s.type_name}" for s in specs))


def output_type(ctx: OpContext, want: str | Sequence[str]) -> TensorSpec:
    """Output 0, checked to be of type ``want`` (or one of them)."""
    out = ctx.outputs[0]
    allowed = (want,) if isinstance(want, str) else tuple(want)
    if out.type_name not in allowed:
        raise ctx.invalid(f"output {out.name!r} is {out.type_name}; expected "
                          f"{' or '.join(allowed)}")
    return out


def all_values(dtype: np.dtype) -> np.ndarray:
    """Every value of an integer dtype, as int64, ascending."""
    info = np.iinfo(dtype)
    return np.arange(info.min, info.max + 1, dtype=np.int64)


def pair_table(dtype: np.dtype, fn: PairFn, out_dtype: np.dtype) -> np.ndarray:
    """``fn`` over every pair of 8-bit values: a 65536-entry table indexed by
    ``(uint8(a) << 8) | uint8(b)`` (see :func:`pair_index`)."""
    vals = all_values(dtype)
    a, b = np.meshgrid(vals, vals, indexing="ij")
    table = np.empty(65536, dtype=out_dtype)
    idx = (a.astype(dtype).view(np.uint8).astype(np.int64) << 8) | \
        b.astype(dtype).view(np.uint8)
    table[idx.reshape(-1)] = np.asarray(fn(a, b)).reshape(-1)
    return table


def pair_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Broadcast table index of two 8-bit arrays for :func:`pair_table`."""
    hi = np.left_shift(a.view(np.uint8), 8, dtype=np.uint16)
    return np.bitwise_or(hi, b.view(np.uint8), dtype=np.uint16)


def unary_table(dtype: np.dtype, fn: Callable[[np.ndarray], np.ndarray],
                out_dtype: np.dtype | None = None) -> np.ndarray:
    """``fn`` over every value of an 8- or 16-bit type, indexed by the
    unsigned view of the input (see :func:`table_lookup`)."""
    vals = all_values(dtype)
    unsigned = np.uint8 if np.dtype(dtype).itemsize == 1 else np.uint16
    table = np.empty(vals.size, dtype=out_dtype or dtype)
    table[vals.astype(dtype).view(unsigned)] = np.asarray(fn(vals))
    return table


def table_lookup(table: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = f(x)`` through a :func:`unary_table`."""
    unsigned = np.uint8 if x.dtype.itemsize == 1 else np.uint16
    np.take(table, x.view(unsigned), out=out)


class TableIndex:
    """A preallocated intp index array for ``np.take`` of one output shape.

    Run code writes the unsigned 8- or 16-bit pattern of its inputs straight
    into the low bytes of the index (the other bytes stay zero from prepare),
    so numpy neither converts indices to intp nor buffers: a lookup allocates
    nothing. ``mode="clip"`` is safe (indices are always in range) and skips
    numpy's copy of the output that the default mode makes.
    """

    def __init__(self, shape: Sequence[int]) -> None:
        shape = tuple(int(d) for d in shape)
        self.index = np.zeros(shape, np.intp)
        size = np.dtype(np.intp).itemsize
        flat = self.index.reshape(-1)
        lanes = flat.view(np.uint8).reshape(shape + (size,))
        low, high = (0, 1) if sys.byteorder == "little" else (size - 1, size - 2)
        self._low, self._high = lanes[..., low], lanes[..., high]
        words = flat.view(np.uint16).reshape(shape + (size // 2,))
        self._low16 = words[..., 0 if sys.byteorder == "little" else size // 2 - 1]

    @property
    def nbytes(self) -> int:
        """Scratch bytes held."""
        return self.index.nbytes

    def unary(self, table: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = table[unsigned(x)]`` (a :func:`unary_table`)."""
        if x.dtype.itemsize == 1:
            np.copyto(self._low, x.view(np.uint8))
        else:
            np.copyto(self._low16, x.view(np.uint16))
        np.take(table, self.index, out=out, mode="clip")

    def pair(self, table: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = table[(uint8(a) << 8) | uint8(b)]`` with broadcasting
        (a :func:`pair_table`)."""
        np.copyto(self._high, a.view(np.uint8))
        np.copyto(self._low, b.view(np.uint8))
        np.take(table, self.index, out=out, mode="clip")
