"""What a delegate sees: node, tensor and partition infos.

These are read-only views of the model at the shapes of the current
allocation. ``supports(node)`` gets a :class:`NodeInfo`; ``prepare`` gets a
:class:`PartitionInfo`, whose ``to_tflite()`` is a standalone model of just
that partition (for delegates that hand a model to a vendor compiler).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from edgeplex.core.ir import OMITTED, Model, Operator, Quantization, Subgraph, Tensor
from edgeplex.core.kernel_api import OpContext, TensorSpec

#: Ops that name other subgraphs: a partition holding one keeps the model's other subgraphs.
_SUBGRAPH_OPS = frozenset({"WHILE", "IF", "CALL_ONCE", "CALL"})


@dataclass(frozen=True, eq=False)
class TensorInfo:
    """One tensor at its current shape.

    ``.data`` is the read-only value of a constant, else None;
    ``.quantization`` is None or has ``.scale``, ``.zero_point`` (numpy
    arrays) and ``.axis``.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    quantization: Quantization | None
    data: np.ndarray | None
    type_name: str
    _tensor: Tensor = field(repr=False)

    @property
    def is_constant(self) -> bool:
        """True when the value is known before invoke."""
        return self.data is not None

    @property
    def is_variable(self) -> bool:
        """True for variable (stateful) tensors."""
        return self._tensor.is_variable

    @property
    def nbytes(self) -> int:
        """Size of the value in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @classmethod
    def of(cls, tensor: Tensor, shape: Sequence[int] | None = None,
           data: np.ndarray | None = None) -> "TensorInfo":
        """Info for ``tensor`` (at ``shape`` when given)."""
        value = tensor.data if data is None else data
        return cls(tensor.index, tensor.name, tuple(tensor.shape if shape is None else shape),
                   tensor.dtype, tensor.quantization, value, tensor.type_name, tensor)


@dataclass(frozen=True, eq=False)
class NodeInfo:
    """One operator, as ``Delegate.supports`` sees it.

    ``.op`` is the builtin name (``"CONV_2D"``) or the custom code;
    ``.options`` has snake_case fields with enums as names
    (``node.options.padding == "SAME"``); ``.inputs`` has None for an
    omitted optional input.
    """

    index: int
    op: str
    version: int
    options: Any
    inputs: tuple[TensorInfo | None, ...]
    outputs: tuple[TensorInfo, ...]
    custom_options: bytes | None = None
    is_custom: bool = False
    _operator: Operator | None = field(default=None, repr=False)
    _subgraph: Subgraph | None = field(default=None, repr=False)
    _model: Model | None = field(default=None, repr=False)

    def describe(self) -> str:
        """``op 3 (CONV_2D v1)`` for messages."""
        return f"op {self.index} ({self.op} v{self.version})"

    def op_context(self) -> OpContext:
        """The kernel-side view of this node (what CPU kernels' prepare takes)."""
        if self._operator is None or self._subgraph is None or self._model is None:
            raise ValueError(f"{self.describe()} was built without its model")
        ins = [None if t is None else TensorSpec(t._tensor, t.shape, t.data) for t in self.inputs]
        outs = [TensorSpec(t._tensor, t.shape, t.data) for t in self.outputs]
        return OpContext(self._operator, self._subgraph, self._model, ins, outs)

    @classmethod
    def of(cls, model: Model, sg: Subgraph, op: Operator,
           tensors: Sequence[TensorInfo]) -> "NodeInfo":
        """Info for ``op`` given the infos of every tensor of ``sg``."""
        return cls(op.index, op.op, op.version, op.options,
                   tuple(None if t == OMITTED else tensors[t] for t in op.inputs),
                   tuple(tensors[t] for t in op.outputs), op.custom_options, op.is_custom,
                   op, sg, model)


@dataclass(frozen=True, eq=False)
class PartitionInfo:
    """Nodes a delegate runs as one unit, as ``Delegate.prepare`` sees them.

    ``.nodes`` are in a valid execution order; ``.inputs`` and ``.outputs``
    are the tensors crossing the partition's edge (constants are not
    inputs: read them from the nodes' inputs).
    """

    id: int
    delegate: str
    nodes: tuple[NodeInfo, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    _model: Model = field(repr=False)
    _subgraph: Subgraph = field(repr=False)

    def to_model(self) -> Model:
        """The partition as a standalone model IR (what ``to_tflite`` writes)."""
        return partition_model(self._model, self._subgraph, self.nodes, self.inputs,
                               self.outputs)

    def to_tflite(self) -> bytes:
        """A standalone valid ``.tflite`` model of just this partition."""
        from edgeplex.core.writer import write_model
        return write_model(self.to_model())

    def describe(self) -> str:
        """``partition 2 (nodes 3-7: ADD, MUL)`` for messages."""
        from edgeplex.partitioner.report import node_ranges
        ops = ", ".join(dict.fromkeys(n.op for n in self.nodes))
        return f"partition {self.id} (nodes {node_ranges([n.index for n in self.nodes])}: {ops})"


def partition_model(model: Model, sg: Subgraph, nodes: Sequence[NodeInfo],
                    inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> Model:
    """A model whose main subgraph is ``nodes`` with the given boundary tensors."""
    infos: dict[int, TensorInfo] = {t.index: t for t in inputs}
    for n in nodes:
        for t in list(n.inputs) + list(n.outputs):
            if t is not None:
                infos.setdefault(t.index, t)
        for t in (n._operator.intermediates if n._operator is not None else ()):
            infos.setdefault(t, TensorInfo.of(sg.tensors[t]))
    remap = {old: new for new, old in enumerate(infos)}
    tensors = tuple(_retensor(info, remap[old]) for old, info in infos.items())

    def mapped(ts: Sequence[int]) -> tuple[int, ...]:
        return tuple(OMITTED if t == OMITTED else remap[t] for t in ts)

    ops = tuple(replace(n._operator, index=i, inputs=mapped(n._operator.inputs),
                        outputs=mapped(n._operator.outputs),
                        intermediates=mapped(n._operator.intermediates))
                for i, n in enumerate(nodes) if n._operator is not None)
    main = Subgraph(0, f"{sg.name or 'main'}_partition", tensors, ops,
                    tuple(remap[t.index] for t in inputs), tuple(remap[t.index] for t in outputs))
    keep_rest = any(n.op in _SUBGRAPH_OPS for n in nodes)
    return Model(subgraphs=(main,) + (model.subgraphs[1:] if keep_rest else ()),
                 version=model.version, description=f"edgeplex partition of {model.description}")


def _retensor(info: TensorInfo, index: int) -> Tensor:
    t = info._tensor
    signature = t.shape_signature if tuple(t.shape) == info.shape else None
    return replace(t, index=index, shape=info.shape, shape_signature=signature,
                   data=info.data if info.data is not None else t.data)
