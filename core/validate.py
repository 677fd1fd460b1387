"""Structural checks on a subgraph: indices in range, one writer per
tensor, and operators in an order where every input exists before it is read.
"""
from __future__ import annotations

from .errors import ModelError
from .ir import Operator, Subgraph


def validate_subgraph(sg: Subgraph) -> None:
    """Raise :class:`ModelError` naming the first structural fault found."""
    n = len(sg.tensors)
    where = f"subgraph {sg.index}"
    for role, indices in (("input", sg.inputs), ("output", sg.outputs)):
        for t in indices:
            if not 0 <= t < n:
                raise ModelError(f"{where}: {role} tensor index {t} is out of range "
                                 f"({n} tensors)")
    for op in sg.operators:
        _check_indices(op, n, where)
    _check_dataflow(sg)


def _check_indices(op: Operator, n: int, where: str) -> None:
    for role, indices in (("input", op.inputs), ("output", op.outputs),
                          ("intermediate", op.intermediates)):
        for pos, t in enumerate(indices):
            if t < -1 or t >= n or (t == -1 and role == "output"):
                raise ModelError(f"{where} {op.describe()}: {role} {pos} refers to tensor "
                                 f"{t}, which is out of range ({n} tensors)")


def _check_dataflow(sg: Subgraph) -> None:
    writer: dict[int, int] = {}
    for op in sg.operators:
        for t in op.outputs:
            if t in writer:
                raise ModelError(f"subgraph {sg.index}: tensor {t} {sg.tensors[t].name!r} is "
                                 f"written by both op {writer[t]} and {op.describe()}")
            writer[t] = op.index
    available = set(sg.inputs) | {t.index for t in sg.tensors
                                  if t.is_constant or t.is_variable}
    for op in sg.operators:
        for t in op.inputs:
            if t >= 0 and t not in available:
                raise ModelError(_unavailable_message(sg, op, t, writer))
        available.update(op.outputs)
    for t in sg.outputs:
        if t not in available:
            raise ModelError(f"subgraph {sg.index}: output {sg.tensors[t].describe()} is "
                             "never written by any operator and is not an input")


def _unavailable_message(sg: Subgraph, op: Operator, t: int, writer: dict[int, int]) -> str:
    name = sg.tensors[t].describe()
    w = writer.get(t)
    if w is None:
        return (f"subgraph {sg.index} {op.describe()} reads {name}, which no operator "
                "writes and which is neither an input, a constant nor a variable")
    cycle = _cycle_through(sg, op.index)
    if cycle:
        path = " -> ".join(sg.operators[i].describe() for i in cycle + [cycle[0]])
        return f"subgraph {sg.index}: operator cycle {path}"
    return (f"subgraph {sg.index} {op.describe()} reads {name} before "
            f"{sg.operators[w].describe()} writes it (operators are out of order)")


def _cycle_through(sg: Subgraph, start: int) -> list[int]:
    """Operator indices of a dataflow cycle containing ``start``, or []."""
    writer = sg.producers()
    preds = {op.index: [writer[t] for t in op.inputs if t in writer] for op in sg.operators}
    stack, seen = [(start, [start])], {start}
    while stack:
        node, path = stack.pop()
        for p in preds[node]:
            if p == start:  # path runs against the dataflow; report it forwards
                return [start] + list(reversed(path[1:]))
            if p not in seen:
                seen.add(p)
                stack.append((p, path + [p]))
    return []
