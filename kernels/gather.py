"""Gathers and scatters: GATHER, GATHER_ND, SCATTER_ND, EMBEDDING_LOOKUP.

Every op checks its indices at invoke, as TFLite does: an index out of range
is an :class:`~edgeplex.core.errors.InterpreterError` naming the op and the
index, never a read outside the tensor.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeplex.core.errors import InterpreterError
from edgeplex.core.kernel_api import OpContext, Prepared, RunFn, TensorSpec

from .registry import register

#: Element types the raw-copy ops take (LiteRT's builtin kernels, verified).
DATA_TYPES = frozenset({"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "INT64",
                        "BOOL"})
SCATTER_TYPES = frozenset({"FLOAT32", "INT8", "UINT8", "INT32", "INT64", "BOOL"})
INDEX_TYPES = ("INT16", "INT32", "INT64")
_UNSIGNED = {np.dtype(t): np.dtype(t.replace("int", "uint")) for t in ("int16", "int32", "int64")}


def check_index_range(where: str, index: np.ndarray, limit: int | np.ndarray,
                      what: str = "index") -> None:
    """Raise InterpreterError unless every value of ``index`` is in [0, limit).

    ``limit`` may be an array broadcasting against ``index`` (one bound per
    coordinate of GATHER_ND / SCATTER_ND index tuples).
    """
    if index.size == 0:
        return
    unsigned = _UNSIGNED.get(index.dtype)
    if unsigned is not None and isinstance(limit, int):
        # one reduction: negative indices are huge when read as unsigned
        if np.maximum.reduce(index.view(unsigned), axis=None) < limit:
            return
    bad = (index < 0) | (index >= limit)
    if bad.any():
        pos = np.unravel_index(int(np.argmax(bad)), bad.shape)
        bound = limit if np.ndim(limit) == 0 else np.broadcast_to(limit, bad.shape)[pos]
        raise InterpreterError(f"{where}: {what} {int(index[pos])} at position "
                               f"{[int(p) for p in pos]} is out of range [0, {int(bound)})")


def expect_output_type(ctx: OpContext, dtype: np.dtype, i: int = 0) -> None:
    """ModelError unless output ``i`` is declared with ``dtype``."""
    out = ctx.outputs[i]
    if out.dtype != np.dtype(dtype):
        raise ctx.invalid(f"output {i} has type {out.type_name} but the op produces "
                          f"{np.dtype(dtype).name}")


def expect_index_type(ctx: OpContext, spec: TensorSpec, what: str,
                      allowed: Sequence[str] = INDEX_TYPES) -> None:
    """UnsupportedOpError unless ``spec`` has one of the integer ``allowed`` types."""
    if spec.type_name not in allowed:
        ctx.fail(f"{what} of type {spec.type_name} are not supported "
                 f"(takes {', '.join(allowed)})")


def _prod(dims: Sequence[int]) -> int:
    return int(np.prod(dims, dtype=np.int64))


def _row_strides(dims: Sequence[int]) -> np.ndarray:
    """Row-major strides (in elements) of ``dims``."""
    return np.array([_prod(dims[d + 1:]) for d in range(len(dims))], dtype=np.int64)


# -- GATHER ---------------------------------------------------------------------
@register("GATHER", versions=(1, 8), types=DATA_TYPES)
def prepare_gather(ctx: OpContext) -> Prepared:
    """GATHER: slices of ``params`` along ``axis`` picked by ``indices``,
    with ``batch_dims`` leading dimensions shared by both."""
    ctx.expect_counts(2)
    params, indices = ctx.input(0), ctx.input(1)
    expect_index_type(ctx, indices, "positions")
    expect_output_type(ctx, params.dtype)
    axis, batch_dims = _gather_axes(ctx, params, indices)
    n = params.shape[axis]
    shape = params.shape[:axis] + indices.shape[batch_dims:] + params.shape[axis + 1:]
    where = ctx.where()
    if batch_dims == 0 and indices.rank == 0:
        lead = (slice(None),) * axis

        def run_one(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            i = int(ins[1])                 # one index (a loop counter): a plain copy
            if not 0 <= i < n:
                check_index_range(where, ins[1], n)
            np.copyto(outs[0], ins[0][lead + (i,)])
        return ctx.done(run_one, shape)
    if batch_dims == 0:
        def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            check_index_range(where, ins[1], n)
            np.take(ins[0], ins[1], axis=axis, out=outs[0], mode="clip")
        return ctx.done(run, shape)
    return ctx.done(_batched_gather(where, params.shape, indices.shape, axis, batch_dims),
                    shape)


def _gather_axes(ctx: OpContext, params: TensorSpec, indices: TensorSpec) -> tuple[int, int]:
    axis, batch_dims = int(ctx.options.axis), int(ctx.options.batch_dims)
    if axis < 0:
        axis += params.rank
    if not 0 <= axis < params.rank:
        raise ctx.invalid(f"axis {ctx.options.axis} is out of range for params of rank "
                          f"{params.rank}")
    if batch_dims < 0:
        batch_dims += indices.rank
    if not 0 <= batch_dims <= min(axis, indices.rank):
        raise ctx.invalid(f"batch_dims {ctx.options.batch_dims} must lie in [0, "
                          f"{min(axis, indices.rank)}] (axis {axis}, indices of rank "
                          f"{indices.rank})")
    if params.shape[:batch_dims] != indices.shape[:batch_dims]:
        raise ctx.invalid(f"the first {batch_dims} dimensions of params {list(params.shape)} "
                          f"and indices {list(indices.shape)} must match (batch_dims)")
    return axis, batch_dims


def _batched_gather(where: str, pshape: tuple[int, ...], ishape: tuple[int, ...], axis: int,
                    batch_dims: int) -> RunFn:
    """run() for batch_dims > 0: one fancy index over (batch, outer, index, inner)."""
    nb, outer = _prod(pshape[:batch_dims]), _prod(pshape[batch_dims:axis])
    n, inner, k = pshape[axis], _prod(pshape[axis + 1:]), _prod(ishape[batch_dims:])
    b_ix = np.arange(nb).reshape(nb, 1, 1)
    o_ix = np.arange(outer).reshape(1, outer, 1)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        check_index_range(where, ins[1], n)
        p = ins[0].reshape(nb, outer, n, inner)
        idx = ins[1].reshape(nb, 1, k)
        outs[0].reshape(nb, outer, k, inner)[...] = p[b_ix, o_ix, idx]
    return run


# -- GATHER_ND ------------------------------------------------------------------
@register("GATHER_ND", versions=(1, 6), types=DATA_TYPES)
def prepare_gather_nd(ctx: OpContext) -> Prepared:
    """GATHER_ND: slices of ``params`` addressed by index tuples (last axis of
    ``indices``)."""
    ctx.expect_counts(2)
    params, indices = ctx.input(0), ctx.input(1)
    expect_index_type(ctx, indices, "indices")
    expect_output_type(ctx, params.dtype)
    if params.rank < 1 or indices.rank < 1:
        raise ctx.invalid("params and indices must have rank >= 1")
    depth = indices.shape[-1]
    if depth > params.rank:
        raise ctx.invalid(f"index depth {depth} exceeds the params rank {params.rank}")
    if depth == 0:
        ctx.fail("indices with an empty last dimension are not supported (LiteRT fails "
                 "them as out of bounds)")
    shape = indices.shape[:-1] + params.shape[depth:]
    return ctx.done(_nd_gather(ctx.where(), params.shape, depth, _prod(indices.shape[:-1])),
                    shape)


def _nd_gather(where: str, pshape: tuple[int, ...], depth: int, count: int) -> RunFn:
    dims = np.array(pshape[:depth], dtype=np.int64)
    strides = _row_strides(pshape[:depth])
    rows, inner = _prod(pshape[:depth]), _prod(pshape[depth:])

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        idx = ins[1].reshape(count, depth)
        check_index_range(where, idx, dims)
        flat = idx.astype(np.int64) @ strides
        np.take(ins[0].reshape(rows, inner), flat, axis=0, out=outs[0].reshape(count, inner),
                mode="clip")
    return run


# -- SCATTER_ND -----------------------------------------------------------------
@register("SCATTER_ND", versions=(1, 1), types=SCATTER_TYPES,
          type_key=lambda ctx: ctx.input(1).type_name)
def prepare_scatter_nd(ctx: OpContext) -> Prepared:
    """SCATTER_ND: zeros of ``shape`` with ``updates`` added at ``indices``
    (duplicate indices accumulate; for bool they combine with OR)."""
    ctx.expect_counts(3)
    indices, updates, shape_t = ctx.input(0), ctx.input(1), ctx.input(2)
    expect_index_type(ctx, indices, "indices", ("INT32",))
    expect_index_type(ctx, shape_t, "shape values", ("INT32",))
    expect_output_type(ctx, updates.dtype)
    if indices.rank < 1 or shape_t.rank != 1:
        raise ctx.invalid("indices need rank >= 1 and shape must be a vector")
    if shape_t.is_constant:
        out_shape = _scatter_shape(ctx, indices, updates, shape_t.data)
        return ctx.done(_scatter_run(ctx.where(), indices.shape, out_shape, updates.dtype),
                        out_shape)
    return ctx.done(_dynamic_scatter(ctx, indices, updates), None)


def _scatter_shape(ctx: OpContext, indices: TensorSpec, updates: TensorSpec,
                   shape_data: np.ndarray) -> tuple[int, ...]:
    shape = tuple(int(d) for d in np.asarray(shape_data).reshape(-1))
    if any(d < 0 for d in shape):
        raise ctx.invalid(f"shape {list(shape)} has a negative dimension")
    depth = indices.shape[-1]
    if depth > len(shape):
        raise ctx.invalid(f"index depth {depth} exceeds the output rank {len(shape)}")
    want = indices.shape[:-1] + shape[depth:]
    if updates.shape != want:
        raise ctx.invalid(f"updates have shape {list(updates.shape)}, expected {list(want)} "
                          f"for indices {list(indices.shape)} and shape {list(shape)}")
    return shape


def _scatter_run(where: str, ishape: tuple[int, ...], shape: tuple[int, ...],
                 dtype: np.dtype) -> RunFn:
    depth, count = ishape[-1], _prod(ishape[:-1])
    dims = np.array(shape[:depth], dtype=np.int64)
    strides = _row_strides(shape[:depth])
    rows, inner = _prod(shape[:depth]), _prod(shape[depth:])
    accumulate = np.logical_or if np.dtype(dtype) == np.bool_ else np.add

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        idx = ins[0].reshape(count, depth)
        check_index_range(where, idx, dims)
        out = outs[0].reshape(rows, inner)
        out.fill(0)
        accumulate.at(out, idx.astype(np.int64) @ strides, ins[1].reshape(count, inner))
    return run


def _dynamic_scatter(ctx: OpContext, indices: TensorSpec, updates: TensorSpec) -> RunFn:
    """run() for a shape known only at invoke: validate it, then scatter."""
    cache: dict[tuple[int, ...], RunFn] = {}

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> list[np.ndarray]:
        shape = _scatter_shape(ctx, indices, updates, ins[2])
        if shape not in cache:
            cache[shape] = _scatter_run(ctx.where(), indices.shape, shape, updates.dtype)
        out = np.empty(shape, updates.dtype)
        cache[shape](ins, [out])
        return [out]
    return run


# -- EMBEDDING_LOOKUP -------------------------------------------------------------
@register("EMBEDDING_LOOKUP", versions=(1, 5), types=frozenset({"INT32"}))
def prepare_embedding_lookup(ctx: OpContext) -> Prepared:
    """EMBEDDING_LOOKUP: rows of ``value`` picked by ``lookup``; int8/uint8
    rows with a float output are dequantized (hybrid: symmetric, per tensor or
    per row)."""
    ctx.expect_counts(2)
    lookup, value = ctx.input(0), ctx.input(1)
    if lookup.rank != 1:
        raise ctx.invalid(f"lookup must be a vector, got rank {lookup.rank}")
    if value.rank < 2:
        raise ctx.invalid(f"value must have rank >= 2, got {value.rank}")
    shape = lookup.shape + value.shape[1:]
    if ctx.outputs[0].dtype != value.dtype:
        return ctx.done(_hybrid_lookup(ctx, value), shape)
    if value.type_name not in DATA_TYPES:
        ctx.fail(f"value type {value.type_name} is not supported")
    rows, where = value.shape[0], ctx.where()

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        check_index_range(where, ins[0], rows)
        np.take(ins[1], ins[0], axis=0, out=outs[0], mode="clip")
    return ctx.done(run, shape)


def _hybrid_lookup(ctx: OpContext, value: TensorSpec) -> RunFn:
    """run() dequantizing int8/uint8 rows to float32/float16 (TFLite reads the
    bytes as int8 and multiplies by the row's float32 scale)."""
    out = ctx.outputs[0]
    if value.type_name not in ("INT8", "UINT8") or out.type_name not in ("FLOAT32", "FLOAT16"):
        raise ctx.invalid(f"value type {value.type_name} with output type {out.type_name}: "
                          "only int8/uint8 values may produce a float output")
    q = value.quantization
    if q is None:
        ctx.fail("a hybrid lookup (quantized value, float output) needs the value's "
                 "quantization scale")
    if np.any(q.zero_point != 0):
        raise ctx.invalid("a hybrid lookup supports only symmetric quantization "
                          "(zero point 0)")
    rows = value.shape[0]
    if q.per_channel and (q.axis != 0 or q.scale.size != rows):
        raise ctx.invalid(f"per-row scales must be along axis 0 with {rows} entries, got "
                          f"{q.scale.size} along axis {q.axis}")
    scale = q.scale.astype(np.float32).reshape((-1,) + (1,) * (value.rank - 1))
    where = ctx.where()

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        check_index_range(where, ins[0], rows)
        picked = ins[1].view(np.int8)[ins[0]].astype(np.float32)
        row_scale = scale[ins[0]] if scale.shape[0] > 1 else scale[0]
        if outs[0].dtype == np.float32:
            np.multiply(picked, row_scale, out=outs[0])
        else:
            outs[0][...] = picked * row_scale
    return run
