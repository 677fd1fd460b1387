"""QUANTIZE / DEQUANTIZE against LiteRT.

Resolvers: edgeplex follows LiteRT's reference kernels, which compute each
element by the documented formula. LiteRT's builtin x86 kernels differ only
on exact ties and only for whole 8/16-element blocks (NEON code through
NEON_2_SSE): float QUANTIZE multiplies by 1/scale and rounds ties to even,
int8/uint8 requantize rounds negative ties toward +inf, int8/uint8 DEQUANTIZE
computes x*s + (-zp*s) with two float roundings. So:
* integer outputs: bit-exact against the reference kernels on every input,
  and against the builtin kernels on random (tie-free) float inputs;
* float DEQUANTIZE output: exact against the reference kernel; against the
  builtin one within 2 ulp of the largest |q - zp| * scale term, the error of
  its two-rounding form.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgeplex
from edgeplex import Quantization
from oracle import check, const, inp, one_op_model, run_edgeplex, run_litert
from quant_cases import INT_DTYPES, check_exact, qparam, real_range

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


def _qp(dname: str) -> st.SearchStrategy[Quantization]:
    dtype = INT_DTYPES[dname]
    return qparam(dtype, -10, 2)


# -- QUANTIZE float -> int ----------------------------------------------------------------
@pytest.mark.parametrize("dname", list(INT_DTYPES))
@given(shape=shapes, q=st.data(), seed=st.integers(0, 2**16))
def test_quantize_float_to_int(dname: str, shape: tuple, q: Any, seed: int) -> None:
    """Random reals over (beyond) the output range; both LiteRT resolvers."""
    dtype = INT_DTYPES[dname]
    qp = q.draw(_qp(dname))
    lo, hi = real_range(qp, dtype)
    x = np.random.default_rng(seed).uniform(lo * 1.2, hi * 1.2, shape).astype(np.float32)
    model = one_op_model("QUANTIZE", [inp(shape, np.float32)], out_dtype=dtype,
                         out_quantization=qp)
    check_exact(model, [x], "ref")
    r = x / qp.scale[0]
    x = np.where(r - np.floor(r) == 0.5, np.nextafter(x, np.float32(np.inf)), x)  # no ties
    check_exact(model, [x], "builtin")


@pytest.mark.parametrize("dname", list(INT_DTYPES))
def test_quantize_exact_ties_round_half_away_like_reference(dname: str) -> None:
    """x = (k + 1/2) * scale: the reference rounds away from zero; the builtin
    kernel rounds these to even on 8-element blocks."""
    dtype = INT_DTYPES[dname]
    q = Quantization.of(0.25, 0)
    x = ((np.arange(35) - 17 + 0.5) * 0.25).astype(np.float32)
    model = one_op_model("QUANTIZE", [inp((35,), np.float32)], out_dtype=dtype,
                         out_quantization=q)
    got = check_exact(model, [x], "ref")[0]
    assert not np.array_equal(got, run_litert(model, [x])[0])   # builtin: ties to even


def test_quantize_saturates_inf_and_huge_values_like_litert() -> None:
    """Out-of-int32 values convert to INT32_MIN in C++, then get clamped."""
    x = np.array([np.inf, -np.inf, 1e20, -1e20, 3.0, -3.0], np.float32)
    model = one_op_model("QUANTIZE", [inp((6,), np.float32)], out_dtype=np.int8,
                         out_quantization=Quantization.of(0.1, 5))
    check_exact(model, [x], "ref")
    check_exact(model, [x], "builtin")


@pytest.mark.parametrize("dname", ["int8", "uint8", "int16"])
@pytest.mark.parametrize("axis", [0, 2])
def test_quantize_per_channel_output(dname: str, axis: int) -> None:
    dtype = INT_DTYPES[dname]
    rng = np.random.default_rng(axis)
    shape = (4, 3, 4)
    zp = 0 if dname == "int16" else rng.integers(-10, 10, 4) + (128 if dname == "uint8" else 0)
    q = Quantization.of(np.exp(rng.uniform(-5, 0, 4)), zp, axis=axis)
    model = one_op_model("QUANTIZE", [inp(shape, np.float32)], out_dtype=dtype,
                         out_quantization=q)
    check_exact(model, [rng.uniform(-3, 3, shape).astype(np.float32)], "ref")


# -- requantize ---------------------------------------------------------------------------
PAIRS = [("int8", "int8"), ("int8", "uint8"), ("uint8", "int8"), ("uint8", "uint8"),
         ("int16", "int8"), ("int16", "int16")]


@pytest.mark.parametrize("src, dst", PAIRS)
@settings(max_examples=15)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_requantize(src: str, dst: str, data: Any, seed: int) -> None:
    """int -> int QUANTIZE over every input value, vs the reference kernel."""
    din, dout = INT_DTYPES[src], INT_DTYPES[dst]
    qin, qout = data.draw(_qp(src)), data.draw(_qp(dst))
    info = np.iinfo(din)
    x = np.arange(info.min, info.max + 1, max(1, (info.max - info.min) // 4000)).astype(din)
    np.random.default_rng(seed).shuffle(x)
    model = one_op_model("QUANTIZE", [inp(x.shape, din, qin)], out_dtype=dout,
                         out_quantization=qout)
    check_exact(model, [x], "ref")


def test_requantize_int8_to_uint8_same_scale_is_a_shift_by_128() -> None:
    q8, qu = Quantization.of(0.07, -3), Quantization.of(0.07, 125)
    x = np.arange(-128, 128).astype(np.int8)
    model = one_op_model("QUANTIZE", [inp((256,), np.int8, q8)], out_dtype=np.uint8,
                         out_quantization=qu)
    got = check_exact(model, [x], "builtin")[0]
    assert np.array_equal(got.astype(int), x.astype(int) + 128)


def test_requantize_builtin_negative_ties_differ_from_reference() -> None:
    """Quartering int8 values (multiplier 0.5, right shift 1): on -2 * 0.25 the
    builtin kernel's rounding shift gives 0, the reference (and edgeplex) -1."""
    model = one_op_model("QUANTIZE", [inp((256,), np.int8, Quantization.of(0.25, 0))],
                         out_dtype=np.int8, out_quantization=Quantization.of(1.0, 0))
    x = np.arange(-128, 128).astype(np.int8)
    got = check_exact(model, [x], "ref")[0]
    assert got[x == -2][0] == -1 and run_litert(model, [x])[0][x == -2][0] == 0


