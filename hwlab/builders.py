"""Reference networks built with edgeplex's ModelBuilder.

Used by the whole-model tests, the benchmarks and the lab: a
MobileNetV2-style CNN, a small U-Net, a transformer encoder block, a
keyword-spotting DS-CNN and an LSTM sequence model, all float32 with
seeded random weights (He-style scaling so activations stay in range).
``edgeplex.hwlab.ptq`` turns them into full-integer models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeplex.core.builder import ModelBuilder, SubgraphBuilder, TensorRef

F32 = np.float32


@dataclass
class Net:
    """A subgraph under construction with a seeded weight generator."""

    g: SubgraphBuilder
    rng: np.random.Generator
    n: int = 0

    def name(self, prefix: str) -> str:
        """A unique tensor name."""
        self.n += 1
        return f"{prefix}_{self.n}"

    def weights(self, shape: tuple[int, ...], fan_in: int, prefix: str = "w") -> TensorRef:
        """A constant of He-scaled normal weights."""
        w = self.rng.normal(0, np.sqrt(2.0 / max(fan_in, 1)), shape).astype(F32)
        return self.g.constant(self.name(prefix), w)

    def bias(self, n: int) -> TensorRef:
        """A constant bias of small values."""
        return self.g.constant(self.name("b"), self.rng.normal(0, 0.05, n).astype(F32))

    def const(self, value: Any, dtype: Any = F32, prefix: str = "c") -> TensorRef:
        """A named constant."""
        return self.g.constant(self.name(prefix), np.asarray(value, dtype))

    def conv(self, x: TensorRef, cin: int, cout: int, k: int = 3, stride: int = 1,
             act: str = "RELU6", padding: str = "SAME") -> TensorRef:
        """CONV_2D with bias and a fused activation."""
        w = self.weights((cout, k, k, cin), k * k * cin)
        return self.g.op("CONV_2D", [x, w, self.bias(cout)],
                         {"padding": padding, "stride_w": stride, "stride_h": stride,
                          "fused_activation_function": act})

    def depthwise(self, x: TensorRef, c: int, k: int = 3, stride: int = 1,
                  act: str = "RELU6") -> TensorRef:
        """DEPTHWISE_CONV_2D (multiplier 1) with bias and a fused activation."""
        w = self.weights((1, k, k, c), k * k)
        return self.g.op("DEPTHWISE_CONV_2D", [x, w, self.bias(c)],
                         {"padding": "SAME", "stride_w": stride, "stride_h": stride,
                          "depth_multiplier": 1, "fused_activation_function": act})

    def dense(self, x: TensorRef, cin: int, cout: int, act: str = "NONE",
              keep_num_dims: bool = False) -> TensorRef:
        """FULLY_CONNECTED with bias."""
        w = self.weights((cout, cin), cin)
        return self.g.op("FULLY_CONNECTED", [x, w, self.bias(cout)],
                         {"fused_activation_function": act, "keep_num_dims": keep_num_dims})


def _net(seed: int) -> tuple[ModelBuilder, Net]:
    mb = ModelBuilder(description="edgeplex hwlab reference network")
    return mb, Net(mb.main, np.random.default_rng(seed))


# -- MobileNetV2 -------------------------------------------------------------------
#: (expansion t, output channels c, repeats n, first stride s) per stage.
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _channels(c: int, alpha: float) -> int:
    return max(8, int(c * alpha + 4) // 8 * 8)


def _inverted_residual(net: Net, x: TensorRef, cin: int, cout: int, t: int,
                       stride: int) -> TensorRef:
    h = net.conv(x, cin, cin * t, k=1) if t != 1 else x
    h = net.depthwise(h, cin * t, stride=stride)
    h = net.conv(h, cin * t, cout, k=1, act="NONE")
    if stride == 1 and cin == cout:
        h = net.g.op("ADD", [x, h])
    return h


def mobilenet_v2(size: int = 96, alpha: float = 0.35, classes: int = 10, seed: int = 0,
                 stages: tuple = MOBILENET_V2_STAGES) -> bytes:
    """A MobileNetV2-style classifier: inverted residual blocks (1x1 expansion,
    depthwise, 1x1 projection, residual ADD), RELU6, global MEAN, FULLY_CONNECTED,
    SOFTMAX."""
    mb, net = _net(seed)
    x = net.g.input("image", (1, size, size, 3), F32)
    cin = _channels(32, alpha)
    h = net.conv(x, 3, cin, stride=2)
    for t, c, n, s in stages:
        cout = _channels(c, alpha)
        for i in range(n):
            h = _inverted_residual(net, h, cin, cout, t, s if i == 0 else 1)
            cin = cout
    last = 1280 if alpha >= 1 else _channels(1280, alpha)
    h = net.conv(h, cin, last, k=1)
    h = net.g.op("MEAN", [h, net.const([1, 2], np.int32, "axes")], {"keep_dims": False})
    logits = net.dense(h, last, classes)
    probs = net.g.op("SOFTMAX", [logits], {"beta": 1.0})
    net.g.output(probs)
    mb.signature("serving_default", {"image": x}, {"probabilities": probs})
    return mb.build()


# -- U-Net --------------------------------------------------------------------------
def unet(size: int = 32, channels: int = 8, seed: int = 0, upsample: str = "transpose") -> bytes:
    """A two-level U-Net: conv blocks, MAX_POOL down, TRANSPOSE_CONV (or
    RESIZE_BILINEAR) up, CONCATENATION skips, 1x1 conv head with LOGISTIC."""
    mb, net = _net(seed)
    g = net.g
    x = g.input("image", (1, size, size, 3), F32)
    c = channels
    e1 = net.conv(net.conv(x, 3, c, act="RELU"), c, c, act="RELU")
    p1 = g.op("MAX_POOL_2D", [e1], _pool(2))
    e2 = net.conv(net.conv(p1, c, 2 * c, act="RELU"), 2 * c, 2 * c, act="RELU")
    p2 = g.op("MAX_POOL_2D", [e2], _pool(2))
    mid = net.conv(p2, 2 * c, 4 * c, act="RELU")
    u2 = _up(net, mid, 4 * c, 2 * c, size // 2, upsample)
    d2 = net.conv(g.op("CONCATENATION", [u2, e2], {"axis": 3}), 4 * c, 2 * c, act="RELU")
    u1 = _up(net, d2, 2 * c, c, size, upsample)
    d1 = net.conv(g.op("CONCATENATION", [u1, e1], {"axis": 3}), 2 * c, c, act="RELU")
    mask = g.op("LOGISTIC", [net.conv(d1, c, 1, k=1, act="NONE")])
    g.output(mask)
    mb.signature("serving_default", {"image": x}, {"mask": mask})
    return mb.build()


def _pool(k: int) -> dict[str, Any]:
    return {"padding": "VALID", "stride_w": k, "stride_h": k, "filter_width": k,
            "filter_height": k}


def _up(net: Net, x: TensorRef, cin: int, cout: int, size: int, mode: str) -> TensorRef:
    g = net.g
    if mode == "resize":
        r = g.op("RESIZE_BILINEAR", [x, net.const([size, size], np.int32, "size")],
                 {"align_corners": False, "half_pixel_centers": True})
        return net.conv(r, cin, cout, k=1, act="RELU")
    w = net.weights((cout, 2, 2, cin), 4 * cin)
    shape = net.const([1, size, size, cout], np.int32, "out_shape")
    return g.op("TRANSPOSE_CONV", [shape, w, x, net.bias(cout)],
                {"padding": "SAME", "stride_w": 2, "stride_h": 2,
                 "fused_activation_function": "RELU"})


# -- transformer encoder block -------------------------------------------------------
def _layer_norm(net: Net, x: TensorRef, d: int) -> TensorRef:
    g = net.g
    axis = net.const([-1], np.int32, "axis")
    mean = g.op("MEAN", [x, axis], {"keep_dims": True})
    var = g.op("MEAN", [g.op("SQUARED_DIFFERENCE", [x, mean]), axis], {"keep_dims": True})
    inv = g.op("RSQRT", [g.op("ADD", [var, net.const([1e-5])])])
    normed = g.op("MUL", [g.op("SUB", [x, mean]), inv])
    gamma = net.const(1 + net.rng.normal(0, 0.1, d))
    beta = net.const(net.rng.normal(0, 0.1, d))
    return g.op("ADD", [g.op("MUL", [normed, gamma]), beta])


def _split_heads(net: Net, x: TensorRef, seq: int, heads: int, dh: int) -> TensorRef:
    g = net.g
    r = g.op("RESHAPE", [x, net.const([1, seq, heads, dh], np.int32, "shape")])
    return g.op("TRANSPOSE", [r, net.const([0, 2, 1, 3], np.int32, "perm")])


def transformer_encoder(seq: int = 16, d_model: int = 32, heads: int = 4, vocab: int = 100,
                        ff: int = 64, seed: int = 0) -> bytes:
    """One encoder block on token ids: embedding GATHER, multi-head attention
    with BATCH_MATMUL and SOFTMAX, layer norms from MEAN / SQUARED_DIFFERENCE /
    RSQRT, GELU feed-forward, residual ADDs."""
    mb, net = _net(seed)
    g = net.g
    dh = d_model // heads
    ids = g.input("token_ids", (1, seq), np.int32)
    table = net.const(net.rng.normal(0, 1, (vocab, d_model)), F32, "embedding")
    x = g.op("GATHER", [table, ids], {"axis": 0, "batch_dims": 0})
    x = g.op("ADD", [x, net.const(net.rng.normal(0, 0.1, (1, seq, d_model)), F32, "pos")])
    q, k, v = (_split_heads(net, net.dense(x, d_model, d_model, keep_num_dims=True),
                            seq, heads, dh) for _ in range(3))
    scores = g.op("BATCH_MATMUL", [q, k], {"adj_x": False, "adj_y": True})
    scores = g.op("MUL", [scores, net.const([1.0 / np.sqrt(dh)])])
    attn = g.op("SOFTMAX", [scores], {"beta": 1.0})
    ctx = g.op("BATCH_MATMUL", [attn, v], {"adj_x": False, "adj_y": False})
    ctx = g.op("TRANSPOSE", [ctx, net.const([0, 2, 1, 3], np.int32, "perm")])
    ctx = g.op("RESHAPE", [ctx, net.const([1, seq, d_model], np.int32, "shape")])
    x = _layer_norm(net, g.op("ADD", [x, net.dense(ctx, d_model, d_model,
                                                     keep_num_dims=True)]), d_model)
    h = g.op("GELU", [net.dense(x, d_model, ff, keep_num_dims=True)], {"approximate": False})
    out = _layer_norm(net, g.op("ADD", [x, net.dense(h, ff, d_model, keep_num_dims=True)]),
                      d_model)
    g.output(out)
    mb.signature("serving_default", {"token_ids": ids}, {"encoded": out})
    return mb.build()


# -- keyword spotting ------------------------------------------------------------------
def kws_dscnn(frames: int = 49, coeffs: int = 10, channels: int = 64, blocks: int = 4,
              classes: int = 12, seed: int = 0) -> bytes:
    """A DS-CNN keyword spotter on MFCC features: a 10x4 conv, depthwise-separable
    blocks, AVERAGE_POOL over the whole map, FULLY_CONNECTED, SOFTMAX."""
    mb, net = _net(seed)
    g = net.g
    x = g.input("mfcc", (1, frames, coeffs, 1), F32)
    w = net.weights((channels, 10, 4, 1), 40)
    h = g.op("CONV_2D", [x, w, net.bias(channels)],
             {"padding": "SAME", "stride_w": 2, "stride_h": 2, "fused_activation_function": "RELU"})
    for _ in range(blocks):
        h = net.depthwise(h, channels, act="RELU")
        h = net.conv(h, channels, channels, k=1, act="RELU")
    fh, fw = (frames + 1) // 2, (coeffs + 1) // 2
    h = g.op("AVERAGE_POOL_2D", [h], {"padding": "VALID", "stride_w": 1, "stride_h": 1,
                                      "filter_width": fw, "filter_height": fh})
    h = g.op("RESHAPE", [h, net.const([1, channels], np.int32, "shape")])
    probs = g.op("SOFTMAX", [net.dense(h, channels, classes)], {"beta": 1.0})
    g.output(probs)
    mb.signature("serving_default", {"mfcc": x}, {"probabilities": probs})
    return mb.build()


# -- LSTM --------------------------------------------------------------------------------
def lstm_sequence(steps: int = 20, features: int = 16, units: int = 32, classes: int = 5,
                  seed: int = 0) -> bytes:
    """A UNIDIRECTIONAL_SEQUENCE_LSTM (batch-major) over a feature sequence,
    the last step's output through FULLY_CONNECTED and SOFTMAX."""
    mb, net = _net(seed)
    g = net.g
    x = g.input("sequence", (1, steps, features), F32)
    w_in = [net.weights((units, features), features, "w_in") for _ in range(4)]
    w_rec = [net.weights((units, units), units, "w_rec") for _ in range(4)]
    biases = [net.const(np.full(units, 1.0 if i == 1 else 0.0), F32, "gate_b")
              for i in range(4)]
    out_state = g.variable("output_state", (1, units), F32)
    cell_state = g.variable("cell_state", (1, units), F32)
    inputs = [x, *w_in, *w_rec, None, None, None, *biases, None, None, out_state, cell_state,
              None, None, None, None]
    seq = g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs,
               {"fused_activation_function": "TANH", "cell_clip": 10.0, "time_major": False},
               outputs=[g.tensor("lstm_out", (1, steps, units), F32)])
    last = g.op("STRIDED_SLICE", [seq, net.const([0, -1, 0], np.int32, "begin"),
                                  net.const([1, 0, units], np.int32, "end"),
                                  net.const([1, 1, 1], np.int32, "strides")],
                {"begin_mask": 5, "end_mask": 7, "shrink_axis_mask": 2})
    probs = g.op("SOFTMAX", [net.dense(last, units, classes)], {"beta": 1.0})
    g.output(probs)
    mb.signature("serving_default", {"sequence": x}, {"probabilities": probs})
    return mb.build()


def add_chain(n: int = 1000, size: int = 4) -> bytes:
    """``n`` tiny ADD ops in a chain: measures per-op dispatch overhead."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (size,), F32)
    one = g.constant("one", np.ones(size, F32))
    h = x
    for i in range(n):
        h = g.op("ADD", [h, one], outputs=[g.tensor(f"h{i}", (size,), F32)])
    g.output(h)
    return mb.build()
