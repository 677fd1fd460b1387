"""Post-training quantization of float models made with the builder.

Turns a float32 model into a full-integer one the way the TFLite converter
does: activations get per-tensor asymmetric parameters from ranges observed
on calibration inputs (run through edgeplex itself), convolution and
fully-connected weights get symmetric per-channel int8 (or, for the legacy
uint8 scheme, asymmetric per-tensor uint8) parameters, biases become int32
with scale ``input_scale * weight_scale``, and ops whose TFLite integer
kernels fix their output parameters (SOFTMAX, LOGISTIC, TANH, pooling,
reshapes) get exactly those.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from edgeplex.core.errors import EdgeplexError
from edgeplex.core.interpreter import Interpreter
from edgeplex.core.ir import Operator, Quantization, Tensor
from edgeplex.core.reader import read_model
from edgeplex.core.schema import tensor_type_name
from edgeplex.core.writer import write_model

#: weights input index and per-channel axis of the ops with quantized weights.
WEIGHTS = {"CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3), "FULLY_CONNECTED": (1, 0),
           "TRANSPOSE_CONV": (1, 0)}
#: bias input index of those ops.
BIAS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
#: ops whose integer output must reuse the input's parameters.
SAME_AS_INPUT = {"MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "SQUEEZE", "TRANSPOSE", "PAD",
                 "STRIDED_SLICE", "SLICE", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
                 "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "EXPAND_DIMS"}
#: fixed (scale, int8 zero point) of outputs whose range TFLite's kernels fix.
FIXED_OUTPUT = {"SOFTMAX": (1 / 256, -128), "LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}
SUPPORTED = set(WEIGHTS) | SAME_AS_INPUT | set(FIXED_OUTPUT) | {
    "ADD", "SUB", "MUL", "MEAN", "CONCATENATION", "RELU", "RELU6", "HARD_SWISH"}


class QuantizationError(EdgeplexError):
    """The model uses something this quantizer does not handle."""


def quantize_model(model: bytes, calibration: Sequence[Sequence[np.ndarray]],
                   scheme: str = "int8") -> bytes:
    """A full-integer version of ``model``; ``scheme`` is "int8" (per-channel
    int8 weights, int8 activations) or "uint8" (legacy per-tensor uint8)."""
    if scheme not in ("int8", "uint8"):
        raise QuantizationError(f"scheme must be 'int8' or 'uint8', got {scheme!r}")
    ir = read_model(model)
    sg = ir.main
    for op in sg.operators:
        if op.op not in SUPPORTED:
            raise QuantizationError(f"{op.describe()}: not supported by the quantizer")
    ranges = observed_ranges(model, calibration)
    act = np.int8 if scheme == "int8" else np.uint8
    params: dict[int, Quantization] = {}
    for t in sg.tensors:
        if t.index in ranges:
            params[t.index] = _activation_params(*ranges[t.index], act)
    for op in sg.operators:
        _constrain_output(op, params, act)
    tensors = list(sg.tensors)
    for op in sg.operators:
        _quantize_constants(op, tensors, params, scheme)
    for i, t in enumerate(tensors):
        if i in params and t.data is None and t.dtype == np.float32:
            tensors[i] = _retype(t, act, params[i], None)
        elif t.data is not None and t.dtype == np.float32:
            q = _activation_params(float(t.data.min()), float(t.data.max()), act)
            tensors[i] = _retype(t, act, q, _quantize(t.data, q, act))
    return write_model(replace(ir, subgraphs=(replace(sg, tensors=tuple(tensors)),)
                               + ir.subgraphs[1:]))


def observed_ranges(model: bytes, calibration: Sequence[Sequence[np.ndarray]]
                    ) -> dict[int, tuple[float, float]]:
    """(min, max) of every float activation over the calibration inputs."""
    it = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    sg = it.model.main
    ranges: dict[int, tuple[float, float]] = {}
    for sample in calibration:
        for d, x in zip(it.get_input_details(), sample):
            it.set_tensor(d["index"], x)
        it.invoke()
        for t in sg.tensors:
            if t.data is None and t.dtype == np.float32 and not t.is_variable:
                v = it.get_tensor(t.index)
                lo, hi = ranges.get(t.index, (np.inf, -np.inf))
                ranges[t.index] = (min(lo, float(v.min())), max(hi, float(v.max())))
    return ranges


def _activation_params(lo: float, hi: float, dtype: type) -> Quantization:
    info = np.iinfo(dtype)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (info.max - info.min) or 1e-6
    zp = int(np.clip(np.round(info.min - lo / scale), info.min, info.max))
    return Quantization.of(np.float32(scale), zp)


def _constrain_output(op: Operator, params: dict[int, Quantization], act: type) -> None:
    out = op.outputs[0]
    if op.op in FIXED_OUTPUT:
        scale, zp = FIXED_OUTPUT[op.op]
        params[out] = Quantization.of(scale, zp if act is np.int8 else zp + 128)
    elif op.op in SAME_AS_INPUT and op.inputs[0] in params:
        params[out] = params[op.inputs[0]]


def _quantize_constants(op: Operator, tensors: list[Tensor],
                        params: dict[int, Quantization], scheme: str) -> None:
    if op.op not in WEIGHTS:
        return
    w_index, axis = WEIGHTS[op.op]
    w = tensors[op.inputs[w_index]]
    if w.data is None:
        raise QuantizationError(f"{op.describe()}: weights must be constant")
    if scheme == "int8":
        q, data = _per_channel_int8(w.data, axis)
    else:
        q = _activation_params(float(w.data.min()), float(w.data.max()), np.uint8)
        data = _quantize(w.data, q, np.uint8)
    tensors[w.index] = _retype(w, data.dtype, q, data)
    b_index = BIAS[op.op]
    data_in = op.inputs[2] if op.op == "TRANSPOSE_CONV" else op.inputs[0]
    if b_index < len(op.inputs) and op.inputs[b_index] >= 0:
        b = tensors[op.inputs[b_index]]
        scale = params[data_in].scale[0].astype(np.float64) * q.scale.astype(np.float64)
        bq = Quantization(scale.astype(np.float32), np.zeros(scale.size, np.int64), 0)
        values = np.round(b.data.astype(np.float64) / scale).astype(np.int32)
        tensors[b.index] = _retype(b, np.int32, bq, values)


def _per_channel_int8(w: np.ndarray, axis: int) -> tuple[Quantization, np.ndarray]:
    other = tuple(i for i in range(w.ndim) if i != axis)
    scale = (np.abs(w).max(axis=other) / 127.0).astype(np.float32)
    scale = np.where(scale == 0, np.float32(1e-8), scale)
    shape = [1] * w.ndim
    shape[axis] = -1
    data = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return Quantization.of(scale, 0, axis), data


def _quantize(x: np.ndarray, q: Quantization, dtype: type) -> np.ndarray:
    info = np.iinfo(dtype)
    v = np.round(x.astype(np.float64) / q.scale[0]) + q.zero_point[0]
    return np.clip(v, info.min, info.max).astype(dtype)


def _retype(t: Tensor, dtype: type, q: Quantization, data: np.ndarray | None) -> Tensor:
    if data is not None:
        data = np.ascontiguousarray(data)
        data.flags.writeable = False
    return replace(t, dtype=np.dtype(dtype), type_name=tensor_type_name(dtype), quantization=q,
                   data=data)
