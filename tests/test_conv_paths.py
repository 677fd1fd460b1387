"""Oracle tests of the float convolution kernels' alternative fast paths.

The kernels pick a strategy by shape (see kernels/conv.py): a depthwise
convolution reads its padding-free interior straight from the input on large
inputs, uses per-pixel rather than flat views for strided layers with many
channels, and splits large layers across threads. The ordinary tests use
small shapes, so here each strategy is forced (thresholds patched) on many
small shapes and options, and also reached naturally on a few larger ones.

Tolerance: as tests/test_conv.py — a k-term float32 dot product summed in
another order than LiteRT's, rtol 1e-5 and atol 1e-6 * k.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import assert_close, const, inp, one_op_model, random_inputs, run_edgeplex, \
    run_litert

import edgeplex
from edgeplex.kernels import conv

ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def tol(k: int) -> dict[str, float]:
    """rtol / atol of a k-term float32 dot product (module doc)."""
    return {"rtol": 1e-5, "atol": 1e-6 * max(k, 1)}


def depthwise_model(in_shape: tuple[int, ...], kh: int, kw: int, mult: int,
                    stride: tuple[int, int], dilation: tuple[int, int], padding: str,
                    act: str, seed: int = 0) -> bytes:
    """A DEPTHWISE_CONV_2D model with standard-normal constant weights and bias."""
    rng = np.random.default_rng(seed)
    oc = in_shape[3] * mult
    return one_op_model(
        "DEPTHWISE_CONV_2D",
        [inp(in_shape), const(rng.standard_normal((1, kh, kw, oc)).astype(np.float32)),
         const(rng.standard_normal(oc).astype(np.float32))],
        {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
         "dilation_h_factor": dilation[0], "dilation_w_factor": dilation[1],
         "fused_activation_function": act, "depth_multiplier": mult})


def check_threads(model: bytes, k: int) -> None:
    """edgeplex with 1 and with 2 threads must match LiteRT's builtin kernel."""
    inputs = random_inputs(model)
    want = run_litert(model, inputs)
    for threads in (1, 2):
        assert_close(run_edgeplex(model, inputs, num_threads=threads), want,
                     what=f"{threads} threads", **tol(k))


@pytest.fixture(params=["flat", "per-pixel"])
def layout(request: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Force flat or per-pixel depthwise views, split interiors, 3 parts per layer,
    flat rows cut in pieces of 7 values."""
    if request.param == "flat":
        monkeypatch.setattr(conv, "_depthwise_flat", lambda axes, c, nbytes: True)
    else:
        monkeypatch.setattr(conv, "_depthwise_flat", lambda axes, c, nbytes: axes[1].out == 1)
    monkeypatch.setattr(conv, "DEPTHWISE_SPLIT", 0)
    monkeypatch.setattr(conv, "split_parts", lambda work, threshold, input_bytes=0: 3)
    monkeypatch.setattr(conv, "FLAT_CHUNK", 7)
    yield request.param


# the patches of ``layout`` hold for every example of the test: that is the point
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 2), h=st.integers(1, 11), w=st.integers(1, 11), c=st.integers(1, 4),
       mult=st.integers(1, 2), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
       padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTIVATIONS))
def test_depthwise_forced_paths(layout: str, n: int, h: int, w: int, c: int, mult: int,
                                kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
                                padding: str, act: str) -> None:
    # Every output region (interior, four padded bands, gathered columns) and
    # row split must reproduce LiteRT on any geometry.
    if padding == "VALID" and ((kh - 1) * dh >= h or (kw - 1) * dw >= w):
        kh = kw = 1   # keep the VALID output non-empty
    model = depthwise_model((n, h, w, c), kh, kw, mult, (sh, sw), (dh, dw), padding, act)
    check_threads(model, kh * kw)


@pytest.mark.parametrize("in_shape, stride, padding", [
    ((1, 128, 128, 24), (1, 1), "SAME"),    # split interior, flat, in halves on threads
    ((1, 33, 31, 24), (2, 2), "SAME"),      # odd sizes: padding on both sides
    ((1, 16, 16, 128), (2, 2), "SAME"),     # per-pixel views (many channels, stride 2)
    ((2, 40, 40, 32), (1, 2), "VALID"),     # gathered columns, batch of 2
])
def test_depthwise_natural_paths(in_shape: tuple[int, ...], stride: tuple[int, int],
                                 padding: str) -> None:
    model = depthwise_model(in_shape, 3, 3, 1, stride, (1, 1), padding, "RELU6")
    check_threads(model, 9)


@pytest.fixture
def three_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split every matrix product into 3 blocks of output lines (or rows)."""
    monkeypatch.setattr(conv, "gemm_parts", lambda rows, lines, depth, channels, nbytes=0: 3)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       cg=st.integers(1, 3), groups=st.integers(1, 2), oc_per_group=st.integers(1, 3),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 2), sw=st.integers(1, 2),
       dh=st.integers(1, 2), padding=st.sampled_from(["SAME", "VALID"]),
       act=st.sampled_from(ACTIVATIONS))
