"""Fixed-point arithmetic of TFLite's integer kernels, vectorized in numpy.

A real multiplier ``m`` (e.g. ``input_scale * filter_scale / output_scale``)
is stored as a Q31 integer and a power-of-two exponent; integer accumulators
are rescaled with it exactly as TFLite does. TFLite has two rounding modes:

* ``"double"`` — gemmlowp's: a rounding doubling high multiply, then a
  rounding right shift (the reference behaviour in most docs);
* ``"single"`` — one 64-bit multiply and one rounding shift
  (``TFLITE_SINGLE_ROUNDING``).

All functions take and return int64 numpy arrays (wide enough for every
intermediate) and never Python-loop over elements.
"""
from __future__ import annotations

from typing import Any

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

#: Rounding mode of ai-edge-litert's builtin integer kernels (verified by
#: tests/test_quant_math.py against the oracle).
DEFAULT_ROUNDING = "double"


def quantize_multiplier(real: Any) -> tuple[np.ndarray, np.ndarray]:
    """(Q31 multiplier, shift) with ``real ~= multiplier * 2**(shift - 31)``.

    Matches TFLite's ``QuantizeMultiplier``: frexp, round the fraction to
    31 bits, renormalize when rounding reaches 2**31, and flush multipliers
    too small to represent (shift < -31) to zero.
    """
    real = np.asarray(real, dtype=np.float64)
    frac, shift = np.frexp(real)
    q = round_half_away(frac * (1 << 31)).astype(np.int64)
    overflow = q == (1 << 31)
    q = np.where(overflow, q // 2, q)
    shift = np.where(overflow, shift + 1, shift).astype(np.int64)
    tiny = shift < -31
    q = np.where(tiny, 0, q)
    shift = np.where(tiny | (real == 0), 0, shift)
    return q.astype(np.int64), shift.astype(np.int64)


def round_half_away(x: Any) -> np.ndarray:
    """std::round: to nearest, ties away from zero (np.round ties to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.trunc(x + np.copysign(0.5, x))


def saturating_rounding_doubling_high_mul(a: Any, b: Any) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values (as int64)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C++ integer division truncates toward zero.
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: Any, exponent: Any) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: Any, multiplier: Any, shift: Any,
                                     rounding: str = DEFAULT_ROUNDING) -> np.ndarray:
    """Rescale int32 accumulators ``x`` by (multiplier, shift), TFLite-exact.

    ``multiplier`` and ``shift`` broadcast against ``x`` (per-channel works by
    passing arrays shaped for the channel axis). Result is int64 holding
    int32-range values.
    """
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if rounding == "single":
        total = 31 - shift
        result = (x * multiplier + (np.int64(1) << (total - 1))) >> total
        return np.clip(result, INT32_MIN, INT32_MAX)
    if rounding != "double":
        raise ValueError(f"rounding must be 'single' or 'double', got {rounding!r}")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(x << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier),
                                  right)


def saturate(x: Any, dtype: Any) -> np.ndarray:
    """Clamp to the range of an integer dtype and cast."""
    info = np.iinfo(dtype)
    return np.clip(x, info.min, info.max).astype(dtype)


def activation_range(activation: str, scale: float, zero_point: int, dtype: Any
                     ) -> tuple[int, int]:
    """Quantized (min, max) clamp of a fused activation (TFLite's
    CalculateActivationRangeQuantized)."""
    info = np.iinfo(dtype)
    lo, hi = info.min, info.max

    def q(v: float) -> int:
        return int(zero_point + round_half_away(np.float32(v) / np.float32(scale)))
    if activation == "RELU":
        lo = max(lo, q(0.0))
    elif activation == "RELU6":
        lo, hi = max(lo, q(0.0)), min(hi, q(6.0))
    elif activation == "RELU_N1_TO_1":
        lo, hi = max(lo, q(-1.0)), min(hi, q(1.0))
    elif activation != "NONE":
        raise ValueError(f"fused activation {activation!r} has no quantized range")
    return lo, hi


def multiply_by_quantized_multiplier_ruy(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """Rescale int32 accumulators the way ruy's x86 (AVX2/AVX-512) kernels do.

    TFLite's optimized int8 GEMMs (FULLY_CONNECTED, CONV_2D, BATCH_MATMUL on
    x86) hand the requantization to ruy, whose SIMD kernels round twice and
    break ties *upward*: ``(x * m + 2**30) >> 31``, then
    ``(r + 2**(e-1)) >> e`` with an overflow guard that returns ``1 << (31 - e)``
    when ``r + 2**(e-1)`` would exceed int32. The left shift wraps in 32 bits.
    """
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = ((x << left) - INT32_MIN) % (1 << 32) + INT32_MIN
    high = (shifted * multiplier + (1 << 30)) >> 31
    nudge = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    result = (high + nudge) >> right
    return np.where(high > INT32_MAX - nudge, np.int64(1) << (31 - right), result)


def multiply_by_quantized_multiplier_int64(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier(int64_t x, ...)`` (16x8 kernels).

    The Q31 multiplier is first reduced to 15 bits (rounded, saturating at
    0x7FFF), then one rounding shift by ``15 - shift`` (ties upward). Both
    rounding builds of TFLite use this form for int64 accumulators; the
    double-rounding build (ai-edge-litert's) then truncates the result to
    int32, so out-of-range results wrap as they do there.
    """
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - shift
    result = (x * reduced + (np.int64(1) << (total - 1))) >> total
    return (result - INT32_MIN) % (1 << 32) + INT32_MIN
