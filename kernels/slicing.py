"""SLICE and STRIDED_SLICE.

STRIDED_SLICE follows TFLite's kernel exactly: the ellipsis and new-axis
masks are expanded into an "effective" input shape, each axis's start and
end are normalized and clamped as TFLite does, and the output shape is
TFLite's ``ceil((end - start) / stride)`` (``ceil(end / stride)`` with
``offset``). The selection itself is a numpy basic-slicing view, so run is
one copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .movement_common import (SIZED_TYPES, Arrays, Plan, copy_view, expect_same_types,
                              index_values, prepare_planned)
from .registry import register

Shape = tuple[int, ...]

#: SLICE and STRIDED_SLICE copy elements by size, whatever the type.
SLICE_TYPES = SIZED_TYPES
#: Plans kept per op for computed begin/size values (a WHILE body slicing at its
#: loop counter sees the same few values at every invoke).
PLAN_CACHE_SIZE = 64


def _memo(plan: Callable[..., Plan]) -> Callable[..., Plan]:
    """``plan`` remembered by the bytes of its index values."""
    cache: dict[tuple, Plan] = {}

    def cached(*values: np.ndarray) -> Plan:
        key = tuple(v.tobytes() for v in values)
        made = cache.get(key)
        if made is None:
            made = plan(*values)
            if len(cache) >= PLAN_CACHE_SIZE:
                cache.clear()
            cache[key] = made
        return made
    return cached


def _prepare_sliced(ctx: OpContext, plan: Callable[..., Plan],
                    values: list[np.ndarray | None], positions: list[int]) -> Prepared:
    """Like ``prepare_planned``, but with computed index values the plan is
    looked up by their bytes as given (no int64 conversion at every run)."""
    if all(v is not None for v in values):
        return prepare_planned(ctx, plan, values, positions)
    cached, dtype = _memo(plan), ctx.outputs[0].dtype

    def run(ins: Arrays, outs: Arrays) -> list:
        made = cached(*(v if v is not None else ins[p] for v, p in zip(values, positions)))
        fresh = [np.empty(made.shapes[0], dtype)]
        made.write(ins, fresh)
        return fresh
    return ctx.done(run, None)


# -- SLICE -----------------------------------------------------------------------
@register("SLICE", versions=(1, 8), types=SLICE_TYPES)
def prepare_slice(ctx: OpContext) -> Prepared:
    """SLICE: ``size[i]`` elements from ``begin[i]`` (size -1: to the end)."""
    ctx.expect_counts(3)
    x = expect_same_types(ctx)
    begin_in, size_in = ctx.input(1), ctx.input(2)
    begin = index_values(ctx, begin_in, "begin")
    size = index_values(ctx, size_in, "size")
    if begin_in.shape != (x.rank,) or size_in.shape != (x.rank,):
        raise ctx.invalid(f"begin {list(begin_in.shape)} and size {list(size_in.shape)} "
                          f"must both have {x.rank} entries")

    def plan(begin: np.ndarray, size: np.ndarray) -> Plan:
        index = tuple(_slice_axis(ctx, i, int(b), int(s), d)
                      for i, (b, s, d) in enumerate(zip(begin.tolist(), size.tolist(), x.shape)))
        shape = tuple(s.stop - s.start for s in index)
        return Plan([shape], copy_view(lambda a: a[index]))
    return _prepare_sliced(ctx, plan, [begin, size], [1, 2])


def _slice_axis(ctx: OpContext, axis: int, begin: int, size: int, dim: int) -> slice:
    if size == -1:
        size = dim - begin
    if begin < 0 or size < 0 or begin + size > dim:
        raise ctx.invalid(f"begin {begin} and size {size} do not fit axis {axis} of size {dim}")
    return slice(begin, begin + size)


# -- STRIDED_SLICE -----------------------------------------------------------------
@dataclass
class _Effective:
    """The slice spec after expanding ellipsis and new-axis masks."""

    shape: list[int]
    begin: list[int]
    end: list[int]
    strides: list[int]
    begin_mask: int = 0
    end_mask: int = 0
    shrink_mask: int = 0


def _bit(mask: int, i: int) -> bool:
    return bool(mask >> i & 1) if i >= 0 else False


def _expanded_masks(opts: object, rank: int, count: int) -> tuple[int, int, int, int, int]:
    """(effective rank, ellipsis mask, new-axis mask, axes the ellipsis adds,
    where the ellipsis starts), all in effective axis numbering."""
    ellipsis, new_axis = int(opts.ellipsis_mask), int(opts.new_axis_mask)
    added = sum(1 for i in range(count) if not _bit(ellipsis, i) and _bit(new_axis, i))
    dims = rank + added
    eff_ellipsis = eff_new = 0
    expanded, start, i = 0, dims, 0
    while i < dims:
        if _bit(ellipsis, i):
            stop = max(i + 1, min(i + 1 + added + rank - count, dims))
            start, expanded = i, stop - i - 1
            for j in range(i, stop):
                eff_ellipsis |= 1 << j
            i = stop
            continue
        if _bit(new_axis, i - expanded):
            eff_new |= 1 << i
        i += 1
    return dims, eff_ellipsis, eff_new, expanded, start


def _effective(ctx: OpContext, in_shape: Shape, begin: list[int], end: list[int],
               strides: list[int]) -> _Effective:
    """TFLite's BuildStridedSliceParams, in Python."""
    opts, count = ctx.options, len(begin)
    dims, eff_ellipsis, eff_new, expanded, ellipsis_start = _expanded_masks(
        opts, len(in_shape), count)
    spec = _Effective([0] * dims, [0] * dims, [0] * dims, [1] * dims)
    added_ellipsis = added_axes = 0
    for i in range(dims):
        if _bit(eff_new, i) and not _bit(eff_ellipsis, i):
            spec.end[i], spec.shape[i] = 1, 1
            added_axes += 1
            continue
        source = i - added_axes
        if not 0 <= source < len(in_shape):
            raise ctx.invalid("the ellipsis and new-axis masks do not fit the input rank "
                              f"{len(in_shape)}")
        spec.shape[i] = in_shape[source]
        if _bit(eff_ellipsis, i) or i >= count + expanded:
            if _bit(eff_ellipsis, i):
                added_ellipsis = max(0, i - ellipsis_start)
            spec.begin_mask |= 1 << i
            spec.end_mask |= 1 << i
        else:
            _copy_axis(opts, spec, i, i - added_ellipsis, begin, end, strides)
    return spec


