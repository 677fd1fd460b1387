"""core.fuse: a standalone RELU / RELU6 / RELU_N1_TO_1 folded into the float op
before it, checked against LiteRT (which runs the ops unfused) and by the
plan's steps.

Tolerances: the fused op computes exactly what the pair computes in
edgeplex (the same clamp, applied by the producer), so each test uses the
producer's own tolerance against LiteRT: conv-style sums rtol 1e-5 / atol
1e-6 * k (tests/test_conv.py), elementwise ops and pooling 1e-6.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from oracle import assert_close, random_inputs, run_litert

import edgeplex
from edgeplex import ModelBuilder, Quantization

CLAMPS = ["RELU", "RELU6", "RELU_N1_TO_1"]
CONV = {"padding": "SAME", "stride_h": 1, "stride_w": 1, "dilation_h_factor": 1,
        "dilation_w_factor": 1, "fused_activation_function": "NONE"}
POOL = {"padding": "VALID", "stride_h": 2, "stride_w": 2, "filter_height": 2,
        "filter_width": 2, "fused_activation_function": "NONE"}


def weights(*shape: int) -> np.ndarray:
    """Standard-normal float32 constants."""
    return np.random.default_rng(7).standard_normal(shape).astype(np.float32)


def producer(g: Any, op: str, x: Any) -> Any:
    """``op`` applied to the (1, 6, 6, 4) float input ``x`` with no fused activation."""
    if op == "CONV_2D":
        return g.op(op, [x, g.constant("w", weights(3, 3, 3, 4)), g.constant("b", weights(3))],
                    CONV)
    if op == "DEPTHWISE_CONV_2D":
        return g.op(op, [x, g.constant("w", weights(1, 3, 3, 4)), g.constant("b", weights(4))],
                    {**CONV, "depth_multiplier": 1})
    if op == "FULLY_CONNECTED":
        flat = g.op("RESHAPE", [x, g.constant("s", np.array([6, 24], np.int32))],
                    {"new_shape": [6, 24]})
        return g.op(op, [flat, g.constant("w", weights(5, 24)), g.constant("b", weights(5))],
                    {"fused_activation_function": "NONE"})
    if op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return g.op(op, [x], POOL)
    return g.op(op, [x, g.constant("k", weights(1, 1, 1, 4))],
                {"fused_activation_function": "NONE"})


def chain(op: str, act: str, scale: float = 1.0, extra_reader: bool = False,
          intermediate_out: bool = False) -> bytes:
    """input -> ``op`` -> ``act`` -> output (optionally the intermediate read twice or
    itself a model output)."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 6, 6, 4), np.float32)
    if scale != 1.0:
        x = g.op("MUL", [x, g.constant("scale", np.array([scale], np.float32))],
                 {"fused_activation_function": "NONE"})
    mid = producer(g, op, x)
    y = g.op(act, [mid])
    outs = [y]
    if extra_reader:
        outs.append(g.op("NEG", [mid]))
    if intermediate_out:
        outs.append(mid)
    g.output(*outs)
    return mb.build()


def steps(model: bytes, **kw: Any) -> list[str]:
    """The op names of the allocated plan's steps."""
    it = edgeplex.Interpreter(model_content=model, **kw)
    it.allocate_tensors()
    return [s.label for s in it._plan.steps]


def run(model: bytes, inputs: list[np.ndarray], **kw: Any) -> list[np.ndarray]:
    """edgeplex's outputs (``experimental_preserve_all_tensors`` turns fusion off)."""
    it = edgeplex.Interpreter(model_content=model, **kw)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], inputs[0])
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def check(model: bytes, **tol: float) -> None:
    """edgeplex against LiteRT on random inputs in [-3, 3), and bit for bit
    against its own unfused plan."""
    inputs = random_inputs(model)
    got = run(model, inputs)
    assert_close(got, run_litert(model, inputs), **tol)
    for fused, unfused in zip(got, run(model, inputs, experimental_preserve_all_tensors=True)):
        np.testing.assert_array_equal(fused, unfused)


@pytest.mark.parametrize("act", CLAMPS)
@pytest.mark.parametrize("op, tol", [
    ("CONV_2D", {"rtol": 1e-5, "atol": 3.6e-5}), ("DEPTHWISE_CONV_2D", {"rtol": 1e-5,
                                                                        "atol": 9e-6}),
    ("FULLY_CONNECTED", {"rtol": 1e-5, "atol": 2.4e-5}),
    ("ADD", {"rtol": 1e-6, "atol": 1e-6}), ("SUB", {"rtol": 1e-6, "atol": 1e-6}),
    ("MUL", {"rtol": 1e-6, "atol": 1e-6}), ("DIV", {"rtol": 1e-6, "atol": 1e-6}),
    ("MAX_POOL_2D", {"rtol": 1e-6, "atol": 1e-6}),
    ("AVERAGE_POOL_2D", {"rtol": 1e-6, "atol": 1e-6})])
