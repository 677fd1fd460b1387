"""Oracle tests of the float convolution and linear-algebra kernels
(CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, CONV_3D, FULLY_CONNECTED,
BATCH_MATMUL) against LiteRT's builtin kernels.

Tolerance: every output is a float32 sum of ``k`` products (``k`` = filter
taps x input channels per group). edgeplex sums in another order than LiteRT
(OpenBLAS vs ruy/Eigen blocking), so results differ by rounding only. Inputs
are uniform in [-3, 3) and weights standard normal, so each product is at
most ~10 in magnitude and the reordering error stays below k * 1e-6 (a wide
margin over k * 10 * 2**-24 per rounding step of a k-term sum) plus a relative
1e-5; see :func:`tol`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import assert_close, check, const, inp, one_op_model, random_inputs, run_edgeplex, \
    run_litert

import edgeplex
from edgeplex import ModelBuilder, ModelError, Quantization, UnsupportedOpError

ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def tol(k: int) -> dict[str, float]:
    """rtol / atol for outputs that are k-term float32 dot products (see module doc)."""
    return {"rtol": 1e-5, "atol": 1e-6 * max(k, 1)}


def weights(*shape: int, seed: int = 1) -> np.ndarray:
    """Standard-normal float32 weights."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def conv_options(padding: str = "SAME", stride: Sequence[int] = (1, 1),
                 dilation: Sequence[int] = (1, 1), act: str = "NONE") -> dict[str, Any]:
    """Conv2DOptions / DepthwiseConv2DOptions fields as a dict."""
    return {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
            "dilation_h_factor": dilation[0], "dilation_w_factor": dilation[1],
            "fused_activation_function": act}


def allocate(model: bytes) -> None:
    """Prepare every kernel of ``model`` in edgeplex."""
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def check_without_bias(op: str, ins: list, options: dict[str, Any], out_channels: int,
                       k: int, bias_index: int = 2, **kw: Any) -> None:
    """edgeplex on ``op`` with the bias omitted must equal LiteRT with a zero bias
    (LiteRT's CONV_2D / DEPTHWISE_CONV_2D kernels require a bias tensor)."""
    omitted = ins[:bias_index] + [None] + ins[bias_index + 1:]
    zero = ins[:bias_index] + [const(np.zeros(out_channels, np.float32))] + ins[bias_index + 1:]
    got_model = one_op_model(op, omitted, options, **kw)
    want_model = one_op_model(op, zero, options, **kw)
    inputs = random_inputs(want_model)
    assert_close(run_edgeplex(got_model, inputs), run_litert(want_model, inputs), what=op,
                 **tol(k))


# -- CONV_2D -------------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("dilation", [(1, 1), (2, 1), (2, 3)])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (1, 3)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_2d_options(padding: str, stride: tuple, dilation: tuple, act: str) -> None:
    model = one_op_model("CONV_2D", [inp((2, 9, 8, 3)), const(weights(4, 3, 2, 3)),
                                     const(weights(4, seed=2))],
                         conv_options(padding, stride, dilation, act))
    check(model, **tol(3 * 2 * 3))


@pytest.mark.parametrize("in_shape, filter_shape, padding, stride", [
    ((1, 5, 5, 7), (6, 1, 1, 7), "VALID", (1, 1)),     # 1x1: direct matmul
    ((3, 4, 6, 5), (2, 1, 1, 5), "SAME", (1, 1)),
    ((1, 9, 7, 4), (3, 1, 1, 4), "SAME", (2, 2)),      # 1x1 strided: im2col
    ((1, 1, 1, 3), (2, 1, 1, 3), "VALID", (1, 1)),
    ((1, 3, 3, 2), (5, 5, 5, 2), "SAME", (1, 1)),      # filter larger than the input
    ((1, 3, 4, 2), (5, 3, 4, 2), "VALID", (1, 1)),     # filter covers the input: 1x1 out
    ((2, 11, 13, 1), (8, 7, 5, 1), "SAME", (3, 2)),
    ((1, 6, 6, 3), (4, 2, 2, 3), "SAME", (2, 2)),      # even filter: asymmetric SAME pad
    ((1, 10, 3, 6), (1, 3, 3, 6), "VALID", (4, 1)),
])
def test_conv_2d_shapes(in_shape: tuple, filter_shape: tuple, padding: str,
                        stride: tuple) -> None:
    oc, kh, kw, ic = filter_shape
    model = one_op_model("CONV_2D", [inp(in_shape), const(weights(*filter_shape)),
                                     const(weights(oc, seed=3))],
                         conv_options(padding, stride, act="RELU"))
    check(model, **tol(kh * kw * ic))


