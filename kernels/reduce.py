"""Reductions: MEAN, SUM, REDUCE_PROD/MAX/MIN/ANY/ALL, ARG_MAX, ARG_MIN, CUMSUM.

Semantics follow LiteRT's builtin kernels:

* axes may be negative or repeated; an empty axis list (or a scalar input)
  copies the input; a constant axis tensor gives a static output shape, a
  computed one a data-dependent shape;
* an empty input reduces to the identity (0, 1, lowest, max, false, true)
  and MEAN of nothing is NaN (0 for integers);
* integers wrap on overflow; integer MEAN sums in int64 and truncates;
* float MAX/MIN fold left to right with ``a > b ? a : b``, so a NaN is
  forgotten by the next element (only a trailing NaN survives); ARG_MAX and
  ARG_MIN never pick a NaN after the first element.

Float sums and products are numpy's (pairwise) reductions: LiteRT's order
(row-major, Eigen for a last-axis mean) rounds differently in the last bits.
Quantized MEAN/SUM/PROD (requantizing) live with the integer kernels; here
int8/uint8/int16 take only the exact ops (MAX, MIN, ARG_*, unquantized PROD).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeplex.core.errors import InterpreterError
from edgeplex.core.kernel_api import OpContext, Prepared, RunFn, TensorSpec

from .registry import register

FLOAT_INT = frozenset({"FLOAT32", "INT32", "INT64"})
MINMAX_TYPES = FLOAT_INT | {"INT8", "UINT8", "INT16"}
ARG_TYPES = frozenset({"FLOAT32", "INT8", "UINT8", "INT32", "BOOL"})

#: Reduces x over axes into out (keepdims-shaped view).
Reducer = Callable[[np.ndarray, tuple[int, ...], np.ndarray], None]


# -- axes ----------------------------------------------------------------------------
def resolve_axes(values: np.ndarray, rank: int, fail: Callable[[str], Exception]
                 ) -> tuple[int, ...]:
    """Sorted distinct non-negative axes; negative ones count from the end."""
    axes = set()
    for v in np.asarray(values).reshape(-1).tolist():
        a = v + rank if v < 0 else v
        if not 0 <= a < rank:
            raise fail(f"axis {v} is out of range for an input of rank {rank}")
        axes.add(a)
    return tuple(sorted(axes))


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keep_dims: bool
                  ) -> tuple[int, ...]:
    """The output shape of reducing ``shape`` over ``axes``."""
    if keep_dims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _axis_input(ctx: OpContext, i: int = 1) -> TensorSpec:
    spec = ctx.input(i)
    if spec.type_name != "INT32":
        raise ctx.invalid(f"the axis tensor must be INT32, got {spec.type_name}")
    return spec


# -- reducers --------------------------------------------------------------------------
def _ufunc_reducer(ufunc: np.ufunc) -> Reducer:
    def reduce(x: np.ndarray, axes: tuple[int, ...], out: np.ndarray) -> None:
        ufunc.reduce(x, axis=axes, out=out, keepdims=True)
    return reduce


def _fold_nan(x: np.ndarray, axes: tuple[int, ...], out: np.ndarray, maximum: bool) -> None:
    """LiteRT's left fold ``a > b ? a : b`` over rows holding NaN: the result
    is the max (min) of the elements after the last NaN, NaN if it is last."""
    keep = [i for i in range(x.ndim) if i not in axes]
    rows = np.transpose(x, keep + list(axes)).reshape(out.size, -1)
    nan = np.isnan(rows)
    n = rows.shape[1]
    last_nan = np.where(nan.any(axis=1), n - 1 - np.argmax(nan[:, ::-1], axis=1), -1)
    after = np.arange(n)[None, :] > last_nan[:, None]
    fill = np.float32(-np.inf if maximum else np.inf)
    picked = np.where(after, rows, fill)
    result = picked.max(axis=1) if maximum else picked.min(axis=1)
    out.reshape(-1)[...] = np.where(last_nan == n - 1, np.float32(np.nan), result)


def _minmax_reducer(maximum: bool, dtype: np.dtype) -> Reducer:
    ufunc = np.maximum if maximum else np.minimum
    check_nan = np.dtype(dtype).kind == "f"

    def reduce(x: np.ndarray, axes: tuple[int, ...], out: np.ndarray) -> None:
        ufunc.reduce(x, axis=axes, out=out, keepdims=True)
        if check_nan and np.isnan(out).any():
            _fold_nan(x, axes, out, maximum)
    return reduce


def _mean_reducer(dtype: np.dtype) -> Reducer:
    if np.dtype(dtype).kind == "f":
        def mean(x: np.ndarray, axes: tuple[int, ...], out: np.ndarray) -> None:
            np.add.reduce(x, axis=axes, out=out, keepdims=True)
            np.divide(out, out.dtype.type(x.size // max(out.size, 1)), out=out)
        return mean

    def int_mean(x: np.ndarray, axes: tuple[int, ...], out: np.ndarray) -> None:
        total = np.add.reduce(x, axis=axes, keepdims=True, dtype=np.int64)
        count = x.size // max(out.size, 1)
        quotient = np.abs(total) // count
        np.copyto(out, np.where(total < 0, -quotient, quotient), casting="unsafe")
    return int_mean


def _empty_value(op: str, dtype: np.dtype) -> object:
    """What LiteRT writes when the input holds no element."""
    dtype = np.dtype(dtype)
    if op == "MEAN":
        return np.nan if dtype.kind == "f" else 0
    big = np.finfo(dtype).max if dtype.kind == "f" else (
        np.iinfo(dtype).max if dtype.kind in "iu" else True)
    lowest = -big if dtype.kind == "f" else (np.iinfo(dtype).min if dtype.kind in "iu"
                                             else False)
    return {"SUM": 0, "REDUCE_PROD": 1, "REDUCE_MAX": lowest, "REDUCE_MIN": big,
            "REDUCE_ANY": False, "REDUCE_ALL": True}[op]


def _reducer(op: str, dtype: np.dtype) -> Reducer:
    if op == "MEAN":
        return _mean_reducer(dtype)
    if op in ("REDUCE_MAX", "REDUCE_MIN"):
        return _minmax_reducer(op == "REDUCE_MAX", dtype)
    return _ufunc_reducer({"SUM": np.add, "REDUCE_PROD": np.multiply,
                           "REDUCE_ANY": np.logical_or, "REDUCE_ALL": np.logical_and}[op])


# -- the reduce ops ----------------------------------------------------------------------
def _reduce_run(op: str, in_shape: tuple[int, ...], axes: tuple[int, ...],
                dtype: np.dtype) -> RunFn:
    """run() for a known input shape and axes."""
    keep_shape = reduced_shape(in_shape, axes, True)
    if not axes:
        return lambda ins, outs: np.copyto(outs[0], ins[0].reshape(outs[0].shape))
    if 0 in in_shape:
        value = _empty_value(op, dtype)
        return lambda ins, outs: outs[0].fill(value)
    if op in ("SUM", "MEAN") and np.dtype(dtype) == np.float32:
        fast = _float_sum_run(op, in_shape, axes)
        if fast is not None:
            return fast
    reduce = _reducer(op, dtype)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        reduce(ins[0], axes, outs[0].reshape(keep_shape))
    return run


def _float_sum_run(op: str, in_shape: tuple[int, ...], axes: tuple[int, ...]) -> RunFn | None:
    """Float SUM/MEAN over leading or trailing axes as a matrix-vector product with
    ones (BLAS), or None for other axes. numpy's reduction over short rows costs
    microseconds of overhead; the BLAS sum orders its additions differently in
    the last bits, like numpy's pairwise sum does (see the tests' tolerances)."""
    rank = len(in_shape)
    trailing = axes == tuple(range(rank - len(axes), rank))
    if not trailing and axes != tuple(range(len(axes))):
        return None
    n = int(np.prod([in_shape[a] for a in axes], dtype=np.int64))
    rest = int(np.prod(in_shape, dtype=np.int64)) // n
    ones = np.ones(n, np.float32)
    count = np.array(n, np.float32)
    matrix = (rest, n) if trailing else (n, rest)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        x, out = ins[0].reshape(matrix), outs[0].reshape(rest)
        if trailing:
            np.dot(x, ones, out=out)
        else:
            np.dot(ones, x, out=out)
        if op == "MEAN":
            np.divide(out, count, out=out)
    return run


def _prepare_reduce(ctx: OpContext) -> Prepared:
    ctx.expect_counts(2)
    x, axis = ctx.input(0), _axis_input(ctx)
    if ctx.outputs[0].dtype != x.dtype:
        raise ctx.invalid(f"output type {ctx.outputs[0].type_name} differs from the input's "
                          f"{x.type_name}")
    _check_same_quantization(ctx, x)
    op, keep = ctx.name, bool(ctx.options.keep_dims)
    if x.rank == 0:
        return ctx.done(_reduce_run(op, (), (), x.dtype), ())
    if axis.is_constant:
        axes = resolve_axes(axis.data, x.rank, ctx.invalid)
        return ctx.done(_reduce_run(op, x.shape, axes, x.dtype),
                        reduced_shape(x.shape, axes, keep))
    where = ctx.where()

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> list[np.ndarray]:
        axes = resolve_axes(ins[1], x.rank, lambda m: InterpreterError(f"{where}: {m}"))
        out = np.empty(reduced_shape(x.shape, axes, keep), x.dtype)
        _reduce_run(op, x.shape, axes, x.dtype)(ins, [out])
        return [out]
    return ctx.done(run, None)


def _check_same_quantization(ctx: OpContext, x: TensorSpec) -> None:
    """Integer inputs are reduced raw: in and out must share scale and zero point."""
    if x.type_name not in ("INT8", "UINT8", "INT16"):
        return
    qi, qo = x.quantization, ctx.outputs[0].quantization

    def params(q: object) -> tuple[float, int]:
        return (0.0, 0) if q is None else (float(q.scale[0]), int(q.zero_point[0]))
    if params(qi) != params(qo):
        raise ctx.invalid(f"input and output quantization differ ({params(qi)} vs "
                          f"{params(qo)}); this op works on raw integer values")


def _not_quantized(ctx: OpContext) -> bool:
    spec = ctx.inputs[0] if ctx.inputs else None
    return spec is not None and spec.quantization is None


@register("MEAN", versions=(1, 3), types=FLOAT_INT)
def prepare_mean(ctx: OpContext) -> Prepared:
    """MEAN over the axes of input 1 (float, or int with truncating division)."""
    return _prepare_reduce(ctx)


@register("SUM", versions=(1, 2), types=FLOAT_INT)
def prepare_sum(ctx: OpContext) -> Prepared:
    """SUM over the axes of input 1 (integers wrap)."""
    return _prepare_reduce(ctx)


@register("REDUCE_PROD", versions=(1, 2), types=FLOAT_INT)
def prepare_reduce_prod(ctx: OpContext) -> Prepared:
    """REDUCE_PROD over the axes of input 1 (integers wrap)."""
    return _prepare_reduce(ctx)


@register("REDUCE_PROD", versions=(1, 2), types={"INT8", "UINT8", "INT16"},
          when=_not_quantized)
def prepare_reduce_prod_raw_int(ctx: OpContext) -> Prepared:
    """REDUCE_PROD of unquantized small integers: a plain wrapping product."""
    return _prepare_reduce(ctx)


@register("REDUCE_MAX", versions=(1, 3), types=MINMAX_TYPES)
def prepare_reduce_max(ctx: OpContext) -> Prepared:
    """REDUCE_MAX over the axes of input 1 (raw values for integer types)."""
    return _prepare_reduce(ctx)


@register("REDUCE_MIN", versions=(1, 3), types=MINMAX_TYPES)
def prepare_reduce_min(ctx: OpContext) -> Prepared:
    """REDUCE_MIN over the axes of input 1 (raw values for integer types)."""
    return _prepare_reduce(ctx)


@register(("REDUCE_ANY", "REDUCE_ALL"), versions=(1, 1), types={"BOOL"})
def prepare_reduce_any_all(ctx: OpContext) -> Prepared:
    """REDUCE_ANY / REDUCE_ALL of booleans over the axes of input 1."""
    return _prepare_reduce(ctx)


# -- ARG_MAX / ARG_MIN ---------------------------------------------------------------------
def _single_axis(values: np.ndarray, rank: int, fail: Callable[[str], Exception]) -> int:
    flat = np.asarray(values).reshape(-1)
    if flat.size != 1:
        raise fail(f"the axis tensor must hold one value, got {flat.size}")
    return resolve_axes(flat, rank, fail)[0]


def _argmin_max_nan(x: np.ndarray, axis: int, maximum: bool) -> np.ndarray:
    """LiteRT's scan for rows holding NaN: a NaN wins only as the first
    element; otherwise the first index of the extreme non-NaN value."""
    rows = np.moveaxis(x, axis, -1)
    nan = np.isnan(rows)
    filled = np.where(nan, np.float32(-np.inf if maximum else np.inf), rows)
    best = (filled.max if maximum else filled.min)(axis=-1, keepdims=True)
    first = np.argmax(~nan & (filled == best), axis=-1)
    return np.where(nan[..., 0], 0, first)


def _arg_run(axis: int, maximum: bool, is_float: bool) -> RunFn:
    pick = np.argmax if maximum else np.argmin

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        idx = pick(ins[0], axis=axis)
        if is_float and np.isnan(np.take_along_axis(
                ins[0], np.expand_dims(idx, axis), axis)).any():
            idx = _argmin_max_nan(ins[0], axis, maximum)
        np.copyto(outs[0], idx, casting="unsafe")
    return run


@register(("ARG_MAX", "ARG_MIN"), versions=(1, 3), types=ARG_TYPES)
def prepare_arg_min_max(ctx: OpContext) -> Prepared:
    """ARG_MAX / ARG_MIN along one axis; ties go to the first index."""
    ctx.expect_counts(2)
    x, axis_t = ctx.input(0), ctx.input(1)
    if axis_t.type_name not in ("INT32", "INT64"):
        raise ctx.invalid(f"the axis tensor must be INT32 or INT64, got {axis_t.type_name}")
    out_type = ctx.options.output_type
    if out_type not in ("INT32", "INT64"):
        ctx.fail(f"output_type {out_type} is not supported (INT32 or INT64)")
    if ctx.outputs[0].type_name != out_type:
        raise ctx.invalid(f"output tensor type {ctx.outputs[0].type_name} differs from "
                          f"output_type {out_type}")
    if x.rank == 0:
        raise ctx.invalid("the input must have rank >= 1")
    maximum, is_float = ctx.name == "ARG_MAX", x.type_name == "FLOAT32"
    if axis_t.is_constant:
        axis = _single_axis(axis_t.data, x.rank, ctx.invalid)
        shape = x.shape[:axis] + x.shape[axis + 1:]
        if x.shape[axis] == 0:
            raise ctx.invalid(f"cannot take {ctx.name} along axis {axis} of size 0")
        return ctx.done(_arg_run(axis, maximum, is_float), shape)
    return ctx.done(_dynamic_arg(ctx, x, maximum, is_float), None)


def _dynamic_arg(ctx: OpContext, x: TensorSpec, maximum: bool, is_float: bool) -> RunFn:
    where, dtype = ctx.where(), ctx.outputs[0].dtype

    def fail(msg: str) -> Exception:
        return InterpreterError(f"{where}: {msg}")

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> list[np.ndarray]:
        axis = _single_axis(ins[1], x.rank, fail)
        if x.shape[axis] == 0:
            raise fail(f"cannot reduce along axis {axis} of size 0")
        out = np.empty(x.shape[:axis] + x.shape[axis + 1:], dtype)
        _arg_run(axis, maximum, is_float)(ins, [out])
        return [out]
    return run


# -- CUMSUM ------------------------------------------------------------------------------
def _cumsum(x: np.ndarray, axis: int, out: np.ndarray, exclusive: bool, reverse: bool) -> None:
    if reverse:
        x, out = np.flip(x, axis), np.flip(out, axis)
    if not exclusive:
        np.add.accumulate(x, axis=axis, dtype=x.dtype, out=out)
        return
    n = x.shape[axis]
    head = [slice(None)] * x.ndim
    head[axis] = slice(0, 1)
    out[tuple(head)] = 0
    if n > 1:
        src, dst = list(head), list(head)
        src[axis], dst[axis] = slice(0, n - 1), slice(1, n)
        np.add.accumulate(x[tuple(src)], axis=axis, dtype=x.dtype, out=out[tuple(dst)])


@register("CUMSUM", versions=(1, 1), types=FLOAT_INT)
def prepare_cumsum(ctx: OpContext) -> Prepared:
    """CUMSUM along one axis, optionally exclusive and/or reversed."""
    ctx.expect_counts(2)
    x, axis_t = ctx.input(0), _axis_input(ctx)
    if ctx.outputs[0].dtype != x.dtype:
        raise ctx.invalid(f"output type {ctx.outputs[0].type_name} differs from the input's "
                          f"{x.type_name}")
    if x.rank == 0:
        raise ctx.invalid("the input must have rank >= 1")
    exclusive, reverse = bool(ctx.options.exclusive), bool(ctx.options.reverse)
    if axis_t.is_constant:
        axis = _single_axis(axis_t.data, x.rank, ctx.invalid)

        def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
            _cumsum(ins[0], axis, outs[0], exclusive, reverse)
        return ctx.done(run, x.shape)
    where = ctx.where()

    def run_dynamic_axis(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        axis = _single_axis(ins[1], x.rank, lambda m: InterpreterError(f"{where}: {m}"))
        _cumsum(ins[0], axis, outs[0], exclusive, reverse)
    return ctx.done(run_dynamic_axis, x.shape)
