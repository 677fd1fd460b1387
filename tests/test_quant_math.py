"""Unit tests of kernels/quant_math.py, and the oracle test that fixes
DEFAULT_ROUNDING: it finds inputs where double and single rounding disagree
and shows which one ai-edge-litert's builtin kernels produce."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeplex import Quantization
from edgeplex.kernels import quant_math as qm
from oracle import inp, one_op_model, run_litert


# -- quantize_multiplier -----------------------------------------------------------------
@given(st.floats(2.0 ** -40, 2.0 ** 20))
def test_quantize_multiplier_represents_the_real_value(real: float) -> None:
    q, shift = qm.quantize_multiplier(real)
    if shift == 0 and q == 0:                 # flushed: below 2**-31 after rounding
        assert real < 2.0 ** -31
        return
    assert 2**30 <= int(q) <= qm.INT32_MAX
    assert abs(int(q) * 2.0 ** (int(shift) - 31) - real) <= real * 2.0 ** -31


@pytest.mark.parametrize("real, want", [
    (0.0, (0, 0)),
    (1.0, (2**30, 1)),
    (0.5, (2**30, 0)),
    (1 - 2**-40, (2**30, 1)),                # rounds up to 2**31: renormalized
    (2.0 ** -31, (2**30, -30)),
    (2.0 ** -33, (0, 0)),                    # shift < -31 flushes to zero
    (-0.75, (-(3 << 29), 0)),                # negative multipliers keep their sign
])
def test_quantize_multiplier_edges(real: float, want: tuple[int, int]) -> None:
    assert tuple(int(v) for v in qm.quantize_multiplier(real)) == want


def test_quantize_multiplier_single_rounding_saturates_large_shifts() -> None:
    assert tuple(int(v) for v in qm.quantize_multiplier(2.0 ** 40, "single")) == \
        (qm.INT32_MAX, 30)
    assert int(qm.quantize_multiplier(2.0 ** 40, "double")[1]) == 41


def test_smaller_than_one_and_greater_than_one_check_their_range() -> None:
    assert qm.quantize_multiplier_smaller_than_one_exp(0.25) == (2**30, -1)
    assert qm.quantize_multiplier_greater_than_one(3.0) == (3 << 29, 2)
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="must be in"):
            qm.quantize_multiplier_smaller_than_one_exp(bad)
    with pytest.raises(ValueError, match="greater than 1"):
        qm.quantize_multiplier_greater_than_one(1.0)


# -- fixed-point primitives ---------------------------------------------------------------
def test_srdhm_saturates_int32_min_squared_and_rounds_ties_up() -> None:
    f = qm.saturating_rounding_doubling_high_mul
    assert int(f(qm.INT32_MIN, qm.INT32_MIN)) == qm.INT32_MAX
    assert int(f(qm.INT32_MIN, qm.INT32_MAX)) == -qm.INT32_MAX
    # a*b / 2**31 == -0.5 and -1.5: gemmlowp's nudge rounds these toward +inf
    assert int(f(-(2**15), 2**15)) == 0
    assert int(f(-3 * 2**15, 2**15)) == -1
    assert int(f(3 * 2**15, 2**15)) == 2                      # +1.5 -> 2


@pytest.mark.parametrize("x, exp, want", [
    (5, 1, 3), (-5, 1, -3), (6, 2, 2), (-6, 2, -2), (-7, 2, -2), (7, 2, 2),
    (qm.INT32_MIN, 31, -1), (qm.INT32_MAX, 31, 1), (-1, 0, -1), (12345, 0, 12345)])
def test_rounding_divide_by_pot_ties_away_from_zero(x: int, exp: int, want: int) -> None:
    assert int(qm.rounding_divide_by_pot(x, exp)) == want


def test_multiply_by_quantized_multiplier_near_one_and_near_zero() -> None:
    one = qm.quantize_multiplier(1.0)                      # (2**30, shift 1)
    x = np.array([-(2**30), -7, 0, 7, 2**30 - 1], dtype=np.int64)
    assert np.array_equal(qm.multiply_by_quantized_multiplier(x, *one), x)
    # beyond 2**30 the C++ left shift x * (1 << 1) wraps: INT32_MAX -> -2 -> -1
    assert int(qm.multiply_by_quantized_multiplier(qm.INT32_MAX, *one)) == -1
    almost_one = qm.quantize_multiplier(1 - 2.0 ** -30)
    assert int(qm.multiply_by_quantized_multiplier(qm.INT32_MAX, *almost_one)) == \
        qm.INT32_MAX - 2
    tiny = qm.quantize_multiplier(2.0 ** -31)
    assert int(qm.multiply_by_quantized_multiplier(2**30, *tiny)) == 1   # 0.5 rounds away
    assert int(qm.multiply_by_quantized_multiplier(-(2**30), *tiny)) == -1


def test_multiply_by_quantized_multiplier_large_left_shift_wraps_like_cpp() -> None:
    # x * (1 << 8) overflows int32 in C++ and wraps before the high multiply.
    x, (m, s) = 2**24, qm.quantize_multiplier(256.0)
    assert int(qm.multiply_by_quantized_multiplier(x, m, s)) == \
        int(qm.saturating_rounding_doubling_high_mul(qm.wrap_int32(x << 9), m))


@pytest.mark.parametrize("x, m, shift, want", [
    (3, 2**30, -1, 1),        # 0.75 -> 1
    (-3, 2**30, -1, -1),      # -0.75 -> -1
    (1, 2**30, -1, 0),        # exact tie 0.25? no: 1*0.25 -> 0
    (2, 2**30, -1, 1),        # exact tie 0.5: single rounds half up
    (-2, 2**30, -1, 0),       # -0.5: single rounds toward +inf, double away from zero
])
def test_single_rounding_ties(x: int, m: int, shift: int, want: int) -> None:
    assert int(qm.multiply_by_quantized_multiplier(x, m, shift, "single")) == want


def test_double_and_single_rounding_differ_on_negative_ties() -> None:
    assert int(qm.multiply_by_quantized_multiplier(-2, 2**30, -1, "double")) == -1
    assert int(qm.multiply_by_quantized_multiplier(-2, 2**30, -1, "single")) == 0


def test_int64_multiply_reduces_the_multiplier_to_16_bits() -> None:
    m, s = qm.quantize_multiplier(0.3)
    x = np.array([-(2**32), -12345678, 0, 987654321, 2**32], dtype=np.int64)
    got = qm.multiply_by_quantized_multiplier_int64(x, m, s)
    assert np.all(np.abs(got - np.round(x * 0.3)) <= np.abs(x) * 2.0 ** -16 + 1)
    assert int(qm.multiply_by_quantized_multiplier_int64(1, 0x7FFF8000, 0)) == 1


def test_saturate_and_activation_range() -> None:
    assert np.array_equal(qm.saturate(np.array([-300, -5, 300]), np.int8), [-128, -5, 127])
    assert qm.activation_range("NONE", 0.1, 3, np.int8) == (-128, 127)
    assert qm.activation_range("RELU", 0.1, 3, np.int8) == (3, 127)
    assert qm.activation_range("RELU6", 0.1, 3, np.int8) == (3, 63)
    assert qm.activation_range("RELU_N1_TO_1", 0.1, 3, np.uint8) == (0, 13)
    assert qm.activation_range("RELU6", 0.01, 0, np.int16) == (0, 600)
    with pytest.raises(ValueError, match="TANH"):
        qm.activation_range("TANH", 0.1, 0, np.int8)


def test_checked_log2() -> None:
    assert qm.checked_log2(2.0 ** -12) == (True, -12)
    assert qm.checked_log2(0.3)[0] is False
    assert qm.checked_log2(0.0) == (False, 0)


def test_int8_lut_layout_and_rounding() -> None:
    table = qm.int8_lut(np.int8, 0.5, 0, 0.5, 0, lambda v: v)     # identity
    assert np.array_equal(table[np.arange(-128, 128).astype(np.int8).view(np.uint8)],
                          np.arange(-128, 128))
    out = np.empty(3, np.int8)
    qm.lookup(table, np.array([-128, 0, 127], np.int8), out)
    assert list(out) == [-128, 0, 127]


def test_int16_lut_interpolates_a_linear_function_exactly() -> None:
    lut = qm.int16_lut(1 / 32768, 0, 1 / 32768, 0, lambda v: v)
    x = np.arange(-32768, 32768, 97)
    assert np.all(np.abs(qm.int16_lut_lookup(x, lut) - x) <= 1)


# -- which rounding LiteRT uses ------------------------------------------------------------
def _mul_case() -> tuple[bytes, np.ndarray, np.ndarray, int, int]:
    """An int8 MUL whose multiplier has a right shift, and every input pair."""
    s1, s2, so = np.float32(0.5), np.float32(0.5), np.float32(0.5 * 0.5 * 4)   # real 0.25
    model = one_op_model("MUL", [inp((256 * 256,), np.int8, Quantization.of(s1, 0)),
                                 inp((256 * 256,), np.int8, Quantization.of(s2, 0))],
                         {"fused_activation_function": "NONE"}, out_dtype=np.int8,
                         out_quantization=Quantization.of(so, 0))
    v = np.arange(-128, 128, dtype=np.int64)
    a, b = (g.reshape(-1) for g in np.meshgrid(v, v, indexing="ij"))
    m, s = (int(x) for x in qm.quantize_multiplier(float(s1 * s2 / so)))
    return model, a, b, m, s


@pytest.mark.parametrize("resolver", ["builtin", "ref"])
def test_default_rounding_is_what_litert_uses(resolver: str) -> None:
    """Products a*b with a*b/4 an exact negative half: double rounding (ties
    away from zero) and single rounding (ties toward +inf) give different
    results; LiteRT's kernels match DEFAULT_ROUNDING on all 65536 pairs."""
    model, a, b, m, s = _mul_case()
    double = np.clip(qm.multiply_by_quantized_multiplier(a * b, m, s, "double"), -128, 127)
    single = np.clip(qm.multiply_by_quantized_multiplier(a * b, m, s, "single"), -128, 127)
    assert (double != single).sum() > 100            # the case does separate the two
    got = run_litert(model, [a.astype(np.int8), b.astype(np.int8)], resolver)[0]
    assert np.array_equal(got, double if qm.DEFAULT_ROUNDING == "double" else single)
    assert qm.DEFAULT_ROUNDING == "double"
    assert not np.array_equal(got, single)