@pytest.mark.parametrize("in_ch, filter_shape, stride", [
    (6, (6, 3, 3, 2), (1, 1)),     # 3 groups
    (4, (6, 3, 3, 2), (2, 1)),     # 2 groups of 3 output channels
    (6, (9, 1, 1, 2), (1, 1)),     # grouped 1x1: direct batched matmul
    (8, (8, 2, 3, 1), (1, 2)),     # one input channel per group
])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_2d_grouped(in_ch: int, filter_shape: tuple, stride: tuple, padding: str) -> None:
    oc, kh, kw, icg = filter_shape
    model = one_op_model("CONV_2D", [inp((2, 7, 6, in_ch)), const(weights(*filter_shape)),
                                     const(weights(oc, seed=4))],
                         conv_options(padding, stride, (1, 1), "RELU6"))
    check(model, **tol(kh * kw * icg))


@pytest.mark.parametrize("filter_shape, in_ch", [((5, 3, 3, 4), 4), ((6, 2, 2, 2), 6),
                                                 ((4, 1, 1, 3), 3)])
def test_conv_2d_filter_and_bias_as_inputs(filter_shape: tuple, in_ch: int) -> None:
    # weights produced at run time (e.g. by DEQUANTIZE) take the per-run layout path.
    oc, kh, kw, icg = filter_shape
    model = one_op_model("CONV_2D", [inp((1, 6, 5, in_ch)), inp(filter_shape), inp((oc,))],
                         conv_options("SAME", (2, 1)))
    check(model, **tol(kh * kw * icg))


@pytest.mark.parametrize("filter_shape, in_ch", [((5, 3, 3, 4), 4), ((4, 1, 1, 2), 4)])
def test_conv_2d_without_bias(filter_shape: tuple, in_ch: int) -> None:
    oc, kh, kw, icg = filter_shape
    check_without_bias("CONV_2D", [inp((2, 6, 5, in_ch)), const(weights(*filter_shape)), None],
                       conv_options("SAME", (1, 2), act="RELU"), oc, kh * kw * icg)


def test_conv_2d_runs_twice_with_new_inputs() -> None:
    # buffers and cached views persist between invokes: a second run must not reuse data.
    model = one_op_model("CONV_2D", [inp((1, 5, 5, 3)), const(weights(2, 3, 3, 3)),
                                     const(weights(2))], conv_options("SAME"))
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    for seed in (1, 2):
        x = random_inputs(model, seed)
        it.set_tensor(i, x[0])
        it.invoke()
        assert_close([it.get_tensor(o)], run_litert(model, x), **tol(27))


@given(n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9),
       groups=st.sampled_from([1, 1, 2, 3]), icg=st.integers(1, 3), ocg=st.integers(1, 3),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dh=st.integers(1, 2), dw=st.integers(1, 2), padding=st.sampled_from(["SAME", "VALID"]),
       act=st.sampled_from(ACTIVATIONS))
def test_conv_2d_hypothesis(n: int, h: int, w: int, groups: int, icg: int, ocg: int, kh: int,
                            kw: int, sh: int, sw: int, dh: int, dw: int, padding: str,
                            act: str) -> None:
    if padding == "VALID" and ((kh - 1) * dh >= h or (kw - 1) * dw >= w):
        kh = kw = 1   # keep the VALID output non-empty
    oc = groups * ocg
    model = one_op_model("CONV_2D", [inp((n, h, w, groups * icg)),
                                     const(weights(oc, kh, kw, icg)), const(weights(oc))],
                         conv_options(padding, (sh, sw), (dh, dw), act))
    check(model, **tol(kh * kw * icg))