def _copy_axis(opts: object, spec: _Effective, i: int, src: int, begin: list[int],
               end: list[int], strides: list[int]) -> None:
    spec.begin[i], spec.end[i], spec.strides[i] = begin[src], end[src], strides[src]
    for name, field in (("begin_mask", "begin_mask"), ("end_mask", "end_mask"),
                        ("shrink_axis_mask", "shrink_mask")):
        if _bit(int(getattr(opts, name)), src):
            setattr(spec, field, getattr(spec, field) | 1 << i)


def _start(spec: _Effective, i: int) -> int:
    """TFLite's StridedSliceStartForAxis."""
    size, start, stride = spec.shape[i], spec.begin[i], spec.strides[i]
    if start < 0:
        start += size
    start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
    if _bit(spec.begin_mask, i):
        start = 0 if stride > 0 else size - 1
    return start


def _end(spec: _Effective, i: int, start: int, offset: bool) -> int:
    """TFLite's StridedSliceEndForAxis (shrunk axes handled by the caller)."""
    size, end, stride = spec.shape[i], spec.end[i], spec.strides[i]
    if offset:
        end += start
    if end < 0:
        end += size
    end = min(max(end, 0), size) if stride > 0 else min(max(end, -1), size - 1)
    if _bit(spec.end_mask, i):
        end = size if stride > 0 else -1
    return end


