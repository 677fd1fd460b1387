"""Builder-made UNIDIRECTIONAL_SEQUENCE_LSTM models (int8 and hybrid), and a
runner that invokes a model several times so the state variables carry over.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import edgeplex
from edgeplex import ModelBuilder, Quantization

from oracle import LiteRT, RESOLVERS


@dataclass(frozen=True)
class LstmSpec:
    """The shape and optional parts of a test LSTM."""

    batch: int = 2
    time: int = 4
    n_input: int = 5
    n_cell: int = 8
    n_output: int = 8          # != n_cell needs a projection
    cifg: bool = False
    peephole: bool = False
    projection: bool = False
    projection_bias: bool = False
    layer_norm: bool = False
    time_major: bool = False
    cell_clip: float = 0.0
    proj_clip: float = 0.0
    asymmetric: bool = False
    activation: str = "TANH"


def _q(scale: float, zp: int = 0) -> Quantization:
    return Quantization.of(float(np.float32(scale)), zp)


def _int8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-127, 128, shape).astype(np.int8)


def int8_lstm(spec: LstmSpec, seed: int = 0) -> bytes:
    """A full-integer LSTM with converter-like quantization parameters."""
    rng = np.random.default_rng(seed)
    mb = ModelBuilder()
    g = mb.main
    x_q, h_q = _q(0.05, int(rng.integers(-20, 20))), _q(2**-7, int(rng.integers(-10, 10)))
    shape = (spec.time, spec.batch, spec.n_input) if spec.time_major else \
        (spec.batch, spec.time, spec.n_input)
    x = g.input("input", shape, np.int8, quantization=x_q)
    gates = range(1, 4) if spec.cifg else range(4)
    ins: list[Any] = [x] + [None] * 23
    w_scale = 0.3 / np.sqrt(spec.n_input) / 127
    r_scale = 0.3 / np.sqrt(spec.n_output) / 127
    for gi in gates:
        ins[1 + gi] = g.constant(f"w_in{gi}", _int8(rng, (spec.n_cell, spec.n_input)),
                                 quantization=_q(w_scale * rng.uniform(0.8, 1.2)))
        ins[5 + gi] = g.constant(f"w_rec{gi}", _int8(rng, (spec.n_cell, spec.n_output)),
                                 quantization=_q(r_scale * rng.uniform(0.8, 1.2)))
        bias_scale = float(np.float32(0.05) * np.float32(w_scale))
        ins[12 + gi] = g.constant(f"bias{gi}", rng.integers(-3000, 3000, spec.n_cell)
                                  .astype(np.int32), quantization=_q(bias_scale))
    if spec.peephole:
        for slot, gi in ((9, 0), (10, 1), (11, 3)):
            if gi in gates:
                ins[slot] = g.constant(f"peep{gi}", rng.integers(-20000, 20000, spec.n_cell)
                                       .astype(np.int16), quantization=_q(2**-16))
    if spec.projection:
        ins[16] = g.constant("proj", _int8(rng, (spec.n_output, spec.n_cell)),
                             quantization=_q(0.5 / np.sqrt(spec.n_cell) / 127))
        if spec.projection_bias:
            ins[17] = g.constant("proj_bias", rng.integers(-500, 500, spec.n_output)
                                 .astype(np.int32), quantization=_q(1e-5))
    ins[18] = g.variable("h", (spec.batch, spec.n_output), np.int8, quantization=h_q)
    ins[19] = g.variable("c", (spec.batch, spec.n_cell), np.int16, quantization=_q(2**-11))
    if spec.layer_norm:
        for gi in gates:
            ins[20 + gi] = g.constant(f"ln{gi}", rng.integers(5000, 30000, spec.n_cell)
                                      .astype(np.int16), quantization=_q(2**-14))
    inter = [g.tensor(f"gate{i}", (0,), np.int16, quantization=_q(2**-12 * rng.uniform(0.5, 2)))
             for i in range(4)]
    hidden_q = _q(2**-7, int(rng.integers(-5, 5)))
    inter.append(g.tensor("hidden", (0,), np.int8, quantization=hidden_q))
    out_shape = shape[:2] + (spec.n_output,)
    out = g.tensor("output", out_shape, np.int8, quantization=h_q)
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, _options(spec), outputs=[out],
         intermediates=inter, version=4)
    g.output(out)
    return mb.build()


def hybrid_lstm(spec: LstmSpec, seed: int = 0) -> bytes:
    """A dynamic-range LSTM: float input and states, int8 weights."""
    rng = np.random.default_rng(seed)
    mb = ModelBuilder()
    g = mb.main
    shape = (spec.time, spec.batch, spec.n_input) if spec.time_major else \
        (spec.batch, spec.time, spec.n_input)
    x = g.input("input", shape, np.float32)
    gates = range(1, 4) if spec.cifg else range(4)
    ins: list[Any] = [x] + [None] * 23
    for gi in gates:
        ins[1 + gi] = g.constant(f"w_in{gi}", _int8(rng, (spec.n_cell, spec.n_input)),
                                 quantization=_q(0.6 / np.sqrt(spec.n_input) / 127))
        ins[5 + gi] = g.constant(f"w_rec{gi}", _int8(rng, (spec.n_cell, spec.n_output)),
                                 quantization=_q(0.6 / np.sqrt(spec.n_output) / 127))
        ins[12 + gi] = g.constant(f"bias{gi}", rng.normal(0, 0.3, spec.n_cell)
                                  .astype(np.float32))
    if spec.peephole:
        for slot, gi in ((9, 0), (10, 1), (11, 3)):
            if gi in gates:
                ins[slot] = g.constant(f"peep{gi}", _int8(rng, (spec.n_cell,)),
                                       quantization=_q(0.3 / 127))
    if spec.projection:
        ins[16] = g.constant("proj", _int8(rng, (spec.n_output, spec.n_cell)),
                             quantization=_q(1.0 / np.sqrt(spec.n_cell) / 127))
        if spec.projection_bias:
            ins[17] = g.constant("proj_bias", rng.normal(0, 0.1, spec.n_output)
                                 .astype(np.float32))
    ins[18] = g.variable("h", (spec.batch, spec.n_output), np.float32)
    ins[19] = g.variable("c", (spec.batch, spec.n_cell), np.float32)
    if spec.layer_norm:
        for gi in gates:
            ins[20 + gi] = g.constant(f"ln{gi}", rng.uniform(0.5, 1.5, spec.n_cell)
                                      .astype(np.float32))
    out = g.tensor("output", shape[:2] + (spec.n_output,), np.float32)
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, _options(spec), outputs=[out], version=3)
    g.output(out)
    return mb.build()


def _options(spec: LstmSpec) -> dict[str, Any]:
    return {"fused_activation_function": spec.activation, "cell_clip": spec.cell_clip,
            "proj_clip": spec.proj_clip, "time_major": spec.time_major,
            "asymmetric_quantize_inputs": spec.asymmetric}


def run_sequence(model: bytes, inputs: Sequence[np.ndarray], resolver: str | None = None
                 ) -> list[np.ndarray]:
    """Invoke once per input (state carried over); LiteRT when ``resolver``."""
    it = edgeplex.Interpreter(model_content=model) if resolver is None else LiteRT(
        model_content=model, experimental_op_resolver_type=RESOLVERS[resolver])
    it.allocate_tensors()
    index = it.get_input_details()[0]["index"]
    out = it.get_output_details()[0]["index"]
    results = []
    for x in inputs:
        it.set_tensor(index, x)
        it.invoke()
        results.append(it.get_tensor(out).copy())
    return results
