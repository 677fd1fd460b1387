"""The op lists of the float and quantized issues are all registered, with the
types they promise (the per-op oracle tests check the numbers)."""
from __future__ import annotations

import pytest

from edgeplex.kernels import default_resolver

FLOAT_OPS = """
ADD SUB MUL DIV SQUARED_DIFFERENCE MAXIMUM MINIMUM POW FLOOR_DIV FLOOR_MOD ABS NEG EXP LOG
SQRT RSQRT SQUARE SIN COS FLOOR CEIL ROUND SIGN
RELU RELU6 RELU_N1_TO_1 RELU_0_TO_1 LEAKY_RELU PRELU LOGISTIC TANH HARD_SWISH GELU ELU
SOFTMAX LOG_SOFTMAX
CONV_2D DEPTHWISE_CONV_2D TRANSPOSE_CONV CONV_3D FULLY_CONNECTED BATCH_MATMUL
AVERAGE_POOL_2D MAX_POOL_2D L2_POOL_2D MEAN SUM REDUCE_MAX REDUCE_MIN REDUCE_PROD REDUCE_ANY
ARG_MAX ARG_MIN CUMSUM
RESHAPE SQUEEZE EXPAND_DIMS TRANSPOSE CONCATENATION PACK UNPACK SPLIT SPLIT_V SLICE
STRIDED_SLICE GATHER GATHER_ND SCATTER_ND TILE PAD PADV2 MIRROR_PAD BROADCAST_TO SHAPE FILL
ZEROS_LIKE RANGE REVERSE_V2 CAST RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR DEPTH_TO_SPACE
SPACE_TO_DEPTH SPACE_TO_BATCH_ND BATCH_TO_SPACE_ND
L2_NORMALIZATION LOCAL_RESPONSE_NORMALIZATION
EQUAL NOT_EQUAL LESS LESS_EQUAL GREATER GREATER_EQUAL LOGICAL_AND LOGICAL_OR LOGICAL_NOT
SELECT SELECT_V2 WHERE TOPK_V2 ONE_HOT EMBEDDING_LOOKUP
UNIDIRECTIONAL_SEQUENCE_LSTM UNIDIRECTIONAL_SEQUENCE_RNN BIDIRECTIONAL_SEQUENCE_LSTM LSTM
WHILE IF CALL_ONCE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE
DEQUANTIZE DENSIFY QUANTIZE
""".split()
# ONES_LIKE is in the list but is not a TFLite builtin (the schema has
# ZEROS_LIKE only); the converter lowers ones_like to FILL.

INT8_UINT8_OPS = """
CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED TRANSPOSE_CONV BATCH_MATMUL ADD SUB MUL
SQUARED_DIFFERENCE MAXIMUM MINIMUM AVERAGE_POOL_2D MAX_POOL_2D MEAN SUM REDUCE_MAX
CONCATENATION RESHAPE SQUEEZE TRANSPOSE STRIDED_SLICE SLICE PAD PADV2 GATHER SPLIT PACK UNPACK
RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR DEPTH_TO_SPACE SPACE_TO_DEPTH SOFTMAX LOGISTIC TANH
HARD_SWISH RELU RELU6 LEAKY_RELU PRELU L2_NORMALIZATION ARG_MAX ARG_MIN
EQUAL NOT_EQUAL LESS LESS_EQUAL GREATER GREATER_EQUAL QUANTIZE DEQUANTIZE
""".split()
INT8_ONLY = {"ELU", "SQUARED_DIFFERENCE", "BATCH_MATMUL"}
INT16X8_OPS = """CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED ADD SUB MUL SOFTMAX LOGISTIC TANH
QUANTIZE DEQUANTIZE""".split()
HYBRID_OPS = "FULLY_CONNECTED CONV_2D DEPTHWISE_CONV_2D BATCH_MATMUL UNIDIRECTIONAL_SEQUENCE_LSTM"


def _types(op: str) -> set[str]:
    return set().union(*(r.types for r in default_resolver().registrations(op)))


@pytest.mark.parametrize("op", FLOAT_OPS)
def test_float_op_is_registered(op: str) -> None:
    types = _types(op)
    assert types, f"{op} has no kernel"
    if op not in ("DEQUANTIZE", "QUANTIZE", "WHILE", "IF", "CALL_ONCE", "VAR_HANDLE",
                  "READ_VARIABLE", "ASSIGN_VARIABLE", "CAST", "SHAPE", "RANGE", "FILL",
                  "EMBEDDING_LOOKUP", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT", "REDUCE_ANY",
                  "SELECT", "SELECT_V2", "WHERE", "ONE_HOT"):
        assert "FLOAT32" in types, f"{op} has no float32 kernel: {sorted(types)}"


@pytest.mark.parametrize("op", INT8_UINT8_OPS + sorted(INT8_ONLY))
def test_integer_op_is_registered(op: str) -> None:
    types = _types(op)
    assert "INT8" in types, f"{op} has no int8 kernel: {sorted(types)}"
    if op not in INT8_ONLY:
        assert "UINT8" in types, f"{op} has no uint8 kernel: {sorted(types)}"


@pytest.mark.parametrize("op", INT16X8_OPS)
def test_int16x8_op_is_registered(op: str) -> None:
    assert "INT16" in _types(op), f"{op} has no int16 kernel: {sorted(_types(op))}"


@pytest.mark.parametrize("op", HYBRID_OPS.split())
def test_hybrid_op_is_registered(op: str) -> None:
    hybrid = [r for r in default_resolver().registrations(op)
              if r.when is not None and "FLOAT32" in r.types
              and r.prepare.__module__.endswith(("hybrid", "qsequence"))]
    assert hybrid, f"{op} has no hybrid (float input, int8 weights) kernel"
