"""Fixed-point arithmetic of TFLite's integer kernels, vectorized in numpy.

A real multiplier ``m`` (e.g. ``input_scale * filter_scale / output_scale``)
is stored as a Q31 integer and a power-of-two exponent; integer accumulators
are rescaled with it exactly as TFLite does. TFLite has two rounding modes:

* ``"double"`` — gemmlowp's: a rounding doubling high multiply, then a
  rounding right shift (the reference behaviour in most docs);
* ``"single"`` — one 64-bit multiply and one rounding shift
  (``TFLITE_SINGLE_ROUNDING``).

ai-edge-litert's x86-64 wheel is built with double rounding
(:data:`DEFAULT_ROUNDING`; tests/test_quant_math.py proves it on inputs where
the two modes disagree).

All functions take and return int64 numpy arrays (wide enough for every
intermediate) and never Python-loop over elements. Where C++ relies on int32
wrap-around (``x * (1 << shift)`` overflowing) the result is wrapped the same
way with :func:`wrap_int32`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Sequence

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

try:                     # the clip ufunc itself: np.clip goes through four Python
    from numpy._core.umath import clip as _clip_ufunc       # layers (~2 us a call)
except ImportError:      # pragma: no cover - numpy < 2
    try:
        from numpy.core.umath import clip as _clip_ufunc
    except ImportError:
        _clip_ufunc = np.clip


def clip_into(x: np.ndarray, lo: Any, hi: Any, out: np.ndarray) -> None:
    """``np.clip(x, lo, hi, out=out)`` without np.clip's Python wrappers (the
    same ufunc, called directly: it matters for small tensors)."""
    _clip_ufunc(x, lo, hi, out=out)

#: Rounding mode of ai-edge-litert's builtin integer kernels (verified by
#: tests/test_quant_math.py against the oracle).
DEFAULT_ROUNDING = "double"


# -- multipliers -------------------------------------------------------------------
def quantize_multiplier(real: Any, rounding: str = DEFAULT_ROUNDING
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(Q31 multiplier, shift) with ``real ~= multiplier * 2**(shift - 31)``.

    Matches TFLite's ``QuantizeMultiplier``: frexp, round the fraction to
    31 bits, renormalize when rounding reaches 2**31, and flush multipliers
    too small to represent (shift < -31) to zero. With single rounding a
    shift above 30 saturates to (2**31 - 1, 30) as TFLite does.
    Negative multipliers give negative Q31 values (LEAKY_RELU's alpha).
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
    if rounding == "single":
        big = shift > 30
        q = np.where(big, INT32_MAX, q)
        shift = np.where(big, 30, shift)
    return q.astype(np.int64), shift.astype(np.int64)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp: 0 <= real < 1, shift <= 0.

    TFLite aborts the process on a multiplier outside [0, 1); this raises
    ValueError so a kernel's prepare can turn it into a clear error.
    """
    if not 0.0 <= real < 1.0:
        raise ValueError(f"multiplier {real!r} must be in [0, 1)")
    q, shift = quantize_multiplier(real)
    return int(q), int(shift)


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierGreaterThanOne: real > 1, shift >= 0."""
    if not real > 1.0:
        raise ValueError(f"multiplier {real!r} must be greater than 1")
    q, shift = quantize_multiplier(real)
    return int(q), int(shift)


def round_half_away(x: Any) -> np.ndarray:
    """std::round: to nearest, ties away from zero (np.round ties to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.trunc(x + np.copysign(0.5, x))


def round_half_away_f32(x: Any) -> np.ndarray:
    """std::round on float32 values (roundf), result as float32."""
    x = np.asarray(x, dtype=np.float32)
    return round_half_away(x).astype(np.float32)


# -- fixed-point primitives ----------------------------------------------------------
def wrap_int32(x: Any) -> np.ndarray:
    """Two's-complement wrap of int64 values to the int32 range (C++ overflow)."""
    return np.asarray(x, dtype=np.int64).astype(np.int32).astype(np.int64)


def wrap_int16(x: Any) -> np.ndarray:
    """Two's-complement wrap of int64 values to the int16 range."""
    return np.asarray(x, dtype=np.int64).astype(np.int16).astype(np.int64)


def saturating_rounding_doubling_high_mul(a: Any, b: Any) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values (as int64)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    # C++: (ab + (ab >= 0 ? 2**30 : 1 - 2**30)) / 2**31, truncating. For ab < 0
    # that is ceil((ab + 1 - 2**30) / 2**31) == floor((ab + 2**30) / 2**31), the
    # same floor as for ab >= 0: one arithmetic shift (ties round upward).
    high = (a * b + (1 << 30)) >> 31
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def saturating_rounding_doubling_high_mul16(a: Any, b: Any) -> np.ndarray:
    """The int16 SaturatingRoundingDoublingHighMul (Q15 multiply, as int64)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    total = ab + nudge
    high = np.where(total >= 0, total >> 15, -((-total) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, high)


def rounding_divide_by_pot(x: Any, exponent: Any) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def saturating_rounding_multiply_by_pot(x: Any, exponent: int, bits: int = 32) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT on ``bits``-wide values:
    a saturating left shift for exponent > 0, a rounding right shift below."""
    x = np.asarray(x, dtype=np.int64)
    if exponent <= 0:
        return rounding_divide_by_pot(x, -exponent)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    threshold = (1 << (bits - 1 - exponent)) - 1
    return np.where(x > threshold, hi, np.where(x < -threshold, lo, x << exponent))


def multiply_by_quantized_multiplier(x: Any, multiplier: Any, shift: Any,
                                     rounding: str = DEFAULT_ROUNDING) -> np.ndarray:
    """Rescale int32 accumulators ``x`` by (multiplier, shift), TFLite-exact.

    ``multiplier`` and ``shift`` broadcast against ``x`` (per-channel works by
    passing arrays shaped for the channel axis). Result is int64 holding
    int32-range values. The left shift of the double-rounding form wraps in
    int32 as the C++ ``x * (1 << left_shift)`` does.
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
    shifted = wrap_int32(x << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier),
                                  right)


#: TFLite's MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0) and
#: ...GreaterThanOne (shift >= 0) are the general function restricted.
multiply_by_quantized_multiplier_smaller_than_one_exp = multiply_by_quantized_multiplier
multiply_by_quantized_multiplier_greater_than_one = multiply_by_quantized_multiplier


def multiply_by_quantized_multiplier_int64(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """TFLite's int64-input MultiplyByQuantizedMultiplier (16x8 kernels):
    the multiplier reduced to 16 bits, one rounding shift, int32 wrap."""
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - shift
    return wrap_int32((x * reduced + (np.int64(1) << (total - 1))) >> total)


def requantize(x: Any, multiplier: int, shift: int, in_zero_point: int, out_zero_point: int,
               dtype: Any) -> np.ndarray:
    """TFLite's Requantize: rescale ``x - in_zp`` and add ``out_zp``, saturated."""
    acc = np.asarray(x, dtype=np.int64) - in_zero_point
    return saturate(multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zero_point,
                    dtype)


def float_to_int32(r: Any) -> np.ndarray:
    """C++ ``static_cast<int32_t>`` of floats as x86 does it: truncation, with
    out-of-range values and NaN giving INT32_MIN."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.abs(r) < 2.0**31
    return np.where(ok, np.trunc(np.where(ok, r, 0)).astype(np.int64), INT32_MIN)


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

    TFLite's optimized int8/uint8 GEMMs (FULLY_CONNECTED, CONV_2D on x86) hand
    the requantization to ruy, whose SIMD kernels round twice and break ties
    *upward* (TFLite's NEON code compiled for x86 through NEON_2_SSE,
    SQRDMULH then a rounding shift, gives the same results): ``(x * m + 2**30) >> 31``, then
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


def checked_log2(x: float) -> tuple[bool, int]:
    """TFLite's CheckedLog2: (is a power of two within 1e-3, rounded log2)."""
    x = np.float32(x)
    if x <= 0:
        return False, 0
    lg = np.float32(np.log(x)) * np.float32(1.0 / np.log(np.float32(2.0)))
    rounded = np.float32(round_half_away(lg))
    return bool(abs(lg - rounded) < np.float32(1e-3)), int(rounded)


def count_leading_zeros32(x: Any) -> np.ndarray:
    """Leading zero bits of non-negative int32 values (32 for zero)."""
    x = np.asarray(x, dtype=np.int64)
    bits = np.frexp(np.maximum(x, 1).astype(np.float64))[1].astype(np.int64)
    return np.where(x > 0, 32 - bits, 32)


def inv_sqrt_quantized_multiplier(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp (reverse shift) on int32 ``x``:
    (multiplier, shift) with multiplier * 2**(shift - 31) ~= 1 / sqrt(x),
    from 5 Newton-Raphson steps in gemmlowp Q3.28 fixed point, vectorized."""
    x = np.asarray(x, dtype=np.int64)
    small = x <= 1
    v = np.where(small, 2, x)
    shift = np.full(v.shape, 11, dtype=np.int64)
    for _ in range(2):                       # int32 input: at most 2 divisions by 4
        big = v >= (1 << 29)
        v = np.where(big, v // 4, v)
        shift = shift + big
    pairs = (count_leading_zeros32(v) - 1) // 2 - 1
    shift = shift - pairs
    v = v << (2 * pairs)
    f_in = v >> 1                             # Q3.28
    half_in = rounding_divide_by_pot(f_in, 1)
    three_halves = (1 << 28) + (1 << 27)
    srdhm = saturating_rounding_doubling_high_mul
    r = np.full(v.shape, 1 << 28, dtype=np.int64)
    for _ in range(5):
        x3 = saturating_rounding_multiply_by_pot(srdhm(srdhm(r, r), r), 6)
        diff = wrap_int32(srdhm(three_halves, r) - srdhm(half_in, x3))
        r = saturating_rounding_multiply_by_pot(diff, 3)
    r = srdhm(r, 1518500250)                  # * sqrt(2) / 2
    r = np.where(shift < 0, wrap_int32(r << np.maximum(-shift, 0)), r)
    shift = np.maximum(shift, 0)
    return np.where(small, INT32_MAX, r), np.where(small, 0, -shift)


# -- lookup tables ---------------------------------------------------------------------
def int8_lut(dtype: Any, in_scale: float, in_zp: int, out_scale: float, out_zp: int,
             fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """TFLite's LUTPopulate for int8/uint8: ``fn`` on every dequantized input
    in float32, requantized with roundf. Index with ``x.astype(np.uint8)``
    (TFLite's layout for int8: entry ``uint8(x)`` holds ``f(x)``)."""
    info = np.iinfo(dtype)
    vals = np.arange(info.min, info.max + 1, dtype=np.int64)
    deq = np.float32(in_scale) * (vals - in_zp).astype(np.float32)
    out = np.asarray(fn(deq), dtype=np.float32)
    inv = np.float32(1.0) / np.float32(out_scale)
    rescaled = round_half_away_f32(out * inv)
    q = (rescaled + np.float32(out_zp)).astype(np.int64)   # float -> int32 truncation
    table = np.empty(256, dtype=dtype)
    table[vals.astype(dtype).view(np.uint8)] = np.clip(q, info.min, info.max).astype(dtype)
    return table


def lookup(table: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """out[...] = table[x] for a 256-entry (int8/uint8) or 65536-entry (int16) table."""
    if x.dtype == np.int16:
        np.take(table, x.view(np.uint16), out=out)
    else:
        np.take(table, x.view(np.uint8), out=out)


def full_int16_table(fn: Callable[[np.ndarray], np.ndarray], dtype: Any = np.int16
                     ) -> np.ndarray:
    """A 65536-entry table of an int16 -> ``dtype`` function, indexed by uint16 view."""
    vals = np.arange(-32768, 32768, dtype=np.int64)
    table = np.empty(65536, dtype=dtype)
    table[vals.astype(np.int16).view(np.uint16)] = fn(vals)
    return table


def int16_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int,
              fn: Callable[[np.ndarray], np.ndarray], float_type: Any = np.float32
              ) -> np.ndarray:
    """TFLite's 513-entry LUTPopulate<int16_t> (interpolated table), computed in
    ``float_type`` as the C++ template parameter says."""
    ft = np.dtype(float_type).type
    in_min = ft(in_scale) * ft(-32768 - in_zp)
    in_max = ft(in_scale) * ft(32767 - in_zp)
    out_min = ft(out_scale) * ft(-32768 - out_zp)
    out_max = ft(out_scale) * ft(32767 - out_zp)
    step = (in_max - in_min) / ft(512)
    half = step / ft(2)
    inv = ft(65536) / (out_max - out_min)
    i = np.arange(512).astype(ft)
    val = np.asarray(fn(in_min + i * step), dtype=ft)
    mid = np.asarray(fn(in_min + i * step + half), dtype=ft)
    nxt = np.asarray(fn(in_min + (i + ft(1)) * step), dtype=ft)
    rnd = lambda v: round_half_away(v).astype(ft)  # noqa: E731 - TfLiteRound in ft
    sample = rnd(val * inv)
    interp = rnd((nxt * inv + rnd(val * inv)) / ft(2))
    bias = rnd((interp - rnd(mid * inv)) / ft(2))
    lut = np.empty(513, dtype=np.int64)
    lut[:512] = np.clip(sample - bias, -32768, 32767)
    last = np.asarray(fn(np.asarray([in_max], dtype=ft)), dtype=ft)
    lut[512] = np.clip(rnd(last * inv), -32768, 32767)[0]
    return lut


def int16_lut_lookup(x: Any, lut: np.ndarray) -> np.ndarray:
    """TFLite's interpolating int16 LUTLookup (x as int64 in int16 range)."""
    x = np.asarray(x, dtype=np.int64)
    index = 256 + (x >> 7)
    offset = x & 0x7F
    base = lut[index]
    slope = lut[index + 1] - base
    return wrap_int16(base + ((slope * offset + 64) >> 7))


# -- requantization in closed form ---------------------------------------------------------
#
# Every fixed-point rescale above ends in floor divisions by powers of two, and
# nested floor divisions by positive integers compose: floor(floor(a / p) + k) / q)
# == floor((a + k * p) / (p * q)) for integer k. So for int32 accumulators x
# that cannot make the C++ code wrap or saturate, each rounding mode is
#
#     result = floor((x * M + C) / 2**S)
#
# with per-channel integers M, C, S (M = multiplier << left shift, S = 31 +
# right shift):
#   "ruy":    C = 2**30 + 2**(30 + r)          (both roundings tie upward);
#   "double": the same, minus 2**31 where x * M < -2**30: gemmlowp's high
#             multiply ties upward, but RoundingDivideByPOT ties away from
#             zero, which for a negative high product is one 2**31 step lower;
#   "int64":  M = the 15-bit multiplier, S = 15 - shift, C = 2**(S - 1).
# With a bias b and output zero point z folded in (x = acc + b, C + b * M +
# z * 2**S), a whole requantization is a few int64 passes into preallocated
# buffers: convert, multiply, add, shift, clamp, store. closed_form_requant()
# proves from a bound on |acc| that int64 never overflows and the C++ code
# never wraps; when it cannot, callers keep the step-by-step functions above.

_INT64_ROOM = 1 << 62          # |intermediate| stays below this (one bit of margin)


@dataclass(frozen=True)
class ClosedFormRequant:
    """``clip(floor((acc * mult + offset) / 2**shift), lo, hi)`` in int64, exactly a TFLite
    requantization of ``acc + bias`` (see :func:`closed_form_requant`).

    Arrays broadcast along the last (channel) axis of ``acc``. ``negative_below``
    is set for double rounding: values below it lose ``correction`` (ties of
    negative numbers round away from zero).
    """

    mult: np.ndarray
    offset: np.ndarray
    shift: np.ndarray | int
    lo: int
    hi: int
    negative_below: np.ndarray | None = None
    correction: np.ndarray | None = None
    work_dtype = np.int64

    def __call__(self, acc: np.ndarray, work: np.ndarray, out: np.ndarray,
                 mask: np.ndarray | None = None) -> None:
        """Requantize ``acc`` (integer-valued, any numeric dtype) into ``out``;
        ``work`` is an int64 buffer of acc's shape, ``mask`` a bool one (double
        rounding only). Allocates nothing."""
        np.copyto(work, acc, casting="unsafe")
        np.multiply(work, self.mult, out=work)
        np.add(work, self.offset, out=work)
        if self.negative_below is not None:
            np.less(work, self.negative_below, out=mask)
            np.subtract(work, self.correction, out=work, where=mask)
        np.right_shift(work, self.shift, out=work)
        clip_into(work, self.lo, self.hi, work)
        np.copyto(out, work, casting="unsafe")

    def target(self, out: np.ndarray) -> np.ndarray:
        """The view of an output array that calls write (``out`` itself)."""
        return out

    @property
    def needs_mask(self) -> bool:
        """True when calls need a bool ``mask`` buffer."""
        return self.negative_below is not None

    def tiled(self, shape: tuple[int, ...]) -> "ClosedFormRequant":
        """The same, with per-channel arrays laid out in full ``shape``: numpy
        then runs plain same-shape loops (no broadcasting iterator, which
        costs 2-3x on small tensors and a 64 KiB buffer per call)."""
        return _tiled(self, shape)


def _tiled(form: Any, shape: tuple[int, ...]) -> Any:
    changes = {f.name: np.ascontiguousarray(np.broadcast_to(getattr(form, f.name), shape))
               for f in fields(form) if isinstance(getattr(form, f.name), np.ndarray)
               and getattr(form, f.name).ndim > 0}
    return replace(form, **changes)


def closed_form_requant(multiplier: Any, shift: Any, rounding: str | Sequence[str], bias: Any,
                        zero_point: int, lo: int, hi: int, acc_bound: Any
                        ) -> ClosedFormRequant | None:
    """The closed form of requantizing ``acc + bias`` per channel, or None when
    it cannot be proven equal to the step-by-step functions.

    ``multiplier``/``shift`` are quantize_multiplier's Q31 values, ``rounding``
    is "ruy" (multiply_by_quantized_multiplier_ruy), "double"
    (multiply_by_quantized_multiplier) or "int64"
    (multiply_by_quantized_multiplier_int64), or one of those per channel; the
    result is ``clip(rescaled + zero_point, lo, hi)``. ``acc_bound`` bounds
    |acc| per channel (all arguments broadcast to the channel count).
    """
    forms = _channel_forms(multiplier, shift, rounding, bias, acc_bound)
    if forms is None:
        return None
    big_m, c, sh, dbl, b, bound = forms
    base = c + zero_point * (1 << sh)
    total = base + b * big_m
    top = int(sh.max())
    k = top - sh
    room = (bound * big_m + np.abs(total) + (1 << 31))
    uniform = bool(np.all(room << k < _INT64_ROOM))
    if not uniform:
        if not np.all(room < _INT64_ROOM):
            return None
        k = k * 0
    below = np.where(dbl, (base - (1 << 30)) << k, -(1 << 63))
    corr = np.where(dbl, 1 << (31 + k), 0)
    double = bool(dbl.any())
    return ClosedFormRequant(_int64(big_m << k), _int64(total << k),
                             top if uniform else _int64(sh), lo, hi,
                             _int64(below) if double else None, _int64(corr) if double else None)


def _int64(v: np.ndarray) -> np.ndarray:
    """An object array of Python ints as int64 (one channel: a scalar)."""
    return np.array(int(v[0]) if v.size == 1 else v.astype(np.int64), dtype=np.int64)


def _channel_forms(multiplier: Any, shift: Any, rounding: str | Sequence[str], bias: Any,
                   acc_bound: Any) -> tuple[np.ndarray, ...] | None:
    """Per channel (M, C, S, double-rounding flag, bias, bound) as arrays of
    exact Python integers (object dtype), or None if some x = acc + bias might
    wrap or saturate in the C++ arithmetic for |acc| <= bound, or a rounding
    mode is unknown."""
    m, s, b, bound = (np.array([int(v) for v in a], dtype=object) for a in np.broadcast_arrays(
        *(np.asarray(v, dtype=np.int64).reshape(-1)
          for v in (multiplier, shift, bias, acc_bound))))
    modes = [rounding] * m.size if isinstance(rounding, str) else list(rounding)
    if len(modes) != m.size or any(r not in ("ruy", "double", "int64") for r in modes) or \
            np.any(m < 0):
        return None
    is64 = np.array([r == "int64" for r in modes])
    x_max = bound + np.abs(b)
    # int64 rounding (16x8): a 15-bit multiplier, one rounding shift, no wrap.
    reduced = np.where(m >= 0x7FFF0000, 0x7FFF, (m + (1 << 15)) >> 16)
    total = 15 - s
    safe_total = np.where(total >= 1, total, 1)
    ok64 = (total >= 1) & (x_max * reduced + (1 << safe_total) < _INT64_ROOM) & \
        ((x_max * reduced >> safe_total) + 1 < (1 << 31))
    # ruy / double: x << left must not wrap, nor ruy's overflow guard fire.
    left, right = np.maximum(s, 0), np.maximum(-s, 0)
    ok32 = (right <= 31) & ((x_max << left) + (1 << np.minimum(right, 62)) < (1 << 31))
    if not np.all(np.where(is64, ok64, ok32)):
        return None
    big_m = np.where(is64, reduced, m << left)
    c = np.where(is64, 1 << (safe_total - 1),
                 (1 << 30) + np.where(right > 0, 1 << (30 + right), 0))
    sh = np.where(is64, total, 31 + right)
    dbl = np.array([r == "double" for r in modes]) & (right > 0).astype(bool)
    return big_m, c, sh, dbl, b, bound


# -- the closed form in float64 -------------------------------------------------------------
#
# The same floor((x * M + C) / 2**S) is exact in float64 when every integer
# involved stays below 2**53: then z = acc * (M / 2**S) + C' / 2**S holds the
# exact quotient (power-of-two scaling is exact), and so does any partial sum
# of a GEMM or einsum whose weights were scaled by M / 2**S per channel, in any
# order: every partial sum is an integer below 2**53 times 2**-S. The floor
# then comes for free: with the output type's -min added to C' (so that the
# clamped z is >= 0) a truncating cast to the unsigned type of the same width
# is the floor, and flipping the sign bit (XOR) turns it back into the signed
# value. A requantization becomes clamp, cast, XOR after the GEMM (which also
# adds the offset, as a row of weights against a column of ones).

_FLOAT64_EXACT = 1 << 53
_UNSIGNED = {np.dtype(np.int8): np.uint8, np.dtype(np.uint8): np.uint8,
             np.dtype(np.int16): np.uint16, np.dtype(np.uint16): np.uint16}


@dataclass(frozen=True)
class ScaledRequant:
    """TFLite's requantization of ``acc + bias`` as float64 ``z = acc * scale +
    offset`` (exact; see :func:`scaled_requant`), then clamp and truncate."""

    scale: np.ndarray          # float64 per channel: M / 2**S
    offset: np.ndarray         # float64 per channel: (C + b*M + (zp - min) * 2**S) / 2**S
    lo: float                  # clamp bounds, shifted by -min of the output type
    hi: float
    unsigned: type             # np.uint8 or np.uint16: the output's unsigned view
    flip: int                  # sign bit to flip back (0 for unsigned outputs)
    negative_below: np.ndarray | None = None
    correction: np.ndarray | None = None
    work_dtype = np.float64

    def __call__(self, acc: np.ndarray, work: np.ndarray, out: np.ndarray,
                 mask: np.ndarray | None = None) -> None:
        """Requantize integer-valued ``acc`` into ``out`` through the float64
        buffer ``work`` (and a bool ``mask`` for double rounding)."""
        np.copyto(work, acc)                       # a mixed-type multiply would buffer
        np.multiply(work, self.scale, out=work)
        np.add(work, self.offset, out=work)
        self.finish(work, out, mask)

    def finish(self, z: np.ndarray, out: np.ndarray, mask: np.ndarray | None = None) -> None:
        """``out`` from ``z`` that already holds ``acc * scale + offset``."""
        if self.negative_below is not None:
            np.less(z, self.negative_below, out=mask)
            np.subtract(z, self.correction, out=z, where=mask)
        clip_into(z, self.lo, self.hi, z)
        u = out if out.dtype.type is self.unsigned else out.view(self.unsigned)
        np.copyto(u, z, casting="unsafe")          # truncation of z >= 0: the floor
        if self.flip:
            np.bitwise_xor(u, self.flip, out=u)

    def target(self, out: np.ndarray) -> np.ndarray:
        """The view of an output array that calls write (its unsigned view;
        made once by callers that reuse the same output)."""
        return out.view(self.unsigned)

    @property
    def needs_mask(self) -> bool:
        """True when calls need a bool ``mask`` buffer."""
        return self.negative_below is not None

    def tiled(self, shape: tuple[int, ...]) -> "ScaledRequant":
        """The same with per-channel arrays in full ``shape`` (see
        :meth:`ClosedFormRequant.tiled`)."""
        return _tiled(self, shape)


def scaled_requant(multiplier: Any, shift: Any, rounding: str | Sequence[str], bias: Any,
                   zero_point: int, lo: int, hi: int, acc_bound: Any, dtype: Any
                   ) -> ScaledRequant | None:
    """:func:`closed_form_requant` in float64 for outputs of ``dtype`` (8 or 16
    bits), or None when some integer could reach 2**53 (or the closed form
    itself is refused)."""
    dtype = np.dtype(dtype)
    if dtype not in _UNSIGNED:
        return None
    forms = _channel_forms(multiplier, shift, rounding, bias, acc_bound)
    if forms is None:
        return None
    big_m, c, sh, dbl, b, bound = forms
    lift = -int(np.iinfo(dtype).min)
    base = c + (zero_point + lift) * (1 << sh)
    total = base + b * big_m
    if not np.all(bound * big_m + np.abs(total) + (1 << 31) < _FLOAT64_EXACT):
        return None
    neg = (-sh).astype(np.int64)

    def f64(v: np.ndarray) -> np.ndarray:     # exact: every |v| < 2**53
        out = np.ldexp(v.astype(np.float64), neg)
        return np.array(out[0]) if out.size == 1 else out
    double = bool(dbl.any())
    below = f64(np.where(dbl, base - (1 << 30), -_FLOAT64_EXACT))     # never below that
    corr = f64(np.where(dbl, 1 << 31, 0))
    return ScaledRequant(f64(big_m), f64(total), float(lo + lift), float(hi + lift),
                         _UNSIGNED[dtype], 1 << (8 * dtype.itemsize - 1) if lift else 0,
                         below if double else None, corr if double else None)
