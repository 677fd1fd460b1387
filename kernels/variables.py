"""Resource variables: VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE.

A VAR_HANDLE op yields an int32 resource id for its (container,
shared_name) pair. As in LiteRT (``var_handle.cc``), ids are numbered in
the order the pairs first appear when the model's subgraphs and their ops
are read in order, so every op naming the same pair - in any subgraph -
gets the same id. Values live in ``ctx.runtime.resources`` (one dict per
interpreter) under ``("variable", id)``; an ASSIGN_VARIABLE creates or
replaces the value, a READ_VARIABLE of a variable never assigned is an
error. Like LiteRT, ``Interpreter.reset_all_variables()`` leaves resource
variables alone (it resets variable *tensors* only).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgeplex.core.errors import InterpreterError
from edgeplex.core.ir import Model
from edgeplex.core.kernel_api import OpContext, Prepared

from .registry import register

#: Handle tensors: the converter writes RESOURCE; LiteRT also accepts INT32.
HANDLE_TYPES = frozenset({"RESOURCE", "INT32"})
#: Value types a variable may hold (any numeric or bool tensor).
VALUE_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "INT8", "UINT8", "INT16", "UINT16",
                         "INT32", "UINT32", "INT64", "UINT64", "BOOL", "COMPLEX64",
                         "COMPLEX128"})


def resource_ids(model: Model) -> dict[tuple[str, str], int]:
    """(container, shared_name) -> resource id, numbered in order of first use."""
    ids: dict[tuple[str, str], int] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.op == "VAR_HANDLE":
                key = (op.options.container or "", op.options.shared_name or "")
                ids.setdefault(key, len(ids))
    return ids


def _handle_type(ctx: OpContext) -> str:
    spec = ctx.optional_input(0)
    return spec.type_name if spec is not None else "RESOURCE"


@register("VAR_HANDLE", versions=(1, 1), types=HANDLE_TYPES)
def prepare_var_handle(ctx: OpContext) -> Prepared:
    """VAR_HANDLE: the resource id of the variable named by the options."""
    ctx.expect_counts(0, 1)
    out = ctx.outputs[0]
    if out.type_name not in HANDLE_TYPES:
        raise ctx.invalid(f"output {out.name!r} is {out.type_name}; a handle is RESOURCE")
    key = (ctx.options.container or "", ctx.options.shared_name or "")
    rid = resource_ids(ctx.model)[key]
    shape = out.tensor.shape if out.tensor.shape in ((), (1,)) else ()

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray]) -> None:
        outs[0][...] = rid
    return ctx.done(run, shape)


@register("READ_VARIABLE", versions=(1, 1), types=HANDLE_TYPES, type_key=_handle_type)
def prepare_read_variable(ctx: OpContext) -> Prepared:
    """READ_VARIABLE: the variable's current value (shape known only at run)."""
    ctx.expect_counts(1, 1)
    resources, where = _resources(ctx), ctx.where()
    dtype = ctx.outputs[0].dtype

    def run(ins: Sequence[np.ndarray], outs: Sequence[Any]) -> list[np.ndarray]:
        rid = _resource_id(ins[0])
        value = resources.get(("variable", rid))
        if value is None:
            raise InterpreterError(f"{where}: resource variable {rid} is read before any "
                                   "ASSIGN_VARIABLE gave it a value")
        if value.dtype != dtype:
            raise InterpreterError(f"{where}: resource variable {rid} holds {value.dtype}, "
                                   f"the output is {np.dtype(dtype)}")
        return [value.copy()]
    return ctx.done(run, None)


@register("ASSIGN_VARIABLE", versions=(1, 1), types=HANDLE_TYPES, type_key=_handle_type)
def prepare_assign_variable(ctx: OpContext) -> Prepared:
    """ASSIGN_VARIABLE: store a copy of input 1 in the variable of handle input 0."""
    ctx.expect_counts(2, 0)
    value = ctx.input(1)
    if value.type_name not in VALUE_TYPES:
        ctx.fail(f"variables of type {value.type_name} are not supported")
    resources = _resources(ctx)

    def run(ins: Sequence[np.ndarray], outs: Sequence[Any]) -> None:
        key = ("variable", _resource_id(ins[0]))
        current = resources.get(key)
        new = ins[1]
        if current is not None and current.shape == new.shape and current.dtype == new.dtype:
            np.copyto(current, new)
        else:
            resources[key] = np.array(new, copy=True)
    return ctx.done(run)


def _resources(ctx: OpContext) -> dict[Any, Any]:
    if ctx.runtime is None:
        ctx.fail("resource variables need an interpreter runtime")
    return ctx.runtime.resources


def _resource_id(handle: np.ndarray) -> int:
    return int(np.asarray(handle).reshape(-1)[0])
