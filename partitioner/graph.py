"""The dataflow graph the partitioner works on.

A :class:`Graph` is the part of a subgraph that placement cares about:
nodes in model (topological) order, the tensors that flow between them
(constants and variable tensors are not edges: constants belong to the
node that reads them, variables live on the host), tensor sizes for the
cost of moving them, and ordering constraints between nodes with side
effects. Tests build graphs directly; :meth:`Graph.from_subgraph` builds
one from the IR.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from edgeplex.core.ir import OMITTED, Subgraph

from .cost import node_flops

#: Ops whose meaning involves other subgraphs or shared state: always on the CPU.
FRAMEWORK_OPS = frozenset({
    "WHILE", "IF", "CALL_ONCE", "CALL", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
    "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE",
})


@dataclass(frozen=True)
class Node:
    """One operator as the partitioner sees it.

    ``inputs`` and ``outputs`` list only tensors that flow between nodes (no
    constants, no variables, no omitted inputs). ``after`` lists nodes that
    must run before this one although no tensor says so (side effects).
    """

    index: int
    op: str
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    flops: float = 0.0
    after: tuple[int, ...] = ()


@dataclass(frozen=True)
class Graph:
    """Nodes in a valid execution order plus what the cost model needs."""

    nodes: tuple[Node, ...]
    tensor_bytes: Mapping[int, int] = field(default_factory=dict)
    tensor_names: Mapping[int, str] = field(default_factory=dict)
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    #: nodes with nothing left to run (folded into constants at prepare time): not placed
    skip: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        for i, node in enumerate(self.nodes):
            if node.index != i:
                raise ValueError(f"graph node {i} has index {node.index}; nodes must be "
                                 "numbered 0..n-1 in order")
            if node.index in self.skip and (node.inputs or node.outputs or node.after):
                raise ValueError(f"skipped node {i} must not touch flowing tensors")

    def placeable(self) -> list[int]:
        """Indices of the nodes to place (all but ``skip``)."""
        return [n.index for n in self.nodes if n.index not in self.skip]

    def producers(self) -> dict[int, int]:
        """tensor -> node that writes it."""
        return {t: n.index for n in self.nodes for t in n.outputs}

    def consumers(self) -> dict[int, list[int]]:
        """tensor -> nodes that read it, in order."""
        users: dict[int, list[int]] = {}
        for n in self.nodes:
            for t in dict.fromkeys(n.inputs):
                users.setdefault(t, []).append(n.index)
        return users

    def predecessors(self) -> list[set[int]]:
        """For every node, the nodes it directly depends on (data and order)."""
        prod = self.producers()
        return [{prod[t] for t in n.inputs if t in prod} | set(n.after) for n in self.nodes]

    def successors(self) -> list[set[int]]:
        """For every node, the nodes that directly depend on it."""
        succ: list[set[int]] = [set() for _ in self.nodes]
        for i, preds in enumerate(self.predecessors()):
            for p in preds:
                succ[p].add(i)
        return succ

    def bytes_of(self, t: int) -> int:
        """Size of tensor ``t`` in bytes (0 when unknown)."""
        return int(self.tensor_bytes.get(t, 0))

    def name_of(self, t: int) -> str:
        """Name of tensor ``t`` (``tensor N`` when unnamed)."""
        return self.tensor_names.get(t) or f"tensor {t}"

    @classmethod
    def from_subgraph(cls, sg: Subgraph, shapes: Sequence[tuple[int, ...] | None],
                      constants: set[int] | frozenset[int] = frozenset(),
                      skip: set[int] | frozenset[int] = frozenset()) -> "Graph":
        """The graph of ``sg`` at the given (current) tensor shapes.

        ``constants`` adds tensors to treat as constants besides those with data
        (values folded at prepare time); ``skip`` names nodes not to place.
        """
        const = {t.index for t in sg.tensors if t.data is not None} | set(constants)
        state = {t.index for t in sg.tensors if t.is_variable}

        def flowing(ts: Sequence[int]) -> tuple[int, ...]:
            return tuple(t for t in ts if t != OMITTED and t not in const and t not in state)

        nodes, last_effect = [], None
        for op in sg.operators:
            effect = op.op in FRAMEWORK_OPS or any(t in state for t in op.inputs + op.outputs)
            after = (last_effect,) if effect and last_effect is not None else ()
            in_shapes = [shapes[t] if t != OMITTED else None for t in op.inputs]
            out_shapes = [shapes[t] for t in op.outputs]
            nodes.append(Node(op.index, op.op, flowing(op.inputs), flowing(op.outputs),
                              node_flops(op.op, in_shapes, out_shapes), after))
            if effect:
                last_effect = op.index
        sizes = {t.index: _nbytes(shapes[t.index], t.dtype.itemsize) for t in sg.tensors}
        return cls(tuple(nodes), sizes, {t.index: t.name for t in sg.tensors},
                   flowing(sg.inputs), flowing(sg.outputs), frozenset(skip))


def _nbytes(shape: tuple[int, ...] | None, itemsize: int) -> int:
    n = itemsize
    for d in shape or ():
        n *= max(int(d), 0)
    return n
