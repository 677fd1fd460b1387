"""The TFLite schema as edgeplex sees it: op codes, tensor types and options.

The ``tflite`` package gives generated flatbuffer accessors and builder
functions for every table but no object API, so this module turns builtin
options tables into plain :class:`Options` objects (snake_case fields, enums
as their names) and back, by reading the generated functions once per
options type.
"""
from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

import flatbuffers
import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.BuiltinOptions2 import BuiltinOptions2
from tflite.TensorType import TensorType

from .errors import ModelError


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


BUILTIN_OP_NAMES: dict[int, str] = _enum_names(BuiltinOperator)
BUILTIN_OP_CODES: dict[str, int] = {v: k for k, v in BUILTIN_OP_NAMES.items()}
#: ``deprecated_builtin_code`` holds this for ops whose code does not fit int8.
PLACEHOLDER_FOR_GREATER_OP_CODES = 127

TENSOR_TYPE_NAMES: dict[int, str] = _enum_names(TensorType)
TENSOR_TYPE_CODES: dict[str, int] = {v: k for k, v in TENSOR_TYPE_NAMES.items()}

#: numpy dtype per TFLite tensor type, as ai-edge-litert reports them.
#: INT4 tensors are unpacked to int8 values; RESOURCE and VARIANT are handles.
_NUMPY_DTYPES: dict[str, Any] = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64,
    "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16,
    "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64,
    "BOOL": np.bool_, "COMPLEX64": np.complex64, "COMPLEX128": np.complex128,
    "STRING": np.bytes_, "INT4": np.int8, "RESOURCE": np.int32, "VARIANT": np.int32,
}
_TYPE_BY_DTYPE: dict[np.dtype, str] = {
    np.dtype(d): name for name, d in _NUMPY_DTYPES.items()
    if name not in ("INT4", "RESOURCE", "VARIANT")
}


def numpy_dtype(type_name: str) -> np.dtype:
    """The numpy dtype of a TFLite tensor type name such as ``"INT8"``."""
    try:
        return np.dtype(_NUMPY_DTYPES[type_name])
    except KeyError:
        raise ModelError(f"tensor type {type_name} has no numpy equivalent") from None


def tensor_type_name(dtype: Any) -> str:
    """The TFLite tensor type name of a numpy dtype (``float32`` -> ``"FLOAT32"``)."""
    dt = np.dtype(dtype)
    if dt.kind == "S":
        return "STRING"
    try:
        return _TYPE_BY_DTYPE[dt]
    except KeyError:
        raise ModelError(f"numpy dtype {dt} has no TFLite tensor type") from None


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------

#: Options fields whose integers are schema enums, by snake_case field name.
_ENUM_FIELDS: dict[str, str] = {
    "padding": "Padding",
    "fused_activation_function": "ActivationFunctionType",
    "weights_format": "FullyConnectedOptionsWeightsFormat",
    "kernel_type": "LSTMKernelType",
    "mode": "MirrorPadMode",
    "combiner": "CombinerType",
    "quantized_bias_type": "TensorType",
    "output_type": "TensorType",
    "out_type": "TensorType",
    "idx_out_type": "TensorType",
    "in_data_type": "TensorType",
    "out_data_type": "TensorType",
    "reduce_function": "ReduceWindowFunction",
    "comparison_direction": "StablehloComparisonDirection",
    "compare_type": "StablehloComparisonType",
    "algorithm": "RngAlgorithm",
}
# LSHProjectionOptions.type is the one field named "type".
_ENUM_FIELDS_BY_TABLE: dict[tuple[str, str], str] = {
    ("LSHProjectionOptions", "type"): "LSHProjectionType",
}

#: Ops whose options table is not named after the op.
_OPTIONS_EXCEPTIONS: dict[str, str] = {
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions", "REDUCE_PROD": "ReducerOptions",
    "REDUCE_ANY": "ReducerOptions", "REDUCE_ALL": "ReducerOptions",
    "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
    "L2_NORMALIZATION": "L2NormOptions",
    "CONV_3D_TRANSPOSE": "Conv3DOptions",
    "RANDOM_UNIFORM": "RandomOptions", "RANDOM_STANDARD_NORMAL": "RandomOptions",
    "MULTINOMIAL": "RandomOptions",
}

_UNION1 = {k: v for v, k in _enum_names(BuiltinOptions).items() if v}
_UNION2 = {k: v for v, k in _enum_names(BuiltinOptions2).items() if v}
_UNION1_NAMES = {v: k for k, v in _UNION1.items()}
_UNION2_NAMES = {v: k for k, v in _UNION2.items()}
_OPTIONS_BY_LOWER = {name.lower(): name for name in (*_UNION1, *_UNION2)}


