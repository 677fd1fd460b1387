"""Convolutions and matrix products on the GPU: CONV_2D, DEPTHWISE_CONV_2D,
TRANSPOSE_CONV, FULLY_CONNECTED and BATCH_MATMUL.

Direct loops. When the filter is known at prepare and the output channels
come in fours, CONV_2D re-lays the filter out once as ``[OC/4][KH][KW][IC][4]``
and each invocation computes four output channels of TILE consecutive output
pixels: every weight is loaded once for the whole tile and every input value
once for four channels (vec4-bound buffers). DEPTHWISE_CONV_2D with
multiplier 1 and channels in fours tiles the same way. Everything else runs
one output element per invocation, with vec4 loads along the reduced axis
when its length is a multiple of 4.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeplex.kernels.common import same_padding, valid_padding

from .glsl import Operand, broadcast_index, coords, pad4, strides, u
from .ops_base import Build, OpSpec, activation, all_checks, check_activation

NHWC = ("n", "oy", "ox", "oc")


def window(padding: str, size: int, k: int, stride: int, dilation: int = 1
           ) -> tuple[int, int]:
    """(output size, padding before) of TFLite SAME / VALID padding on one axis."""
    out, before, _ = (same_padding if padding == "SAME" else valid_padding)(
        size, k, stride, dilation)
    return out, before


def _dims(node: Any) -> tuple[Any, ...]:
    o = node.options
    return (o.stride_h, o.stride_w, getattr(o, "dilation_h_factor", 1) or 1,
            getattr(o, "dilation_w_factor", 1) or 1)


def check_window_output(node: Any, kh: int, kw: int, oc: int) -> str | None:
    """Reason the declared output shape is not the window arithmetic's, or None."""
    o = node.options
    if o.padding not in ("SAME", "VALID"):
        return f"padding {o.padding} is not supported"
    sh, sw, dh, dw = _dims(node)
    if min(sh, sw, dh, dw) < 1:
        return f"strides ({sh}, {sw}) and dilations ({dh}, {dw}) must be >= 1"
    n, h, w, _ = node.inputs[0].shape
    want = (n, window(o.padding, h, kh, sh, dh)[0], window(o.padding, w, kw, sw, dw)[0], oc)
    if tuple(node.outputs[0].shape) != want:
        return f"output shape {tuple(node.outputs[0].shape)} is not the expected {want}"
    return None


def check_rank4(*positions: int) -> Any:
    """A check that inputs at ``positions`` have rank 4."""
    def run(node: Any) -> str | None:
        for k in positions:
            if len(node.inputs[k].shape) != 4:
                return f"input {k} must have rank 4, got shape {tuple(node.inputs[k].shape)}"
        return None
    return run


def check_bias(position: int, channels_of: Any) -> Any:
    """A check that the optional bias at ``position`` has one value per output channel."""
    def run(node: Any) -> str | None:
        b = node.inputs[position] if position < len(node.inputs) else None
        if b is not None and int(np.prod(b.shape)) != channels_of(node):
            return f"bias of shape {tuple(b.shape)} does not match {channels_of(node)} channels"
        return None
    return run


# -- CONV_2D ------------------------------------------------------------------------------
def check_conv(node: Any) -> str | None:
    """Grouped convolutions and window arithmetic."""
    x, w = node.inputs[0].shape, node.inputs[1].shape
    if x[3] != w[3]:
        return f"grouped convolution ({x[3]} input channels, filter depth {w[3]})"
    return check_window_output(node, w[1], w[2], w[0])


def _window_loops(b: Build, kh: int, kw: int, inner: str) -> str:
    """Loops over filter taps with in-bounds input rows/columns ``iy``/``ix``;
    ``inner`` runs per tap with ``ib``, the flat index of the input pixel."""
    _, h, w, _ = b.shape(0)
    sh, sw, dh, dw = _dims(b.node)
    ph = window(b.options.padding, h, kh, sh, dh)[1]
    pw = window(b.options.padding, w, kw, sw, dw)[1]
    return f"""
  int iy0 = int(oy * {u(sh)}) - {ph}; int ix0 = int(ox * {u(sw)}) - {pw};
  for (uint ky = 0u; ky < {u(kh)}; ++ky) {{
    int iy = iy0 + int(ky * {u(dh)});
    if (iy < 0 || iy >= {h}) continue;
    for (uint kx = 0u; kx < {u(kw)}; ++kx) {{
      int ix = ix0 + int(kx * {u(dw)});
      if (ix < 0 || ix >= {w}) continue;
      uint ib = ((n * {u(h)} + uint(iy)) * {u(w)} + uint(ix)) * IC;
{inner}
    }}
  }}"""


