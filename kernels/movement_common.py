"""Helpers shared by the shape and data-movement kernels.

These ops do no arithmetic: prepare resolves every index (axes, slices,
permutations, output shapes) from the op's options and constant inputs, and
run is one numpy copy into the preallocated output. Where a shape-giving
input is not constant the output shape is data dependent: prepare declares
it ``None`` and run computes the indices and returns fresh arrays.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

#: Types of 1, 2, 4 or 8 bytes: what TFLite's element-size-generic kernels
#: (SLICE, TILE, FILL, ...) accept whatever the values mean.
SIZED_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "INT8", "UINT8", "INT16",
                         "UINT16", "INT32", "UINT32", "INT64", "UINT64", "BOOL", "COMPLEX64"})
#: What plain memcpy kernels (RESHAPE, SQUEEZE, EXPAND_DIMS) accept.
MEMCPY_TYPES = SIZED_TYPES | {"COMPLEX128"}
#: Integer types TFLite treats as quantized where it checks parameters.
QUANTIZED_TYPES = frozenset({"INT8", "UINT8", "INT16"})
#: Types of index inputs (shapes, axes, begin/end, paddings).
INDEX_TYPES = ("INT32", "INT64")

Arrays = Sequence[Any]
#: Writes an op's outputs from its inputs: ``write(inputs, outputs)``.
Writer = Callable[[Arrays, Arrays], None]


class Plan(NamedTuple):
    """What an op's plan returns: output shapes, the writer, and the bytes of
    any scratch buffer the writer holds."""

    shapes: list[tuple[int, ...]]
    write: Writer
    scratch_bytes: int = 0


def legacy_params(spec: TensorSpec) -> tuple[float, int]:
    """(scale, zero point) as TFLite kernels read them (``tensor->params``).

    TFLite fills these only for per-tensor quantization; unquantized and
    per-channel tensors read as (0.0, 0).
    """
    q = spec.quantization
    if q is None or q.scale.size != 1 or q.zero_point.size != 1:
        return 0.0, 0
    return float(np.float32(q.scale[0])), int(q.zero_point[0])


def expect_same_params(ctx: OpContext, a: TensorSpec, b: TensorSpec,
                       types: frozenset[str] | None = None) -> None:
    """``a`` and ``b`` must have equal (scale, zero point) as TFLite compares
    them (only for ``types`` when given): these ops copy quantized values
    unchanged, so differing parameters would silently change their meaning."""
    if types is not None and a.type_name not in types:
        return
    if legacy_params(a) != legacy_params(b):
        raise ctx.invalid(f"{a.name!r} is quantized {legacy_params(a)} but {b.name!r} "
                          f"{legacy_params(b)}; this op does not rescale")


def expect_int16_symmetric(ctx: OpContext, spec: TensorSpec) -> None:
    """TFLite's int16 kernels of these ops require zero point 0."""
    if spec.type_name == "INT16" and legacy_params(spec)[1] != 0:
        raise ctx.invalid(f"INT16 tensor {spec.name!r} has zero point "
                          f"{legacy_params(spec)[1]}; it must be 0")


def expect_output_type(ctx: OpContext, want: str, i: int = 0) -> None:
    """Output ``i`` must be declared with type ``want`` (ModelError otherwise)."""
    got = ctx.outputs[i].type_name
    if got != want:
        raise ctx.invalid(f"output {i} is {got} but this op produces {want}")


def expect_same_types(ctx: OpContext, first: int = 0) -> TensorSpec:
    """Input ``first`` and every output share one type; returns that input."""
    x = ctx.input(first)
    for i in range(len(ctx.outputs)):
        expect_output_type(ctx, x.type_name, i)
    return x


def index_values(ctx: OpContext, spec: TensorSpec, what: str,
                 types: Sequence[str] = INDEX_TYPES, rank: int | None = 1
                 ) -> np.ndarray | None:
    """The values of an integer index input as int64, None if not constant.

    The type (and rank, unless ``rank`` is None) is checked even when the
    values are only known at run time.
    """
    if spec.type_name not in types:
        raise ctx.invalid(f"{what} must be {' or '.join(types)}, not {spec.type_name}")
    if rank is not None and spec.rank != rank:
        raise ctx.invalid(f"{what} must have rank {rank}, got shape {list(spec.shape)}")
    if not spec.is_constant:
        return None
    return np.asarray(spec.data, dtype=np.int64).reshape(spec.shape)


def normalize_axis(ctx: OpContext, axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` in [-rank, rank) made non-negative, else a ModelError."""
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ctx.invalid(f"{what} {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def product(values: Sequence[int]) -> int:
    """Product of Python ints (1 for an empty sequence)."""
    n = 1
    for v in values:
        n *= int(v)
    return n


def copy_view(view: Callable[[np.ndarray], Any]) -> Writer:
    """A writer copying ``view(input 0)`` into output 0 (one numpy copy)."""
    def write(ins: Arrays, outs: Arrays) -> None:
        np.copyto(outs[0], view(ins[0]))
    return write


def prepare_planned(ctx: OpContext, plan: Callable[..., Plan],
                    values: Sequence[np.ndarray | None], positions: Sequence[int]) -> Prepared:
    """Prepare an op from ``plan(*values) -> (output shapes, writer)``.

    ``values`` are the (already validated) contents of the value-giving
    inputs at ``positions``, None where not constant. With every value known
    the plan is made once here and run is the writer; otherwise every output
    shape is None and run plans on the actual values and returns new arrays.
    """
    if all(v is not None for v in values):
        made = plan(*values)
        return ctx.done(made.write, *made.shapes, scratch_bytes=made.scratch_bytes)
    dtypes = [out.dtype for out in ctx.outputs]

    def run(ins: Arrays, outs: Arrays) -> list:
        now = [v if v is not None else np.asarray(ins[p], dtype=np.int64)
               for v, p in zip(values, positions)]
        made = plan(*now)
        fresh = [np.empty(s, dt) for s, dt in zip(made.shapes, dtypes)]
        made.write(ins, fresh)
        return fresh
    return ctx.done(run, *([None] * len(ctx.outputs)))
