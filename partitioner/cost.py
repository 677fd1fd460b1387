"""Rough time estimates for the ``cost`` placement policy.

Only shapes are used, never tensor data. The numbers are deliberately
simple: what matters is the comparison between running a node here or
there and paying for the tensors that must move.
"""
from __future__ import annotations

from math import prod
from typing import Sequence

#: What numpy kernels sustain on one core for dense math (multiply-adds count 2).
CPU_FLOPS_PER_SECOND = 5e9
#: Python and dispatch overhead of one CPU kernel step.
CPU_STEP_SECONDS = 4e-6
#: Default bandwidth between host memory and a delegate's memory domain.
TRANSFER_BYTES_PER_SECOND = 4e9
#: Fixed cost of one transfer (synchronisation, a driver call).
TRANSFER_SECONDS = 20e-6

Shape = Sequence[int] | None


def _size(shape: Shape) -> int:
    return int(prod(int(d) for d in shape)) if shape is not None else 0


def node_flops(op: str, in_shapes: Sequence[Shape], out_shapes: Sequence[Shape]) -> float:
    """Floating-point operations of one node (multiply-add = 2), from shapes.

    Convolutions and matrix products count their multiply-adds; everything
    else counts one operation per output (or input) element.
    """
    out = _size(out_shapes[0]) if out_shapes else 0
    w = in_shapes[1] if len(in_shapes) > 1 else None
    if op == "CONV_2D" and w is not None and len(w) == 4:
        return 2.0 * out * _size(w[1:])          # weights [O, KH, KW, I]
    if op == "TRANSPOSE_CONV" and w is not None and len(w) == 4 and len(in_shapes) > 2:
        return 2.0 * _size(in_shapes[2]) * _size(w[:3])
    if op == "DEPTHWISE_CONV_2D" and w is not None and len(w) == 4:
        return 2.0 * out * w[1] * w[2]
    if op == "CONV_3D" and w is not None and len(w) == 5:
        return 2.0 * out * w[0] * w[1] * w[2] * w[3]
    if op == "FULLY_CONNECTED" and w is not None and len(w) == 2:
        return 2.0 * out * w[1]
    if op == "BATCH_MATMUL" and in_shapes and in_shapes[0] is not None and len(in_shapes[0]) >= 2:
        return 2.0 * out * in_shapes[0][-1]
    largest_in = max((_size(s) for s in in_shapes), default=0)
    return float(max(out, largest_in))


def cpu_seconds(flops: float) -> float:
    """Estimated CPU time of a node doing ``flops`` operations."""
    return CPU_STEP_SECONDS + flops / CPU_FLOPS_PER_SECOND


def transfer_seconds(nbytes: int, bytes_per_second: float = TRANSFER_BYTES_PER_SECOND) -> float:
    """Estimated time to move ``nbytes`` between two memory domains."""
    return TRANSFER_SECONDS + nbytes / bytes_per_second