def _output_shape(ctx: OpContext, spec: _Effective, raw_end: list[int], offset: bool
                  ) -> Shape:
    """TFLite's output shape: shrunk axes dropped, ceil(extent / stride) kept."""
    shape = []
    for i, stride in enumerate(spec.strides):
        if stride == 0:
            raise ctx.invalid(f"stride of axis {i} is 0")
        if _bit(spec.shrink_mask, i):
            continue
        if offset:
            if i >= len(raw_end):
                ctx.fail("offset with ellipsis or implicit trailing axes is not supported")
            extent = raw_end[i]
        else:
            start = _start(spec, i)
            extent = _end(spec, i, start, False) - start
        shape.append(max(int(np.ceil(np.float32(extent) / np.float32(stride))), 0))
    return tuple(shape)


def _selection(ctx: OpContext, spec: _Effective, offset: bool) -> tuple:
    """The numpy index (slices, and ints for shrunk axes) of the selection."""
    index: list[slice | int] = []
    for i, stride in enumerate(spec.strides):
        start = _start(spec, i)
        if _bit(spec.shrink_mask, i):
            if not 0 <= start < spec.shape[i]:
                raise ctx.invalid(f"shrunk axis {i} index {spec.begin[i]} is out of range "
                                  f"for size {spec.shape[i]}")
            index.append(start)
            continue
        end = _end(spec, i, start, offset)
        if len(range(start, end, stride)) == 0:
            index.append(slice(0, 0))
        else:
            index.append(slice(start, None if end < 0 else end, stride))
    return tuple(index)


def _strided_plan(ctx: OpContext, shape: Shape | None = None) -> Callable[..., Plan]:
    """plan(begin, end, strides): the output shape and a copying writer.

    With ``shape`` given (offset mode, begin known only at run time) the
    shape is fixed and the selection must have exactly that shape."""
    x = ctx.input(0)
    offset = bool(ctx.options.offset)

    def plan(begin: np.ndarray, end: np.ndarray, strides: np.ndarray) -> Plan:
        spec = _effective(ctx, x.shape, begin.tolist(), end.tolist(), strides.tolist())
        out_shape = shape or _output_shape(ctx, spec, end.tolist(), offset)
        index = _selection(ctx, spec, offset)
        eff = tuple(spec.shape)
        picked = np.broadcast_to(False, eff)[index].shape   # no allocation
        if picked != tuple(out_shape):
            raise ctx.invalid(f"the slice selects shape {list(picked)} but the output shape "
                              f"is {list(out_shape)} (offset slice out of range?)")
        return Plan([tuple(out_shape)], copy_view(lambda a: a.reshape(eff)[index]))
    return plan


@register("STRIDED_SLICE", versions=(1, 8), types=SLICE_TYPES)
def prepare_strided_slice(ctx: OpContext) -> Prepared:
    """STRIDED_SLICE with every mask and the ``offset`` option."""
    ctx.expect_counts(4)
    x = expect_same_types(ctx)
    specs = [ctx.input(i) for i in (1, 2, 3)]
    values = [index_values(ctx, s, w, ("INT32",)) for s, w in
              zip(specs, ("begin", "end", "strides"))]
    n = specs[0].shape[0]
    if specs[1].shape[0] != n or specs[2].shape[0] != n:
        raise ctx.invalid("begin, end and strides must have the same length")
    begin, end, strides = values
    if ctx.options.offset and begin is None and end is not None and strides is not None:
        return _offset_dynamic_begin(ctx, x.shape, end, strides)
    return _prepare_sliced(ctx, _strided_plan(ctx), values, [1, 2, 3])


def _offset_dynamic_begin(ctx: OpContext, in_shape: Shape, end: np.ndarray,
                          strides: np.ndarray) -> Prepared:
    """offset=True with constant end and strides: the shape is static even
    though begin is only known at run time."""
    spec = _effective(ctx, in_shape, [0] * len(end), end.tolist(), strides.tolist())
    shape = _output_shape(ctx, spec, end.tolist(), True)
    plan = _memo(_strided_plan(ctx, shape))

    def run(ins: Arrays, outs: Arrays) -> None:
        plan(np.asarray(ins[1], np.int64), end, strides).write(ins, outs)
    return ctx.done(run, shape)
