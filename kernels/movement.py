"""Shape and layout kernels: RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE,
REVERSE_V2, TILE, BROADCAST_TO, DEPTH_TO_SPACE, SPACE_TO_DEPTH,
SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND.

All of them move bytes only (quantized tensors keep their raw values, as in
TFLite); every index is resolved in prepare and run is one numpy copy, or two
where a padded or cropped intermediate is unavoidable.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .movement_common import (MEMCPY_TYPES, QUANTIZED_TYPES, SIZED_TYPES, Arrays, Plan,
                              copy_view, expect_int16_symmetric, expect_same_params,
                              expect_same_types, index_values,
                              legacy_params, normalize_axis, prepare_planned, product)
from .registry import register

Shape = tuple[int, ...]

#: Types as ai-edge-litert's kernels take them (checked by the tests).
REVERSE_TYPES = frozenset({"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32",
                           "INT64", "BOOL"})
DEPTH_SPACE_TYPES = frozenset({"FLOAT32", "INT8", "UINT8", "INT32", "INT64"})


# -- RESHAPE, SQUEEZE, EXPAND_DIMS ------------------------------------------------
def reshape_target(ctx: OpContext, in_shape: Shape, target: Sequence[int]) -> Shape:
    """The output shape of reshaping ``in_shape`` to ``target`` (one -1 allowed)."""
    target = [int(d) for d in target]
    if any(d < -1 for d in target):
        raise ctx.invalid(f"new shape {target} has a negative dimension")
    stretch = [i for i, d in enumerate(target) if d == -1]
    if len(stretch) > 1:
        raise ctx.invalid(f"new shape {target} has more than one -1")
    n_in = product(in_shape)
    if stretch:
        known = product(d for d in target if d != -1)
        if known == 0 or n_in % known:
            raise ctx.invalid(f"cannot reshape {list(in_shape)} ({n_in} elements) to {target}")
        target[stretch[0]] = n_in // known
    if product(target) != n_in:
        raise ctx.invalid(f"cannot reshape {list(in_shape)} ({n_in} elements) to {target} "
                          f"({product(target)} elements)")
    return tuple(target)


def _reshape_plan(ctx: OpContext, in_shape: Shape) -> Callable[[np.ndarray], Plan]:
    def plan(target: np.ndarray) -> Plan:
        shape = reshape_target(ctx, in_shape, target.reshape(-1).tolist())
        return Plan([shape], copy_view(lambda x: x.reshape(shape)))
    return plan


@register("RESHAPE", versions=(1, 1), types=MEMCPY_TYPES)
def prepare_reshape(ctx: OpContext) -> Prepared:
    """RESHAPE to the shape input (int32 vector) or else the new_shape option.

    As in TFLite, a shape input that is not an int32 vector is ignored in
    favour of the option, and the legacy option value [0] means a scalar.
    """
    ctx.expect_counts((1, 2))
    x = expect_same_types(ctx)
    shape_in = ctx.optional_input(1)
    if shape_in is not None and shape_in.rank == 1 and shape_in.type_name == "INT32":
        values = index_values(ctx, shape_in, "shape input", ("INT32",))
        return prepare_planned(ctx, _reshape_plan(ctx, x.shape), [values], [1])
    target = list(ctx.options.new_shape or ())
    if target == [0]:
        target = []
    return prepare_planned(ctx, _reshape_plan(ctx, x.shape), [np.array(target, np.int64)], [])


@register("SQUEEZE", versions=(1, 2), types=MEMCPY_TYPES)
def prepare_squeeze(ctx: OpContext) -> Prepared:
    """SQUEEZE the listed size-1 dimensions (all size-1 dimensions if none)."""
    ctx.expect_counts(1)
    x = expect_same_types(ctx)
    dims = ctx.options.squeeze_dims or ()
    if len(dims) > 8:
        raise ctx.invalid(f"squeeze_dims lists {len(dims)} dimensions (at most 8)")
    drop = {normalize_axis(ctx, d, x.rank, "squeeze dimension") for d in dims}
    for d in drop:
        if x.shape[d] != 1:
            raise ctx.invalid(f"cannot squeeze dimension {d} of size {x.shape[d]}")
    if not dims:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    shape = tuple(d for i, d in enumerate(x.shape) if i not in drop)
    return ctx.done(copy_view(lambda a: a.reshape(shape)), shape)


@register("EXPAND_DIMS", versions=(1, 1), types=MEMCPY_TYPES)
def prepare_expand_dims(ctx: OpContext) -> Prepared:
    """EXPAND_DIMS: insert a size-1 dimension at the axis input (TFLite
    requires equal input and output quantization, whatever the type)."""
    ctx.expect_counts(2)
    x = expect_same_types(ctx)
    expect_same_params(ctx, x, ctx.outputs[0])
    expect_int16_symmetric(ctx, x)
    axis_in = ctx.input(1)
    values = index_values(ctx, axis_in, "axis", rank=None)
    if axis_in.size != 1:
        raise ctx.invalid(f"axis must hold one value, got shape {list(axis_in.shape)}")

    def plan(axis: np.ndarray) -> Plan:
        a = normalize_axis(ctx, int(axis.reshape(-1)[0]), x.rank + 1)
        shape = x.shape[:a] + (1,) + x.shape[a:]
        return Plan([shape], copy_view(lambda arr: arr.reshape(shape)))
    return prepare_planned(ctx, plan, [values], [1])


# -- TRANSPOSE, REVERSE_V2 --------------------------------------------------------
@register("TRANSPOSE", versions=(1, 9), types=SIZED_TYPES)
def prepare_transpose(ctx: OpContext) -> Prepared:
    """TRANSPOSE by the permutation input (rank up to 8)."""
    ctx.expect_counts(2)
    x = expect_same_types(ctx)
    if x.rank > 8:
        ctx.fail(f"transposing rank {x.rank} is not supported (at most 8)")
    perm_in = ctx.input(1)
    values = index_values(ctx, perm_in, "perm")
    if perm_in.shape[0] != x.rank:
        raise ctx.invalid(f"perm has {perm_in.shape[0]} entries for a rank-{x.rank} input")

    def plan(perm: np.ndarray) -> Plan:
        p = [int(v) for v in perm.tolist()]
        if sorted(p) != list(range(x.rank)):
            raise ctx.invalid(f"perm {perm.tolist()} is not a permutation of {x.rank} axes")
        shape = tuple(x.shape[i] for i in p)
        return Plan([shape], copy_view(lambda a: a.transpose(p)))
    return prepare_planned(ctx, plan, [values], [1])


@register("REVERSE_V2", versions=(1, 4), types=REVERSE_TYPES)
def prepare_reverse(ctx: OpContext) -> Prepared:
    """REVERSE_V2 along the axes listed in the axis input."""
    ctx.expect_counts(2)
    x = expect_same_types(ctx)
    axes_in = ctx.input(1)
    index_values(ctx, axes_in, "axis", ("INT32",))

    def flips(axes: np.ndarray) -> tuple[slice, ...]:
        chosen = {normalize_axis(ctx, a, x.rank) for a in np.asarray(axes).tolist()}
        return tuple(slice(None, None, -1) if i in chosen else slice(None)
                     for i in range(x.rank))
    if axes_in.is_constant:
        index = flips(axes_in.data)
        return ctx.done(copy_view(lambda a: a[index]), x.shape)

    def run(ins: Arrays, outs: Arrays) -> None:
        np.copyto(outs[0], ins[0][flips(ins[1])])
    return ctx.done(run, x.shape)


# -- TILE, BROADCAST_TO -----------------------------------------------------------
@register("TILE", versions=(1, 3), types=SIZED_TYPES)
def prepare_tile(ctx: OpContext) -> Prepared:
    """TILE: repeat the input ``multiples[i]`` times along each axis."""
    ctx.expect_counts(2)
    x = expect_same_types(ctx)
    mult_in = ctx.input(1)
    values = index_values(ctx, mult_in, "multiples")
    if mult_in.shape[0] != x.rank:
        raise ctx.invalid(f"multiples has {mult_in.shape[0]} entries for a rank-{x.rank} input")

    def plan(multiples: np.ndarray) -> Plan:
        m = [int(v) for v in multiples.tolist()]
        if any(v < 0 for v in m):
            raise ctx.invalid(f"multiples {m} has a negative entry")
        shape = tuple(a * b for a, b in zip(m, x.shape))
        pairs = tuple(v for mi, d in zip(m, x.shape) for v in (mi, d))
        ones = tuple(v for d in x.shape for v in (1, d))

        def write(ins: Arrays, outs: Arrays) -> None:
            np.copyto(outs[0].reshape(pairs), ins[0].reshape(ones))
        return Plan([shape], write)
    return prepare_planned(ctx, plan, [values], [1])


@register("BROADCAST_TO", versions=(2, 4), types=SIZED_TYPES)
def prepare_broadcast_to(ctx: OpContext) -> Prepared:
    """BROADCAST_TO the shape input (numpy broadcasting, rank up to 8)."""
    ctx.expect_counts(2)
    x = expect_same_types(ctx)
    shape_in = ctx.input(1)
    values = index_values(ctx, shape_in, "shape")
    if shape_in.shape[0] > 8:
        ctx.fail(f"broadcasting to rank {shape_in.shape[0]} is not supported (at most 8)")
    if shape_in.shape[0] < x.rank:
        raise ctx.invalid(f"cannot broadcast rank {x.rank} to rank {shape_in.shape[0]}")

    def plan(target: np.ndarray) -> Plan:
        shape = tuple(int(d) for d in target.tolist())
        tail = shape[len(shape) - x.rank:]
        if any(d < 0 for d in shape) or any(a not in (1, b) for a, b in zip(x.shape, tail)):
            raise ctx.invalid(f"cannot broadcast {list(x.shape)} to {list(shape)}")
        return Plan([shape], copy_view(lambda a: a))
    return prepare_planned(ctx, plan, [values], [1])


# -- DEPTH_TO_SPACE, SPACE_TO_DEPTH -----------------------------------------------
def _block_size(ctx: OpContext) -> int:
    x = ctx.input(0)
    if x.rank != 4:
        raise ctx.invalid(f"input must have rank 4 (NHWC), got {list(x.shape)}")
    b = int(ctx.options.block_size)
    if b < 1:
        raise ctx.invalid(f"block_size {b} must be >= 1")
    return b


@register("DEPTH_TO_SPACE", versions=(1, 2), types=DEPTH_SPACE_TYPES)
def prepare_depth_to_space(ctx: OpContext) -> Prepared:
    """DEPTH_TO_SPACE: move blocks of channels into b x b spatial blocks."""
    ctx.expect_counts(1)
    x = expect_same_types(ctx)
    b = _block_size(ctx)
    n, h, w, c = x.shape
    if c % (b * b):
        raise ctx.invalid(f"depth {c} is not a multiple of block_size^2 = {b * b}")
    oc = c // (b * b)
    blocks = (n, h, w, b, b, oc)
    spread = (n, h, b, w, b, oc)

    def write(ins: Arrays, outs: Arrays) -> None:
        np.copyto(outs[0].reshape(spread), ins[0].reshape(blocks).transpose(0, 1, 3, 2, 4, 5))
    return ctx.done(write, (n, h * b, w * b, oc))


@register("SPACE_TO_DEPTH", versions=(1, 2), types=DEPTH_SPACE_TYPES)
def prepare_space_to_depth(ctx: OpContext) -> Prepared:
    """SPACE_TO_DEPTH: move b x b spatial blocks into channels."""
    ctx.expect_counts(1)
    x = expect_same_types(ctx)
    b = _block_size(ctx)
    n, h, w, c = x.shape
    if h % b or w % b:
        raise ctx.invalid(f"height {h} and width {w} must be multiples of block_size {b}")
    spread = (n, h // b, b, w // b, b, c)
    blocks = (n, h // b, w // b, b, b, c)

    def write(ins: Arrays, outs: Arrays) -> None:
        np.copyto(outs[0].reshape(blocks), ins[0].reshape(spread).transpose(0, 1, 3, 2, 4, 5))
    return ctx.done(write, (n, h // b, w // b, b * b * c))


# -- SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND -----------------------------------------
def _block_inputs(ctx: OpContext, what: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validated (block_shape, paddings-or-crops) values (None if not constant)."""
    x, block_in, pads_in = ctx.input(0), ctx.input(1), ctx.input(2)
    block = index_values(ctx, block_in, "block_shape", ("INT32",))
    pads = index_values(ctx, pads_in, what, ("INT32",), rank=2)
    m = block_in.shape[0]
    if pads_in.shape != (m, 2):
        raise ctx.invalid(f"{what} must have shape [{m}, 2], got {list(pads_in.shape)}")
    if x.rank < m + 1:
        raise ctx.invalid(f"input rank {x.rank} is too small for {m} block dimensions")
    return block, pads


