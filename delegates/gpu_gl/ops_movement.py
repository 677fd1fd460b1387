"""Data movement on the GPU: CONCATENATION, RESHAPE, SQUEEZE, TRANSPOSE, PAD,
SLICE, STRIDED_SLICE, DEPTH_TO_SPACE and SPACE_TO_DEPTH.

RESHAPE and SQUEEZE cost nothing: the output is the input's buffer under
another shape. Every other op gathers: one invocation per output element
computes which input element it copies (or the padding value).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .glsl import coords, linear, strides, u
from .ops_base import Alias, Build, OpSpec, const_ints

NAMES = ("o0", "o1", "o2", "o3")


def _names(rank: int) -> tuple[str, ...]:
    return NAMES[4 - rank:] if rank else ()


def _size(shape: Any) -> int:
    return int(np.prod(tuple(shape), dtype=np.int64))


# -- RESHAPE / SQUEEZE --------------------------------------------------------------------
def check_same_size(node: Any) -> str | None:
    """The output holds exactly the input's elements."""
    if _size(node.inputs[0].shape) != _size(node.outputs[0].shape):
        return (f"output shape {tuple(node.outputs[0].shape)} does not hold the "
                f"{_size(node.inputs[0].shape)} input elements")
    return None


def build_alias(b: Build) -> Any:
    """The output is the input's storage."""
    return Alias(b.node.inputs[0].index)


# -- CONCATENATION ------------------------------------------------------------------------
def _concat_axis(node: Any) -> int:
    rank = len(node.outputs[0].shape)
    return node.options.axis % rank if rank else 0


def check_concat(node: Any) -> str | None:
    """Inputs agree off the axis and add up along it; no fused activation
    (LiteRT's float kernel rejects one)."""
    if (getattr(node.options, "fused_activation_function", "NONE") or "NONE") != "NONE":
        return "CONCATENATION with a fused activation is not supported"
    out = tuple(node.outputs[0].shape)
    if not out or not -len(out) <= node.options.axis < len(out):
        return f"axis {node.options.axis} is out of range for rank {len(out)}"
    axis = _concat_axis(node)
    total = 0
    for t in node.inputs:
        s = tuple(t.shape)
        if len(s) != len(out) or s[:axis] + s[axis + 1:] != out[:axis] + out[axis + 1:]:
            return f"input shape {s} does not concatenate into {out} on axis {axis}"
        total += s[axis]
    if total != out[axis]:
        return f"inputs add up to {total} along axis {axis}, the output has {out[axis]}"
    return None


def build_concat(b: Build) -> Any:
    """CONCATENATION: each output element picks the input its axis position falls in."""
    out = b.out_shape
    axis = _concat_axis(b.node)
    inner = _size(out[axis + 1:])
    lines, offset = [], 0
    for k in range(len(b.node.inputs)):
        size = b.shape(k)[axis]
        src = f"x{k}((o * {u(size)} + a - {u(offset)}) * {u(inner)} + r)"
        lines.append(f"  if (a < {u(offset + size)}) return {src};")
        offset += size
    body = (f"float compute(uint i) {{\n  uint r = i % {u(inner)}; uint t = i / {u(inner)};\n"
            f"  uint a = t % {u(out[axis])}; uint o = t / {u(out[axis])};\n"
            + "\n".join(lines[:-1]) + f"\n  return {src};\n}}")
    return b.shader(body, [b.x(k) for k in range(len(b.node.inputs))])


# -- TRANSPOSE ------------------------------------------------------------------------------
def check_transpose(node: Any) -> str | None:
    """A constant permutation matching the output shape."""
    perm = const_ints(node, 1)
    shape = tuple(node.inputs[0].shape)
    if perm is None or sorted(perm) != list(range(len(shape))):
        return f"perm {perm} is not a constant permutation of {len(shape)} axes"
    if tuple(node.outputs[0].shape) != tuple(shape[p] for p in perm):
        return f"output shape {tuple(node.outputs[0].shape)} is not the permuted input shape"
    return None


def build_transpose(b: Build) -> Any:
    """TRANSPOSE: output axis k reads input axis perm[k]."""
    perm = const_ints(b.node, 1)
    assert perm is not None
    st = strides(b.shape(0))
    names = _names(len(perm))
    index = linear([(names[k], st[p]) for k, p in enumerate(perm)])
    body = f"float compute(uint i) {{ {coords('i', b.out_shape, names)}\n  return x0({index});\n}}"
    return b.shader(body, [b.x(0)])


# -- PAD ------------------------------------------------------------------------------------
def _paddings(node: Any) -> list[tuple[int, int]] | None:
    flat = const_ints(node, 1)
    rank = len(node.inputs[0].shape)
    if flat is None or len(flat) != 2 * rank:
        return None
    return [(flat[2 * d], flat[2 * d + 1]) for d in range(rank)]