def test_conv_2d_in_line_blocks(three_parts: None, n: int, h: int, w: int, cg: int,
                                groups: int, oc_per_group: int, kh: int, kw: int, sh: int,
                                sw: int, dh: int, padding: str, act: str) -> None:
    # Blocks of output lines (crossing batch items) each copy their patches and
    # multiply them; together they must equal LiteRT's whole convolution.
    if padding == "VALID" and ((kh - 1) * dh >= h or kw > w):
        kh = kw = 1
    rng = np.random.default_rng(3)
    oc = groups * oc_per_group
    model = one_op_model(
        "CONV_2D", [inp((n, h, w, cg * groups)),
                    const(rng.standard_normal((oc, kh, kw, cg)).astype(np.float32)),
                    const(rng.standard_normal(oc).astype(np.float32))],
        {"padding": padding, "stride_h": sh, "stride_w": sw, "dilation_h_factor": dh,
         "dilation_w_factor": 1, "fused_activation_function": act})
    check_threads(model, kh * kw * cg)


def test_fully_connected_in_row_blocks(three_parts: None) -> None:
    rng = np.random.default_rng(6)
    model = one_op_model(
        "FULLY_CONNECTED", [inp((7, 2, 5)), const(rng.standard_normal((4, 5)).astype(np.float32)),
                            const(rng.standard_normal(4).astype(np.float32))],
        {"fused_activation_function": "RELU_N1_TO_1", "keep_num_dims": True})
    check_threads(model, 5)


def test_conv_3d_in_line_blocks(three_parts: None) -> None:
    rng = np.random.default_rng(4)
    model = one_op_model(
        "CONV_3D", [inp((2, 4, 5, 6, 3)),
                    const(rng.standard_normal((2, 3, 2, 3, 4)).astype(np.float32))],
        {"padding": "SAME", "stride_d": 1, "stride_h": 2, "stride_w": 1,
         "dilation_d_factor": 1, "dilation_h_factor": 1, "dilation_w_factor": 1,
         "fused_activation_function": "RELU"})
    check_threads(model, 2 * 3 * 2 * 3)


@pytest.mark.parametrize("in_shape, filter_shape, stride", [
    ((1, 128, 128, 32), (32, 1, 1, 32), 1),  # direct 1x1 GEMM in halves across threads
    ((1, 256, 256, 3), (32, 3, 3, 3), 2),    # im2col halves
])
def test_conv_2d_natural_blocks(in_shape: tuple[int, ...], filter_shape: tuple[int, ...],
                                stride: int) -> None:
    rng = np.random.default_rng(5)
    model = one_op_model(
        "CONV_2D", [inp(in_shape), const(rng.standard_normal(filter_shape).astype(np.float32)),
                    const(rng.standard_normal(filter_shape[0]).astype(np.float32))],
        {"padding": "SAME", "stride_h": stride, "stride_w": stride, "dilation_h_factor": 1,
         "dilation_w_factor": 1, "fused_activation_function": "RELU6"})
    check_threads(model, int(np.prod(filter_shape[1:])))


@pytest.mark.parametrize("op, shapes, options", [
    ("CONV_2D", [(1, 6, 5, 4), (3, 3, 3, 4), (3,)],
     {"padding": "SAME", "stride_h": 2, "stride_w": 1, "dilation_h_factor": 1,
      "dilation_w_factor": 1, "fused_activation_function": "RELU"}),
    ("DEPTHWISE_CONV_2D", [(1, 6, 5, 3), (1, 3, 3, 6), (6,)],
     {"padding": "SAME", "stride_h": 1, "stride_w": 2, "dilation_h_factor": 1,
      "dilation_w_factor": 1, "fused_activation_function": "RELU6", "depth_multiplier": 2}),
    ("FULLY_CONNECTED", [(2, 7), (5, 7), (5,)],
     {"fused_activation_function": "NONE", "keep_num_dims": False,
      "weights_format": "DEFAULT", "asymmetric_quantize_inputs": False}),
])
def test_each_invoke_reads_the_current_inputs(op: str, shapes: list, options: dict) -> None:
    # The kernels bind their numpy calls to the step's arrays once: a second
    # invoke with new values in every input (weights and bias included) must
    # use those values (bound views, refreshed copies), not the first ones.
    model = one_op_model(op, [inp(s) for s in shapes], options)
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    for seed in (1, 2):
        inputs = random_inputs(model, seed=seed)
        for d, value in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], value)
        it.invoke()
        got = [it.get_tensor(d["index"]) for d in it.get_output_details()]
        assert_close(got, run_litert(model, inputs), what=f"invoke {seed}",
                     **tol(int(np.prod(shapes[1][1:]))))
