"""Tensors made from shapes and scalars: SHAPE, FILL, ZEROS_LIKE, RANGE.

SHAPE's value is known at prepare (it is the input's shape). FILL and RANGE
have data-dependent output shapes unless their shape-giving inputs are
constant; RANGE's values accumulate in the output type exactly as TFLite
does (``value += delta``), which differs from ``start + i * delta`` in
float32.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .movement_common import (SIZED_TYPES, Arrays, Plan, expect_int16_symmetric,
                              expect_output_type, expect_same_params, index_values, prepare_planned)
from .registry import register

FILL_TYPES = SIZED_TYPES
ZEROS_LIKE_TYPES = frozenset({"FLOAT32", "INT32", "INT64"})
RANGE_TYPES = frozenset({"FLOAT32", "INT32", "INT64"})


@register("SHAPE", versions=(1, 1), types=SIZED_TYPES)
def prepare_shape(ctx: OpContext) -> Prepared:
    """SHAPE: the input's shape as an out_type (INT32 or INT64) vector."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    out_type = ctx.options.out_type
    if out_type not in ("INT32", "INT64"):
        raise ctx.invalid(f"out_type must be INT32 or INT64, not {out_type}")
    expect_output_type(ctx, out_type)
    value = np.array(x.shape, dtype=ctx.outputs[0].dtype)

    def write(ins: Arrays, outs: Arrays) -> None:
        np.copyto(outs[0], value)
    return ctx.done(write, (x.rank,))


@register("FILL", versions=(1, 5), types=FILL_TYPES,
          type_key=lambda ctx: ctx.input(1).type_name)
def prepare_fill(ctx: OpContext) -> Prepared:
    """FILL a tensor of shape ``dims`` with the scalar ``value``.

    The value must share the output's scale and zero point (TFLite copies
    the raw value)."""
    ctx.expect_counts(2)
    dims_in, value_in = ctx.input(0), ctx.input(1)
    expect_output_type(ctx, value_in.type_name)
    if value_in.rank != 0:
        raise ctx.invalid(f"value must be a scalar, got shape {list(value_in.shape)}")
    expect_same_params(ctx, value_in, ctx.outputs[0])
    expect_int16_symmetric(ctx, value_in)
    dims = index_values(ctx, dims_in, "dims")

    def plan(dims: np.ndarray) -> Plan:
        shape = tuple(int(d) for d in dims.tolist())
        if any(d < 0 for d in shape):
            raise ctx.invalid(f"dims {list(shape)} must be >= 0")

        def write(ins: Arrays, outs: Arrays) -> None:
            outs[0][...] = ins[1]
        return Plan([shape], write)
    return prepare_planned(ctx, plan, [dims], [0])


@register("ZEROS_LIKE", versions=(1, 1), types=ZEROS_LIKE_TYPES)
def prepare_zeros_like(ctx: OpContext) -> Prepared:
    """ZEROS_LIKE: zeros of the input's shape and type."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    expect_output_type(ctx, x.type_name)

    def write(ins: Arrays, outs: Arrays) -> None:
        outs[0].fill(0)
    return ctx.done(write, x.shape)


def range_values(ctx: OpContext, start: Any, limit: Any, delta: Any, dtype: np.dtype
                 ) -> np.ndarray:
    """TFLite's RANGE: size from (limit - start) / delta, values accumulated."""
    start, limit, delta = (np.asarray(v, dtype).reshape(()) for v in (start, limit, delta))
    if delta == 0:
        raise ctx.invalid("delta must not be 0")
    if not ((start > limit and delta < 0) or (start < limit and delta > 0)):
        raise ctx.invalid(f"range from {start} to {limit} by {delta} is empty or reversed")
    if dtype.kind == "f":
        size = int(np.ceil(np.abs((limit - start) / delta)))
    else:
        size = int((abs(int(limit) - int(start)) + abs(int(delta)) - 1) // abs(int(delta)))
    steps = np.full(size, delta, dtype)
    if size:
        steps[0] = start
    return np.add.accumulate(steps, dtype=dtype)


@register("RANGE", versions=(1, 2), types=RANGE_TYPES)
def prepare_range(ctx: OpContext) -> Prepared:
    """RANGE(start, limit, delta) of scalars of one type."""
    ctx.expect_counts(3)
    specs = [ctx.input(i) for i in range(3)]
    kind = specs[0].type_name
    expect_output_type(ctx, kind)
    for name, s in zip(("start", "limit", "delta"), specs):
        if s.type_name != kind or s.rank != 0:
            raise ctx.invalid(f"{name} must be a {kind} scalar, got {s.type_name}"
                              f"{list(s.shape)}")
    dtype = ctx.outputs[0].dtype
    if all(s.is_constant for s in specs):
        value = range_values(ctx, *(s.data for s in specs), dtype)

        def write(ins: Arrays, outs: Arrays) -> None:
            np.copyto(outs[0], value)
        return ctx.done(write, value.shape)

    def run(ins: Arrays, outs: Arrays) -> list:
        return [range_values(ctx, ins[0], ins[1], ins[2], dtype)]
    return ctx.done(run, None)
