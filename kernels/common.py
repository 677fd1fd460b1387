"""Helpers shared by kernel families: fused activations, broadcasting, padding."""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgeplex.core.kernel_api import OpContext

InPlace = Callable[[np.ndarray], None]

#: (low, high) clamp of each clamping fused activation.
_CLAMPS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def fused_activation(ctx: OpContext, name: str | None = None) -> InPlace | None:
    """In-place function applying the op's fused activation, or None for NONE.

    Unknown or unsupported activations are an UnsupportedOpError naming the op.
    """
    act = name if name is not None else getattr(ctx.options, "fused_activation_function", "NONE")
    if act == "NONE":
        return None
    if act in _CLAMPS:
        lo, hi = _CLAMPS[act]
        return lambda a: np.clip(a, lo, hi, out=a)
    if act == "TANH":
        return lambda a: np.tanh(a, out=a)
    if act == "SIGN_BIT":
        return lambda a: np.copyto(a, np.signbit(a).astype(a.dtype))
    ctx.fail(f"fused activation {act!r} is not supported")


def broadcast_shape(ctx: OpContext, *shapes: tuple[int, ...], max_rank: int = 6
                    ) -> tuple[int, ...]:
    """numpy broadcasting of ``shapes``, as a ModelError naming the op if impossible."""
    try:
        out = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ctx.invalid(f"input shapes {', '.join(str(list(s)) for s in shapes)} do not "
                          "broadcast") from None
    if len(out) > max_rank:
        ctx.fail(f"broadcasting to rank {len(out)} is not supported (max {max_rank})")
    return tuple(out)


def same_padding(in_size: int, filter_size: int, stride: int, dilation: int = 1
                 ) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of TFLite SAME padding on one axis."""
    eff = (filter_size - 1) * dilation + 1
    out = (in_size + stride - 1) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2, total - total // 2


def valid_padding(in_size: int, filter_size: int, stride: int, dilation: int = 1
                  ) -> tuple[int, int, int]:
    """(output size, 0, 0) of TFLite VALID padding on one axis."""
    eff = (filter_size - 1) * dilation + 1
    return max((in_size - eff + stride) // stride, 0), 0, 0


def window_padding(ctx: OpContext, padding: str, in_size: int, filter_size: int, stride: int,
                   dilation: int = 1) -> tuple[int, int, int]:
    """(output size, pad before, pad after) for ``padding`` SAME or VALID."""
    if stride < 1 or dilation < 1:
        raise ctx.invalid(f"stride {stride} and dilation {dilation} must be >= 1")
    if padding == "SAME":
        return same_padding(in_size, filter_size, stride, dilation)
    if padding == "VALID":
        return valid_padding(in_size, filter_size, stride, dilation)
    ctx.fail(f"padding {padding!r} is not supported")
