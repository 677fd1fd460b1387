"""Binary and unary elementwise math: ADD, SUB, MUL, ..."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .common import broadcast_shape, fused_activation
from .registry import FLOAT_TYPES, INT_TYPES, register

Ufunc = Callable[..., np.ndarray]


def _binary(ctx: OpContext, ufunc: Ufunc) -> Prepared:
    ctx.expect_counts(2)
    a, b = ctx.input(0), ctx.input(1)
    if a.dtype != b.dtype:
        raise ctx.invalid(f"input types differ: {a.type_name} and {b.type_name}")
    shape = broadcast_shape(ctx, a.shape, b.shape)
    act = fused_activation(ctx)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        ufunc(ins[0], ins[1], out=outs[0])
        if act is not None:
            act(outs[0])
    return ctx.done(run, shape)


@register("ADD", versions=(1, 5), types=FLOAT_TYPES | INT_TYPES)
def prepare_add(ctx: OpContext) -> Prepared:
    """ADD: a + b with broadcasting and a fused activation."""
    return _binary(ctx, np.add)


@register("SUB", versions=(1, 3), types=FLOAT_TYPES | INT_TYPES)
def prepare_sub(ctx: OpContext) -> Prepared:
    """SUB: a - b with broadcasting and a fused activation."""
    return _binary(ctx, np.subtract)


@register("MUL", versions=(1, 7), types=FLOAT_TYPES | INT_TYPES)
def prepare_mul(ctx: OpContext) -> Prepared:
    """MUL: a * b with broadcasting and a fused activation."""
    return _binary(ctx, np.multiply)
