"""Elementwise arithmetic, activations and SOFTMAX on the GPU.

Binary ops broadcast numpy-style up to rank 4; a constant scalar operand is
baked into the program as an exact literal instead of a buffer. Functions
GLSL leaves imprecise or undefined are written out: tanh and expm1 use
series near zero (no cancellation), erfc is a rational Chebyshev fit with
fractional error below 1.2e-7, and log/sqrt of zero or negative values give
TFLite's -inf / nan rather than whatever the driver returns.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .glsl import broadcast_index, coords, flt, u
from .ops_base import Build, OpSpec, activation, check_activation

NAMES = ("o0", "o1", "o2", "o3")

HELPERS = {
    "expm1": """
float ep_expm1(float x) {
  if (abs(x) < 0.125) {
    return x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0
           + x * (1.0 / 720.0))))));
  }
  return exp(x) - 1.0;
}""",
    "tanh": """
float ep_tanh(float x) {
  float a = abs(x);
  if (a < 0.125) {
    float x2 = x * x;
    return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
  }
  float t = exp(-2.0 * a);
  return sign(x) * ((1.0 - t) / (1.0 + t));
}""",
    "erfc": """
float ep_erfc(float x) {
  float z = abs(x);
  float t = 1.0 / (1.0 + 0.5 * z);
  float r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
          + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
          + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0.0 ? r : 2.0 - r;
}""",
    "log": f"""
float ep_log(float x) {{
  return x > 0.0 ? log(x) : (x == 0.0 ? {flt(-np.inf)} : {flt(np.nan)});
}}""",
    "sqrt": f"""
float ep_sqrt(float x) {{
  return x >= 0.0 ? sqrt(x) : {flt(np.nan)};
}}""",
}

# -- binary -----------------------------------------------------------------------------
BINARY = {
    "ADD": "a + b", "SUB": "a - b", "MUL": "a * b", "DIV": "a / b",
    "MAXIMUM": "max(a, b)", "MINIMUM": "min(a, b)",
    "SQUARED_DIFFERENCE": "(a - b) * (a - b)",
}


def operand_expr(b: Build, k: int, operands: list, names: tuple[str, ...],
                 vec: bool = False) -> str:
    """GLSL reading input ``k`` at the output's coordinates (broadcast), adding
    its buffer to ``operands`` unless it is a constant scalar (then a literal).
    With ``vec`` the expression is the vec4 of four consecutive outputs (their
    last coordinate is a multiple of 4 apart from the first)."""
    value = b.const(k)
    if value is not None and value.size == 1:
        lit = flt(float(value.reshape(-1)[0]))
        return f"vec4({lit})" if vec else lit
    operands.append(b.x(k))
    slot = len(operands) - 1
    shape = b.shape(k)
    index = "i" if shape == b.out_shape else broadcast_index(shape, b.out_shape, names)
    if not vec:
        return f"x{slot}({index})"
    if shape and shape[-1] == b.out_shape[-1]:
        return f"x{slot}v({index})"
    return f"vec4(x{slot}({index}))"


def vectorizable(b: Build) -> bool:
    """True when four consecutive outputs share all coordinates but the last
    (the last dimension is a multiple of 4), so vec4 loads line up."""
    out = b.out_shape
    return bool(out) and out[-1] % 4 == 0


def build_binary(b: Build) -> Any:
    """ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE with broadcasting;
    four outputs per invocation when the last dimension allows."""
    out = b.out_shape
    names = NAMES[4 - len(out):] if out else ()
    vec = vectorizable(b)
    operands: list = []
    a = operand_expr(b, 0, operands, names, vec)
    c = operand_expr(b, 1, operands, names, vec)
    t, fn = ("vec4", "compute4") if vec else ("float", "compute")
    body = (f"{t} {fn}(uint i) {{ {coords('i', out, names) if names else ''}\n"
            f"  {t} a = {a}; {t} b = {c};\n  return {BINARY[b.node.op]};\n}}")
    return b.shader(body, operands, width=4 if vec else 1, act=activation(b.node))


def check_broadcast(node: Any) -> str | None:
    """Reason the inputs do not broadcast to the output, or None."""
    shapes = [tuple(t.shape) for t in node.inputs[:2]]
    try:
        full = np.broadcast_shapes(*shapes)
    except ValueError:
        return f"input shapes {shapes[0]} and {shapes[1]} do not broadcast"
    if tuple(full) != tuple(node.outputs[0].shape):
        return f"output shape {tuple(node.outputs[0].shape)} is not the broadcast shape {full}"
    return None


def check_binary(node: Any) -> str | None:
    """Activation and broadcasting checks of the binary ops."""
    return check_activation(node) or check_broadcast(node)


# -- unary ------------------------------------------------------------------------------
UNARY: dict[str, tuple[str, tuple[str, ...]]] = {
    "ABS": ("abs(v)", ()),
    "EXP": ("exp(v)", ()),
    "LOG": ("ep_log(v)", ("log",)),
    "SQRT": ("ep_sqrt(v)", ("sqrt",)),
    "RSQRT": ("1.0 / ep_sqrt(v)", ("sqrt",)),
    "SQUARE": ("v * v", ()),
    "NEG": ("-v", ()),
    "RELU": ("max(v, 0.0)", ()),
    "RELU6": ("clamp(v, 0.0, 6.0)", ()),
    "RELU_N1_TO_1": ("clamp(v, -1.0, 1.0)", ()),
    "LOGISTIC": ("1.0 / (1.0 + exp(-v))", ()),
    "TANH": ("ep_tanh(v)", ("tanh",)),
    "HARD_SWISH": ("v * min(max(v + 3.0, 0.0), 6.0) / 6.0", ()),
    "ELU": ("v < 0.0 ? ep_expm1(v) : v", ("expm1",)),
}


def unary_expr(b: Build) -> tuple[str, tuple[str, ...]]:
    """GLSL of the node's function of ``v`` and the helpers it needs."""
    op = b.node.op
    if op == "LEAKY_RELU":
        return f"v > 0.0 ? v : v * {flt(b.options.alpha)}", ()
    if op == "GELU":
        if getattr(b.options, "approximate", False):
            # 0.5 x (1 + tanh(y)) == x / (1 + exp(-2y)): no cancellation for x << 0
            return "v / (1.0 + exp(-2.0 * (0.7978845608028654 * (v + 0.044715 * v * v * v))))", ()
        return "0.5 * v * ep_erfc(-0.7071067811865476 * v)", ("erfc",)
    return UNARY[op]


