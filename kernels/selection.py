"""Selection: SELECT, SELECT_V2, WHERE, TOPK_V2, ONE_HOT.

* SELECT (v1) takes a condition of the inputs' shape, a scalar, or a vector
  picking whole rows (dim 0); SELECT_V2 broadcasts all three operands.
* WHERE lists the coordinates of the non-zero elements (int64, row-major);
  its output shape depends on the data unless the condition is constant.
* TOPK_V2 returns the k largest values along the last axis in descending
  order, ties to the lower index (NaN sorts below everything).
* ONE_HOT writes ``on_value`` where an index equals the position along the
  new axis and ``off_value`` elsewhere (indices outside [0, depth) are off).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeplex.core.errors import InterpreterError
from edgeplex.core.kernel_api import OpContext, Prepared, RunFn, TensorSpec

from .common import broadcast_shape
from .registry import register

SELECT_TYPES = frozenset({"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "INT64",
                          "BOOL"})
WHERE_TYPES = frozenset({"BOOL", "FLOAT32", "INT8", "UINT8", "INT32", "INT64"})
TOPK_TYPES = frozenset({"FLOAT32", "INT8", "UINT8", "INT16", "INT32", "INT64"})
ONE_HOT_TYPES = frozenset({"FLOAT32", "INT8", "UINT8", "INT32", "INT64", "BOOL"})


# -- SELECT / SELECT_V2 -------------------------------------------------------------------
def _select_operands(ctx: OpContext) -> tuple[TensorSpec, TensorSpec, TensorSpec]:
    ctx.expect_counts(3)
    cond, x, y = ctx.input(0), ctx.input(1), ctx.input(2)
    if cond.type_name != "BOOL":
        raise ctx.invalid(f"the condition must be BOOL, got {cond.type_name}")
    if x.dtype != y.dtype or ctx.outputs[0].dtype != x.dtype:
        raise ctx.invalid(f"x ({x.type_name}), y ({y.type_name}) and the output "
                          f"({ctx.outputs[0].type_name}) must share one type")
    return cond, x, y


def _select_run(cond_shape: tuple[int, ...]) -> RunFn:
    """run(): y everywhere, then x where the (reshaped) condition holds."""
    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.copyto(outs[0], ins[2])
        np.copyto(outs[0], ins[1], where=ins[0].reshape(cond_shape))
    return run


@register("SELECT", versions=(1, 4), types=SELECT_TYPES, type_key=lambda c: c.input(1).type_name)
def prepare_select(ctx: OpContext) -> Prepared:
    """SELECT: x where cond else y; cond matches x, is a scalar, or picks rows."""
    cond, x, y = _select_operands(ctx)
    if x.shape != y.shape:
        raise ctx.invalid(f"x {list(x.shape)} and y {list(y.shape)} must have the same shape")
    if cond.shape == x.shape or cond.rank == 0:
        return ctx.done(_select_run(cond.shape), x.shape)
    if cond.rank == 1 and x.rank >= 1 and cond.shape[0] == x.shape[0]:
        return ctx.done(_select_run(cond.shape + (1,) * (x.rank - 1)), x.shape)
    raise ctx.invalid(f"condition {list(cond.shape)} must match x {list(x.shape)}, be a "
                      "scalar, or be a vector over x's first dimension")


@register("SELECT_V2", versions=(1, 2), types=SELECT_TYPES,
          type_key=lambda c: c.input(1).type_name)
def prepare_select_v2(ctx: OpContext) -> Prepared:
    """SELECT_V2: x where cond else y, all three broadcast together."""
    cond, x, y = _select_operands(ctx)
    shape = broadcast_shape(ctx, cond.shape, x.shape, y.shape)
    return ctx.done(_select_run(cond.shape), shape)


# -- WHERE ----------------------------------------------------------------------------------
@register("WHERE", versions=(1, 2), types=WHERE_TYPES)
def prepare_where(ctx: OpContext) -> Prepared:
    """WHERE: coordinates (int64, one row each) of the non-zero elements."""
    ctx.expect_counts(1)
    cond = ctx.input(0)
    if ctx.outputs[0].type_name != "INT64":
        raise ctx.invalid(f"the output must be INT64, got {ctx.outputs[0].type_name}")
    if cond.rank == 0:
        raise ctx.invalid("the condition must have rank > 0")
    if cond.is_constant:
        coords = np.argwhere(cond.data).astype(np.int64)

        def run_constant(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            np.copyto(outs[0], coords)
        return ctx.done(run_constant, coords.shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.argwhere(ins[0]).astype(np.int64, copy=False)]
    return ctx.done(run, None)


# -- TOPK_V2 --------------------------------------------------------------------------------
def _descending_key(x: np.ndarray) -> np.ndarray:
    """A key whose ascending stable sort orders ``x`` descending (NaN last)."""
    if x.dtype.kind == "f":
        return np.negative(x)
    return np.invert(x)  # ~v = -v - 1: order-reversing, no overflow


def _topk_run(k: int) -> RunFn:
    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        order = np.argsort(_descending_key(ins[0]), axis=-1, kind="stable")[..., :k]
        np.copyto(outs[1], order, casting="unsafe")
        np.copyto(outs[0], np.take_along_axis(ins[0], order, axis=-1))
    return run


def _check_k(k: int, last: int, fail: Callable[[str], Exception]) -> int:
    if k < 0 or k > last:
        raise fail(f"k = {k} must lie in [0, {last}] (the size of the last dimension)")
    return k


@register("TOPK_V2", versions=(1, 3), types=TOPK_TYPES)
def prepare_topk(ctx: OpContext) -> Prepared:
    """TOPK_V2: the k largest values along the last axis and their indices."""
    ctx.expect_counts(2, outputs=2)
    x, k_t = ctx.input(0), ctx.input(1)
    if k_t.type_name not in ("INT32", "INT16") or k_t.size != 1:
        raise ctx.invalid(f"k must be one INT32 or INT16 value, got {k_t.type_name} "
                          f"{list(k_t.shape)}")
    values, indices = ctx.outputs
    if values.dtype != x.dtype:
        raise ctx.invalid(f"the values output has type {values.type_name}, the input "
                          f"{x.type_name}")
    if indices.type_name not in ("INT32", "INT16"):
        ctx.fail(f"index output type {indices.type_name} is not supported (INT32, INT16)")
    if x.rank < 1:
        raise ctx.invalid("the input must have rank >= 1")
    last = x.shape[-1]
    if k_t.is_constant:
        k = _check_k(int(k_t.data.reshape(-1)[0]), last, ctx.invalid)
        shape = x.shape[:-1] + (k,)
        return ctx.done(_topk_run(k), shape, shape)
    where = ctx.where()

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> list[np.ndarray]:
        k = _check_k(int(ins[1].reshape(-1)[0]), last,
                     lambda m: InterpreterError(f"{where}: {m}"))
        produced = [np.empty(x.shape[:-1] + (k,), x.dtype),
                    np.empty(x.shape[:-1] + (k,), indices.dtype)]
        _topk_run(k)(ins, produced)
        return produced
    return ctx.done(run, None, None)


# -- ONE_HOT -------------------------------------------------------------------------------
@register("ONE_HOT", versions=(1, 1), types=frozenset({"INT32", "INT64"}))
def prepare_one_hot(ctx: OpContext) -> Prepared:
    """ONE_HOT: a new axis of size depth, on_value at each index, off_value elsewhere."""
    ctx.expect_counts(4)
    indices, depth_t, on, off = (ctx.input(i) for i in range(4))
    out = ctx.outputs[0]
    if not (on.dtype == off.dtype == out.dtype) or out.type_name not in ONE_HOT_TYPES:
        raise ctx.invalid(f"on_value ({on.type_name}), off_value ({off.type_name}) and the "
                          f"output ({out.type_name}) must share one of "
                          f"{', '.join(sorted(ONE_HOT_TYPES))}")
    if depth_t.type_name != "INT32" or depth_t.size != 1 or on.size != 1 or off.size != 1:
        raise ctx.invalid("depth (INT32), on_value and off_value must be scalars")
    axis = int(ctx.options.axis)
    axis = indices.rank if axis == -1 else axis
    if not 0 <= axis <= indices.rank:
        raise ctx.invalid(f"axis {ctx.options.axis} must be -1 or lie in [0, "
                          f"{indices.rank}]")
    if depth_t.is_constant:
        depth = _check_depth(int(depth_t.data.reshape(-1)[0]), ctx.invalid)
        return ctx.done(_one_hot_run(indices.shape, axis, depth),
                        _one_hot_shape(indices.shape, axis, depth))
    where = ctx.where()

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> list[np.ndarray]:
        depth = _check_depth(int(ins[1].reshape(-1)[0]),
                             lambda m: InterpreterError(f"{where}: {m}"))
        result = np.empty(_one_hot_shape(indices.shape, axis, depth), out.dtype)
        _one_hot_run(indices.shape, axis, depth)(ins, [result])
        return [result]
    return ctx.done(run, None)


def _check_depth(depth: int, fail: Callable[[str], Exception]) -> int:
    if depth < 0:
        raise fail(f"depth {depth} must be >= 0")
    return depth


def _one_hot_shape(shape: tuple[int, ...], axis: int, depth: int) -> tuple[int, ...]:
    return shape[:axis] + (depth,) + shape[axis:]


def _one_hot_run(shape: tuple[int, ...], axis: int, depth: int) -> RunFn:
    """run(): off everywhere, on where the index equals the position on ``axis``."""
    positions = np.arange(depth).reshape((depth,) + (1,) * (len(shape) - axis))

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        outs[0].fill(ins[3].reshape(()))
        hot = np.expand_dims(ins[0], axis) == positions
        np.copyto(outs[0], ins[2].reshape(()), where=hot)
    return run