def test_clamp_is_folded_into_the_producer(op: str, act: str, tol: dict) -> None:
    model = chain(op, act)
    names = steps(model)
    assert act not in names and names[-1] == op
    check(model, **tol)


@pytest.mark.parametrize("op", ["ADD", "MUL"])
def test_overflow_saturates_as_the_unfused_pair(op: str) -> None:
    # ADD/MUL without activation clamp to +-FLT_MAX, then RELU: the fused clamp
    # [0, FLT_MAX] gives the same values (inf -> FLT_MAX).
    model = chain(op, "RELU", scale=3e37)
    assert "RELU" not in steps(model)
    check(model, rtol=1e-6, atol=0)


def test_fused_conv_keeps_infinities_as_the_unfused_pair() -> None:
    # a conv has no clamp of its own: RELU keeps +inf, as the fused [0, inf) does
    # (LiteRT's sums overflow elsewhere in another order: compare with edgeplex)
    model = chain("CONV_2D", "RELU", scale=3e37)
    inputs = random_inputs(model)
    fused = run(model, inputs)[0]
    assert np.isinf(fused).any()
    np.testing.assert_array_equal(fused, run(model, inputs,
                                             experimental_preserve_all_tensors=True)[0])


@pytest.mark.parametrize("case", ["extra_reader", "intermediate_out"])
def test_shared_or_visible_intermediates_are_not_fused(case: str) -> None:
    model = chain("ADD", "RELU", **{case: True})
    assert steps(model).count("RELU") == 1
    check(model, rtol=1e-6, atol=1e-6)


def test_preserve_all_tensors_keeps_every_step() -> None:
    model = chain("CONV_2D", "RELU6")
    assert steps(model, experimental_preserve_all_tensors=True)[-2:] == ["CONV_2D", "RELU6"]
    assert steps(model)[-1] == "CONV_2D"


def test_producer_with_an_activation_already_is_not_fused() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 3), np.float32)
    y = g.op("ADD", [x, x], {"fused_activation_function": "RELU6"})
    g.output(g.op("RELU_N1_TO_1", [y]))
    model = mb.build()
    assert steps(model) == ["ADD", "RELU_N1_TO_1"]
    check(model, rtol=1e-6, atol=1e-6)


def test_quantized_pairs_are_not_fused() -> None:
    # an integer RELU requantizes between its input's and output's scales
    q_in, q_out = Quantization(np.array([0.05]), np.array([3])), \
        Quantization(np.array([0.02]), np.array([-128]))
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 4, 4, 2), np.int8, quantization=q_in)
    y = g.op("MAX_POOL_2D", [x], POOL, outputs=[g.tensor("m", None, np.int8,
                                                          quantization=q_in)])
    g.output(g.op("RELU", [y], outputs=[g.tensor("r", None, np.int8, quantization=q_out)]))
    assert steps(mb.build()) == ["MAX_POOL_2D", "RELU"]