# -- DEPTHWISE_CONV_2D ------------------------------------------------------------------
def depthwise_options(padding: str = "SAME", stride: Sequence[int] = (1, 1),
                      dilation: Sequence[int] = (1, 1), act: str = "NONE",
                      multiplier: int = 1) -> dict[str, Any]:
    """DepthwiseConv2DOptions fields."""
    return {**conv_options(padding, stride, dilation, act), "depth_multiplier": multiplier}


@pytest.mark.parametrize("multiplier", [1, 2, 3])
@pytest.mark.parametrize("dilation", [(1, 1), (2, 2), (1, 3)])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 1)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_depthwise_conv_2d_options(padding: str, stride: tuple, dilation: tuple,
                                   multiplier: int) -> None:
    c = 3
    model = one_op_model("DEPTHWISE_CONV_2D",
                         [inp((2, 9, 10, c)), const(weights(1, 3, 2, c * multiplier)),
                          const(weights(c * multiplier, seed=5))],
                         depthwise_options(padding, stride, dilation, "NONE", multiplier))
    check(model, **tol(6))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_depthwise_conv_2d_activations(act: str) -> None:
    model = one_op_model("DEPTHWISE_CONV_2D", [inp((1, 6, 6, 4)), const(weights(1, 3, 3, 8)),
                                               const(weights(8, seed=6))],
                         depthwise_options("SAME", (1, 1), (1, 1), act, 2))
    check(model, **tol(9))


@pytest.mark.parametrize("in_shape, filter_shape, padding, stride", [
    ((1, 5, 5, 7), (1, 1, 1, 7), "VALID", (1, 1)),
    ((3, 1, 1, 2), (1, 3, 3, 4), "SAME", (1, 1)),     # every tap but one is padding
    ((1, 4, 5, 1), (1, 4, 5, 5), "VALID", (1, 1)),    # one input channel, multiplier 5
    ((1, 12, 7, 16), (1, 5, 5, 16), "SAME", (2, 2)),
    ((1, 8, 8, 3), (1, 2, 2, 3), "SAME", (2, 2)),     # even filter
])
def test_depthwise_conv_2d_shapes(in_shape: tuple, filter_shape: tuple, padding: str,
                                  stride: tuple) -> None:
    oc = filter_shape[3]
    model = one_op_model("DEPTHWISE_CONV_2D",
                         [inp(in_shape), const(weights(*filter_shape)), const(weights(oc))],
                         depthwise_options(padding, stride, multiplier=oc // in_shape[3]))
    check(model, **tol(filter_shape[1] * filter_shape[2]))


@pytest.mark.parametrize("option", [0, 1, 5])
def test_depthwise_conv_2d_infers_multiplier_from_shapes(option: int) -> None:
    # LiteRT ignores the depth_multiplier option and uses filter / input channels (2 here).
    model = one_op_model("DEPTHWISE_CONV_2D", [inp((1, 5, 5, 3)), const(weights(1, 3, 3, 6)),
                                               const(weights(6))],
                         depthwise_options(multiplier=option))
    check(model, **tol(9))


def test_depthwise_conv_2d_filter_and_bias_as_inputs() -> None:
    model = one_op_model("DEPTHWISE_CONV_2D", [inp((2, 6, 5, 3)), inp((1, 3, 3, 6)), inp((6,))],
                         depthwise_options("SAME", (2, 1), multiplier=2))
    check(model, **tol(9))


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv_2d_without_bias(multiplier: int) -> None:
    check_without_bias("DEPTHWISE_CONV_2D",
                       [inp((1, 6, 5, 3)), const(weights(1, 3, 3, 3 * multiplier)), None],
                       depthwise_options("VALID", (1, 1), (1, 1), "RELU6", multiplier),
                       3 * multiplier, 9)


@given(n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 4),
       mult=st.integers(1, 3), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
       padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTIVATIONS))