def _check_blocks(ctx: OpContext, block: np.ndarray, pads: np.ndarray, what: str) -> None:
    if (block < 1).any():
        raise ctx.invalid(f"block_shape {block.tolist()} must be >= 1")
    if (pads < 0).any():
        raise ctx.invalid(f"{what} {pads.tolist()} must be >= 0")


@register("SPACE_TO_BATCH_ND", versions=(1, 4), types=SIZED_TYPES)
def prepare_space_to_batch_nd(ctx: OpContext) -> Prepared:
    """SPACE_TO_BATCH_ND: zero-pad the spatial dimensions, then move blocks
    into the batch. Quantized 8-bit tensors pad with the output zero point."""
    ctx.expect_counts(3)
    x = expect_same_types(ctx)
    expect_same_params(ctx, x, ctx.outputs[0], QUANTIZED_TYPES)
    expect_int16_symmetric(ctx, x)
    block, pads = _block_inputs(ctx, "paddings")
    pad_value = legacy_params(ctx.outputs[0])[1] if x.type_name in ("INT8", "UINT8") else 0

    def plan(block: np.ndarray, pads: np.ndarray) -> Plan:
        _check_blocks(ctx, block, pads, "paddings")
        return _space_to_batch(ctx, x.shape, block.tolist(), pads.tolist(), pad_value)
    return prepare_planned(ctx, plan, [block, pads], [1, 2])