def build_conv(b: Build) -> Any:
    """CONV_2D: four output channels per invocation when the filter is constant
    and OC % 4 == 0, else one output element per invocation."""
    oc, kh, kw, ic = b.shape(1)
    weights = b.const(1)
    if weights is not None and oc % 4 == 0:
        return _conv_tiled(b, weights.astype(np.float32))
    operands = [b.x(0), b.x(1)]
    bias = _bias(b, 2, operands, "oc")
    step, term = _dot_terms(ic, "ib", "wb")
    inner = (f"      uint wb = ((oc * {u(kh)} + ky) * {u(kw)} + kx) * IC;\n"
             f"      for (uint c = 0u; c < IC; c += {step}u) s += {term};")
    body = (f"const uint IC = {u(ic)};\nfloat compute(uint i) {{ "
            f"{coords('i', b.out_shape, NHWC)}\n  float s = 0.0;"
            f"{_window_loops(b, kh, kw, inner)}\n  return s + {bias};\n}}")
    return b.shader(body, operands, act=activation(b.node))


#: output pixels per invocation of the tiled convolutions (they share each weight load)
TILE = 4


def _tile_pixels(b: Build) -> str:
    """GLSL: per tile pixel j, its clamped flat index ppj and origin (yoj, xoj) in the input."""
    n, oh, ow, _ = b.out_shape
    _, h, w, _ = b.shape(0)
    kh, kw = _kernel_hw(b)
    sh, sw, dh, dw = _dims(b.node)
    ph = window(b.options.padding, h, kh, sh, dh)[1]
    pw = window(b.options.padding, w, kw, sw, dw)[1]
    last = n * oh * ow - 1
    lines = []
    for j in range(TILE):
        lines.append(f"  uint pp{j} = min(pt + {u(j)}, {u(last)}); "
                     f"uint ox{j} = pp{j} % {u(ow)}; uint r{j} = pp{j} / {u(ow)}; "
                     f"uint oy{j} = r{j} % {u(oh)}; uint n{j} = r{j} / {u(oh)};")
        lines.append(f"  int yo{j} = int(oy{j} * {u(sh)}) - {ph}; "
                     f"int xo{j} = int(ox{j} * {u(sw)}) - {pw}; vec4 s{j} = vec4(0.0);")
    return "\n".join(lines)


def _kernel_hw(b: Build) -> tuple[int, int]:
    w = b.shape(1)
    return int(w[1]), int(w[2])


def _tile_taps(b: Build, inner: str) -> str:
    """GLSL: loops over filter taps computing, per pixel j, validity vj and the
    flat input index bj of its pixel (0 when outside: the load is then masked)."""
    _, h, w, ic = b.shape(0)
    kh, kw = _kernel_hw(b)
    _, _, dh, dw = _dims(b.node)
    per = []
    for j in range(TILE):
        per.append(f"      int iy{j} = yo{j} + int(ky * {u(dh)}); "
                   f"int ix{j} = xo{j} + int(kx * {u(dw)});")
        per.append(f"      bool v{j} = iy{j} >= 0 && iy{j} < {h} && ix{j} >= 0 && ix{j} < {w};")
        per.append(f"      uint b{j} = v{j} ? ((n{j} * {u(h)} + uint(iy{j})) * {u(w)} "
                   f"+ uint(ix{j})) * {u(ic)} : 0u;")
    return (f"  for (uint ky = 0u; ky < {u(kh)}; ++ky) {{\n"
            f"    for (uint kx = 0u; kx < {u(kw)}; ++kx) {{\n" + "\n".join(per) + "\n"
            + inner + "\n    }\n  }")


def _tile_stores(b: Build, bias: str) -> str:
    """GLSL: store the tile's results (pixels past the end are skipped)."""
    oc = b.out_shape[3]
    total = int(np.prod(b.out_shape[:3]))
    lines = [f"  vec4 bias = {bias};"]
    for j in range(TILE):
        guard = f"if (pt + {u(j)} < {u(total)}) " if j else ""
        lines.append(f"  {guard}store4((pt + {u(j)}) * {u(oc)} + 4u * ob, s{j} + bias);")
    return "\n".join(lines)


