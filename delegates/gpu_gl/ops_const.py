"""Constant work the GPU delegate does at prepare: DEQUANTIZE of float16
tensors and DENSIFY of sparse constants (how MediaPipe ships its weights).

Neither becomes a dispatch: a constant result is computed here with numpy
and uploaded only if a dispatch or the partition's output needs it. A
DEQUANTIZE whose float16 input arrives at run time costs nothing either:
the delegate's storage holds float16 and float32 tensors alike (at the
delegate's precision), so its output is the input's buffer.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .ops_base import Alias, Build, OpSpec, Value


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: Any) -> np.ndarray:
    """The dense tensor of a TACO-format sparse constant (TFLite's FormatConverter).

    Levels are walked in traversal order, DENSE levels enumerating
    ``dense_size`` positions and SPARSE_CSR levels the stored indices of
    their segment; values are consumed in that order. Block levels (after
    the first ``rank``) refine the coordinate of the dimension ``block_map``
    names.
    """
    rank, order, meta = len(shape), list(sparsity.traversal_order), sparsity.dim_metadata
    pos = np.zeros(1, np.int64)
    levels: list[np.ndarray] = []
    for m in meta:
        if m.format == "DENSE":
            size = int(m.dense_size)
            levels = [np.repeat(c, size) for c in levels] + [np.tile(np.arange(size), pos.size)]
            pos = (pos[:, None] * size + np.arange(size)).reshape(-1)
        else:
            seg = np.asarray(m.array_segments, np.int64)
            starts, counts = seg[pos], seg[pos + 1] - seg[pos]
            first = np.repeat(starts - (np.cumsum(counts) - counts), counts)
            pos = np.arange(int(counts.sum()), dtype=np.int64) + first
            levels = [np.repeat(c, counts) for c in levels]
            levels.append(np.asarray(m.array_indices, np.int64)[pos])
    flat = values.reshape(-1)
    if pos.size != flat.size:
        raise ValueError(f"sparse tensor lists {pos.size} positions for {flat.size} values")
    coord: list[Any] = [None] * rank
    for level in range(rank):
        coord[order[level]] = levels[level]
    for level in range(rank, len(meta)):
        block = order[level] - rank
        dim = sparsity.block_map[block]
        coord[dim] = coord[dim] * int(meta[rank + block].dense_size) + levels[level]
    out = np.zeros(shape, values.dtype)
    out[tuple(coord)] = flat
    return out


def _sparsity(node: Any) -> Any:
    return node.op_context().inputs[0].sparsity


def check_densify(node: Any) -> str | None:
    """A constant sparse input of the output's shape and type."""
    t = node.inputs[0]
    if t.data is None or _sparsity(node) is None:
        return "DENSIFY needs a constant sparse input"
    if tuple(t.shape) != tuple(node.outputs[0].shape) or t.dtype != node.outputs[0].dtype:
        return "DENSIFY output differs from its input in shape or type"
    return None


def build_densify(b: Build) -> Any:
    """The dense value, now."""
    t = b.node.inputs[0]
    return Value(densify(np.asarray(t.data), tuple(t.shape), _sparsity(b.node)))


def check_dequantize(node: Any) -> str | None:
    """float16 -> float32 of the same shape."""
    if tuple(node.inputs[0].shape) != tuple(node.outputs[0].shape):
        return "DEQUANTIZE output differs from its input in shape"
    return None


def build_dequantize(b: Build) -> Any:
    """A constant is converted now; a run-time input is already stored as float."""
    value = b.const(0)
    if value is not None:
        return Value(value.astype(np.float32))
    return Alias(b.node.inputs[0].index)


def table() -> dict[str, OpSpec]:
    """Capability rows of this family."""
    f16, f32 = frozenset({"float16"}), frozenset({"float32"})
    return {
        "DEQUANTIZE": OpSpec(build_dequantize, check_dequantize, in_types=f16, out_types=f32),
        "DENSIFY": OpSpec(build_densify, check_densify, data=(0,), in_types=f16 | f32,
                          out_types=f16 | f32),
    }
