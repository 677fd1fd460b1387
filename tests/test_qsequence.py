"""Full-integer UNIDIRECTIONAL_SEQUENCE_LSTM against LiteRT, bit-exact.

Every model is invoked twice in a row so the int8 output state and the
int16 cell state carry over between invokes, as in a streaming model; both
invokes' outputs must equal LiteRT's builtin kernel exactly.
"""
from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edgeplex
from edgeplex import ModelError, UnsupportedOpError
from edgeplex.kernels.qsequence import Rescale, logistic16, tanh16
from edgeplex.kernels.quant_math import multiply_by_quantized_multiplier

from fixture_ops import fixture, op_indices, single_op_model
from lstm_models import LstmSpec, int8_lstm, run_sequence

SPECS = st.sampled_from([4, 8, 12, 16]).flatmap(lambda n: st.builds(
    LstmSpec, batch=st.integers(1, 3), time=st.integers(1, 4), n_input=st.integers(1, 12),
    n_cell=st.just(n), n_output=st.just(n), cifg=st.booleans(), peephole=st.booleans(),
    layer_norm=st.booleans(), time_major=st.booleans(),
    cell_clip=st.sampled_from([0.0, 0.5, 3.0])))


def _inputs(spec: LstmSpec, seed: int, invokes: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (spec.time, spec.batch, spec.n_input) if spec.time_major else \
        (spec.batch, spec.time, spec.n_input)
    return [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(invokes)]


def _exact(model: bytes, inputs: list[np.ndarray]) -> None:
    want = run_sequence(model, inputs, "builtin")
    got = run_sequence(model, inputs)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype and g.shape == w.shape
        bad = np.flatnonzero(g != w)
        assert bad.size == 0, f"invoke {i}: {bad.size} of {g.size} values differ"


@given(spec=SPECS, seed=st.integers(0, 1000))
def test_int8_lstm(spec: LstmSpec, seed: int) -> None:
    """CIFG, peephole, layer norm, time-major, cell clipping, any batch/time."""
    _exact(int8_lstm(spec, seed), _inputs(spec, seed))


@pytest.mark.parametrize("bias,clip", [(False, 0.0), (True, 0.0), (True, 0.2)],
                         ids=["no_bias", "bias", "bias_clipped"])
@pytest.mark.parametrize("n_output", [5, 8, 11])
def test_int8_lstm_projection(bias: bool, clip: float, n_output: int) -> None:
    """A projection to smaller, equal or larger outputs, with bias and clip."""
    spec = LstmSpec(n_cell=8, n_output=n_output, projection=True, projection_bias=bias,
                    proj_clip=clip, layer_norm=n_output == 8)
    _exact(int8_lstm(spec, n_output), _inputs(spec, n_output))


def test_int8_lstm_larger_layer() -> None:
    """Sizes where TFLite's vectorized loops have full blocks and tails."""
    spec = LstmSpec(batch=3, time=5, n_input=37, n_cell=44, n_output=44, layer_norm=True,
                    peephole=True)
    _exact(int8_lstm(spec, 7), _inputs(spec, 7))


def test_converter_made_int8_lstm() -> None:
    """The converter's full-integer Keras LSTM (no layer norm: Q3.12 gates)."""
    full = fixture("quant_int8_lstm.tflite")
    model = single_op_model(full, op_indices(full, "UNIDIRECTIONAL_SEQUENCE_LSTM")[0])
    rng = np.random.default_rng(0)
    _exact(model, [rng.integers(-128, 128, (2, 6, 32)).astype(np.int8) for _ in range(3)])


def test_reset_all_variables_restores_zero_point() -> None:
    """After reset the int8 output state is back at its zero point, so a
    repeated sequence gives the first invoke's result again."""
    spec = LstmSpec()
    model = int8_lstm(spec, 3)
    x = _inputs(spec, 3, 1)[0]
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    index, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    it.set_tensor(index, x)
    it.invoke()
    first = it.get_tensor(out).copy()
    it.invoke()
    assert not np.array_equal(it.get_tensor(out), first)
    it.reset_all_variables()
    it.set_tensor(index, x)
    it.invoke()
    np.testing.assert_array_equal(it.get_tensor(out), first)


# -- fixed-point building blocks ------------------------------------------------------------
def test_fixed_point_logistic_and_tanh_track_float() -> None:
    """gemmlowp's int16 logistic/tanh stay within a few LSBs of the real
    functions over the whole input range (a sanity bound, not the oracle)."""
    x = np.arange(-32768, 32768, dtype=np.int64)
    sig = 1 / (1 + np.exp(-x / 4096.0)) * 32768
    assert np.abs(logistic16(x, 3) - sig).max() < 8
    for bits in (0, 3, 6):
        assert np.abs(tanh16(x, bits) - np.tanh(x / 2.0 ** (15 - bits)) * 32768).max() < 16


# -- errors ---------------------------------------------------------------------------------
def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def _with_tensor(model: bytes, name: str, **changes: Any) -> bytes:
    from dataclasses import replace
    m = edgeplex.read_model(model)
    sg = m.main
    tensors = tuple(replace(t, **changes) if t.name == name else t for t in sg.tensors)
    return edgeplex.write_model(replace(m, subgraphs=(replace(sg, tensors=tensors),)))


def test_missing_intermediates_is_model_error() -> None:
    """The integer kernel needs the hidden-state intermediate's quantization."""
    from dataclasses import replace
    m = edgeplex.read_model(int8_lstm(LstmSpec()))
    sg = m.main
    op = replace(sg.operators[0], intermediates=sg.operators[0].intermediates[:4])
    model = edgeplex.write_model(replace(m, subgraphs=(replace(sg, operators=(op,)),)))
    with pytest.raises(ModelError, match="intermediate"):
        _allocate(model)


def test_cell_scale_not_power_of_two_is_model_error() -> None:
    """The integer cell update shifts by the cell scale's exponent."""
    from edgeplex import Quantization
    model = _with_tensor(int8_lstm(LstmSpec()), "c", quantization=Quantization.of(0.001, 0))
    with pytest.raises(ModelError, match="power of two"):
        _allocate(model)


def test_non_variable_state_is_model_error() -> None:
    """State tensors must be variables (they persist between invokes)."""
    model = _with_tensor(int8_lstm(LstmSpec()), "h", is_variable=False)
    with pytest.raises((ModelError, UnsupportedOpError), match="variable"):
        _allocate(model)


def test_converter_made_int8_lstm_model_end_to_end() -> None:
    """The whole full-integer LSTM model (LSTM then a dense head) is bit-exact."""
    rng = np.random.default_rng(1)
    _exact(fixture("quant_int8_lstm.tflite"),
           [rng.integers(-128, 128, (2, 6, 32)).astype(np.int8) for _ in range(2)])


@pytest.mark.parametrize("parts", [{}, {"cifg": True, "projection": True, "n_output": 12,
                                        "cell_clip": 0.5}], ids=["plain", "cifg_projection"])
def test_int8_lstm_invoke_does_not_allocate(parts: dict[str, Any]) -> None:
    """Without peephole and layer norm the time loop runs on buffers made at
    allocate_tensors: an invoke allocates a few Python objects, nothing the size
    of a step's gates (the fixed-point tanh alone made ~100 int64 temporaries)."""
    spec = LstmSpec(**{"batch": 2, "time": 16, "n_input": 24, "n_cell": 32, "n_output": 32,
                       **parts})
    it = edgeplex.Interpreter(model_content=int8_lstm(spec, 3))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], _inputs(spec, 3, 1)[0])
    it.invoke()
    tracemalloc.start()
    try:
        it.invoke()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8192


def test_rescale_equals_multiply_by_quantized_multiplier() -> None:
    """The loop's 7-call in-place rescale is TFLite's MultiplyByQuantizedMultiplier
    bit for bit: any int32 input, scalar or per-element multipliers of either sign,
    left and right shifts (the left shift wraps in int32)."""
    rng = np.random.default_rng(0)
    x = rng.integers(-2**31, 2**31, 4000).astype(np.int64)
    x[:9] = [0, 1, -1, 2**31 - 1, -2**31, 2**30, -2**30, 3, -3]
    for _ in range(20):
        per_element = (rng.integers(-2**31 + 1, 2**31, x.size), rng.integers(-31, 8, x.size))
        scalar = (int(rng.integers(-2**31 + 1, 2**31)), int(rng.integers(-31, 8)))
        for m, s in (per_element, scalar, (scalar[0], 0)):
            got = x.copy()
            Rescale(x.shape, m, s)(got)
            np.testing.assert_array_equal(got, multiply_by_quantized_multiplier(x, m, s))