def check_pad(node: Any) -> str | None:
    """Constant, non-negative paddings matching the output shape."""
    pads = _paddings(node)
    if pads is None:
        return "paddings must be a constant [rank, 2] tensor"
    if any(p < 0 for pair in pads for p in pair):
        return f"negative paddings {pads}"
    want = tuple(s + a + b for s, (a, b) in zip(node.inputs[0].shape, pads))
    if tuple(node.outputs[0].shape) != want:
        return f"output shape {tuple(node.outputs[0].shape)} is not the padded {want}"
    return None


def build_pad(b: Build) -> Any:
    """PAD with zeros: out-of-range coordinates give 0."""
    pads = _paddings(b.node)
    assert pads is not None
    shape = b.shape(0)
    names = _names(len(shape))
    st = strides(shape)
    lines, terms = [], []
    for name, (before, _), size, s in zip(names, pads, shape, st):
        if before == 0 and size == b.out_shape[names.index(name)]:
            terms.append((name, s))
            continue
        lines.append(f"  int p{name} = int({name}) - {before}; "
                     f"if (p{name} < 0 || p{name} >= {size}) return 0.0;")
        terms.append((f"uint(p{name})", s))
    body = (f"float compute(uint i) {{ {coords('i', b.out_shape, names)}\n"
            + "\n".join(lines) + f"\n  return x0({linear(terms)});\n}}")
    return b.shader(body, [b.x(0)])


# -- SLICE / STRIDED_SLICE ----------------------------------------------------------------
def _slice_params(node: Any) -> tuple[list[int], list[int], list[bool]] | str:
    """(start, step, shrunk) per input axis, or why not."""
    shape = [int(d) for d in node.inputs[0].shape]
    begin = const_ints(node, 1)
    if begin is None or len(begin) != len(shape):
        return "begin must be a constant with one value per axis"
    if node.op == "SLICE":
        size = const_ints(node, 2)
        if size is None or len(size) != len(shape):
            return "size must be a constant with one value per axis"
        return begin, [1] * len(shape), [False] * len(shape)
    return _strided(node, shape, begin)


def _strided(node: Any, shape: list[int], begin: list[int]
             ) -> tuple[list[int], list[int], list[bool]] | str:
    end, step = const_ints(node, 2), const_ints(node, 3)
    if end is None or step is None or len(end) != len(shape) or len(step) != len(shape):
        return "end and strides must be constants with one value per axis"
    o = node.options
    if getattr(o, "ellipsis_mask", 0) or getattr(o, "new_axis_mask", 0):
        return "ellipsis_mask and new_axis_mask are not supported"
    if 0 in step:
        return "a stride of 0"
    starts, shrunk = [], []
    for d, size in enumerate(shape):
        start = _bound(begin[d], size, step[d], bool(o.begin_mask >> d & 1))
        starts.append(start)
        shrunk.append(bool(getattr(o, "shrink_axis_mask", 0) >> d & 1))
    return starts, step, shrunk


def _bound(value: int, size: int, step: int, masked: bool, stop: bool = False) -> int:
    """TFLite's clamped start (or, with ``stop``, stop) index of one axis; a masked
    bound is the far end the stride walks from (or to)."""
    if masked:
        value = -(2 ** 31) if (step > 0) != stop else 2 ** 31 - 1
    if value < 0:
        value += size
    return min(max(value, 0), size) if step > 0 else min(max(value, -1), size - 1)


def _slice_shape(node: Any) -> list[int] | str:
    """The full-rank output shape (shrunk axes as 1)."""
    params = _slice_params(node)
    if isinstance(params, str):
        return params
    starts, step, shrunk = params
    shape = [int(d) for d in node.inputs[0].shape]
    if node.op == "SLICE":
        size = const_ints(node, 2) or []
        return [shape[d] - starts[d] if size[d] == -1 else size[d] for d in range(len(shape))]
    o = node.options
    end = const_ints(node, 2) or []
    out = []
    for d in range(len(shape)):
        if shrunk[d]:
            out.append(1)
            continue
        stop_value = starts[d] + end[d] if getattr(o, "offset", False) else end[d]
        stop = _bound(stop_value, shape[d], step[d], bool(o.end_mask >> d & 1), stop=True)
        out.append(max(0, math.ceil((stop - starts[d]) / step[d])))
    return out