def test_depthwise_conv_2d_hypothesis(n: int, h: int, w: int, c: int, mult: int, kh: int,
                                      kw: int, sh: int, sw: int, dh: int, dw: int,
                                      padding: str, act: str) -> None:
    if padding == "VALID" and ((kh - 1) * dh >= h or (kw - 1) * dw >= w):
        kh = kw = 1   # keep the VALID output non-empty
    model = one_op_model("DEPTHWISE_CONV_2D", [inp((n, h, w, c)),
                                               const(weights(1, kh, kw, c * mult)),
                                               const(weights(c * mult, seed=2))],
                         depthwise_options(padding, (sh, sw), (dh, dw), act, mult))
    check(model, **tol(kh * kw))


# -- TRANSPOSE_CONV --------------------------------------------------------------------
def transpose_conv_model(in_shape: Sequence[int], w_shape: Sequence[int],
                         out_hw: Sequence[int], padding: str, stride: Sequence[int],
                         bias: bool = True, act: str = "NONE", dynamic: bool = False) -> bytes:
    """A TRANSPOSE_CONV model (inputs: output_shape, weights, input[, bias])."""
    out_shape = np.array([in_shape[0], *out_hw, w_shape[0]], np.int32)
    shape_in = inp((4,), np.int32) if dynamic else const(out_shape)
    ins = [shape_in, const(weights(*w_shape)), inp(in_shape)]
    if bias:
        ins.append(const(weights(w_shape[0], seed=7)))
    options = {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
               "fused_activation_function": act}
    return one_op_model("TRANSPOSE_CONV", ins, options, out_dtype=np.float32,
                        out_shapes=[tuple(out_shape)] if dynamic else None)


def transposed_size(size: int, k: int, s: int, padding: str) -> int:
    """An output size whose forward convolution gives back ``size``."""
    return size * s if padding == "SAME" else (size - 1) * s + k


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU_N1_TO_1"])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 2), (4, 4)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_transpose_conv_options(padding: str, stride: tuple, act: str, bias: bool) -> None:
    in_shape, w_shape = (2, 4, 3, 3), (5, 3, 2, 3)   # stride 4 > filter: output gaps
    out_hw = [transposed_size(n, k, s, padding)
              for n, k, s in zip(in_shape[1:3], w_shape[1:3], stride)]
    check(transpose_conv_model(in_shape, w_shape, out_hw, padding, stride, bias, act), **tol(3))


@pytest.mark.parametrize("in_shape, w_shape, out_hw, padding, stride", [
    ((1, 5, 5, 4), (3, 1, 1, 4), (5, 5), "SAME", (1, 1)),
    ((1, 3, 3, 2), (2, 4, 4, 2), (6, 6), "SAME", (2, 2)),    # even filter
    ((1, 3, 3, 2), (2, 3, 3, 2), (5, 5), "SAME", (2, 2)),    # SAME with odd output
    ((1, 3, 3, 2), (2, 3, 3, 2), (10, 11), "VALID", (3, 3)),  # VALID with extra rows
    ((1, 1, 1, 6), (4, 5, 3, 6), (5, 3), "VALID", (1, 1)),
])
def test_transpose_conv_shapes(in_shape: tuple, w_shape: tuple, out_hw: tuple, padding: str,
                               stride: tuple) -> None:
    check(transpose_conv_model(in_shape, w_shape, out_hw, padding, stride), **tol(w_shape[3]))


def test_transpose_conv_dynamic_output_shape() -> None:
    model = transpose_conv_model((1, 3, 4, 2), (3, 3, 3, 2), (6, 8), "SAME", (2, 2),
                                 dynamic=True)
    x = random_inputs(model)[1]
    for out_hw in [(6, 8), (5, 7)]:
        inputs = [np.array([1, *out_hw, 3], np.int32), x]
        got = run_edgeplex(model, inputs)
        assert got[0].shape == (1, *out_hw, 3)
        assert_close(got, run_litert(model, inputs), **tol(2))


def test_transpose_conv_weights_as_input() -> None:
    model = one_op_model("TRANSPOSE_CONV", [const(np.array([1, 6, 6, 2], np.int32)),
                                            inp((2, 3, 3, 4)), inp((1, 3, 3, 4))],
                         {"padding": "SAME", "stride_h": 2, "stride_w": 2},
                         out_dtype=np.float32)
    check(model, **tol(4))