def test_inv_sqrt_quantized_multiplier_approximates_one_over_sqrt() -> None:
    x = np.array([2, 3, 17, 1000, 65025, 2**29 - 1, 2**29, 2**31 - 1], dtype=np.int64)
    m, s = qm.inv_sqrt_quantized_multiplier(x)
    approx = m.astype(np.float64) * 2.0 ** (s.astype(np.float64) - 31)
    # 5 Newton steps from 1.0 in Q3.28: a few parts per million at worst
    np.testing.assert_allclose(approx, 1 / np.sqrt(x), rtol=5e-6)
    m0, s0 = qm.inv_sqrt_quantized_multiplier(np.array([0, 1]))
    assert m0.tolist() == [qm.INT32_MAX] * 2 and s0.tolist() == [0, 0]


def test_count_leading_zeros32() -> None:
    assert qm.count_leading_zeros32(np.array([0, 1, 2, 3, 2**30, 2**31 - 1])).tolist() == \
        [32, 31, 30, 30, 1, 1]


def test_per_channel_multipliers_broadcast_along_a_channel_axis() -> None:
    """Arrays of real multipliers quantize elementwise; (multiplier, shift)
    shaped for the channel axis rescale a whole accumulator tensor at once."""
    reals = np.array([0.9, 0.3, 1e-3, 2.5, 0.0])
    m, s = qm.quantize_multiplier(reals)
    for i, r in enumerate(reals):
        assert (int(m[i]), int(s[i])) == tuple(int(v) for v in qm.quantize_multiplier(r))
    acc = np.arange(-600, 600, 7, dtype=np.int64).reshape(-1, 1) * np.ones((1, 5), np.int64)
    got = qm.multiply_by_quantized_multiplier(acc, m, s)
    for c in range(5):
        assert np.array_equal(got[:, c], qm.multiply_by_quantized_multiplier(acc[:, c], m[c], s[c]))
    assert np.all(np.abs(got - np.round(acc * reals)) <= 1)
