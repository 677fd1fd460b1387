"""CAST between every pair of numeric types TFLite's kernel takes.

Conversions follow TFLite's C++ kernel as built in ai-edge-litert:
floats to integers truncate toward zero and saturate to the target range,
NaN becoming the target's maximum; integers wrap (two's complement); any
value to BOOL is ``!= 0``; complex sources use their real part; and sources
other than FLOAT32/FLOAT16 reach FLOAT16 through float32, so they round
twice (to float32, then to float16), exactly as ``static_cast<float>`` then
``fp16_ieee_from_fp32_value`` does. Quantization parameters are ignored:
CAST converts the stored values.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .movement_common import Arrays
from .registry import register

CAST_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "INT8", "UINT8", "INT16", "UINT16",
                        "INT32", "UINT32", "INT64", "BOOL", "COMPLEX64"})

Converter = Callable[[np.ndarray, np.ndarray], None]


def _float_to_int(src: np.ndarray, out: np.ndarray) -> None:
    """Truncate toward zero, saturate, NaN -> max (LiteRT's float casts).

    numpy's cast truncates in-range values; the out-of-range ones (whatever
    numpy made of them) are then overwritten with the saturated values. The
    bounds are max + 1 (a power of two, exact in every float type or
    infinite) and min - 1 (which may round to min: harmless)."""
    info = np.iinfo(out.dtype)
    upper = np.array(float(info.max) + 1.0, dtype=src.dtype)
    lower = np.array(float(info.min) - 1.0, dtype=src.dtype)
    np.copyto(out, src, casting="unsafe")
    np.putmask(out, ~(src < upper), info.max)      # NaN compares False: it goes to max
    np.putmask(out, src <= lower, info.min)


def _via_float32(src: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, src.astype(np.float32), casting="unsafe")


def _plain(src: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, src, casting="unsafe")


def _real_then(convert: Converter) -> Converter:
    def run(src: np.ndarray, out: np.ndarray) -> None:
        convert(np.real(src), out)
    return run


def converter(src: np.dtype, dst: np.dtype) -> Converter:
    """The function writing ``src``-typed values into a ``dst``-typed array."""
    if src.kind == "c" and dst.kind != "c":
        return _real_then(converter(np.dtype(np.float32), dst))
    if dst == np.bool_:
        return lambda s, o: np.not_equal(s, 0, out=o)
    if src.kind == "f" and dst.kind in "iu":
        return _float_to_int
    if dst == np.float16 and src not in (np.float32, np.float16):
        return _via_float32
    return _plain


@register("CAST", versions=(1, 9), types=CAST_TYPES)
def prepare_cast(ctx: OpContext) -> Prepared:
    """CAST the input to the output's type, element by element."""
    ctx.expect_counts(1)
    x, out = ctx.input(0), ctx.outputs[0]
    if out.type_name not in CAST_TYPES:
        ctx.fail(f"casting to {out.type_name} is not supported")
    convert = converter(x.dtype, out.dtype)

    def run(ins: Arrays, outs: Arrays) -> None:
        with np.errstate(over="ignore", invalid="ignore"):   # overflow to inf is intended
            convert(ins[0], outs[0])
    return ctx.done(run, x.shape)