@given(n=st.integers(1, 2), h=st.integers(1, 5), w=st.integers(1, 5), ic=st.integers(1, 3),
       oc=st.integers(1, 3), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
       sw=st.integers(1, 3), padding=st.sampled_from(["SAME", "VALID"]),
       bias=st.booleans(), act=st.sampled_from(ACTIVATIONS), extra=st.integers(0, 2))
def test_transpose_conv_hypothesis(n: int, h: int, w: int, ic: int, oc: int, kh: int, kw: int,
                                   sh: int, sw: int, padding: str, bias: bool, act: str,
                                   extra: int) -> None:
    # Any output size whose forward convolution gives back the input size is valid: for
    # VALID up to stride - 1 extra rows, for SAME down to stride - 1 fewer.
    def size(n_in: int, k: int, s: int) -> int:
        base = transposed_size(n_in, k, s, padding)
        return base + min(extra, s - 1) if padding == "VALID" else base - min(extra, s - 1)
    out_hw = (size(h, kh, sh), size(w, kw, sw))
    model = transpose_conv_model((n, h, w, ic), (oc, kh, kw, ic), out_hw, padding, (sh, sw),
                                 bias, act)
    check(model, **tol(ic))


# -- CONV_3D -----------------------------------------------------------------------------
def conv3d_options(padding: str, stride: Sequence[int], dilation: Sequence[int],
                   act: str = "NONE") -> dict[str, Any]:
    """Conv3DOptions fields."""
    return {"padding": padding, "stride_d": stride[0], "stride_h": stride[1],
            "stride_w": stride[2], "dilation_d_factor": dilation[0],
            "dilation_h_factor": dilation[1], "dilation_w_factor": dilation[2],
            "fused_activation_function": act}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dilation", [(1, 1, 1), (2, 1, 2)])
@pytest.mark.parametrize("stride", [(1, 1, 1), (2, 1, 3)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_3d_options(padding: str, stride: tuple, dilation: tuple, bias: bool) -> None:
    w = weights(2, 3, 2, 3, 4)
    model = one_op_model("CONV_3D", [inp((2, 6, 7, 5, 3)), const(w),
                                     const(weights(4, seed=8)) if bias else None],
                         conv3d_options(padding, stride, dilation, "RELU"))
    check(model, **tol(2 * 3 * 2 * 3))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_conv_3d_activations_and_1x1(act: str) -> None:
    model = one_op_model("CONV_3D", [inp((1, 3, 4, 5, 6)), const(weights(1, 1, 1, 6, 2)),
                                     const(weights(2))],
                         conv3d_options("SAME", (1, 1, 1), (1, 1, 1), act))
    check(model, **tol(6))


# -- FULLY_CONNECTED ---------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("in_shape, keep", [
    ((3, 8), False), ((3, 8), True), ((2, 3, 8), False), ((2, 3, 8), True),
    ((2, 2, 2, 8), True), ((2, 2, 2, 8), False), ((8,), False), ((4, 4), False),
    ((1, 2, 16), False),   # rows are 8 wide: the flattening ignores the input's shape
])
def test_fully_connected(in_shape: tuple, keep: bool, bias: bool, act: str) -> None:
    model = one_op_model("FULLY_CONNECTED", [inp(in_shape), const(weights(5, 8)),
                                             const(weights(5, seed=9)) if bias else None],
                         {"keep_num_dims": keep, "fused_activation_function": act})
    check(model, **tol(8))


def test_fully_connected_weights_as_input() -> None:
    model = one_op_model("FULLY_CONNECTED", [inp((4, 6)), inp((3, 6)), inp((3,))], {})
    check(model, **tol(6))


# -- BATCH_MATMUL --------------------------------------------------------------------------
@pytest.mark.parametrize("adj_y", [False, True])
@pytest.mark.parametrize("adj_x", [False, True])
@pytest.mark.parametrize("lhs, rhs", [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((1, 2, 3, 4), (3, 1, 4, 5)),
    ((1, 3, 1, 3, 4), (2, 3, 1, 4, 5)),
    ((2, 3, 2, 3, 4), (2, 3, 2, 4, 5)),
])
def test_batch_matmul(lhs: tuple, rhs: tuple, adj_x: bool, adj_y: bool) -> None:
    lhs = (*lhs[:-2], lhs[-1], lhs[-2]) if adj_x else lhs
    rhs = (*rhs[:-2], rhs[-1], rhs[-2]) if adj_y else rhs
    for right in (inp(rhs), const(weights(*rhs))):
        model = one_op_model("BATCH_MATMUL", [inp(lhs), right], {"adj_x": adj_x, "adj_y": adj_y})
        check(model, **tol(4))


