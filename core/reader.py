"""Read ``.tflite`` flatbuffers into the immutable IR, validating as we go.

Every way a file can be malformed becomes a :class:`ModelError` that names
the element at fault; constant data stay views into the file's bytes (an
``mmap`` when reading from a path), never copies.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import tflite

from .errors import ModelError
from .ir import (DimensionMetadata, Model, Operator, Quantization, SignatureDef, Sparsity,
                 Subgraph, Tensor)
from .schema import (BUILTIN_OP_NAMES, PLACEHOLDER_FOR_GREATER_OP_CODES, TENSOR_TYPE_NAMES,
                     numpy_dtype, read_options)
from .validate import validate_subgraph

_IDENTIFIER = b"TFL3"
_MAX_RANK = 16


def read_model(source: bytes | bytearray | memoryview | str | os.PathLike) -> Model:
    """Read a model from a file path or from its bytes."""
    if isinstance(source, (str, os.PathLike)):
        buf = _map_file(os.fspath(source))
    else:
        buf = source if isinstance(source, bytes) else bytes(source)
    return _read(buf)


def _map_file(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise ModelError(f"{path}: file is empty, not a TFLite model")
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from None


def _read(buf: Any) -> Model:
    if len(buf) < 8:
        raise ModelError(f"model is {len(buf)} bytes long: too short to be a TFLite flatbuffer")
    if bytes(buf[4:8]) != _IDENTIFIER:
        raise ModelError("not a TFLite model: the flatbuffer identifier is "
                         f"{bytes(buf[4:8])!r}, expected {_IDENTIFIER!r}")
    try:
        return _ModelReader(buf).model()
    except ModelError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError,
            UnicodeDecodeError, AttributeError) as e:
        raise ModelError(f"corrupt or truncated model file ({len(buf)} bytes): "
                         f"{type(e).__name__}: {e}") from None


class _ModelReader:
    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.fb = tflite.Model.GetRootAs(buf, 0)
        self.buffers = self._buffer_spans()
        self.opcodes = [self._opcode(i) for i in range(self.fb.OperatorCodesLength())]

    def model(self) -> Model:
        fb = self.fb
        subgraphs = tuple(self._subgraph(i) for i in range(fb.SubgraphsLength()))
        if not subgraphs:
            raise ModelError("model has no subgraphs")
        desc = fb.Description()
        return Model(subgraphs=subgraphs, version=fb.Version(),
                     description=desc.decode("utf-8", "replace") if desc else "",
                     signatures=self._signatures(subgraphs), metadata=self._metadata())

    # -- buffers ---------------------------------------------------------
    def _buffer_spans(self) -> list[tuple[int, int]]:
        """(start, length) of each buffer's bytes in ``self.buf``."""
        spans = []
        size = len(self.buf)
        for i in range(self.fb.BuffersLength()):
            b = self.fb.Buffers(i)
            offset, length = b.Offset(), b.Size()
            if offset > 1:  # stored after the flatbuffer (models over 2 GB)
                start = offset
            else:
                o = b._tab.Offset(4)
                start, length = (b._tab.Vector(o), b._tab.VectorLen(o)) if o else (0, 0)
            if start + length > size:
                raise ModelError(f"buffer {i} spans bytes {start}..{start + length} but the "
                                 f"model is only {size} bytes: the file is truncated")
            spans.append((start, length))
        return spans

    def _buffer_bytes(self, index: int) -> memoryview:
        start, length = self.buffers[index]
        return memoryview(self.buf)[start:start + length]

    def _metadata(self) -> dict[str, bytes]:
        out = {}
        for i in range(self.fb.MetadataLength()):
            m = self.fb.Metadata(i)
            name = (m.Name() or b"").decode("utf-8", "replace")
            index = m.Buffer()
            if not 0 <= index < len(self.buffers):
                raise ModelError(f"metadata {name!r} refers to buffer {index}, but the "
                                 f"model has {len(self.buffers)} buffers")
            out[name] = bytes(self._buffer_bytes(index))
        return out

    # -- operator codes --------------------------------------------------
    def _opcode(self, i: int) -> tuple[str, int, bool]:
        oc = self.fb.OperatorCodes(i)
        code = oc.BuiltinCode()
        deprecated = oc.DeprecatedBuiltinCode()
        if deprecated != PLACEHOLDER_FOR_GREATER_OP_CODES:
            code = max(code, deprecated)
        version = max(oc.Version(), 1)
        if code == 32:  # CUSTOM
            custom = oc.CustomCode()
            return (custom.decode("utf-8", "replace") if custom else "CUSTOM"), version, True
        name = BUILTIN_OP_NAMES.get(code)
        if name is None:
            raise ModelError(f"operator code {i} has builtin code {code}, which this "
                             "version of the TFLite schema does not know")
        return name, version, False

    # -- subgraphs -------------------------------------------------------
    def _subgraph(self, index: int) -> Subgraph:
        sg = self.fb.Subgraphs(index)
        name = (sg.Name() or b"").decode("utf-8", "replace")
        tensors = tuple(self._tensor(sg.Tensors(i), i, index) for i in range(sg.TensorsLength()))
        operators = tuple(self._operator(sg.Operators(i), i, index)
                          for i in range(sg.OperatorsLength()))
        inputs = _ints(sg.InputsAsNumpy, sg)
        tensors = _empty_constants(tensors, operators, inputs)
        subgraph = Subgraph(index, name, tensors, operators, inputs, _ints(sg.OutputsAsNumpy, sg))
        validate_subgraph(subgraph)
        return subgraph

    def _tensor(self, t: Any, index: int, sg: int) -> Tensor:
        name = (t.Name() or b"").decode("utf-8", "replace")
        where = f"subgraph {sg} tensor {index} {name!r}"
        type_name = TENSOR_TYPE_NAMES.get(t.Type())
        if type_name is None:
            raise ModelError(f"{where}: unknown tensor type code {t.Type()}")
        shape = _ints(t.ShapeAsNumpy, t, t.ShapeIsNone)
        if len(shape) > _MAX_RANK:
            raise ModelError(f"{where}: rank {len(shape)} exceeds the maximum of {_MAX_RANK}")
        if any(d < 0 for d in shape):
            raise ModelError(f"{where}: shape {list(shape)} has a negative dimension")
        signature = None if t.ShapeSignatureIsNone() else _ints(t.ShapeSignatureAsNumpy, t)
        if signature is not None and (len(signature) != len(shape) or any(d < -1 for d in signature)):
            raise ModelError(f"{where}: shape_signature {list(signature)} does not fit "
                             f"shape {list(shape)}")
        buffer = t.Buffer()
        if not 0 <= buffer < max(len(self.buffers), 1):
            raise ModelError(f"{where}: buffer index {buffer} is out of range "
                             f"(the model has {len(self.buffers)} buffers)")
        dtype = numpy_dtype(type_name)
        sparsity = self._sparsity(t.Sparsity(), where) if t.Sparsity() else None
        data = self._constant(buffer, shape, type_name, dtype, sparsity, where)
        return Tensor(index=index, name=name, shape=shape, type_name=type_name, dtype=dtype,
                      shape_signature=signature, buffer=buffer, data=data,
                      quantization=_quantization(t.Quantization()),
                      is_variable=bool(t.IsVariable()), sparsity=sparsity,
                      has_rank=bool(t.HasRank()))

    def _constant(self, buffer: int, shape: tuple[int, ...], type_name: str, dtype: np.dtype,
                  sparsity: Sparsity | None, where: str) -> np.ndarray | None:
        if buffer == 0 or not self.buffers:
            return None
        if self.buffers[buffer][1] == 0:
            return None  # see _empty_constants for zero-element constants
        count = int(np.prod(shape, dtype=np.int64))
        raw = self._buffer_bytes(buffer)
        if type_name in ("STRING", "RESOURCE", "VARIANT"):
            return np.frombuffer(raw, dtype=np.uint8)
        if type_name == "INT4":
            need = (count + 1) // 2
            dtype = np.dtype(np.uint8)
        else:
            need = count * dtype.itemsize
        if sparsity is not None:  # compressed values: length is what the file says
            return np.frombuffer(raw, dtype=dtype, count=len(raw) // dtype.itemsize)
        if len(raw) < need:
            raise ModelError(f"{where}: buffer {buffer} holds {len(raw)} bytes but shape "
                             f"{list(shape)} of {type_name} needs {need}")
        array = np.frombuffer(raw, dtype=dtype, count=need // dtype.itemsize)
        return array if type_name == "INT4" else array.reshape(shape)

    def _sparsity(self, s: Any, where: str) -> Sparsity:
        dims = []
        for i in range(s.DimMetadataLength()):
            d = s.DimMetadata(i)
            fmt = "DENSE" if d.Format() == 0 else "SPARSE_CSR"
            dims.append(DimensionMetadata(fmt, d.DenseSize(),
                                          _index_vector(d.ArraySegmentsType(), d.ArraySegments()),
                                          _index_vector(d.ArrayIndicesType(), d.ArrayIndices())))
        return Sparsity(_ints(s.TraversalOrderAsNumpy, s), _ints(s.BlockMapAsNumpy, s), tuple(dims))

    def _operator(self, op: Any, index: int, sg: int) -> Operator:
        opcode = op.OpcodeIndex()
        if not 0 <= opcode < len(self.opcodes):
            raise ModelError(f"subgraph {sg} op {index}: opcode index {opcode} is out of "
                             f"range (the model has {len(self.opcodes)} operator codes)")
        name, version, is_custom = self.opcodes[opcode]
        custom = None
        if not op.CustomOptionsIsNone():
            custom = op.CustomOptionsAsNumpy().tobytes()
        elif op.LargeCustomOptionsSize() > 0:
            start, size = op.LargeCustomOptionsOffset(), op.LargeCustomOptionsSize()
            custom = bytes(memoryview(self.buf)[start:start + size])
        options = read_options(op, name) if not is_custom else read_options(op, "CUSTOM")
        return Operator(index=index, op=name, version=version,
                        inputs=_ints(op.InputsAsNumpy, op), outputs=_ints(op.OutputsAsNumpy, op),
                        options=options, custom_options=custom,
                        intermediates=_ints(op.IntermediatesAsNumpy, op), is_custom=is_custom)

    def _signatures(self, subgraphs: tuple[Subgraph, ...]) -> tuple[SignatureDef, ...]:
        out = []
        for i in range(self.fb.SignatureDefsLength()):
            s = self.fb.SignatureDefs(i)
            key = (s.SignatureKey() or b"").decode("utf-8", "replace")
            sg = s.SubgraphIndex()
            if not 0 <= sg < len(subgraphs):
                raise ModelError(f"signature {key!r} refers to subgraph {sg}, but the model "
                                 f"has {len(subgraphs)}")
            ins = _tensor_map(s.Inputs, s.InputsLength(), subgraphs[sg], key)
            outs = _tensor_map(s.Outputs, s.OutputsLength(), subgraphs[sg], key)
            out.append(SignatureDef(key, sg, ins, outs))
        return tuple(out)


def _tensor_map(get: Callable[[int], Any], n: int, sg: Subgraph, key: str) -> dict[str, int]:
    out = {}
    for i in range(n):
        m = get(i)
        name = (m.Name() or b"").decode("utf-8", "replace")
        t = m.TensorIndex()
        if not 0 <= t < len(sg.tensors):
            raise ModelError(f"signature {key!r} maps {name!r} to tensor {t}, which is out "
                             f"of range (subgraph {sg.index} has {len(sg.tensors)} tensors)")
        out[name] = t
    return out


def _ints(as_numpy: Callable[[], Any], table: Any,
          is_none: Callable[[], bool] | None = None) -> tuple[int, ...]:
    value = as_numpy()
    if isinstance(value, int):  # flatbuffers returns 0 for an absent vector
        return ()
    return tuple(int(v) for v in value.tolist())


def _index_vector(kind: int, table: Any) -> np.ndarray | None:
    if table is None or kind == 0:
        return None
    cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
    vec = cls()
    vec.Init(table.Bytes, table.Pos)
    values = vec.ValuesAsNumpy()
    return np.asarray(values if not isinstance(values, int) else [], dtype=np.int64)


def _quantization(q: Any) -> Quantization | None:
    if q is None:
        return None
    scale = q.ScaleAsNumpy()
    if isinstance(scale, int) or scale.size == 0:
        return None
    zp = q.ZeroPointAsNumpy()
    zero_point = np.zeros(scale.size, np.int64) if isinstance(zp, int) else zp.astype(np.int64)
    if zero_point.size != scale.size:
        raise ModelError(f"quantization has {scale.size} scales but {zero_point.size} zero points")
    lo, hi = q.MinAsNumpy(), q.MaxAsNumpy()
    return Quantization(scale.astype(np.float32), zero_point, int(q.QuantizedDimension()),
                        None if isinstance(lo, int) else lo.astype(np.float32),
                        None if isinstance(hi, int) else hi.astype(np.float32))


def _empty_constants(tensors: tuple[Tensor, ...], operators: tuple[Operator, ...],
                     inputs: tuple[int, ...]) -> tuple[Tensor, ...]:
    """Zero-element tensors with a buffer of their own that nothing writes are
    constants whose buffer is empty (e.g. the ``[]`` shape of a reshape to a
    scalar); give them their empty value."""
    written = set(inputs) | {t for op in operators for t in op.outputs}
    out = list(tensors)
    for t in tensors:
        if (t.data is None and t.buffer > 0 and 0 in t.shape and t.index not in written
                and not t.is_variable and t.type_name not in ("STRING", "RESOURCE", "VARIANT")):
            empty = np.empty(t.shape, t.dtype)
            empty.flags.writeable = False
            out[t.index] = replace(t, data=empty)
    return tuple(out)
