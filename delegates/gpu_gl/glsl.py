"""GLSL 430 compute programs: one invocation per output element (or per 4).

An op is described by a :class:`Shader`: a GLSL *body* that defines
``float compute(uint i)`` (the value of output element ``i``) or, with
``width=4``, ``vec4 compute4(uint i)`` (elements ``i .. i+3``, ``i`` a
multiple of 4), or, with ``width=0``, ``void run(uint g)`` for invocation
``g`` of ``count``, which writes its own results with ``store4(i, v)``
(``i`` a multiple of 4; the fused activation is applied there). The body
reads operand ``k`` through ``xk(i)`` (one element) and ``xkv(i)`` (four
consecutive elements, ``i`` a multiple of 4); an operand declared with
``vec4=True`` is bound as an array of vec4 and also offers ``xkq(j)``, its
``j``-th group of four (one aligned 16-byte load).

:func:`render` wraps the body into a complete program for a storage
precision: std430 SSBOs, binding 0 the output and 1.. the operands; with
fp16 storage two elements share one ``uint`` (``packHalf2x16``), so every
invocation writes whole words and no two invocations touch the same one.
Shapes and other constants are baked into the text, so the text *is* the
op configuration and the program cache key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: invocations per work group
LOCAL_SIZE = 64
#: GL_MAX_COMPUTE_WORK_GROUP_COUNT guaranteed by GL 4.3, per dimension
MAX_GROUPS = 65535
#: output bound (binding 0) plus operands must fit this many storage blocks
MIN_STORAGE_BLOCKS = 8

#: (low, high) clamp of each fused activation the GPU supports
CLAMPS: dict[str, tuple[float | None, float | None]] = {
    "NONE": (None, None), "RELU": (0.0, None), "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0)}


@dataclass(frozen=True, eq=False)
class Operand:
    """A buffer a dispatch reads: a tensor of the partition or a derived constant.

    ``kind`` "data" is stored at the delegate's precision; "f32" is always
    float32 (interpolation weights, exact small integers) and "i32" int32.
    """

    tensor: int | None = None
    array: np.ndarray | None = None
    kind: str = "data"
    vec4: bool = False


@dataclass
class Shader:
    """One dispatch: a body computing output elements and the operands it reads."""

    body: str
    operands: Sequence[Operand]
    count: int
    width: int = 1
    act: str = "NONE"
    name: str = ""
    helpers: Sequence[str] = field(default_factory=tuple)


def flt(x: float) -> str:
    """A GLSL literal for float32 ``x``, exact (bit patterns for inf and nan)."""
    v = np.float32(x)
    if not np.isfinite(v):
        return f"uintBitsToFloat({int(v.view(np.uint32))}u)"
    text = repr(float(v))
    return text if ("." in text or "e" in text) else text + ".0"


def u(n: int) -> str:
    """A GLSL uint literal."""
    return f"{int(n)}u"


def groups(invocations: int) -> tuple[int, int]:
    """Work groups (x, y) covering ``invocations``, within the per-axis limit."""
    total = max(1, math.ceil(invocations / LOCAL_SIZE))
    gy = math.ceil(total / MAX_GROUPS)
    return math.ceil(total / gy), gy


def invocations(shader: Shader, fp16: bool) -> int:
    """Invocations a dispatch of ``shader`` needs at a storage precision."""
    if shader.width == 0:
        return shader.count
    if shader.width == 4:
        return shader.count // 4
    return (shader.count + 1) // 2 if fp16 else shader.count


def render(shader: Shader, fp16: bool) -> tuple[str, tuple[int, int]]:
    """The program text of ``shader`` at fp16 or fp32 storage, and its work groups."""
    if shader.width == 4 and shader.count % 4:
        raise ValueError(f"a width-4 shader needs a multiple of 4 outputs, got {shader.count}")
    gx, gy = groups(invocations(shader, fp16))
    parts = ["#version 430", f"layout(local_size_x = {LOCAL_SIZE}) in;",
             _buffer(0, "o", "uint" if fp16 else "float", "writeonly")]
    for k, op in enumerate(shader.operands):
        parts.append(_operand(k, op, fp16))
    parts.append(_activation(shader.act))
    if shader.width == 0:
        parts.append(_store4(fp16))
    parts += list(dict.fromkeys(shader.helpers))
    parts.append(shader.body.strip("\n"))
    parts.append(_main(shader, fp16, gx))
    return "\n".join(parts) + "\n", (gx, gy)


def _buffer(binding: int, name: str, elem: str, access: str) -> str:
    return (f"layout(std430, binding = {binding}) {access} buffer B{binding} "
            f"{{ {elem} {name}[]; }};")


def _operand(k: int, op: Operand, fp16: bool) -> str:
    d = f"d{k}"
    if op.kind == "i32":
        return "\n".join([_buffer(k + 1, d, "int", "readonly"),
                          f"int x{k}(uint i) {{ return {d}[i]; }}"])
    if op.vec4:
        half = op.kind == "data" and fp16
        load = (f"vec4(unpackHalf2x16({d}[j].x), unpackHalf2x16({d}[j].y))" if half
                else f"{d}[j]")
        return "\n".join([
            _buffer(k + 1, d, "uvec2" if half else "vec4", "readonly"),
            f"vec4 x{k}q(uint j) {{ return {load}; }}",
            f"vec4 x{k}v(uint i) {{ return x{k}q(i >> 2u); }}",
            f"float x{k}(uint i) {{ return x{k}q(i >> 2u)[i & 3u]; }}"])
    if op.kind == "data" and fp16:
        return "\n".join([
            _buffer(k + 1, d, "uint", "readonly"),
            f"float x{k}(uint i) {{ return unpackHalf2x16({d}[i >> 1u])[i & 1u]; }}",
            f"vec4 x{k}v(uint i) {{ uint j = i >> 1u; "
            f"return vec4(unpackHalf2x16({d}[j]), unpackHalf2x16({d}[j + 1u])); }}"])
    return "\n".join([
        _buffer(k + 1, d, "float", "readonly"),
        f"float x{k}(uint i) {{ return {d}[i]; }}",
        f"vec4 x{k}v(uint i) {{ return vec4({d}[i], {d}[i + 1u], {d}[i + 2u], {d}[i + 3u]); }}"])


def _activation(act: str) -> str:
    lo, hi = CLAMPS[act]
    if lo is None and hi is None:
        expr = "v"
    elif hi is None:
        expr = f"max(v, {flt(lo)})"
    else:
        expr = f"clamp(v, {flt(lo)}, {flt(hi)})"
    return f"#define ACT(v) ({expr})"


def _store4(fp16: bool) -> str:
    if fp16:
        body = ("uint j = i >> 1u; o[j] = packHalf2x16(v.xy); "
                "o[j + 1u] = packHalf2x16(v.zw);")
    else:
        body = "o[i] = v.x; o[i + 1u] = v.y; o[i + 2u] = v.z; o[i + 3u] = v.w;"
    return f"void store4(uint i, vec4 v) {{ v = ACT(v); {body} }}"


def _main(shader: Shader, fp16: bool, gx: int) -> str:
    n, row = u(shader.count), u(gx * LOCAL_SIZE)
    head = ["void main() {",
            f"  uint g = gl_GlobalInvocationID.y * {row} + gl_GlobalInvocationID.x;"]
    if shader.width == 0:
        head += [f"  if (g >= {n}) return;", "  run(g);"]
    elif shader.width == 4:
        head += [f"  if (g >= {u(shader.count // 4)}) return;",
                 "  vec4 v = ACT(compute4(4u * g));"]
        if fp16:
            head += ["  o[2u * g] = packHalf2x16(v.xy);",
                     "  o[2u * g + 1u] = packHalf2x16(v.zw);"]
        else:
            head += ["  uint i = 4u * g;",
                     "  o[i] = v.x; o[i + 1u] = v.y; o[i + 2u] = v.z; o[i + 3u] = v.w;"]
    elif fp16:
        head += [f"  if (g >= {u((shader.count + 1) // 2)}) return;",
                 "  uint i = 2u * g;",
                 "  float a = ACT(compute(i));",
                 f"  float b = i + 1u < {n} ? ACT(compute(i + 1u)) : 0.0;",
                 "  o[g] = packHalf2x16(vec2(a, b));"]
    else:
        head += [f"  if (g >= {n}) return;", "  o[g] = ACT(compute(g));"]
    return "\n".join(head + ["}"])


# -- index helpers ----------------------------------------------------------------------
def pad4(shape: Sequence[int]) -> tuple[int, int, int, int]:
    """``shape`` left-padded with ones to rank 4."""
    s = tuple(int(d) for d in shape)
    return (1,) * (4 - len(s)) + s  # type: ignore[return-value]


def strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major element strides of ``shape``."""
    out, acc = [], 1
    for d in reversed(tuple(shape)):
        out.append(acc)
        acc *= int(d)
    return tuple(reversed(out))