# -- a small network ------------------------------------------------------------------------
def test_conv_depthwise_pool_fully_connected_chain() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("image", (2, 12, 12, 3))
    y = g.op("CONV_2D", [x, g.constant("w1", weights(8, 3, 3, 3)), g.constant("b1", weights(8))],
             conv_options("SAME", (2, 2), act="RELU6"))
    y = g.op("DEPTHWISE_CONV_2D", [y, g.constant("w2", weights(1, 3, 3, 16)),
                                   g.constant("b2", weights(16))],
             depthwise_options("SAME", (1, 1), (1, 1), "RELU", 2))
    y = g.op("MAX_POOL_2D", [y], {"padding": "VALID", "stride_h": 2, "stride_w": 2,
                                  "filter_height": 2, "filter_width": 2})
    y = g.op("CONV_2D", [y, g.constant("w3", weights(4, 1, 1, 16)), g.constant("b3", weights(4))],
             conv_options("VALID"))
    y = g.op("AVERAGE_POOL_2D", [y], {"padding": "SAME", "stride_h": 1, "stride_w": 1,
                                      "filter_height": 3, "filter_width": 3})
    y = g.op("FULLY_CONNECTED", [y, g.constant("w4", weights(10, 36)),
                                 g.constant("b4", weights(10))], {})
    g.output(y)
    # errors compound through five layers of up to 27..36-term sums of growing values.
    check(mb.build(), rtol=1e-4, atol=1e-4)


def test_transpose_conv_then_dilated_conv_chain() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 4, 4, 3))
    y = g.op("TRANSPOSE_CONV", [g.constant("shape", np.array([1, 8, 8, 5], np.int32)),
                                g.constant("w", weights(5, 3, 3, 3)), x,
                                g.constant("b", weights(5))],
             {"padding": "SAME", "stride_h": 2, "stride_w": 2}, dtype=np.float32)
    y = g.op("CONV_2D", [y, g.constant("w2", weights(6, 3, 3, 5)), g.constant("b2", weights(6))],
             conv_options("SAME", (1, 1), (2, 2), "RELU"))
    g.output(y)
    check(mb.build(), rtol=1e-4, atol=1e-4)


# -- MediaPipe configurations -------------------------------------------------------------
WINDOW_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D")


def mediapipe_window_ops() -> dict[tuple, str]:
    """Every distinct (op, version, options, input shapes) of the window ops in the
    seven MediaPipe models, with the model it first appears in."""
    from edgeplex.hwlab.zoo import MEDIAPIPE_MODELS, FetchError, mediapipe_model
    configs: dict[tuple, str] = {}
    for name in MEDIAPIPE_MODELS:
        try:
            graph = edgeplex.read_model(mediapipe_model(name)).main
        except FetchError as e:
            pytest.fail(f"cannot fetch the MediaPipe models (no package index?): {e}")
        for op in graph.operators:
            if op.op in WINDOW_OPS:
                shapes = tuple(graph.tensors[i].shape for i in op.inputs if i >= 0)
                key = (op.op, op.version, op.options, shapes)
                configs.setdefault(key, f"{name} op {op.index}")
    return configs


def test_mediapipe_window_op_configurations() -> None:
    # Each layer configuration of the real models, as a one-op model with random weights
    # (the layers' own weights are DEQUANTIZE / DENSIFY outputs, not constants).
    configs = mediapipe_window_ops()
    assert {c[0] for c in configs} == set(WINDOW_OPS)
    for (op, version, options, shapes), where in configs.items():
        ins = [inp(shapes[0])] + [const(weights(*s, seed=i)) for i, s in enumerate(shapes[1:])]
        k = int(np.prod(shapes[1][1:])) if op != "MAX_POOL_2D" else 1
        check(one_op_model(op, ins, options, version=version), what=where, **tol(k))