def options_type_for(op_name: str) -> str | None:
    """Name of the builtin options table an op uses, or None if it has none."""
    if op_name in _OPTIONS_EXCEPTIONS:
        return _OPTIONS_EXCEPTIONS[op_name]
    return _OPTIONS_BY_LOWER.get(op_name.replace("_", "").lower() + "options")


def _snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", camel).lower()


@dataclass(frozen=True)
class _Field:
    name: str          # snake_case
    camel: str         # accessor name in the generated class
    kind: str          # "scalar" | "bool" | "enum" | "string" | "vector"
    prepend: str       # builder Prepend<Type>Slot type, e.g. "Int32"
    slot: int
    default: Any
    enum: str | None = None
    vector_dtype: Any = None


_ADD_RE = re.compile(r"Prepend(\w+)Slot\((\d+),")
_VEC_RE = re.compile(r"GetVectorAsNumpy\(flatbuffers\.number_types\.(\w+)Flags")
_NP_BY_FLAGS = {"Int8": np.int8, "Uint8": np.uint8, "Int16": np.int16, "Uint16": np.uint16,
                "Int32": np.int32, "Uint32": np.uint32, "Int64": np.int64,
                "Uint64": np.uint64, "Float32": np.float32, "Float64": np.float64,
                "Bool": np.bool_}


def _field_kind(cls: type, camel: str, prepend: str) -> tuple[str, Any]:
    if prepend == "Bool":
        return "bool", None
    if prepend != "UOffsetTRelative":
        return "scalar", None
    if hasattr(cls, camel + "AsNumpy"):
        match = _VEC_RE.search(inspect.getsource(getattr(cls, camel + "AsNumpy")))
        return "vector", _NP_BY_FLAGS[match.group(1)] if match else None
    if "self._tab.String" in inspect.getsource(getattr(cls, camel)):
        return "string", None
    return "table", None


@lru_cache(maxsize=None)
def _fields(type_name: str) -> tuple[_Field, ...]:
    """The fields of one options table, read off its generated module."""
    module = importlib.import_module(f"tflite.{type_name}")
    cls = getattr(module, type_name)
    fields = []
    for fname, fn in vars(module).items():
        if not (fname.startswith(f"{type_name}Add") and callable(fn)):
            continue
        camel = fname[len(type_name) + 3:]
        match = _ADD_RE.search(inspect.getsource(fn))
        if match is None or not hasattr(cls, camel):
            continue
        prepend, slot = match.group(1), int(match.group(2))
        kind, vdtype = _field_kind(cls, camel, prepend)
        if kind == "table":
            continue  # nested tables only occur in StableHLO options; not modelled
        name = _snake(camel)
        enum = _ENUM_FIELDS_BY_TABLE.get((type_name, name)) or _ENUM_FIELDS.get(name)
        if enum and kind == "scalar":
            kind = "enum"
        fields.append(_Field(name, camel, kind, prepend, slot, None, enum, vdtype))
    fields.sort(key=lambda f: f.slot)
    return tuple(_with_defaults(type_name, cls, fields))


def _with_defaults(type_name: str, cls: type, fields: list[_Field]) -> Iterator[_Field]:
    builder = flatbuffers.Builder(16)
    module = importlib.import_module(f"tflite.{type_name}")
    getattr(module, f"{type_name}Start")(builder)
    builder.Finish(getattr(module, f"{type_name}End")(builder))
    empty = getattr(cls, "GetRootAs")(builder.Output(), 0)
    for f in fields:
        default = _read_field(empty, f)
        yield _Field(f.name, f.camel, f.kind, f.prepend, f.slot, default, f.enum, f.vector_dtype)


@lru_cache(maxsize=None)
def _enum_table(enum: str) -> dict[int, str]:
    return _enum_names(getattr(importlib.import_module(f"tflite.{enum}"), enum))


def _read_field(table: Any, f: _Field) -> Any:
    if f.kind == "vector":
        if getattr(table, f.camel + "IsNone")():
            return None
        return tuple(getattr(table, f.camel + "AsNumpy")().tolist())
    value = getattr(table, f.camel)()
    if f.kind == "enum":
        return _enum_table(f.enum).get(value, value)
    if f.kind == "string":
        return value.decode("utf-8") if value is not None else ""
    if f.kind == "bool":
        return bool(value)
    return value