def coords(index: str, shape: Sequence[int], names: Sequence[str]) -> str:
    """GLSL declaring ``uint`` coordinates ``names`` of flat ``index`` in ``shape``."""
    lines, rest = [], index
    dims = list(zip(names, shape))
    for k in range(len(dims) - 1, -1, -1):
        name, d = dims[k]
        if k == 0:
            lines.append(f"uint {name} = {rest};")
        elif d == 1:
            lines.append(f"uint {name} = 0u;")
        else:
            lines.append(f"uint {name} = {rest} % {u(d)};")
            nxt = f"t{k}"
            lines.append(f"uint {nxt} = {rest} / {u(d)};")
            rest = nxt
    return " ".join(lines)


def linear(terms: Sequence[tuple[str, int]]) -> str:
    """GLSL for ``sum(coord * stride)``, skipping zero strides."""
    parts = [name if s == 1 else f"{name} * {u(s)}" for name, s in terms if s]
    return " + ".join(parts) if parts else "0u"


def broadcast_index(in_shape: Sequence[int], out_shape: Sequence[int],
                    names: Sequence[str]) -> str:
    """Flat index into an input broadcast to ``out_shape`` (coords ``names``)."""
    rank = len(out_shape)
    src = (1,) * (rank - len(in_shape)) + tuple(int(d) for d in in_shape)
    st = strides(src)
    return linear([(n, s if d != 1 else 0) for n, d, s in zip(names, src, st)])