# -- errors ---------------------------------------------------------------------------------
def conv_model(in_shape: tuple, filter_shape: tuple, options: dict[str, Any],
               out_shape: tuple = (1, 4, 4, 2), op: str = "CONV_2D") -> bytes:
    """A model whose output shape is given, so edgeplex's prepare runs only at allocate."""
    bias = const(np.zeros(filter_shape[-1] if op == "DEPTHWISE_CONV_2D" else filter_shape[0],
                          np.float32))
    return one_op_model(op, [inp(in_shape), const(weights(*filter_shape)), bias], options,
                        out_shapes=[out_shape])


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
@pytest.mark.parametrize("act", ["TANH", "SIGN_BIT"])
def test_unsupported_activation(op: str, act: str) -> None:
    model = conv_model((1, 4, 4, 2), (2, 1, 1, 2) if op == "CONV_2D" else (1, 1, 1, 2),
                       conv_options(act=act), op=op)
    with pytest.raises(UnsupportedOpError, match=f"{op}.*{act}"):
        allocate(model)


def test_fully_connected_unsupported_activation() -> None:
    model = one_op_model("FULLY_CONNECTED", [inp((2, 4)), const(weights(3, 4)), None],
                         {"fused_activation_function": "TANH"}, out_shapes=[(2, 3)])
    with pytest.raises(UnsupportedOpError, match="FULLY_CONNECTED.*TANH"):
        allocate(model)


@pytest.mark.parametrize("op, in_shape, filter_shape, message", [
    ("CONV_2D", (1, 4, 4, 2), (2, 1, 2), "filter must have rank 4"),
    ("CONV_2D", (1, 4, 4), (2, 1, 1, 2), "input must have rank 4"),
    ("CONV_2D", (1, 4, 4, 5), (2, 1, 1, 3), "5 channels, not a multiple"),
    ("CONV_2D", (1, 4, 4, 4), (3, 1, 1, 2), "do not split into 2 groups"),
    ("DEPTHWISE_CONV_2D", (1, 4, 4, 3), (1, 1, 1, 4), "4 channels, not a multiple"),
    ("DEPTHWISE_CONV_2D", (1, 4, 4, 2), (2, 1, 1, 2), r"must be \[1, height"),
])
def test_malformed_conv(op: str, in_shape: tuple, filter_shape: tuple, message: str) -> None:
    with pytest.raises(ModelError, match=f"{op}.*{message}"):
        allocate(conv_model(in_shape, filter_shape, conv_options(), op=op))


def test_conv_bad_stride_and_bias() -> None:
    with pytest.raises(ModelError, match="CONV_2D.*stride 0"):
        allocate(conv_model((1, 4, 4, 2), (2, 1, 1, 2), {**conv_options(), "stride_w": 0}))
    model = one_op_model("CONV_2D", [inp((1, 4, 4, 2)), const(weights(2, 1, 1, 2)),
                                     const(np.zeros(3, np.float32))], conv_options(),
                         out_shapes=[(1, 4, 4, 2)])
    with pytest.raises(ModelError, match="CONV_2D.*bias has 3 values for 2"):
        allocate(model)


def test_conv_3d_channel_mismatch() -> None:
    model = one_op_model("CONV_3D", [inp((1, 3, 3, 3, 4)), const(weights(1, 1, 1, 2, 3)), None],
                         conv3d_options("SAME", (1, 1, 1), (1, 1, 1)),
                         out_shapes=[(1, 3, 3, 3, 3)])
    with pytest.raises(ModelError, match="CONV_3D.*4 channels but the filter expects 2"):
        allocate(model)


@pytest.mark.parametrize("out_shape, message", [
    ((1, 9, 6, 3), "gives 5, not 3"),       # SAME: ceil(9 / 2) != 3
    ((2, 6, 6, 3), "batch"),
    ((1, 6, 6, 4), "output channels"),
])
def test_transpose_conv_output_shape_mismatch(out_shape: tuple, message: str) -> None:
    model = one_op_model("TRANSPOSE_CONV", [const(np.array(out_shape, np.int32)),
                                            const(weights(3, 3, 3, 2)), inp((1, 3, 3, 2))],
                         {"padding": "SAME", "stride_h": 2, "stride_w": 2},
                         out_dtype=np.float32, out_shapes=[out_shape])
    with pytest.raises(ModelError, match=f"TRANSPOSE_CONV.*{message}"):
        allocate(model)