def build_unary(b: Build) -> Any:
    """Elementwise functions of one input (four per invocation when the count allows)."""
    expr, helpers = unary_expr(b)
    f = f"float f(float v) {{ return {expr}; }}"
    if b.out_count % 4 == 0:
        body = (f"{f}\nvec4 compute4(uint i) {{ vec4 q = x0v(i); "
                "return vec4(f(q.x), f(q.y), f(q.z), f(q.w)); }")
        width = 4
    else:
        body, width = f"{f}\nfloat compute(uint i) {{ return f(x0(i)); }}", 1
    return b.shader(body, [b.x(0)], width=width, helpers=tuple(HELPERS[h] for h in helpers))


def check_same_shape(node: Any) -> str | None:
    """Reason the output shape differs from the input's, or None."""
    if tuple(node.inputs[0].shape) != tuple(node.outputs[0].shape):
        return f"output shape {tuple(node.outputs[0].shape)} differs from the input's"
    return None


# -- PRELU and SOFTMAX ----------------------------------------------------------------
def build_prelu(b: Build) -> Any:
    """PRELU: x >= 0 ? x : x * alpha, alpha broadcast against x."""
    out = b.out_shape
    names = NAMES[4 - len(out):]
    operands: list = []
    x = operand_expr(b, 0, operands, names)
    alpha = operand_expr(b, 1, operands, names)
    body = (f"float compute(uint i) {{ {coords('i', out, names)}\n"
            f"  float v = {x};\n  return v >= 0.0 ? v : v * {alpha};\n}}")
    return b.shader(body, operands)


def build_softmax(b: Build) -> Any:
    """SOFTMAX over the last axis: exp((x - max) * beta) / sum."""
    d = b.shape(0)[-1]
    beta = flt(b.options.beta)
    body = f"""
float compute(uint i) {{
  uint base = (i / {u(d)}) * {u(d)};
  float m = x0(base);
  for (uint k = 1u; k < {u(d)}; ++k) m = max(m, x0(base + k));
  float s = 0.0;
  for (uint k = 0u; k < {u(d)}; ++k) s += exp((x0(base + k) - m) * {beta});
  return exp((x0(i) - m) * {beta}) / s;
}}"""
    return b.shader(body, [b.x(0)])


def check_softmax(node: Any) -> str | None:
    """SOFTMAX needs rank >= 1 and the output shape of its input."""
    if len(node.inputs[0].shape) < 1:
        return "SOFTMAX of a scalar"
    return check_same_shape(node)


def table() -> dict[str, OpSpec]:
    """Capability rows of this family."""
    rows = {op: OpSpec(build_binary, check_binary, data=(0, 1)) for op in BINARY}
    for op in list(UNARY) + ["LEAKY_RELU", "GELU"]:
        rows[op] = OpSpec(build_unary, check_same_shape)
    rows["PRELU"] = OpSpec(build_prelu, check_broadcast, data=(0, 1))
    rows["SOFTMAX"] = OpSpec(build_softmax, check_softmax)
    return rows