class Options:
    """A builtin options table as a read-only object with snake_case fields.

    ``options.padding == "SAME"``; ``options.fused_activation_function ==
    "RELU6"``. Missing fields read as the schema default. ``type_name`` is
    the table's name (``"Conv2DOptions"``) or None for ops with no options.
    """

    __slots__ = ("type_name", "_values")

    def __init__(self, type_name: str | None, values: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "type_name", type_name)
        defaults = {f.name: f.default for f in _fields(type_name)} if type_name else {}
        given = dict(values or {})
        unknown = set(given) - set(defaults)
        if unknown:
            valid = ", ".join(sorted(defaults)) or "none"
            raise ModelError(f"{type_name or 'this op'} has no option(s) "
                             f"{', '.join(sorted(unknown))}; valid: {valid}")
        defaults.update(given)
        object.__setattr__(self, "_values", defaults)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self.type_name or 'options'} has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Options are read-only")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and (self.type_name, self._values) == (
            other.type_name, other._values)

    def __hash__(self) -> int:
        return hash((self.type_name, tuple(sorted(self._values.items()))))

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{self.type_name or 'Options'}({body})"

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return dict(self._values)

    def replace(self, **changes: Any) -> "Options":
        """A copy with some fields changed."""
        return Options(self.type_name, {**self._values, **changes})


def options_for(op_name: str, values: dict[str, Any] | None = None) -> Options:
    """Options for ``op_name`` from a dict of snake_case values (rest default)."""
    type_name = options_type_for(op_name)
    if type_name is None and values:
        raise ModelError(f"{op_name} takes no builtin options, got {sorted(values)}")
    return Options(type_name, values)


def read_options(op: Any, op_name: str) -> Options:
    """Decode a flatbuffer Operator's builtin options (either union)."""
    for union, get_type, get_table in ((_UNION1_NAMES, op.BuiltinOptionsType, op.BuiltinOptions),
                                       (_UNION2_NAMES, op.BuiltinOptions2Type,
                                        op.BuiltinOptions2)):
        type_name = union.get(get_type())
        table = get_table() if type_name else None
        if table is not None:
            module = importlib.import_module(f"tflite.{type_name}")
            obj = getattr(module, type_name)()
            obj.Init(table.Bytes, table.Pos)
            return Options(type_name, {f.name: _read_field(obj, f) for f in _fields(type_name)})
    return options_for(op_name)


def options_union(type_name: str) -> tuple[int, int]:
    """(which union: 1 or 2, union type code) of an options table."""
    if type_name in _UNION1:
        return 1, _UNION1[type_name]
    return 2, _UNION2[type_name]


def write_options(builder: flatbuffers.Builder, options: Options) -> int:
    """Serialize options into ``builder``; returns the table offset."""
    type_name = options.type_name
    module = importlib.import_module(f"tflite.{type_name}")
    fields = _fields(type_name)
    offsets = {f.name: _prewrite(builder, f, getattr(options, f.name))
               for f in fields if f.kind in ("vector", "string")
               and getattr(options, f.name) is not None}
    getattr(module, f"{type_name}Start")(builder)
    for f in fields:
        value = getattr(options, f.name)
        if f.kind in ("vector", "string"):
            if f.name in offsets:
                builder.PrependUOffsetTRelativeSlot(f.slot, offsets[f.name], 0)
            continue
        if f.kind == "enum" and isinstance(value, str):
            value = _enum_code(f, value, type_name)
        getattr(builder, f"Prepend{f.prepend}Slot")(f.slot, value, _encoded_default(f))
    return getattr(module, f"{type_name}End")(builder)


def _encoded_default(f: _Field) -> Any:
    if f.kind == "enum" and isinstance(f.default, str):
        return {v: k for k, v in _enum_table(f.enum).items()}[f.default]
    return f.default


def _enum_code(f: _Field, value: str, type_name: str) -> int:
    codes = {v: k for k, v in _enum_table(f.enum).items()}
    if value not in codes:
        raise ModelError(f"{type_name}.{f.name} = {value!r} is not one of {sorted(codes)}")
    return codes[value]


def _prewrite(builder: flatbuffers.Builder, f: _Field, value: Any) -> int:
    if f.kind == "string":
        return builder.CreateString(value or "")
    return builder.CreateNumpyVector(np.asarray(value, dtype=f.vector_dtype or np.int32))


def option_fields(type_name: str) -> dict[str, Any]:
    """Field name -> default value of an options table (for docs and errors)."""
    return {f.name: f.default for f in _fields(type_name)}


__all__ = [
    "BUILTIN_OP_NAMES", "BUILTIN_OP_CODES", "TENSOR_TYPE_NAMES", "TENSOR_TYPE_CODES",
    "Options", "numpy_dtype", "tensor_type_name", "options_type_for", "options_for",
    "read_options", "write_options", "options_union", "option_fields", "tflite",
]
