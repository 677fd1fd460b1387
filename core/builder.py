"""A small API to author TFLite models in Python.

    from edgeplex import ModelBuilder
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 8, 8, 3), np.float32)
    w = g.constant("w", np.ones((4, 3, 3, 3), np.float32))
    y = g.op("CONV_2D", [x, w, None], {"padding": "SAME", "stride_w": 1, "stride_h": 1})
    g.output(y)
    model_bytes = mb.build()

Output shapes may be left out: ``build()`` infers them with edgeplex's own
kernels. Every tensor and op is checked when it is added.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ModelError
from .ir import OMITTED, Model, Operator, Quantization, SignatureDef, Sparsity, Subgraph, Tensor
from .schema import BUILTIN_OP_CODES, Options, numpy_dtype, options_for, tensor_type_name

Shape = Sequence[int]


@dataclass(frozen=True)
class TensorRef:
    """A handle to a tensor being built: pass it as an op input or output."""

    graph: "SubgraphBuilder"
    index: int

    @property
    def name(self) -> str:
        """The tensor's name."""
        return self.graph._tensors[self.index]["name"]

    @property
    def dtype(self) -> np.dtype:
        """The tensor's numpy dtype."""
        return self.graph._tensors[self.index]["dtype"]


#: Ops whose output type is fixed, or named by an option, or that of another input.
_BOOL_OUTPUT = {"EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL",
                "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT"}
_TYPE_OPTION = {"ARG_MAX": "output_type", "ARG_MIN": "output_type", "SHAPE": "out_type",
                "CAST": "out_data_type"}
_DTYPE_FROM_INPUT = {"TRANSPOSE_CONV": 2, "SPLIT": 1, "FILL": 1, "EMBEDDING_LOOKUP": 1,
                     "SELECT": 1, "SELECT_V2": 1, "ONE_HOT": 2}


def default_output_dtype(op: str, inputs: Sequence[TensorRef | None], options: Options) -> Any:
    """The dtype an op's output has when the caller does not say: bool for
    comparisons, the type an option names, float32 for DEQUANTIZE, else the
    type of the input that carries the data (usually the first)."""
    if op in _BOOL_OUTPUT:
        return np.bool_
    if op in _TYPE_OPTION:
        return numpy_dtype(getattr(options, _TYPE_OPTION[op]))
    if op == "DEQUANTIZE":
        return np.float32
    if op == "WHERE":
        return np.int64
    k = _DTYPE_FROM_INPUT.get(op, 0)
    ref = inputs[k] if k < len(inputs) and inputs[k] is not None else next(
        (r for r in inputs if r is not None), None)
    return ref.dtype if ref is not None else np.float32


