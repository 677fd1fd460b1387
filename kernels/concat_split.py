"""Joining and splitting: CONCATENATION, PACK, UNPACK, SPLIT, SPLIT_V.

Outputs are filled by one copy per input (or per output) into precomputed
slices. UINT8 CONCATENATION of inputs quantized differently from the output
requantizes them exactly as TFLite does (float32 scale and bias, round half
away from zero), through a 256-entry table built in prepare.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from .common import fused_activation
from .movement_common import (Arrays, Plan, expect_int16_symmetric, expect_same_params,
                              expect_same_types, index_values, legacy_params, normalize_axis,
                              prepare_planned)
from .quant_math import round_half_away
from .registry import register

Shape = tuple[int, ...]

CONCAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32",
                          "UINT32", "INT64", "BOOL"})
PACK_TYPES = frozenset({"FLOAT32", "INT8", "UINT8", "INT16", "INT32", "UINT32", "INT64"})
UNPACK_TYPES = frozenset({"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "BOOL"})
SPLIT_TYPES = frozenset({"FLOAT32", "INT8", "UINT8", "INT16", "INT32", "INT64"})


def _along(axis: int, index: slice | int) -> tuple:
    """An index selecting ``index`` along ``axis`` and everything elsewhere
    (always a view, a 0-d one when everything else is gone)."""
    return (slice(None),) * axis + (index, Ellipsis)


# -- CONCATENATION ----------------------------------------------------------------
def _concat_axis(ctx: OpContext, inputs: list[TensorSpec]) -> int:
    x0 = inputs[0]
    for t in inputs[1:]:
        if t.type_name != x0.type_name:
            raise ctx.invalid(f"inputs have different types {x0.type_name} and {t.type_name}")
    axis = int(ctx.options.axis)
    if x0.rank == 0 and axis in (0, -1):
        return 0
    axis = normalize_axis(ctx, axis, x0.rank)
    for t in inputs[1:]:
        same = t.rank == x0.rank and all(
            a == b for i, (a, b) in enumerate(zip(t.shape, x0.shape)) if i != axis)
        if not same:
            raise ctx.invalid(f"input shapes {list(x0.shape)} and {list(t.shape)} differ "
                              f"outside axis {axis}")
    return axis


def _check_concat_quant(ctx: OpContext, inputs: list[TensorSpec]) -> None:
    """TFLite's limits: INT8 inputs must share the output's scale and zero
    point; INT16 tensors must all have zero point 0 (their scales are not
    compared and values are copied unchanged)."""
    out = ctx.outputs[0]
    kind = inputs[0].type_name
    if kind == "INT8":
        for i, t in enumerate(inputs):
            if legacy_params(t) != legacy_params(out):
                raise ctx.invalid(f"INT8 input {i} is quantized {legacy_params(t)} but the "
                                  f"output {legacy_params(out)}; TFLite does not rescale")
    if kind == "INT16":
        for t in [*inputs, out]:
            expect_int16_symmetric(ctx, t)


def _requant_table(ctx: OpContext, t: TensorSpec) -> np.ndarray | None:
    """The uint8 -> uint8 table rescaling ``t`` to the output's parameters,
    None when they are equal (TFLite then copies)."""
    (s_in, z_in), (s_out, z_out) = legacy_params(t), legacy_params(ctx.outputs[0])
    if (s_in, z_in) == (s_out, z_out):
        return None
    if s_out == 0:
        raise ctx.invalid(f"input {t.name!r} must be rescaled but the output has no scale")
    f32 = np.float32
    scale = f32(s_in) * (f32(1.0) / f32(s_out))
    bias = -f32(z_in) * scale
    q = np.arange(256, dtype=np.float32)
    value = round_half_away((q * scale + bias).astype(np.float32)) + z_out
    return np.clip(value, 0, 255).astype(np.uint8)


def _concat_writer(ctx: OpContext, inputs: list[TensorSpec], axis: int
                   ) -> Callable[[Arrays, Arrays], None]:
    starts = np.cumsum([0] + [t.shape[axis] for t in inputs]).tolist()
    slots = [_along(axis, slice(a, b)) for a, b in zip(starts, starts[1:])]
    tables = [_requant_table(ctx, t) if t.type_name == "UINT8" else None for t in inputs]
    act = fused_activation(ctx)

    def write(ins: Arrays, outs: Arrays) -> None:
        out = outs[0]
        for x, slot, table in zip(ins, slots, tables):
            if table is None:
                np.copyto(out[slot], x)
            else:
                np.take(table, x, out=out[slot], mode="wrap")
        if act is not None:
            act(out)
    return write


@register("CONCATENATION", versions=(1, 7), types=CONCAT_TYPES)
def prepare_concatenation(ctx: OpContext) -> Prepared:
    """CONCATENATION along the axis option (negative counts from the end).

    A fused activation is applied for FLOAT32 (TFLite's own kernel refuses
    any); other types must say NONE.
    """
    if not ctx.inputs or len(ctx.outputs) != 1:
        raise ctx.invalid("expects at least one input and one output")
    inputs = [ctx.input(i) for i in range(len(ctx.inputs))]
    expect_same_types(ctx)
    act = ctx.options.fused_activation_function
    if act != "NONE" and inputs[0].type_name != "FLOAT32":
        ctx.fail(f"fused activation {act} on {inputs[0].type_name} is not supported")
    axis = _concat_axis(ctx, inputs)
    _check_concat_quant(ctx, inputs)
    if inputs[0].rank == 0:
        return _concat_scalars(ctx, inputs)
    shape = list(inputs[0].shape)
    shape[axis] = sum(t.shape[axis] for t in inputs)
    return ctx.done(_concat_writer(ctx, inputs, axis), tuple(shape))


def _concat_scalars(ctx: OpContext, inputs: list[TensorSpec]) -> Prepared:
    """TFLite joins constant scalars into a vector (and nothing else at rank 0)."""
    if not all(t.is_constant for t in inputs):
        raise ctx.invalid("rank-0 inputs can only be concatenated when all are constant")
    if any(t.rank for t in inputs):
        raise ctx.invalid("a rank-0 input cannot be concatenated with higher-rank inputs")
    values = np.array([t.data for t in inputs], dtype=ctx.outputs[0].dtype)

    def write(ins: Arrays, outs: Arrays) -> None:
        np.copyto(outs[0], values)
    return ctx.done(write, (len(inputs),))


# -- PACK, UNPACK -----------------------------------------------------------------
@register("PACK", versions=(1, 5), types=PACK_TYPES)
def prepare_pack(ctx: OpContext) -> Prepared:
    """PACK values_count same-shaped inputs along a new axis."""
    n = int(ctx.options.values_count)
    if len(ctx.inputs) != n or len(ctx.outputs) != 1:
        raise ctx.invalid(f"values_count is {n} but the op has {len(ctx.inputs)} inputs "
                          f"and {len(ctx.outputs)} outputs (expects 1)")
    inputs = [ctx.input(i) for i in range(n)]
    x0 = expect_same_types(ctx)
    axis = normalize_axis(ctx, ctx.options.axis, x0.rank + 1)
    out = ctx.outputs[0]
    for i, t in enumerate(inputs):
        if t.shape != x0.shape or t.type_name != x0.type_name:
            raise ctx.invalid(f"input {i} is {t.type_name}{list(t.shape)}, input 0 "
                              f"{x0.type_name}{list(x0.shape)}")
        if legacy_params(t) != legacy_params(out):
            raise ctx.invalid(f"input {i} is quantized {legacy_params(t)} but the output "
                              f"{legacy_params(out)}; PACK does not rescale")
    slots = [_along(axis, i) for i in range(n)]

    def write(ins: Arrays, outs: Arrays) -> None:
        for x, slot in zip(ins, slots):
            np.copyto(outs[0][slot], x)
    return ctx.done(write, x0.shape[:axis] + (n,) + x0.shape[axis:])


@register("UNPACK", versions=(1, 6), types=UNPACK_TYPES)
def prepare_unpack(ctx: OpContext) -> Prepared:
    """UNPACK the input along an axis into num outputs."""
    ctx.expect_counts(1, len(ctx.outputs))
    x = expect_same_types(ctx)
    if x.rank == 0:
        raise ctx.invalid("cannot unpack a scalar")
    axis = normalize_axis(ctx, ctx.options.axis, x.rank)
    num = int(ctx.options.num)
    if num != x.shape[axis] or len(ctx.outputs) != num:
        raise ctx.invalid(f"num {num} and {len(ctx.outputs)} outputs must both equal the "
                          f"size {x.shape[axis]} of axis {axis}")
    for out in ctx.outputs:
        expect_same_params(ctx, x, out)
    slots = [_along(axis, i) for i in range(num)]
    shape = x.shape[:axis] + x.shape[axis + 1:]

    def write(ins: Arrays, outs: Arrays) -> None:
        for out, slot in zip(outs, slots):
            np.copyto(out, ins[0][slot])
    return ctx.done(write, *([shape] * num))


# -- SPLIT, SPLIT_V ---------------------------------------------------------------
def _split_plan(ctx: OpContext, x_index: int, sizes_of: Callable[..., list[int]]
                ) -> Callable[..., Plan]:
    """A plan for (axis value[, sizes]) -> one output per piece along the axis
    of input ``x_index``."""
    shape = ctx.input(x_index).shape

    def plan(axis_value: np.ndarray, *rest: np.ndarray) -> Plan:
        if np.size(axis_value) != 1:
            raise ctx.invalid(f"axis must hold one value, got {np.size(axis_value)}")
        axis = normalize_axis(ctx, int(np.reshape(axis_value, -1)[0]), len(shape))
        sizes = sizes_of(axis, *rest)
        starts = np.cumsum([0] + sizes).tolist()
        slots = [_along(axis, slice(a, b)) for a, b in zip(starts, starts[1:])]
        shapes = [shape[:axis] + (s,) + shape[axis + 1:] for s in sizes]

        def write(ins: Arrays, outs: Arrays) -> None:
            x = ins[x_index]
            for out, slot in zip(outs, slots):
                np.copyto(out, x[slot])
        return Plan(shapes, write)
    return plan


@register("SPLIT", versions=(1, 5), types=SPLIT_TYPES,
          type_key=lambda ctx: ctx.input(1).type_name)
def prepare_split(ctx: OpContext) -> Prepared:
    """SPLIT (axis is input 0, the tensor input 1) into num_splits equal parts."""
    ctx.expect_counts(2, len(ctx.outputs))
    x = expect_same_types(ctx, first=1)
    n = int(ctx.options.num_splits)
    if n < 1 or len(ctx.outputs) != n:
        raise ctx.invalid(f"num_splits is {n} but the op has {len(ctx.outputs)} outputs")
    axis = index_values(ctx, ctx.input(0), "axis", ("INT32",), rank=None)

    def sizes_of(axis_index: int) -> list[int]:
        size = x.shape[axis_index]
        if size % n:
            raise ctx.invalid(f"axis {axis_index} of size {size} does not split evenly "
                              f"into {n}")
        return [size // n] * n
    return prepare_planned(ctx, _split_plan(ctx, 1, sizes_of), [axis], [0])


@register("SPLIT_V", versions=(1, 3), types=SPLIT_TYPES)
def prepare_split_v(ctx: OpContext) -> Prepared:
    """SPLIT_V into pieces of size_splits (one entry may be -1: the rest)."""
    ctx.expect_counts(3, len(ctx.outputs))
    x = expect_same_types(ctx)
    n = int(ctx.options.num_splits)
    sizes_in = ctx.input(1)
    sizes = index_values(ctx, sizes_in, "size_splits")
    if len(ctx.outputs) != n or sizes_in.shape[0] != n:
        raise ctx.invalid(f"num_splits {n}, {sizes_in.shape[0]} size_splits and "
                          f"{len(ctx.outputs)} outputs must agree")
    axis = index_values(ctx, ctx.input(2), "axis", ("INT32",), rank=None)

    def sizes_of(axis_index: int, given: np.ndarray) -> list[int]:
        return _resolve_sizes(ctx, given.tolist(), x.shape[axis_index])
    return prepare_planned(ctx, _split_plan(ctx, 0, sizes_of), [axis, sizes], [2, 1])


def _resolve_sizes(ctx: OpContext, sizes: Sequence[int], total: int) -> list[int]:
    sizes = [int(s) for s in sizes]
    unknown = [i for i, s in enumerate(sizes) if s == -1]
    if len(unknown) > 1 or any(s < -1 for s in sizes):
        raise ctx.invalid(f"size_splits {sizes} may hold one -1 and no other negative value")
    known = sum(s for s in sizes if s != -1)
    if unknown:
        sizes[unknown[0]] = total - known
    if sum(sizes) != total or min(sizes, default=0) < 0:
        raise ctx.invalid(f"size_splits {sizes} do not add up to the axis size {total}")
    return sizes
