"""Comparisons (EQUAL ... GREATER_EQUAL, BOOL outputs) and logic (LOGICAL_AND/OR/NOT)
on non-quantized tensors, broadcast like numpy.

Types follow LiteRT 2.3's builtin kernels: comparisons take FLOAT32, FLOAT16,
INT32 and INT64 (EQUAL and NOT_EQUAL also BOOL); the logical ops take BOOL.
STRING comparisons are not supported (edgeplex has no string tensors).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .elementwise import (F16, F32, I32, I64, Ufunc, binary_operands, expect_output_type,
                          is_empty, nothing_to_do, unary_operand)
from .registry import register

ORDERED = F32 | F16 | I32 | I64
BOOL = frozenset({"BOOL"})

#: op -> (numpy ufunc, LiteRT versions, input types).
_COMPARISONS = {
    "EQUAL": (np.equal, (1, 5), ORDERED | BOOL),
    "NOT_EQUAL": (np.not_equal, (1, 4), ORDERED | BOOL),
    "LESS": (np.less, (1, 3), ORDERED),
    "LESS_EQUAL": (np.less_equal, (1, 2), ORDERED),
    "GREATER": (np.greater, (1, 2), ORDERED),
    "GREATER_EQUAL": (np.greater_equal, (1, 3), ORDERED),
}
_LOGICAL = {"LOGICAL_AND": np.logical_and, "LOGICAL_OR": np.logical_or}


def prepare_binary_bool(ctx: OpContext, ufunc: Ufunc) -> Prepared:
    """A two-input op with a BOOL output: ``ufunc(a, b, out=out)``, broadcast."""
    _, _, shape = binary_operands(ctx)
    expect_output_type(ctx, "BOOL")
    if is_empty(shape):
        return nothing_to_do(ctx, shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        ufunc(ins[0], ins[1], out=outs[0])
    return ctx.done(run, shape)


def _register(op: str, ufunc: Ufunc, versions: tuple[int, int], types: frozenset[str]) -> None:
    def prepare(ctx: OpContext) -> Prepared:
        return prepare_binary_bool(ctx, ufunc)
    prepare.__name__ = prepare.__qualname__ = f"prepare_{op.lower()}"
    prepare.__doc__ = f"{op}: elementwise {ufunc.__name__} of two inputs into a BOOL tensor."
    register(op, versions=versions, types=types)(prepare)


for _op, (_ufunc, _versions, _types) in _COMPARISONS.items():
    _register(_op, _ufunc, _versions, _types)
for _op, _ufunc in _LOGICAL.items():
    _register(_op, _ufunc, (1, 1), BOOL)


@register("LOGICAL_NOT", versions=(1, 1), types=BOOL)
def prepare_logical_not(ctx: OpContext) -> Prepared:
    """LOGICAL_NOT: elementwise negation of a BOOL tensor."""
    x = unary_operand(ctx)
    if is_empty(x.shape):
        return nothing_to_do(ctx, x.shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.logical_not(ins[0], out=outs[0])
    return ctx.done(run, x.shape)