def _space_to_batch(ctx: OpContext, shape: Shape, block: list[int], pads: list[list[int]],
                    pad_value: int) -> Plan:
    m, n, rest = len(block), shape[0], shape[1 + len(block):]
    padded = [s + lo + hi for s, (lo, hi) in zip(shape[1:1 + m], pads)]
    if any(p % b for p, b in zip(padded, block)):
        raise ctx.invalid(f"padded spatial shape {padded} is not a multiple of block_shape "
                          f"{block}")
    outer = [p // b for p, b in zip(padded, block)]
    split = (n,) + tuple(v for o, b in zip(outer, block) for v in (o, b)) + rest
    perm = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)] + \
        list(range(1 + 2 * m, 1 + 2 * m + len(rest)))
    out_split = tuple(block) + (n,) + tuple(outer) + rest
    out_shape = (n * product(block),) + tuple(outer) + rest
    if not any(lo or hi for lo, hi in pads):
        def write(ins: Arrays, outs: Arrays) -> None:
            np.copyto(outs[0].reshape(out_split), ins[0].reshape(split).transpose(perm))
        return Plan([out_shape], write)
    dtype = ctx.outputs[0].dtype
    scratch = np.full((n,) + tuple(padded) + rest, pad_value, dtype)
    interior = (slice(None),) + tuple(slice(lo, lo + s) for (lo, _), s in
                                      zip(pads, shape[1:1 + m]))
    inner, blocked = scratch[interior], scratch.reshape(split).transpose(perm)

    def write_padded(ins: Arrays, outs: Arrays) -> None:
        np.copyto(inner, ins[0])
        np.copyto(outs[0].reshape(out_split), blocked)
    return Plan([out_shape], write_padded, scratch.nbytes)