class SubgraphBuilder:
    """Builds one subgraph; get one from :meth:`ModelBuilder.subgraph`."""

    def __init__(self, model: "ModelBuilder", index: int, name: str) -> None:
        self.model, self.index, self.name = model, index, name
        self._tensors: list[dict[str, Any]] = []
        self._ops: list[dict[str, Any]] = []
        self._inputs: list[int] = []
        self._outputs: list[int] = []

    # -- tensors -------------------------------------------------------------
    def tensor(self, name: str, shape: Shape | None = None, dtype: Any = np.float32, *,
               quantization: Quantization | None = None, shape_signature: Shape | None = None,
               is_variable: bool = False) -> TensorRef:
        """Declare a tensor; ``shape=None`` lets ``build()`` infer it."""
        if shape is not None and any(int(d) < 0 for d in shape):
            raise ModelError(f"tensor {name!r}: shape {list(shape)} has a negative dimension")
        self._tensors.append(dict(
            name=name, shape=None if shape is None else tuple(int(d) for d in shape),
            dtype=np.dtype(dtype), type_name=tensor_type_name(dtype), data=None,
            quantization=quantization, is_variable=is_variable, sparsity=None,
            shape_signature=None if shape_signature is None else tuple(shape_signature)))
        return TensorRef(self, len(self._tensors) - 1)

    def input(self, name: str, shape: Shape, dtype: Any = np.float32, **kw: Any) -> TensorRef:
        """Declare a subgraph input."""
        ref = self.tensor(name, shape, dtype, **kw)
        self._inputs.append(ref.index)
        return ref

    def constant(self, name: str, value: Any, dtype: Any = None, *,
                 quantization: Quantization | None = None, type_name: str | None = None,
                 sparsity: Sparsity | None = None, shape: Shape | None = None) -> TensorRef:
        """Declare a constant tensor holding ``value``."""
        array = np.array(value, dtype=dtype, copy=True)
        array.flags.writeable = False
        ref = self.tensor(name, array.shape if shape is None else shape, array.dtype,
                          quantization=quantization)
        entry = self._tensors[ref.index]
        entry.update(data=array, sparsity=sparsity, buffer=self.model._new_buffer())
        if type_name is not None:
            entry["type_name"] = type_name
        return ref

    def variable(self, name: str, shape: Shape, dtype: Any = np.float32, **kw: Any) -> TensorRef:
        """Declare a variable (stateful) tensor, zero at start and after reset."""
        return self.tensor(name, shape, dtype, is_variable=True, **kw)

    def output(self, *refs: TensorRef) -> None:
        """Mark tensors as subgraph outputs, in order."""
        for ref in refs:
            self._outputs.append(self._own(ref, "output").index)

    # -- ops -----------------------------------------------------------------
    def op(self, op: str, inputs: Sequence[TensorRef | None],
           options: Mapping[str, Any] | Options | None = None, *,
           outputs: int | Sequence[TensorRef] = 1, dtype: Any = None,
           quantization: Quantization | None = None, version: int = 1,
           custom_options: bytes | None = None, intermediates: Sequence[TensorRef] = ()
           ) -> Any:
        """Append an operator; returns its output (or a tuple of them).

        ``outputs`` is a count (new tensors named after the op, with
        ``dtype`` defaulting to the first input's and shapes inferred) or a
        list of tensors declared with :meth:`tensor`.
        """
        is_custom = op not in BUILTIN_OP_CODES
        if is_custom and custom_options is None and options:
            raise ModelError(f"{op!r} is not a builtin op; custom ops take custom_options")
        opts = options if isinstance(options, Options) else (
            Options(None) if is_custom else options_for(op, dict(options or {})))
        ins = [OMITTED if r is None else self._own(r, f"{op} input").index for r in inputs]
        outs = self._outputs_for(op, outputs, inputs, dtype, quantization, opts)
        self._ops.append(dict(op=op, version=version, inputs=tuple(ins),
                              outputs=tuple(r.index for r in outs), options=opts,
                              custom_options=custom_options, is_custom=is_custom,
                              intermediates=tuple(self._own(r, "intermediate").index
                                                  for r in intermediates)))
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _outputs_for(self, op: str, outputs: int | Sequence[TensorRef],
                     inputs: Sequence[TensorRef | None], dtype: Any,
                     quantization: Quantization | None, options: Options) -> list[TensorRef]:
        if not isinstance(outputs, int):
            return [self._own(r, f"{op} output") for r in outputs]
        dt = dtype if dtype is not None else default_output_dtype(op, inputs, options)
        n = len(self._ops)
        return [self.tensor(f"{op.lower()}_{n}" + (f"_{i}" if outputs > 1 else ""), None, dt,
                            quantization=quantization) for i in range(outputs)]

    def _own(self, ref: TensorRef, role: str) -> TensorRef:
        if not isinstance(ref, TensorRef) or ref.graph is not self:
            raise ModelError(f"{role}: {ref!r} is not a tensor of subgraph {self.name!r}")
        return ref

    # -- to IR ---------------------------------------------------------------
    def _build(self) -> Subgraph:
        tensors = tuple(
            Tensor(index=i, name=t["name"], shape=t["shape"] if t["shape"] is not None else (),
                   type_name=t["type_name"], dtype=t["dtype"],
                   shape_signature=t["shape_signature"], buffer=t.get("buffer", 0),
                   data=t["data"], quantization=t["quantization"],
                   is_variable=t["is_variable"], sparsity=t["sparsity"])
            for i, t in enumerate(self._tensors))
        ops = tuple(Operator(index=i, **o) for i, o in enumerate(self._ops))
        return Subgraph(self.index, self.name, tensors, ops, tuple(self._inputs),
                        tuple(self._outputs))

    def _needs_inference(self) -> bool:
        return any(t["shape"] is None for t in self._tensors)


class ModelBuilder:
    """Builds a whole model: subgraphs, signatures, metadata."""

    def __init__(self, description: str = "edgeplex builder") -> None:
        self.description = description
        self._subgraphs: list[SubgraphBuilder] = []
        self._signatures: list[SignatureDef] = []
        self._metadata: dict[str, bytes] = {}
        self._buffers = 0
        self.subgraph("main")

    @property
    def main(self) -> SubgraphBuilder:
        """The first subgraph, which ``invoke`` runs."""
        return self._subgraphs[0]

    def subgraph(self, name: str) -> SubgraphBuilder:
        """Add a subgraph (for WHILE/IF/CALL_ONCE bodies); its index is ``.index``."""
        g = SubgraphBuilder(self, len(self._subgraphs), name)
        self._subgraphs.append(g)
        return g

    def signature(self, key: str, inputs: Mapping[str, TensorRef],
                  outputs: Mapping[str, TensorRef], subgraph: SubgraphBuilder | None = None
                  ) -> None:
        """Add a signature def mapping names to tensors of one subgraph."""
        g = subgraph or self.main
        self._signatures.append(SignatureDef(
            key, g.index, {k: g._own(v, "signature").index for k, v in inputs.items()},
            {k: g._own(v, "signature").index for k, v in outputs.items()}))

    def metadata(self, name: str, blob: bytes) -> None:
        """Attach a named metadata buffer."""
        self._metadata[name] = bytes(blob)

    def _new_buffer(self) -> int:
        self._buffers += 1
        return self._buffers

    def model(self) -> Model:
        """The model as IR, with any missing shapes inferred."""
        from .validate import validate_subgraph
        subgraphs = tuple(g._build() for g in self._subgraphs)
        for sg in subgraphs:
            validate_subgraph(sg)
        model = Model(subgraphs=subgraphs, description=self.description,
                      signatures=tuple(self._signatures), metadata=dict(self._metadata))
        if any(g._needs_inference() for g in self._subgraphs):
            from .shapes import infer_shapes
            model = infer_shapes(model, {i for i, g in enumerate(self._subgraphs)
                                         for i in [i] if g._needs_inference()})
        return model

    def build(self, **write_options: Any) -> bytes:
        """The model as ``.tflite`` bytes."""
        from .writer import write_model
        return write_model(self.model(), **write_options)
