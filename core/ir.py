"""The immutable in-memory form of a TFLite model.

:func:`edgeplex.core.reader.read_model` builds it from ``.tflite`` bytes,
:func:`edgeplex.core.writer.write_model` turns it back into bytes, and
:class:`edgeplex.core.builder.ModelBuilder` authors it. Constant tensor data
are read-only numpy views into the model file's own buffer.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import numpy as np

from .schema import Options

#: Marks an omitted optional operator input.
OMITTED = -1


@dataclass(frozen=True, eq=False)
class Quantization:
    """Affine quantization parameters: ``real = scale * (q - zero_point)``.

    ``scale`` and ``zero_point`` have one entry per tensor or one per slice
    along ``axis`` (per-channel quantization).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0
    min: np.ndarray | None = None
    max: np.ndarray | None = None

    @property
    def per_channel(self) -> bool:
        """True when there is more than one scale."""
        return self.scale.size > 1

    @classmethod
    def of(cls, scale: Any, zero_point: Any = 0, axis: int = 0) -> "Quantization":
        """Build from scalars or sequences (zero points default to 0)."""
        s = np.atleast_1d(np.asarray(scale, dtype=np.float32))
        z = np.atleast_1d(np.asarray(zero_point, dtype=np.int64))
        if z.size == 1 and s.size > 1:
            z = np.repeat(z, s.size)
        return cls(s, z, axis)


@dataclass(frozen=True)
class DimensionMetadata:
    """One dimension of a sparse tensor's traversal (TACO format)."""

    format: str                       # "DENSE" or "SPARSE_CSR"
    dense_size: int = 0
    array_segments: np.ndarray | None = None
    array_indices: np.ndarray | None = None


@dataclass(frozen=True)
class Sparsity:
    """Sparsity parameters of a compressed constant tensor."""

    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dim_metadata: tuple[DimensionMetadata, ...]


@dataclass(frozen=True, eq=False)
class Tensor:
    """One tensor of a subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str                          # TFLite type name, e.g. "FLOAT32"
    dtype: np.dtype
    shape_signature: tuple[int, ...] | None = None
    buffer: int = 0
    data: np.ndarray | None = None          # read-only, constants only
    quantization: Quantization | None = None
    is_variable: bool = False
    sparsity: Sparsity | None = None
    has_rank: bool = False

    @property
    def is_constant(self) -> bool:
        """True for tensors whose value is stored in the model."""
        return self.data is not None

    @property
    def signature(self) -> tuple[int, ...]:
        """``shape_signature`` if the model gives one, else ``shape``."""
        return self.shape if self.shape_signature is None else self.shape_signature

    def describe(self) -> str:
        """``'name' (tensor 7)`` for error messages."""
        return f"tensor {self.index} {self.name!r}"


@dataclass(frozen=True, eq=False)
class Operator:
    """One operator: a builtin op by name, or a custom op by its code."""

    index: int
    op: str                                 # "CONV_2D", or the custom code
    version: int
    inputs: tuple[int, ...]                 # OMITTED (-1) for absent optional inputs
    outputs: tuple[int, ...]
    options: Options = field(default_factory=lambda: Options(None))
    custom_options: bytes | None = None
    intermediates: tuple[int, ...] = ()
    is_custom: bool = False

    def describe(self) -> str:
        """``op 3 (CONV_2D v1)`` for error messages."""
        return f"op {self.index} ({self.op} v{self.version})"


@dataclass(frozen=True, eq=False)
class Subgraph:
    """A list of tensors and the operators that run over them, in order."""

    index: int
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def producers(self) -> dict[int, int]:
        """tensor index -> index of the operator that writes it."""
        return {t: op.index for op in self.operators for t in op.outputs if t >= 0}

    def consumers(self) -> dict[int, list[int]]:
        """tensor index -> indices of the operators that read it, in order."""
        users: dict[int, list[int]] = {}
        for op in self.operators:
            for t in op.inputs:
                if t >= 0:
                    users.setdefault(t, []).append(op.index)
        return users

    def tensor_by_name(self, name: str) -> Tensor | None:
        """The first tensor called ``name``, or None."""
        return next((t for t in self.tensors if t.name == name), None)


@dataclass(frozen=True)
class SignatureDef:
    """A named entry point: input and output names mapped to tensor indices."""

    key: str
    subgraph_index: int
    inputs: Mapping[str, int]
    outputs: Mapping[str, int]


@dataclass(frozen=True, eq=False)
class Model:
    """A whole model: subgraphs (the first is the main one) and metadata."""

    subgraphs: tuple[Subgraph, ...]
    version: int = 3
    description: str = ""
    signatures: tuple[SignatureDef, ...] = ()
    metadata: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def main(self) -> Subgraph:
        """The subgraph that ``invoke`` runs."""
        return self.subgraphs[0]

    def op_histogram(self) -> dict[tuple[str, int], int]:
        """(op name, version) -> how many operators use it, across subgraphs."""
        counts: dict[tuple[str, int], int] = {}
        for sg in self.subgraphs:
            for op in sg.operators:
                key = (op.op, op.version)
                counts[key] = counts.get(key, 0) + 1
        return counts


def with_tensors(subgraph: Subgraph, tensors: Iterable[Tensor]) -> Subgraph:
    """A copy of ``subgraph`` with its tensor list replaced."""
    return replace(subgraph, tensors=tuple(tensors))