def _conv_tiled(b: Build, weights: np.ndarray) -> Any:
    """CONV_2D, constant filter, OC % 4 == 0: each invocation computes 4 output
    channels for TILE consecutive output pixels, loading each weight once."""
    oc, kh, kw, ic = weights.shape
    q = oc // 4
    blocked = weights.reshape(q, 4, kh, kw, ic).transpose(0, 2, 3, 4, 1)
    vec_in = ic % 4 == 0
    operands = [b.xv(0) if vec_in else b.x(0),
                Operand(array=np.ascontiguousarray(blocked).reshape(-1), vec4=True)]
    bias = _bias(b, 2, operands, "4u * ob", vec=True)
    if vec_in:
        acc = "\n".join(f"        {{ vec4 a = v{j} ? x0q((b{j} + c) >> 2u) : vec4(0.0); "
                        f"s{j} += a.x * w0 + a.y * w1 + a.z * w2 + a.w * w3; }}"
                        for j in range(TILE))
        inner = (f"      uint wq = ((ob * {u(kh)} + ky) * {u(kw)} + kx) * {u(ic)};\n"
                 f"      for (uint c = 0u; c < {u(ic)}; c += 4u) {{\n"
                 "        vec4 w0 = x1q(wq + c); vec4 w1 = x1q(wq + c + 1u);\n"
                 "        vec4 w2 = x1q(wq + c + 2u); vec4 w3 = x1q(wq + c + 3u);\n"
                 f"{acc}\n      }}")
    else:
        acc = "\n".join(f"        s{j} += (v{j} ? x0(b{j} + c) : 0.0) * w;" for j in range(TILE))
        inner = (f"      uint wq = ((ob * {u(kh)} + ky) * {u(kw)} + kx) * {u(ic)};\n"
                 f"      for (uint c = 0u; c < {u(ic)}; ++c) {{\n"
                 f"        vec4 w = x1q(wq + c);\n{acc}\n      }}")
    pixels = int(np.prod(b.out_shape[:3]))
    body = (f"void run(uint g) {{\n  uint ob = g % {u(q)}; uint pt = (g / {u(q)}) * {u(TILE)};\n"
            f"{_tile_pixels(b)}\n{_tile_taps(b, inner)}\n{_tile_stores(b, bias)}\n}}")
    return b.shader(body, operands, width=0, act=activation(b.node),
                    invocations=q * -(-pixels // TILE))


def _dot_terms(depth: int, a: str, w: str) -> tuple[int, str]:
    """Loop step and summand of a dot product over ``depth`` (vec4 when it allows)."""
    if depth % 4 == 0:
        return 4, f"dot(x0v({a} + c), x1v({w} + c))"
    return 1, f"x0({a} + c) * x1({w} + c)"


def _bias(b: Build, k: int, operands: list, channel: str, vec: bool = False) -> str:
    """GLSL of the bias for ``channel`` (0 when the op has none)."""
    if not b.has(k):
        return "vec4(0.0)" if vec else "0.0"
    operands.append(b.x(k))
    slot = len(operands) - 1
    return f"x{slot}v({channel})" if vec else f"x{slot}({channel})"


# -- DEPTHWISE_CONV_2D ------------------------------------------------------------------
def check_depthwise(node: Any) -> str | None:
    """Filter layout [1, KH, KW, IC * multiplier] and window arithmetic."""
    x, w = node.inputs[0].shape, node.inputs[1].shape
    if w[0] != 1 or w[3] % x[3]:
        return f"filter shape {tuple(w)} does not fit {x[3]} input channels"
    return check_window_output(node, w[1], w[2], w[3])


def build_depthwise(b: Build) -> Any:
    """DEPTHWISE_CONV_2D: tiled when the multiplier is 1 and C % 4 == 0, else one
    output element per invocation."""
    _, kh, kw, oc = b.shape(1)
    ic = b.shape(0)[3]
    mult = oc // ic
    if mult == 1 and oc % 4 == 0:
        return _depthwise_tiled(b)
    operands = [b.x(0), b.x(1)]
    bias = _bias(b, 2, operands, "oc")
    inner = (f"      s += x0(ib + oc / {u(mult)}) * "
             f"x1((ky * {u(kw)} + kx) * {u(oc)} + oc);")
    body = (f"const uint IC = {u(ic)};\nfloat compute(uint i) {{ "
            f"{coords('i', b.out_shape, NHWC)}\n  float s = 0.0;"
            f"{_window_loops(b, kh, kw, inner)}\n  return s + {bias};\n}}")
    return b.shader(body, operands, act=activation(b.node))


def _depthwise_tiled(b: Build) -> Any:
    """DEPTHWISE_CONV_2D with multiplier 1 and C % 4 == 0: 4 channels of TILE
    consecutive output pixels per invocation, one weight load per tap."""
    _, _, kw, c = b.shape(1)
    q = c // 4
    operands = [b.xv(0), b.xv(1)]
    bias = _bias(b, 2, operands, "4u * ob", vec=True)
    acc = "\n".join(f"      s{j} += (v{j} ? x0q((b{j} >> 2u) + ob) : vec4(0.0)) * w;"
                    for j in range(TILE))
    inner = f"      vec4 w = x1q((ky * {u(kw)} + kx) * {u(q)} + ob);\n{acc}"
    pixels = int(np.prod(b.out_shape[:3]))
    body = (f"void run(uint g) {{\n  uint ob = g % {u(q)}; uint pt = (g / {u(q)}) * {u(TILE)};\n"
            f"{_tile_pixels(b)}\n{_tile_taps(b, inner)}\n{_tile_stores(b, bias)}\n}}")
    return b.shader(body, operands, width=0, act=activation(b.node),
                    invocations=q * -(-pixels // TILE))


# -- TRANSPOSE_CONV -----------------------------------------------------------------------
def check_transpose_conv(node: Any) -> str | None:
    """Constant output_shape matching the output; window arithmetic of the transpose."""
    shape = node.inputs[0].data
    out = tuple(node.outputs[0].shape)
    if tuple(int(v) for v in np.asarray(shape).reshape(-1)) != out:
        return f"output_shape {list(np.asarray(shape).reshape(-1))} differs from the output {out}"
    w, x = node.inputs[1].shape, node.inputs[2].shape
    if x[3] != w[3] or out[3] != w[0] or out[0] != x[0]:
        return f"weights {tuple(w)} do not fit input {tuple(x)} and output {out}"
    o = node.options
    if o.padding not in ("SAME", "VALID") or min(o.stride_h, o.stride_w) < 1:
        return f"padding {o.padding} with strides ({o.stride_h}, {o.stride_w}) is not supported"
    for size, want, k, s in zip(out[1:3], x[1:3], w[1:3], (o.stride_h, o.stride_w)):
        if window(o.padding, size, k, s)[0] != want:
            return f"input {tuple(x)} is not what a {o.padding} convolution of {out} gives"
    return None


def build_transpose_conv(b: Build) -> Any:
    """TRANSPOSE_CONV as a gather: each output sums the taps that land on it."""
    _, kh, kw, ic = b.shape(1)
    _, h, w, _ = b.shape(2)
    _, oh, ow, _ = b.out_shape
    sh, sw = b.options.stride_h, b.options.stride_w
    ph = window(b.options.padding, oh, kh, sh)[1]
    pw = window(b.options.padding, ow, kw, sw)[1]
    operands = [b.x(2), b.x(1)]
    bias = _bias(b, 3, operands, "oc")
    step, term = _dot_terms(ic, "ib", "wb")
    body = f"""
const uint IC = {u(ic)};
float compute(uint i) {{ {coords('i', b.out_shape, NHWC)}
  float s = 0.0;
  for (uint ky = 0u; ky < {u(kh)}; ++ky) {{
    int ty = int(oy) + {ph} - int(ky);
    if (ty < 0 || ty % {sh} != 0 || ty / {sh} >= {h}) continue;
    for (uint kx = 0u; kx < {u(kw)}; ++kx) {{
      int tx = int(ox) + {pw} - int(kx);
      if (tx < 0 || tx % {sw} != 0 || tx / {sw} >= {w}) continue;
      uint ib = ((n * {u(h)} + uint(ty / {sh})) * {u(w)} + uint(tx / {sw})) * IC;
      uint wb = ((oc * {u(kh)} + ky) * {u(kw)} + kx) * IC;
      for (uint c = 0u; c < IC; c += {step}u) s += {term};
    }}
  }}
  return s + {bias};
}}"""
    return b.shader(body, operands, act=activation(b.node))


# -- FULLY_CONNECTED ----------------------------------------------------------------------
def check_fully_connected(node: Any) -> str | None:
    """DEFAULT weights [units, depth]; the input flattens into rows of ``depth``."""
    o = node.options
    fmt = getattr(o, "weights_format", "DEFAULT")
    if fmt not in (None, "DEFAULT"):
        return f"weights_format {fmt} is not supported"
    w = node.inputs[1].shape
    if len(w) != 2:
        return f"weights must have rank 2, got shape {tuple(w)}"
    size = int(np.prod(node.inputs[0].shape))
    if w[1] == 0 or size % w[1]:
        return f"input {tuple(node.inputs[0].shape)} does not flatten into rows of {w[1]}"
    if int(np.prod(node.outputs[0].shape)) != size // w[1] * w[0]:
        return f"output shape {tuple(node.outputs[0].shape)} does not hold {size // w[1]} rows"
    return None


def build_fully_connected(b: Build) -> Any:
    """FULLY_CONNECTED: out[r, j] = dot(x[r, :], w[j, :]) + bias[j]."""
    units, depth = b.shape(1)
    operands = [b.x(0), b.x(1)]
    bias = _bias(b, 2, operands, "j")
    step, term = _dot_terms(depth, "xb", "wb")
    body = f"""
float compute(uint i) {{
  uint j = i % {u(units)}; uint r = i / {u(units)};
  uint xb = r * {u(depth)}; uint wb = j * {u(depth)};
  float s = 0.0;
  for (uint c = 0u; c < {u(depth)}; c += {step}u) s += {term};
  return s + {bias};
}}"""
    return b.shader(body, operands, act=activation(b.node))


# -- BATCH_MATMUL -------------------------------------------------------------------------
def _matmul_dims(node: Any) -> tuple[int, int, int, int]:
    """(M, K, K of y, N) after the adjoint options."""
    x, y = node.inputs[0].shape, node.inputs[1].shape
    o = node.options
    m, k = (x[-1], x[-2]) if o.adj_x else (x[-2], x[-1])
    k2, n = (y[-1], y[-2]) if o.adj_y else (y[-2], y[-1])
    return m, k, k2, n


def check_batch_matmul(node: Any) -> str | None:
    """Ranks 2..4, matching inner dimensions, broadcastable batch dimensions."""
    x, y = node.inputs[0].shape, node.inputs[1].shape
    if min(len(x), len(y)) < 2:
        return "BATCH_MATMUL inputs need rank >= 2"
    m, k, k2, n = _matmul_dims(node)
    if k != k2:
        return f"inner dimensions {k} and {k2} differ"
    try:
        batch = np.broadcast_shapes(tuple(x[:-2]), tuple(y[:-2]))
    except ValueError:
        return f"batch dimensions of {tuple(x)} and {tuple(y)} do not broadcast"
    if tuple(node.outputs[0].shape) != tuple(batch) + (m, n):
        return f"output shape {tuple(node.outputs[0].shape)} is not {tuple(batch) + (m, n)}"
    return None


def build_batch_matmul(b: Build) -> Any:
    """BATCH_MATMUL with adj_x / adj_y and broadcast batch dimensions."""
    m, k, _, n = _matmul_dims(b.node)
    out = pad4(b.out_shape)
    names = ("b0", "b1", "r", "q")
    xs, ys = strides(pad4(b.shape(0))), strides(pad4(b.shape(1)))
    xb = broadcast_index(b.shape(0)[:-2], out[:2], names[:2]) if len(b.shape(0)) > 2 else "0u"
    yb = broadcast_index(b.shape(1)[:-2], out[:2], names[:2]) if len(b.shape(1)) > 2 else "0u"
    x_mk = (1, m) if b.options.adj_x else (k, 1)
    y_kn = (1, k) if b.options.adj_y else (n, 1)
    body = f"""
float compute(uint i) {{ {coords('i', out, names)}
  uint xb = ({xb}) * {u(xs[1])} + r * {u(x_mk[0])};
  uint yb = ({yb}) * {u(ys[1])} + q * {u(y_kn[1])};
  float s = 0.0;
  for (uint c = 0u; c < {u(k)}; ++c) s += x0(xb + c * {u(x_mk[1])}) * x1(yb + c * {u(y_kn[0])});
  return s;
}}"""
    return b.shader(body, [b.x(0), b.x(1)])


def table() -> dict[str, OpSpec]:
    """Capability rows of this family."""
    oc_conv = check_bias(2, lambda n: n.inputs[1].shape[0])
    oc_dw = check_bias(2, lambda n: n.inputs[1].shape[3])
    return {
        "CONV_2D": OpSpec(build_conv, all_checks(check_rank4(0, 1), check_activation,
                                                 check_conv, oc_conv), data=(0, 1, 2)),
        "DEPTHWISE_CONV_2D": OpSpec(build_depthwise, all_checks(
            check_rank4(0, 1), check_activation, check_depthwise, oc_dw), data=(0, 1, 2)),
        "TRANSPOSE_CONV": OpSpec(build_transpose_conv, all_checks(
            check_rank4(1, 2), check_activation, check_transpose_conv,
            check_bias(3, lambda n: n.inputs[1].shape[0])), data=(1, 2, 3)),
        "FULLY_CONNECTED": OpSpec(build_fully_connected, all_checks(
            check_activation, check_fully_connected,
            check_bias(2, lambda n: n.inputs[1].shape[0])), data=(0, 1, 2)),
        "BATCH_MATMUL": OpSpec(build_batch_matmul, check_batch_matmul, data=(0, 1)),
    }