def check_slice(node: Any) -> str | None:
    """Constant parameters whose slice is the declared output shape and in bounds."""
    full = _slice_shape(node)
    if isinstance(full, str):
        return full
    starts, step, shrunk = _slice_params(node)  # type: ignore[misc]
    shape = [int(d) for d in node.inputs[0].shape]
    for d, n in enumerate(full):
        last = starts[d] + (n - 1) * step[d]
        if n and not (0 <= starts[d] < shape[d] and 0 <= last < shape[d]):
            return f"slice of axis {d} leaves the input (start {starts[d]}, {n} elements)"
    want = tuple(n for n, s in zip(full, shrunk) if not s)
    if tuple(node.outputs[0].shape) != want:
        return f"output shape {tuple(node.outputs[0].shape)} is not the sliced {want}"
    return None


def build_slice(b: Build) -> Any:
    """SLICE / STRIDED_SLICE: input index = start + coordinate * step per axis."""
    params = _slice_params(b.node)
    full = _slice_shape(b.node)
    assert not isinstance(params, str) and not isinstance(full, str)
    starts, step, _ = params
    st = strides(b.shape(0))
    names = _names(len(full))
    offset = sum(s * t for s, t in zip(starts, st))
    terms = " + ".join(f"int({n}) * {k * t}" for n, k, t in zip(names, step, st) if k * t)
    index = f"uint({offset} + {terms})" if terms else u(offset)
    body = f"float compute(uint i) {{ {coords('i', full, names)}\n  return x0({index});\n}}"
    return b.shader(body, [b.x(0)])


# -- DEPTH_TO_SPACE / SPACE_TO_DEPTH --------------------------------------------------------
def check_block(node: Any) -> str | None:
    """Rank-4 NHWC with a block size the shapes agree with."""
    bs = node.options.block_size
    x, out = tuple(node.inputs[0].shape), tuple(node.outputs[0].shape)
    if len(x) != 4 or bs < 1:
        return f"input rank {len(x)} and block_size {bs} (need rank 4, block_size >= 1)"
    if node.op == "DEPTH_TO_SPACE":
        want = (x[0], x[1] * bs, x[2] * bs, x[3] // (bs * bs)) if x[3] % (bs * bs) == 0 else None
    else:
        ok = x[1] % bs == 0 and x[2] % bs == 0
        want = (x[0], x[1] // bs, x[2] // bs, x[3] * bs * bs) if ok else None
    if want is None or out != want:
        return f"shapes {x} -> {out} do not fit block_size {bs}"
    return None


def build_depth_to_space(b: Build) -> Any:
    """DEPTH_TO_SPACE: output (y, x, c) reads channel ((y % bs) * bs + x % bs) * C + c."""
    bs = b.options.block_size
    _, h, w, c = b.shape(0)
    oc = b.out_shape[3]
    body = f"""
float compute(uint i) {{ {coords('i', b.out_shape, ('n', 'oy', 'ox', 'oc'))}
  uint ch = ((oy % {u(bs)}) * {u(bs)} + ox % {u(bs)}) * {u(oc)} + oc;
  return x0(((n * {u(h)} + oy / {u(bs)}) * {u(w)} + ox / {u(bs)}) * {u(c)} + ch);
}}"""
    return b.shader(body, [b.x(0)])


def build_space_to_depth(b: Build) -> Any:
    """SPACE_TO_DEPTH: output channel c = (by * bs + bx) * C + ic."""
    bs = b.options.block_size
    _, h, w, c = b.shape(0)
    body = f"""
float compute(uint i) {{ {coords('i', b.out_shape, ('n', 'oy', 'ox', 'oc'))}
  uint blk = oc / {u(c)}; uint ic = oc % {u(c)};
  uint y = oy * {u(bs)} + blk / {u(bs)}; uint x = ox * {u(bs)} + blk % {u(bs)};
  return x0(((n * {u(h)} + y) * {u(w)} + x) * {u(c)} + ic);
}}"""
    return b.shader(body, [b.x(0)])


def check_reshape(node: Any) -> str | None:
    """Same element count; a shape input, when present, is constant (checked by the table)."""
    return check_same_size(node)


def table() -> dict[str, OpSpec]:
    """Capability rows of this family."""
    return {
        "RESHAPE": OpSpec(build_alias, check_reshape),
        "SQUEEZE": OpSpec(build_alias, check_same_size),
        "CONCATENATION": OpSpec(build_concat, check_concat, data=tuple(range(64))),
        "TRANSPOSE": OpSpec(build_transpose, check_transpose),
        "PAD": OpSpec(build_pad, check_pad),
        "SLICE": OpSpec(build_slice, check_slice),
        "STRIDED_SLICE": OpSpec(build_slice, check_slice),
        "DEPTH_TO_SPACE": OpSpec(build_depth_to_space, check_block),
        "SPACE_TO_DEPTH": OpSpec(build_space_to_depth, check_block),
    }