def residual_block(conv_act: str = "NONE", add_act: str = "NONE", swap: bool = False,
                   bias: bool | str = True, residual_shape: tuple[int, ...] = (1, 6, 6, 3),
                   extra_reader: bool = False, op: str = "CONV_2D") -> bytes:
    """x -> conv (3 channels out) -> ADD(conv, r) with a second input r (``bias``
    "zero": a zero bias, what LiteRT, which needs one, runs for an omitted one)."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 6, 6, 4), np.float32)
    r = g.input("r", residual_shape, np.float32)
    b = (g.constant("b", np.zeros(3, np.float32)) if bias == "zero"
         else g.constant("b", weights(3)) if bias else None)
    if op == "CONV_2D":
        y = g.op(op, [x, g.constant("w", weights(3, 1, 1, 4)), b],
                 {**CONV, "fused_activation_function": conv_act})
    else:
        y = g.op(op, [x, g.constant("w", weights(1, 3, 3, 4)), g.constant("b", weights(4))],
                 {**CONV, "fused_activation_function": conv_act, "depth_multiplier": 1})
    z = g.op("ADD", [r, y] if swap else [y, r], {"fused_activation_function": add_act})
    outs = [z] + ([g.op("NEG", [y])] if extra_reader else [])
    g.output(*outs)
    return mb.build()


def check_all(model: bytes, reference: bytes | None = None, **tol: float) -> None:
    """edgeplex (fused or not) against LiteRT (on ``reference``, default the same
    model) on random values for every input."""
    inputs = random_inputs(model)
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    for d, value in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], value)
    it.invoke()
    got = [it.get_tensor(d["index"]) for d in it.get_output_details()]
    assert_close(got, run_litert(reference or model, inputs), **tol)


#: a 4-term conv sum plus bias plus residual, associated differently from LiteRT
RESIDUAL_TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("add_act", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_residual_add_is_folded_into_the_convolution(add_act: str, swap: bool,
                                                     bias: bool) -> None:
    model = residual_block(add_act=add_act, swap=swap, bias=bias)
    assert steps(model) == ["CONV_2D"]
    reference = None if bias else residual_block(add_act=add_act, swap=swap, bias="zero")
    check_all(model, reference, **RESIDUAL_TOL)


def test_residual_fusion_then_relu_fold() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 5, 5, 2), np.float32)
    y = g.op("CONV_2D", [x, g.constant("w", weights(2, 3, 3, 2)), g.constant("b", weights(2))],
             CONV)
    z = g.op("ADD", [y, x], {"fused_activation_function": "NONE"})
    g.output(g.op("RELU6", [z]))
    model = mb.build()
    assert steps(model) == ["CONV_2D"]
    check_all(model, **RESIDUAL_TOL)


@pytest.mark.parametrize("case", [
    {"conv_act": "RELU"},                         # the conv clamps before the ADD
    {"residual_shape": (1, 1, 1, 3)},             # a broadcast ADD
    {"extra_reader": True},                       # the conv output is read elsewhere
    {"op": "DEPTHWISE_CONV_2D"},                  # no fuse_add offered
])
def test_residual_add_not_fused(case: dict) -> None:
    kw = dict(case)
    if kw.get("op") == "DEPTHWISE_CONV_2D":
        kw["residual_shape"] = (1, 6, 6, 4)
    model = residual_block(**kw)
    assert "ADD" in steps(model)
    check_all(model, **RESIDUAL_TOL)


def test_residual_fusion_large_and_in_halves() -> None:
    # a 1x1 conv big enough to split across threads, with and without the BLAS path
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 128, 128, 32), np.float32)
    y = g.op("CONV_2D", [x, g.constant("w", weights(32, 1, 1, 32)),
                         g.constant("b", weights(32))], CONV)
    g.output(g.op("ADD", [x, y], {"fused_activation_function": "RELU"}))
    model = mb.build()
    assert steps(model) == ["CONV_2D"]
    inputs = random_inputs(model)
    want = run_litert(model, inputs)
    for threads in (1, 2):
        assert_close([run(model, inputs, num_threads=threads)[0]], want, rtol=1e-5, atol=4e-5)


def test_residual_fusion_without_direct_blas(monkeypatch: pytest.MonkeyPatch) -> None:
    # where BLAS cannot accumulate (another numpy build), numpy adds in order
    from edgeplex.kernels import conv
    monkeypatch.setattr(conv, "accumulate", lambda a, b, c: None)
    model = residual_block(add_act="RELU6")
    assert steps(model) == ["CONV_2D"]
    check_all(model, **RESIDUAL_TOL)


def padded_conv(op: str, pads: list, stride: int = 1, padding: str = "VALID",
                size: int = 7, pad_op: str = "PAD", value: float | None = None,
                extra_reader: bool = False, residual: bool = False) -> bytes:
    """x -> PAD(pads) -> ``op`` (3x3) [-> ADD x'] : a PAD the convolution may absorb."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, size, size, 4), np.float32)
    ins = [x, g.constant("p", np.array(pads, np.int32))]
    if value is not None:
        ins.append(g.constant("v", np.array([value], np.float32)))
    p = g.op(pad_op, ins)
    c = 4 + sum(pads[3])
    opts = {**CONV, "padding": padding, "stride_h": stride, "stride_w": stride}
    if op == "CONV_2D":
        y = g.op(op, [p, g.constant("w", weights(4, 3, 3, c)), g.constant("b", weights(4))],
                 opts)
    else:
        y = g.op(op, [p, g.constant("w", weights(1, 3, 3, c)), g.constant("b", weights(c))],
                 {**opts, "depth_multiplier": 1})
    outs = [y]
    if residual:   # needs stride 1, VALID, 1-pixel pads: the output has the input's shape
        outs = [g.op("ADD", [y, g.input("r", (1, size, size, 4), np.float32)],
                     {"fused_activation_function": "NONE"})]
    if extra_reader:
        outs.append(g.op("NEG", [p]))
    g.output(*outs)
    return mb.build()


SPATIAL = [[0, 0], [1, 1], [1, 1], [0, 0]]


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
@pytest.mark.parametrize("pads, stride, padding", [
    (SPATIAL, 1, "VALID"), (SPATIAL, 2, "VALID"), ([[0, 0], [0, 2], [1, 0], [0, 0]], 2, "VALID"),
    ([[0, 0], [2, 1], [0, 3], [0, 0]], 1, "SAME"), ([[0, 0], [0, 0], [0, 0], [0, 0]], 1, "VALID")])
def test_zero_pad_is_absorbed_by_the_convolution(op: str, pads: list, stride: int,
                                                 padding: str) -> None:
    model = padded_conv(op, pads, stride, padding)
    assert steps(model) == [op]
    check(model, rtol=1e-5, atol=1e-5)      # and bit for bit against the unfused plan


def test_large_depthwise_reads_the_unpadded_input_in_place() -> None:
    # 96x96x4: the split-interior path; only thin borders are copied
    model = padded_conv("DEPTHWISE_CONV_2D", SPATIAL, 1, "VALID", size=96)
    assert steps(model) == ["DEPTHWISE_CONV_2D"]
    check(model, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [
    {"pad_op": "PADV2", "value": 0.0},
])
def test_padv2_with_zero_is_absorbed(case: dict) -> None:
    model = padded_conv("DEPTHWISE_CONV_2D", SPATIAL, **case)
    assert steps(model) == ["DEPTHWISE_CONV_2D"]
    check(model, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [
    {"pads": [[0, 0], [1, 1], [1, 1], [0, 2]]},                 # channels padded too
    {"pads": SPATIAL, "pad_op": "PADV2", "value": 1.5},         # not zero
    {"pads": SPATIAL, "pad_op": "PADV2", "value": -0.0},        # not +0.0
    {"pads": SPATIAL, "extra_reader": True},                    # padded tensor read twice
])
def test_pad_not_absorbed(case: dict) -> None:
    model = padded_conv("DEPTHWISE_CONV_2D", **case)
    assert steps(model)[0] in ("PAD", "PADV2")
    check(model, rtol=1e-5, atol=1e-5)


def test_pad_conv_and_residual_add_all_fuse() -> None:
    model = padded_conv("CONV_2D", SPATIAL, residual=True)
    assert steps(model) == ["CONV_2D"]
    check_all(model, rtol=1e-5, atol=1e-4)


def depthwise_then_1x1(dw_act: str = "NONE", conv_kernel: int = 1, dw_bias: bool = True,
                       conv_bias: bool = True, extra_reader: bool = False,
                       channels: int = 4) -> bytes:
    """x -> DEPTHWISE_CONV_2D 3x3 -> CONV_2D (``conv_kernel`` square, VALID)."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 6, 6, channels), np.float32)
    dwb = g.constant("dwb", weights(channels) * 3) if dw_bias else None
    y = g.op("DEPTHWISE_CONV_2D", [x, g.constant("dw", weights(1, 3, 3, channels)), dwb],
             {**CONV, "fused_activation_function": dw_act, "depth_multiplier": 1})
    cb = g.constant("cb", weights(5)) if conv_bias else None
    z = g.op("CONV_2D", [y, g.constant("cw", weights(5, conv_kernel, conv_kernel, channels)),
                         cb], {**CONV, "padding": "VALID"})
    g.output(z, *([g.op("NEG", [y])] if extra_reader else []))
    return mb.build()


def bias_folded(model: bytes) -> bool:
    """True when the plan moved the depthwise bias into the conv (core.fuse)."""
    from edgeplex.core import plan
    changed: list[bool] = []
    original = plan.fold_biases

    def spy(sg: Any, steps: list, kept: set, make_step: Any) -> list:
        out = original(sg, steps, kept, make_step)
        changed.append(any(a is not b for a, b in zip(steps, out)))
        return out
    plan.fold_biases = spy
    try:
        edgeplex.Interpreter(model_content=model).allocate_tensors()
    finally:
        plan.fold_biases = original
    return changed == [True]


#: 4 taps x 9 products, plus a bias moved across the 1x1 conv (reassociated)
FOLD_TOL = {"rtol": 1e-5, "atol": 2e-5}


@pytest.mark.parametrize("conv_bias", [True, False])
def test_depthwise_bias_moves_into_the_1x1_conv(conv_bias: bool) -> None:
    model = depthwise_then_1x1(conv_bias=conv_bias)
    assert bias_folded(model)
    reference = model if conv_bias else None
    inputs = random_inputs(model)
    got = run(model, inputs)
    unfused = run(model, inputs, experimental_preserve_all_tensors=True)
    np.testing.assert_allclose(got[0], unfused[0], **FOLD_TOL)
    if reference is not None:   # LiteRT's CONV_2D needs a bias input
        assert_close(got, run_litert(model, inputs), **FOLD_TOL)


@pytest.mark.parametrize("case", [
    {"dw_act": "RELU6"},          # the bias is not the depthwise's last step
    {"conv_kernel": 3},           # a 3x3 conv: zero padding carries no bias
    {"extra_reader": True},       # the depthwise output is read elsewhere
])
def test_depthwise_bias_stays(case: dict) -> None:
    model = depthwise_then_1x1(**case)
    assert not bias_folded(model)
    check(model, **FOLD_TOL)