def test_fully_connected_errors() -> None:
    bad_rows = one_op_model("FULLY_CONNECTED", [inp((3, 5)), const(weights(2, 4)), None], {},
                            out_shapes=[(3, 2)])
    with pytest.raises(ModelError, match="FULLY_CONNECTED.*rows of 4"):
        allocate(bad_rows)
    bad_keep = one_op_model("FULLY_CONNECTED", [inp((2, 8)), const(weights(2, 4)), None],
                            {"keep_num_dims": True}, out_shapes=[(2, 2)])
    with pytest.raises(ModelError, match="FULLY_CONNECTED.*keep_num_dims"):
        allocate(bad_keep)
    shuffled = one_op_model("FULLY_CONNECTED", [inp((2, 4)), const(weights(2, 4)), None],
                            {"weights_format": "SHUFFLED4x16INT8"}, out_shapes=[(2, 2)])
    with pytest.raises(UnsupportedOpError, match="FULLY_CONNECTED.*SHUFFLED4x16INT8"):
        allocate(shuffled)


def test_float_kernels_refuse_hybrid_weights_rather_than_miscompute() -> None:
    """Without the hybrid kernels (kernels/hybrid.py), the float kernels must
    refuse int8 weights, never treat them as floats."""
    from edgeplex.kernels import OpResolver, builtin_registrations
    float_only = OpResolver(r for r in builtin_registrations()
                            if r.prepare.__module__ != "edgeplex.kernels.hybrid")

    def allocate_float_only(model: bytes) -> None:
        edgeplex.Interpreter(model_content=model, resolver=float_only).allocate_tensors()
    q = Quantization.of(0.02, 0)
    w8 = np.random.default_rng(0).integers(-127, 128, (3, 4)).astype(np.int8)
    model = one_op_model("FULLY_CONNECTED", [inp((2, 4)), const(w8, quantization=q), None], {},
                         out_shapes=[(2, 3)], out_dtype=np.float32)
    with pytest.raises(UnsupportedOpError, match="FULLY_CONNECTED.*INT8 weights.*hybrid"):
        allocate_float_only(model)
    conv = one_op_model("CONV_2D", [inp((1, 4, 4, 4)), const(w8.reshape(3, 1, 1, 4),
                                                              quantization=q),
                                    const(np.zeros(3, np.float32))], conv_options(),
                        out_shapes=[(1, 4, 4, 3)], out_dtype=np.float32)
    with pytest.raises(UnsupportedOpError, match="CONV_2D.*hybrid"):
        allocate_float_only(conv)
    bmm = one_op_model("BATCH_MATMUL", [inp((2, 3)), const(w8.T.copy(), quantization=q)], {},
                       out_shapes=[(2, 3)], out_dtype=np.float32)
    with pytest.raises(UnsupportedOpError, match="BATCH_MATMUL.*hybrid"):
        allocate_float_only(bmm)


def test_batch_matmul_errors() -> None:
    mismatch = one_op_model("BATCH_MATMUL", [inp((2, 3)), inp((4, 5))], {}, out_shapes=[(2, 5)])
    with pytest.raises(ModelError, match="BATCH_MATMUL.*contracted dimensions differ"):
        allocate(mismatch)
    rank6 = one_op_model("BATCH_MATMUL", [inp((1, 1, 1, 1, 2, 3)), inp((3, 2))], {},
                         out_shapes=[(1, 1, 1, 1, 2, 2)])
    with pytest.raises(UnsupportedOpError, match="BATCH_MATMUL.*rank 6"):
        allocate(rank6)
    no_broadcast = one_op_model("BATCH_MATMUL", [inp((2, 2, 3)), inp((3, 3, 2))], {},
                                out_shapes=[(2, 2, 2)])
    with pytest.raises(ModelError, match="BATCH_MATMUL.*do not broadcast"):
        allocate(no_broadcast)