@register("BATCH_TO_SPACE_ND", versions=(1, 4), types=SIZED_TYPES)
def prepare_batch_to_space_nd(ctx: OpContext) -> Prepared:
    """BATCH_TO_SPACE_ND: move batch blocks back into space, then crop."""
    ctx.expect_counts(3)
    x = expect_same_types(ctx)
    expect_same_params(ctx, x, ctx.outputs[0], QUANTIZED_TYPES)
    expect_int16_symmetric(ctx, x)
    block, crops = _block_inputs(ctx, "crops")

    def plan(block: np.ndarray, crops: np.ndarray) -> Plan:
        _check_blocks(ctx, block, crops, "crops")
        return _batch_to_space(ctx, x.shape, block.tolist(), crops.tolist())
    return prepare_planned(ctx, plan, [block, crops], [1, 2])


def _batch_to_space(ctx: OpContext, shape: Shape, block: list[int], crops: list[list[int]]
                    ) -> Plan:
    m, rest = len(block), shape[1 + len(block):]
    nb = product(block)
    if shape[0] % nb:
        raise ctx.invalid(f"batch {shape[0]} is not a multiple of prod(block_shape) = {nb}")
    n, inner = shape[0] // nb, shape[1:1 + m]
    full = [s * b for s, b in zip(inner, block)]
    if any(lo + hi > f for (lo, hi), f in zip(crops, full)):
        raise ctx.invalid(f"crops {crops} exceed the spatial shape {full}")
    split = tuple(block) + (n,) + tuple(inner) + rest
    perm = [m] + [v for i in range(m) for v in (m + 1 + i, i)] + \
        list(range(2 * m + 1, 2 * m + 1 + len(rest)))
    spread = (n,) + tuple(v for s, b in zip(inner, block) for v in (s, b)) + rest
    out_shape = (n,) + tuple(f - lo - hi for f, (lo, hi) in zip(full, crops)) + rest
    if not any(lo or hi for lo, hi in crops):
        def write(ins: Arrays, outs: Arrays) -> None:
            np.copyto(outs[0].reshape(spread), ins[0].reshape(split).transpose(perm))
        return Plan([out_shape], write)
    scratch = np.empty((n,) + tuple(full) + rest, ctx.outputs[0].dtype)
    spread_view = scratch.reshape(spread)
    kept = scratch[(slice(None),) + tuple(slice(lo, f - hi) for (lo, hi), f in
                                          zip(crops, full))]

    def write_cropped(ins: Arrays, outs: Arrays) -> None:
        np.copyto(spread_view, ins[0].reshape(split).transpose(perm))
        np.copyto(outs[0], kept)
    return Plan([out_shape], write_cropped, scratch.nbytes)