# -- DEQUANTIZE -----------------------------------------------------------------------------
def _dequantize_atol(q: Quantization, dtype: Any) -> float:
    info = np.iinfo(dtype)
    biggest = float(q.scale[0]) * (info.max - info.min)
    return 2 * float(np.spacing(np.float32(biggest)))


@pytest.mark.parametrize("dname", list(INT_DTYPES))
@given(q=st.data())
def test_dequantize_every_value(dname: str, q: Any) -> None:
    dtype = INT_DTYPES[dname]
    qp = q.draw(qparam(dtype, -10, 2) if dname != "int16" else
                st.builds(Quantization.of, st.floats(1e-4, 1.0)))
    info = np.iinfo(dtype)
    x = np.arange(info.min, info.max + 1, 1 if dname != "int16" else 7).astype(dtype)
    model = one_op_model("DEQUANTIZE", [inp(x.shape, dtype, qp)], out_dtype=np.float32)
    check_exact(model, [x], "ref")
    check(model, [x], rtol=0, atol=_dequantize_atol(qp, dtype), resolver="builtin")


@pytest.mark.parametrize("dname", ["int8", "uint8"])
@pytest.mark.parametrize("axis", [0, 1, 3])
@pytest.mark.parametrize("constant", [True, False])
def test_dequantize_per_channel(dname: str, axis: int, constant: bool) -> None:
    dtype = INT_DTYPES[dname]
    rng = np.random.default_rng(axis)
    shape = (3, 4, 2, 5)
    n = shape[axis]
    zp = rng.integers(-10, 10, n) + (128 if dname == "uint8" else 0)
    q = Quantization.of(np.exp(rng.uniform(-6, 0, n)), zp, axis=axis)
    info = np.iinfo(dtype)
    w = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    source = const(w, quantization=q) if constant else inp(shape, dtype, q)
    model = one_op_model("DEQUANTIZE", [source], out_dtype=np.float32)
    feeds = [] if constant else [w]
    check_exact(model, feeds, "ref")
    check_exact(model, feeds, "builtin")          # per-channel is one kernel in LiteRT


def test_dequantize_float16() -> None:
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float16)
    model = one_op_model("DEQUANTIZE", [const(x)], out_dtype=np.float32)
    check_exact(model, [])


# -- errors ---------------------------------------------------------------------------------
def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_quantize_output_without_quantization_is_a_model_error() -> None:
    model = one_op_model("QUANTIZE", [inp((3,), np.float32)], out_dtype=np.int8,
                         out_shapes=[(3,)])
    with pytest.raises(edgeplex.ModelError, match="no quantization parameters"):
        _allocate(model)


def test_requantize_int16_nonzero_zero_point_is_unsupported() -> None:
    model = one_op_model("QUANTIZE", [inp((3,), np.int16, Quantization.of(0.1, 0))],
                         out_dtype=np.int16, out_quantization=Quantization.of(0.1, 3),
                         out_shapes=[(3,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="zero point 0"):
        _allocate(model)


def test_dequantize_int16_nonzero_zero_point_is_unsupported() -> None:
    model = one_op_model("DEQUANTIZE", [inp((3,), np.int16, Quantization.of(0.1, 1))],
                         out_dtype=np.float32, out_shapes=[(3,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="zero point 0"):
        _allocate(model)


def test_requantize_uint8_to_int16_is_unsupported() -> None:
    model = one_op_model("QUANTIZE", [inp((3,), np.uint8, Quantization.of(0.1, 128))],
                         out_dtype=np.int16, out_quantization=Quantization.of(0.1, 0),
                         out_shapes=[(3,)])
    with pytest.raises(edgeplex.UnsupportedOpError, match="UINT8 to INT16"):
        _allocate(model)


def test_dequantize_must_output_float32() -> None:
    model = one_op_model("DEQUANTIZE", [inp((3,), np.int8, Quantization.of(0.1, 0))],
                         out_dtype=np.int32, out_shapes=[(3,)])
    with pytest.raises(edgeplex.ModelError, match="FLOAT32"):
        _allocate(model)


def test_dequantize_per_channel_scale_count_mismatch_is_a_model_error() -> None:
    q = Quantization.of([0.1, 0.2, 0.3], [0, 0, 0], axis=1)
    model = one_op_model("DEQUANTIZE", [const(np.zeros((2, 4), np.int8), quantization=q)],
                         out_dtype=np.float32, out_shapes=[(2, 4)])
    with pytest.raises(edgeplex.ModelError, match="per-channel scales do not match"):
        _allocate(model)


def test_dequantize_output_matches_on_edgeplex_alone() -> None:
    """Sanity: real = scale * (q - zp) for a hand-checkable value."""
    model = one_op_model("DEQUANTIZE", [inp((2,), np.uint8, Quantization.of(0.5, 128))],
                         out_dtype=np.float32)
    out = run_edgeplex(model, [np.array([130, 126], np.uint8)])[0]
    assert out.tolist() == [1.0, -1.0]
