"""Serialize the IR back into ``.tflite`` bytes.

Constants sharing a buffer index in the IR share one buffer in the output.
Models whose constants pass 2 GB (or ``external_buffers=True``) store their
buffers after the flatbuffer with offset/size, as the TFLite converter does.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flatbuffers
import numpy as np
import tflite

from .errors import ModelError
from .ir import Model, Operator, Quantization, Sparsity, Subgraph, Tensor
from .schema import (BUILTIN_OP_CODES, PLACEHOLDER_FOR_GREATER_OP_CODES, TENSOR_TYPE_CODES,
                     options_union, write_options)

_FLATBUFFER_LIMIT = 2**31 - 2**20   # stay clear of the 2 GB flatbuffer ceiling
_ALIGN = 16
_PLACEHOLDER_OFFSET = 2**40         # sized like a real offset; rewritten in pass two


def write_model(model: Model, *, external_buffers: bool | None = None) -> bytes:
    """The model as ``.tflite`` bytes."""
    blobs = _BufferTable(model)
    if external_buffers is None:
        external_buffers = blobs.total_bytes() > _FLATBUFFER_LIMIT
    if not external_buffers:
        return _build(model, blobs, None)
    first = _build(model, blobs, [_PLACEHOLDER_OFFSET if blob else 0 for blob in blobs.data])
    offsets, tail = blobs.layout(_aligned(len(first)))
    out = _build(model, blobs, offsets)
    if len(out) != len(first):
        raise ModelError("internal error: model size changed between writer passes")
    return out + bytes(_aligned(len(out)) - len(out)) + tail


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class _BufferTable:
    """Buffer list: index 0 is the empty sentinel, then constants, then metadata."""

    def __init__(self, model: Model) -> None:
        self.data: list[bytes] = [b""]
        self.index: dict[tuple[int, int], int] = {}
        for sg in model.subgraphs:
            for t in sg.tensors:
                if t.data is not None:
                    self._add_tensor(sg.index, t)
        self.metadata = {name: self._append(blob) for name, blob in model.metadata.items()}

    def _add_tensor(self, sg: int, t: Tensor) -> None:
        key = (-1, t.buffer) if t.buffer > 0 else (sg, -t.index - 1)
        if key not in self.index:
            self.index[key] = self._append(np.ascontiguousarray(t.data).tobytes())

    def _append(self, blob: bytes) -> int:
        self.data.append(blob)
        return len(self.data) - 1

    def of(self, sg: int, t: Tensor) -> int:
        if t.data is None:
            return 0
        return self.index[(-1, t.buffer) if t.buffer > 0 else (sg, -t.index - 1)]

    def total_bytes(self) -> int:
        return sum(len(b) for b in self.data)

    def layout(self, start: int) -> tuple[list[int], bytes]:
        offsets, parts, pos = [], [], start
        for blob in self.data:
            offsets.append(pos if blob else 0)
            pad = _aligned(len(blob)) - len(blob)
            parts.append(blob + bytes(pad))
            pos += len(blob) + pad
        return offsets, b"".join(parts)


def _build(model: Model, blobs: _BufferTable, offsets: list[int] | None) -> bytes:
    b = flatbuffers.Builder(1024 + (0 if offsets else blobs.total_bytes()))
    codes = _OpCodes(model)
    subgraphs = [_subgraph(b, sg, codes, blobs) for sg in model.subgraphs]
    buffers = [_buffer(b, blob, offsets[i] if offsets else None) for i, blob in
               enumerate(blobs.data)]
    signatures = [_signature(b, s) for s in model.signatures]
    metadata = [_metadata(b, name, index) for name, index in blobs.metadata.items()]
    opcodes = [codes.write(b, key) for key in codes.keys]
    desc = b.CreateString(model.description or "")
    vectors = {name: _table_vector(b, tflite.ModelStartSubgraphsVector, items)
               for name, items in (("subgraphs", subgraphs), ("buffers", buffers),
                                   ("signatures", signatures), ("metadata", metadata),
                                   ("opcodes", opcodes))}
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, model.version)
    tflite.ModelAddOperatorCodes(b, vectors["opcodes"])
    tflite.ModelAddSubgraphs(b, vectors["subgraphs"])
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, vectors["buffers"])
    tflite.ModelAddMetadata(b, vectors["metadata"])
    tflite.ModelAddSignatureDefs(b, vectors["signatures"])
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _table_vector(b: flatbuffers.Builder, _start: Callable, items: Sequence[int]) -> int:
    b.StartVector(4, len(items), 4)
    for item in reversed(items):
        b.PrependUOffsetTRelative(item)
    return b.EndVector()


def _int_vector(b: flatbuffers.Builder, values: Sequence[int], dtype: Any = np.int32) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


class _OpCodes:
    """Unique (op, version, custom) operator codes in first-use order."""

    def __init__(self, model: Model) -> None:
        self.keys: list[tuple[str, int, bool]] = []
        self.index: dict[tuple[str, int, bool], int] = {}
        for sg in model.subgraphs:
            for op in sg.operators:
                key = (op.op, op.version, op.is_custom)
                if key not in self.index:
                    self.index[key] = len(self.keys)
                    self.keys.append(key)

    def of(self, op: Operator) -> int:
        return self.index[(op.op, op.version, op.is_custom)]

    def write(self, b: flatbuffers.Builder, key: tuple[str, int, bool]) -> int:
        name, version, custom = key
        code = 32 if custom else BUILTIN_OP_CODES.get(name)
        if code is None:
            raise ModelError(f"unknown builtin op {name!r}")
        custom_code = b.CreateString(name) if custom else None
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(
            b, min(code, PLACEHOLDER_FOR_GREATER_OP_CODES))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, version)
        if custom_code is not None:
            tflite.OperatorCodeAddCustomCode(b, custom_code)
        return tflite.OperatorCodeEnd(b)


def _buffer(b: flatbuffers.Builder, blob: bytes, offset: int | None) -> int:
    data = None
    if blob and offset is None:
        data = _aligned_bytes(b, blob)
    tflite.BufferStart(b)
    if data is not None:
        tflite.BufferAddData(b, data)
    if offset:
        tflite.BufferAddOffset(b, offset)
        tflite.BufferAddSize(b, len(blob))
    return tflite.BufferEnd(b)


def _aligned_bytes(b: flatbuffers.Builder, blob: bytes) -> int:
    """A byte vector starting on a 16-byte boundary (as the converter writes
    buffers), so constant views are aligned for vector loads."""
    b.StartVector(1, len(blob), _ALIGN)
    b.head -= len(blob)
    b.Bytes[b.head:b.head + len(blob)] = blob
    b.vectorNumElems = len(blob)
    return b.EndVector()


def _subgraph(b: flatbuffers.Builder, sg: Subgraph, codes: _OpCodes, blobs: _BufferTable) -> int:
    tensors = [_tensor(b, t, blobs.of(sg.index, t)) for t in sg.tensors]
    operators = [_operator(b, op, codes.of(op)) for op in sg.operators]
    tv = _table_vector(b, None, tensors)
    ov = _table_vector(b, None, operators)
    iv, outv = _int_vector(b, sg.inputs), _int_vector(b, sg.outputs)
    name = b.CreateString(sg.name)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tv)
    tflite.SubGraphAddInputs(b, iv)
    tflite.SubGraphAddOutputs(b, outv)
    tflite.SubGraphAddOperators(b, ov)
    tflite.SubGraphAddName(b, name)
    return tflite.SubGraphEnd(b)


def _tensor(b: flatbuffers.Builder, t: Tensor, buffer: int) -> int:
    shape = _int_vector(b, t.shape)
    signature = _int_vector(b, t.shape_signature) if t.shape_signature is not None else None
    name = b.CreateString(t.name)
    quant = _quantization(b, t.quantization) if t.quantization is not None else None
    sparsity = _sparsity(b, t.sparsity) if t.sparsity is not None else None
    tflite.TensorStart(b)
    tflite.TensorAddShape(b, shape)
    tflite.TensorAddType(b, TENSOR_TYPE_CODES[t.type_name])
    tflite.TensorAddBuffer(b, buffer)
    tflite.TensorAddName(b, name)
    if quant is not None:
        tflite.TensorAddQuantization(b, quant)
    tflite.TensorAddIsVariable(b, t.is_variable)
    if sparsity is not None:
        tflite.TensorAddSparsity(b, sparsity)
    if signature is not None:
        tflite.TensorAddShapeSignature(b, signature)
    tflite.TensorAddHasRank(b, t.has_rank)
    return tflite.TensorEnd(b)


def _quantization(b: flatbuffers.Builder, q: Quantization) -> int:
    scale = b.CreateNumpyVector(np.asarray(q.scale, np.float32))
    zp = b.CreateNumpyVector(np.asarray(q.zero_point, np.int64))
    lo = b.CreateNumpyVector(np.asarray(q.min, np.float32)) if q.min is not None else None
    hi = b.CreateNumpyVector(np.asarray(q.max, np.float32)) if q.max is not None else None
    tflite.QuantizationParametersStart(b)
    if lo is not None:
        tflite.QuantizationParametersAddMin(b, lo)
    if hi is not None:
        tflite.QuantizationParametersAddMax(b, hi)
    tflite.QuantizationParametersAddScale(b, scale)
    tflite.QuantizationParametersAddZeroPoint(b, zp)
    tflite.QuantizationParametersAddQuantizedDimension(b, q.axis)
    return tflite.QuantizationParametersEnd(b)


_INDEX_VECTORS = {1: (np.int32, "Int32Vector"), 2: (np.uint16, "Uint16Vector"),
                  3: (np.uint8, "Uint8Vector")}


def _index_vector(b: flatbuffers.Builder, values: np.ndarray | None) -> tuple[int, int]:
    if values is None:
        return 0, 0
    kind = 3 if values.size == 0 or values.max() < 256 else 2 if values.max() < 65536 else 1
    dtype, table = _INDEX_VECTORS[kind]
    vec = b.CreateNumpyVector(np.asarray(values, dtype))
    getattr(tflite, f"{table}Start")(b)
    getattr(tflite, f"{table}AddValues")(b, vec)
    return kind, getattr(tflite, f"{table}End")(b)


def _sparsity(b: flatbuffers.Builder, s: Sparsity) -> int:
    dims = []
    for d in s.dim_metadata:
        seg_type, seg = _index_vector(b, d.array_segments)
        idx_type, idx = _index_vector(b, d.array_indices)
        tflite.DimensionMetadataStart(b)
        tflite.DimensionMetadataAddFormat(b, 0 if d.format == "DENSE" else 1)
        tflite.DimensionMetadataAddDenseSize(b, d.dense_size)
        if seg_type:
            tflite.DimensionMetadataAddArraySegmentsType(b, seg_type)
            tflite.DimensionMetadataAddArraySegments(b, seg)
        if idx_type:
            tflite.DimensionMetadataAddArrayIndicesType(b, idx_type)
            tflite.DimensionMetadataAddArrayIndices(b, idx)
        dims.append(tflite.DimensionMetadataEnd(b))
    order, block = _int_vector(b, s.traversal_order), _int_vector(b, s.block_map)
    dv = _table_vector(b, None, dims)
    tflite.SparsityParametersStart(b)
    tflite.SparsityParametersAddTraversalOrder(b, order)
    tflite.SparsityParametersAddBlockMap(b, block)
    tflite.SparsityParametersAddDimMetadata(b, dv)
    return tflite.SparsityParametersEnd(b)


def _operator(b: flatbuffers.Builder, op: Operator, opcode: int) -> int:
    options = write_options(b, op.options) if op.options.type_name else None
    custom = b.CreateByteVector(op.custom_options) if op.custom_options is not None else None
    ins, outs = _int_vector(b, op.inputs), _int_vector(b, op.outputs)
    inter = _int_vector(b, op.intermediates) if op.intermediates else None
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, opcode)
    tflite.OperatorAddInputs(b, ins)
    tflite.OperatorAddOutputs(b, outs)
    if options is not None:
        union, code = options_union(op.options.type_name)
        if union == 1:
            tflite.OperatorAddBuiltinOptionsType(b, code)
            tflite.OperatorAddBuiltinOptions(b, options)
        else:
            tflite.OperatorAddBuiltinOptions2Type(b, code)
            tflite.OperatorAddBuiltinOptions2(b, options)
    if custom is not None:
        tflite.OperatorAddCustomOptions(b, custom)
    if inter is not None:
        tflite.OperatorAddIntermediates(b, inter)
    return tflite.OperatorEnd(b)


def _tensor_map(b: flatbuffers.Builder, name: str, index: int) -> int:
    s = b.CreateString(name)
    tflite.TensorMapStart(b)
    tflite.TensorMapAddName(b, s)
    tflite.TensorMapAddTensorIndex(b, index)
    return tflite.TensorMapEnd(b)


def _signature(b: flatbuffers.Builder, sig: Any) -> int:
    ins = _table_vector(b, None, [_tensor_map(b, k, v) for k, v in sig.inputs.items()])
    outs = _table_vector(b, None, [_tensor_map(b, k, v) for k, v in sig.outputs.items()])
    key = b.CreateString(sig.key)
    tflite.SignatureDefStart(b)
    tflite.SignatureDefAddInputs(b, ins)
    tflite.SignatureDefAddOutputs(b, outs)
    tflite.SignatureDefAddSignatureKey(b, key)
    tflite.SignatureDefAddSubgraphIndex(b, sig.subgraph_index)
    return tflite.SignatureDefEnd(b)


def _metadata(b: flatbuffers.Builder, name: str, buffer: int) -> int:
    s = b.CreateString(name)
    tflite.MetadataStart(b)
    tflite.MetadataAddName(b, s)
    tflite.MetadataAddBuffer(b, buffer)
    return tflite.MetadataEnd(b)
