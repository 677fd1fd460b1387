"""DENSIFY: expand a sparse constant (TACO format) into a dense tensor.

The input is always a constant with sparsity parameters, so prepare does the
whole expansion and run copies the precomputed array into the output.

The format (TFLite's ``SparsityParameters``): ``traversal_order`` lists the
dimensions in storage order — the tensor's own ``rank`` dimensions, then one
block dimension per entry of ``block_map`` (``block_map[k]`` is the dense
dimension that block dimension ``rank + k`` subdivides). ``dim_metadata[l]``
describes traversal level ``l``: DENSE levels have ``dense_size`` entries,
SPARSE_CSR levels list, for each position of the level above,
``array_indices[array_segments[p]:array_segments[p + 1]]``. Leaves in
traversal order take the stored values one after another. This is TFLite's
FormatConverter::SparseToDense, vectorized over all leaves at once.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeplex.core.ir import DimensionMetadata, Sparsity
from edgeplex.core.kernel_api import OpContext, Prepared

from .movement_common import Arrays, expect_same_types
from .registry import register

DENSIFY_TYPES = frozenset({"FLOAT32", "FLOAT16", "INT8"})


def _level(ctx: OpContext, level: int, meta: DimensionMetadata, parents: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand one traversal level: (which parent each child belongs to, the
    child's coordinate on this level, the child's position for the next)."""
    if meta.format == "DENSE":
        n = int(meta.dense_size)
        owner = np.repeat(np.arange(parents.size), n)
        coord = np.tile(np.arange(n, dtype=np.int64), parents.size)
        return owner, coord, parents[owner] * n + coord
    segments = _vector(ctx, level, meta.array_segments, "array_segments")
    indices = _vector(ctx, level, meta.array_indices, "array_indices")
    if parents.size and parents.max() + 1 >= segments.size:
        raise ctx.invalid(f"sparsity level {level}: array_segments has {segments.size} "
                          f"entries for {parents.max() + 2} boundaries")
    lo, hi = segments[parents], segments[parents + 1]
    counts = hi - lo
    if (counts < 0).any() or (lo < 0).any() or (hi > indices.size).any():
        raise ctx.invalid(f"sparsity level {level}: array_segments do not index "
                          f"array_indices ({indices.size} entries)")
    owner = np.repeat(np.arange(parents.size), counts)
    first = np.repeat(lo - np.cumsum(counts) + counts, counts)
    position = first + np.arange(owner.size)
    return owner, indices[position], position


def _vector(ctx: OpContext, level: int, values: np.ndarray | None, what: str) -> np.ndarray:
    if values is None:
        raise ctx.invalid(f"sparsity level {level} is SPARSE_CSR but has no {what}")
    return np.asarray(values, dtype=np.int64).reshape(-1)


def leaf_coordinates(ctx: OpContext, sparsity: Sparsity) -> np.ndarray:
    """Coordinates (leaves x levels) of every stored value, in storage order."""
    coords = np.zeros((1, 0), np.int64)
    positions = np.zeros(1, np.int64)
    for level, meta in enumerate(sparsity.dim_metadata):
        owner, coord, positions = _level(ctx, level, meta, positions)
        coords = np.concatenate([coords[owner], coord[:, None]], axis=1)
    return coords


def dense_index(ctx: OpContext, sparsity: Sparsity, shape: Sequence[int], coords: np.ndarray
                ) -> np.ndarray:
    """Flat dense index of each leaf (traversal coordinates -> tensor position)."""
    rank, order, blocks = len(shape), list(sparsity.traversal_order), list(sparsity.block_map)
    block_size = [int(sparsity.dim_metadata[order[rank + k]].dense_size)
                  for k in range(len(blocks))]
    position = np.zeros((coords.shape[0], rank), np.int64)
    for level in range(rank):
        position[:, order[level]] = coords[:, level]
    for level in range(rank, len(order)):
        k = order[level] - rank
        position[:, blocks[k]] = position[:, blocks[k]] * block_size[k] + coords[:, level]
    bad = (position < 0) | (position >= np.asarray(shape, np.int64))
    if bad.any():
        raise ctx.invalid(f"sparse indices reach outside the dense shape {list(shape)}")
    return np.ravel_multi_index(position.T, tuple(shape)) if rank else np.zeros(
        coords.shape[0], np.int64)


def _check_structure(ctx: OpContext, sparsity: Sparsity, rank: int) -> None:
    order, blocks = list(sparsity.traversal_order), list(sparsity.block_map)
    levels = rank + len(blocks)
    if len(sparsity.dim_metadata) != levels or sorted(order) != list(range(levels)):
        raise ctx.invalid(f"sparsity has traversal_order {order} and "
                          f"{len(sparsity.dim_metadata)} dim_metadata for rank {rank} with "
                          f"{len(blocks)} block dimensions")
    if any(not 0 <= b < rank for b in blocks) or len(set(blocks)) != len(blocks):
        raise ctx.invalid(f"block_map {blocks} does not name distinct dimensions of rank {rank}")
    if sorted(order[:rank]) != list(range(rank)):
        ctx.fail(f"traversal_order {order} interleaves block and tensor dimensions")
    for meta in sparsity.dim_metadata:
        if meta.format not in ("DENSE", "SPARSE_CSR"):
            ctx.fail(f"dimension format {meta.format!r} is not supported")


def densify(ctx: OpContext, values: np.ndarray, sparsity: Sparsity, shape: Sequence[int],
            dtype: np.dtype) -> np.ndarray:
    """The dense tensor of ``shape`` holding the sparse ``values``."""
    _check_structure(ctx, sparsity, len(shape))
    coords = leaf_coordinates(ctx, sparsity)
    flat = dense_index(ctx, sparsity, shape, coords)
    values = np.asarray(values).reshape(-1)
    if values.size < flat.size:
        raise ctx.invalid(f"sparsity describes {flat.size} stored values but the buffer "
                          f"holds {values.size}")
    dense = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype)
    dense[flat] = values[:flat.size]
    return dense.reshape(tuple(shape))


@register("DENSIFY", versions=(1, 1), types=DENSIFY_TYPES)
def prepare_densify(ctx: OpContext) -> Prepared:
    """DENSIFY a sparse constant; run copies the array expanded here."""
    ctx.expect_counts(1)
    x = expect_same_types(ctx)
    if not x.is_constant or x.sparsity is None:
        raise ctx.invalid("the input must be a constant with sparsity parameters")
    dense = densify(ctx, x.data, x.sparsity, x.shape, ctx.outputs[0].dtype)
    dense.flags.writeable = False

    def run(ins: Arrays, outs: Arrays) -> None:
        np.copyto(outs[0], dense)
    prepared = ctx.done(run, x.shape)
    prepared.constants.append(dense)
    return prepared
