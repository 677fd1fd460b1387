"""Structural guards of the float CNN path's speed (never wall-clock times).

* invoke allocates no tensor-sized temporaries: the Python memory traced
  during a steady-state invoke stays far below the smallest large tensor;
* the plan folds what it should (clamp activations, zero PADs, residual
  ADDs, depthwise biases) and runs bound kernels' numpy calls in one list;
* the result still matches LiteRT within the whole-model tolerance of
  tests/test_models.py (rtol 1e-4, atol 1e-5 of the output's magnitude).
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from oracle import assert_close, random_inputs, run_litert

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.kernel_api import BoundRun
from edgeplex.hwlab import builders

#: Largest Python allocation total an invoke may peak at (interpreter frames,
#: small numpy bookkeeping); every model here has tensors of 64 KiB and more.
PEAK_BYTES = 48 * 1024
CONV = {"padding": "SAME", "stride_h": 1, "stride_w": 1, "dilation_h_factor": 1,
        "dilation_w_factor": 1, "fused_activation_function": "NONE"}


def weights(*shape: int, seed: int = 0) -> np.ndarray:
    """Small normal float32 constants."""
    return (np.random.default_rng(seed).standard_normal(shape) * 0.3).astype(np.float32)


def blaze_blocks() -> bytes:
    """BlazeFace-style blocks: PAD -> depthwise (VALID) -> 1x1 conv -> ADD(+ channel
    PAD of the input) -> RELU, a stride-2 block with MAX_POOL, and PRELU."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 64, 64, 16), np.float32)
    for i, (cin, cout, stride) in enumerate([(16, 16, 1), (16, 24, 2), (24, 24, 1)]):
        p = g.op("PAD", [x, g.constant(f"p{i}", np.array([[0, 0], [1, 1], [1, 1], [0, 0]],
                                                          np.int32))])
        d = g.op("DEPTHWISE_CONV_2D", [p, g.constant(f"dw{i}", weights(1, 3, 3, cin, seed=i)),
                                       g.constant(f"db{i}", weights(cin, seed=i + 9))],
                 {**CONV, "padding": "VALID", "stride_h": stride, "stride_w": stride,
                  "depth_multiplier": 1})
        c = g.op("CONV_2D", [d, g.constant(f"cw{i}", weights(cout, 1, 1, cin, seed=i + 3)),
                             g.constant(f"cb{i}", weights(cout, seed=i + 6))], CONV)
        skip = x
        if stride == 2:
            skip = g.op("MAX_POOL_2D", [skip], {"padding": "VALID", "stride_h": 2,
                                                "stride_w": 2, "filter_height": 2,
                                                "filter_width": 2,
                                                "fused_activation_function": "NONE"})
        if cout != cin:
            skip = g.op("PAD", [skip, g.constant(f"c{i}", np.array(
                [[0, 0], [0, 0], [0, 0], [0, cout - cin]], np.int32))])
        x = g.op("RELU", [g.op("ADD", [c, skip], {"fused_activation_function": "NONE"})])
    x = g.op("PRELU", [x, g.constant("alpha", np.full((1, 1, 24), 0.25, np.float32))])
    g.output(x)
    return mb.build()


MODELS = {"mobilenet_v2": lambda: builders.mobilenet_v2(96, 0.35, 10), "blaze": blaze_blocks}


def allocated(model: bytes, inputs: list[np.ndarray]) -> tuple[edgeplex.Interpreter, int]:
    """The interpreter after two invokes, and the traced peak of a third."""
    it = edgeplex.Interpreter(model_content=model, num_threads=2)
    it.allocate_tensors()
    for d, value in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], value)
    it.invoke()
    it.invoke()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        it.invoke()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return it, peak


@pytest.mark.parametrize("name", MODELS)
def test_invoke_allocates_no_tensor_sized_temporaries(name: str) -> None:
    model = MODELS[name]()
    inputs = random_inputs(model, low=-1, high=1)
    it, peak = allocated(model, inputs)
    assert peak <= PEAK_BYTES, f"{name}: invoke traced {peak} bytes"
    want = run_litert(model, inputs)
    scale = max(float(np.max(np.abs(w))) for w in want)
    assert_close([it.get_tensor(d["index"]) for d in it.get_output_details()], want,
                 rtol=1e-4, atol=1e-5 * scale, what=name)


def test_blaze_blocks_fold_into_convolutions() -> None:
    it = edgeplex.Interpreter(model_content=blaze_blocks())
    it.allocate_tensors()
    labels = [s.label for s in it._plan.steps]
    # spatial PADs, RELUs and ADDs are folded; channel PADs, pooling, PRELU stay
    assert labels.count("DEPTHWISE_CONV_2D") == 3 and labels.count("CONV_2D") == 3
    assert "RELU" not in labels and "ADD" not in labels
    assert labels.count("PAD") == 1 and "MAX_POOL_2D" in labels and "PRELU" in labels
    assert all(isinstance(s.prepared.run, BoundRun) for s in it._plan.steps
               if s.label in ("DEPTHWISE_CONV_2D", "CONV_2D", "PRELU", "MAX_POOL_2D"))


def test_plan_runs_bound_calls_in_one_list() -> None:
    it = edgeplex.Interpreter(model_content=builders.mobilenet_v2(32, 0.35, 10))
    it.allocate_tensors()
    plan = it._plan
    assert len(plan._flat) > len(plan.steps)          # numpy calls, not one per step
    assert not any(isinstance(c, BoundRun) for c in plan._flat)
