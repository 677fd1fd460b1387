"""Pooling, MEAN and resizing on the GPU.

Resize coordinates are computed once at prepare, in float32 exactly as
TFLite's reference does, and read by the shader from a small exact table
(never recomputed in GLSL, where a fused multiply-add could round them
differently).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeplex.kernels.resize import nearest_indices

from .glsl import Operand, coords, strides, u
from .ops_base import Build, OpSpec, activation, all_checks, check_activation, const_ints
from .ops_conv import NHWC, check_rank4, window


# -- pooling ------------------------------------------------------------------------------
def check_pool(node: Any) -> str | None:
    """Window arithmetic of AVERAGE_POOL_2D / MAX_POOL_2D."""
    o = node.options
    if o.padding not in ("SAME", "VALID"):
        return f"padding {o.padding} is not supported"
    if min(o.stride_h, o.stride_w, o.filter_height, o.filter_width) < 1:
        return "strides and filter sizes must be >= 1"
    n, h, w, c = node.inputs[0].shape
    want = (n, window(o.padding, h, o.filter_height, o.stride_h)[0],
            window(o.padding, w, o.filter_width, o.stride_w)[0], c)
    if tuple(node.outputs[0].shape) != want:
        return f"output shape {tuple(node.outputs[0].shape)} is not the expected {want}"
    return None


def build_pool(b: Build) -> Any:
    """Max or average over the in-bounds part of each window (TFLite's count)."""
    o = b.options
    _, h, w, c = b.shape(0)
    ph = window(o.padding, h, o.filter_height, o.stride_h)[1]
    pw = window(o.padding, w, o.filter_width, o.stride_w)[1]
    vec = c % 4 == 0
    t, fn, load = ("vec4", "compute4", "x0v") if vec else ("float", "compute", "x0")
    is_max = b.node.op == "MAX_POOL_2D"
    init = f"{t}(-3.402823466e38)" if is_max else f"{t}(0.0)"
    acc = f"s = max(s, {load}(ib));" if is_max else f"s += {load}(ib); cnt += 1.0;"
    result = "s" if is_max else "s / cnt"
    body = f"""
{t} {fn}(uint i) {{ {coords('i', b.out_shape, NHWC)}
  int iy0 = int(oy * {u(o.stride_h)}) - {ph}; int ix0 = int(ox * {u(o.stride_w)}) - {pw};
  {t} s = {init}; float cnt = 0.0;
  for (int ky = 0; ky < {o.filter_height}; ++ky) {{
    int iy = iy0 + ky;
    if (iy < 0 || iy >= {h}) continue;
    for (int kx = 0; kx < {o.filter_width}; ++kx) {{
      int ix = ix0 + kx;
      if (ix < 0 || ix >= {w}) continue;
      uint ib = ((n * {u(h)} + uint(iy)) * {u(w)} + uint(ix)) * {u(c)} + oc;
      {acc}
    }}
  }}
  return {result};
}}"""
    return b.shader(body, [b.x(0)], width=4 if vec else 1, act=activation(b.node))


# -- MEAN ---------------------------------------------------------------------------------
def _mean_axes(node: Any) -> list[int] | str:
    axes = const_ints(node, 1)
    rank = len(node.inputs[0].shape)
    if axes is None:
        return "axes must be a constant"
    if any(not -rank <= a < rank for a in axes):
        return f"axes {axes} out of range for rank {rank}"
    return sorted({a % rank for a in axes})


def check_mean(node: Any) -> str | None:
    """Constant axes; the output shape is the reduced shape."""
    axes = _mean_axes(node)
    if isinstance(axes, str):
        return axes
    shape = tuple(node.inputs[0].shape)
    keep = tuple(1 if d in axes else s for d, s in enumerate(shape))
    want = keep if node.options.keep_dims else tuple(s for d, s in enumerate(shape)
                                                     if d not in axes)
    if tuple(node.outputs[0].shape) != want:
        return f"output shape {tuple(node.outputs[0].shape)} is not the reduced {want}"
    return None


def build_mean(b: Build) -> Any:
    """MEAN: one invocation per output, nested loops over the reduced axes."""
    axes = _mean_axes(b.node)
    assert not isinstance(axes, str)
    shape = b.shape(0)
    st = strides(shape)
    kept = tuple(1 if d in axes else s for d, s in enumerate(shape))
    names = [f"k{d}" for d in range(len(shape))]
    index = " + ".join(f"{('r' if d in axes else 'k')}{d} * {u(st[d])}"
                       for d in range(len(shape))) or "0u"
    loops = "".join(f"  for (uint r{d} = 0u; r{d} < {u(shape[d])}; ++r{d})\n" for d in axes)
    count = int(np.prod([shape[d] for d in axes], dtype=np.int64)) if axes else 1
    body = f"""
float compute(uint i) {{ {coords('i', kept, names) if shape else ''}
  float s = 0.0;
{loops}    s += x0({index});
  return s / {float(count)!r};
}}"""
    return b.shader(body, [b.x(0)])


# -- resizing ----------------------------------------------------------------------------
def check_resize(node: Any) -> str | None:
    """Constant size matching the output; not both align_corners and half_pixel_centers."""
    size = const_ints(node, 1)
    x, out = tuple(node.inputs[0].shape), tuple(node.outputs[0].shape)
    if size is None or len(size) != 2:
        return "the size input must be a constant of two values"
    if out != (x[0], size[0], size[1], x[3]):
        return f"output shape {out} does not match size {size}"
    o = node.options
    if o.align_corners and o.half_pixel_centers:
        return "align_corners and half_pixel_centers cannot both be set"
    return None


def bilinear_axis(in_size: int, out_size: int, align: bool, half: bool) -> np.ndarray:
    """Per output index (lower, upper, fraction), float32 as TFLite computes them."""
    if align and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    pos = np.arange(out_size, dtype=np.float32)
    pos = (pos + np.float32(0.5)) * scale - np.float32(0.5) if half else pos * scale
    lo = np.maximum(np.floor(pos), 0).astype(np.float32)
    hi = np.minimum(np.ceil(pos), in_size - 1).astype(np.float32)
    return np.stack([lo, hi, (pos - lo).astype(np.float32)], axis=1).reshape(-1)


def build_resize_bilinear(b: Build) -> Any:
    """RESIZE_BILINEAR: the four corner pixels weighted by fractions from a table."""
    _, h, w, c = b.shape(0)
    _, oh, ow, _ = b.out_shape
    o = b.options
    tab = np.concatenate([bilinear_axis(h, oh, o.align_corners, o.half_pixel_centers),
                          bilinear_axis(w, ow, o.align_corners, o.half_pixel_centers)])
    body = f"""
float compute(uint i) {{ {coords('i', b.out_shape, NHWC)}
  uint a = oy * 3u; uint e = {u(3 * oh)} + ox * 3u;
  float dy = x1(a + 2u); float dx = x1(e + 2u);
  uint r0 = (n * {u(h)} + uint(x1(a))) * {u(w)}; uint r1 = (n * {u(h)} + uint(x1(a + 1u))) * {u(w)};
  uint c0 = uint(x1(e)); uint c1 = uint(x1(e + 1u));
  float top = x0((r0 + c0) * {u(c)} + oc) * (1.0 - dy) * (1.0 - dx)
            + x0((r0 + c1) * {u(c)} + oc) * (1.0 - dy) * dx;
  float bottom = x0((r1 + c0) * {u(c)} + oc) * dy * (1.0 - dx)
               + x0((r1 + c1) * {u(c)} + oc) * dy * dx;
  return top + bottom;
}}"""
    return b.shader(body, [b.x(0), Operand(array=tab, kind="f32")])


def build_resize_nearest(b: Build) -> Any:
    """RESIZE_NEAREST_NEIGHBOR: source rows and columns from a table."""
    _, h, w, c = b.shape(0)
    _, oh, ow, _ = b.out_shape
    o = b.options
    tab = np.concatenate([nearest_indices(h, oh, o.align_corners, o.half_pixel_centers),
                          nearest_indices(w, ow, o.align_corners, o.half_pixel_centers)])
    body = f"""
float compute(uint i) {{ {coords('i', b.out_shape, NHWC)}
  uint y = uint(x1(oy)); uint x = uint(x1({u(oh)} + ox));
  return x0(((n * {u(h)} + y) * {u(w)} + x) * {u(c)} + oc);
}}"""
    return b.shader(body, [b.x(0), Operand(array=tab.astype(np.int32), kind="i32")])


def table() -> dict[str, OpSpec]:
    """Capability rows of this family."""
    pool = OpSpec(build_pool, all_checks(check_rank4(0), check_activation, check_pool))
    resize = all_checks(check_rank4(0), check_resize)
    return {
        "AVERAGE_POOL_2D": pool, "MAX_POOL_2D": pool,
        "MEAN": OpSpec(build_mean, check_mean),
        "RESIZE_BILINEAR": OpSpec(build_resize_bilinear, resize),
        "RESIZE_NEAREST_NEIGHBOR": OpSpec(build_resize_nearest, resize),
    }

