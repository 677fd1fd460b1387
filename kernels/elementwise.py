"""Elementwise math on non-quantized tensors: ADD, SUB, MUL, DIV, SQUARED_DIFFERENCE,
MAXIMUM, MINIMUM, POW, FLOOR_DIV, FLOOR_MOD and the unary ABS ... SIGN.

Semantics follow LiteRT's builtin kernels (checked against ai-edge-litert 2.3):

- ADD/SUB/MUL/DIV clamp to their activation range even with no activation, as
  LiteRT's ``CalculateActivationRange`` does: float results saturate at the
  type's largest finite value (``inf`` becomes ``FLT_MAX``, NaN stays NaN).
  The fused ``TANH`` and ``SIGN_BIT`` activations get no clamp range there, so
  LiteRT ignores them for these ops and so do we.
- Integer DIV truncates toward zero; FLOOR_DIV and FLOOR_MOD floor. An integer
  zero divisor (for FLOOR_DIV also a float one) fails the invoke, as in LiteRT.
- FLOOR_DIV on floats is ``floor(double(a) / double(b))``; integer POW is
  computed in double and converted like C's cast; a negative integer exponent
  fails.
- MAXIMUM/MINIMUM are ``a > b ? a : b`` (``a < b ? a : b``): a NaN in the
  second operand propagates, one in the first does not.

Binary ops broadcast like numpy. LiteRT 2.3 broadcasts up to rank 8 (its
ADD and MUL also take higher ranks in some patterns); equal shapes work at any
rank.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from .common import broadcast_shape
from .registry import register
from .windows import BoundRun, Call, Calls, clip_ufunc

Ufunc = Callable[..., np.ndarray]
Run = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], None]
InPlace = Callable[[np.ndarray], object]

F32 = frozenset({"FLOAT32"})
F16 = frozenset({"FLOAT16"})
I32 = frozenset({"INT32"})
I64 = frozenset({"INT64"})
F32_I32 = F32 | I32
NUMERIC = F32 | F16 | I32 | I64

#: LiteRT (ai-edge-litert 2.3) aborts on broadcasts past this rank.
MAX_BROADCAST_RANK = 8

#: Clamp ranges of the fused activations LiteRT honours in ADD/SUB/MUL/DIV.
_CLAMPS = {"RELU": (0, None), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}
#: Fused activations that get no clamp range in LiteRT (it ignores them here).
_NO_RANGE = ("NONE", "TANH", "SIGN_BIT")


# -- checks shared by the elementwise families ----------------------------------------
def binary_operands(ctx: OpContext, max_rank: int | None = MAX_BROADCAST_RANK
                    ) -> tuple[TensorSpec, TensorSpec, tuple[int, ...]]:
    """The two inputs (same type) and their broadcast shape, or a ModelError."""
    ctx.expect_counts(2)
    a, b = ctx.input(0), ctx.input(1)
    if a.type_name != b.type_name:
        raise ctx.invalid(f"input types differ: {a.type_name} and {b.type_name}")
    if a.shape == b.shape:
        return a, b, a.shape
    return a, b, broadcast_shape(ctx, a.shape, b.shape, max_rank=max_rank or 1 << 30)


def unary_operand(ctx: OpContext) -> TensorSpec:
    """The single input of a unary op; its output must have the same type."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    expect_output_type(ctx, x.type_name)
    return x


def expect_output_type(ctx: OpContext, type_name: str) -> None:
    """ModelError unless output 0 is declared with ``type_name``."""
    out = ctx.outputs[0]
    if out.type_name != type_name:
        raise ctx.invalid(f"output {out.name!r} is {out.type_name}, expected {type_name}")


def quiet(run: Run) -> Run:
    """``run`` with numpy's floating-point warnings silenced (inf/NaN are results here)."""
    def wrapped(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        with np.errstate(all="ignore"):
            run(ins, outs)
    return wrapped


def is_empty(shape: Sequence[int]) -> bool:
    """True when a shape holds no elements (run then has nothing to do)."""
    return any(d == 0 for d in shape)


def _noop(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
    return None


def nothing_to_do(ctx: OpContext, shape: tuple[int, ...]) -> Prepared:
    """The prepared op for an empty output: run does nothing."""
    return ctx.done(_noop, shape)


# -- fused activations of ADD/SUB/MUL/DIV ------------------------------------------------
def activation_clamp(ctx: OpContext, dtype: np.dtype) -> InPlace | None:
    """In-place clamp of the op's fused activation range, as LiteRT computes it."""
    act = ctx.options.fused_activation_function
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        if act != "NONE":
            ctx.fail(f"fused activation {act} is not allowed for {ctx.input(0).type_name}")
        return None
    top = np.finfo(dtype).max if dtype.kind == "f" else np.iinfo(dtype).max
    if act in _CLAMPS:
        lo, hi = _CLAMPS[act]
        hi = top if hi is None else hi
    elif act in _NO_RANGE:
        if dtype.kind != "f":
            return None
        lo, hi = -top, top
    else:
        ctx.fail(f"fused activation {act!r} is not supported")
    # C++ converts the bounds to the tensor type (unsigned types wrap -1).
    return RangeClamp(np.array(lo).astype(dtype), np.array(hi).astype(dtype))


def add_clamp_bounds(act: str) -> tuple[np.ndarray, np.ndarray] | None:
    """float32 (lo, hi) that a float ADD with fused activation ``act`` clamps to
    (None for activations ADD does not support)."""
    top = np.finfo(np.float32).max
    if act in _CLAMPS:
        lo, hi = _CLAMPS[act]
        return np.float32(lo), np.float32(top if hi is None else hi)
    if act in _NO_RANGE:
        return np.float32(-top), np.float32(top)
    return None


class RangeClamp:
    """An in-place clamp to ``[lo, hi]`` (bounds as 0-d arrays of the tensor type)."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, a: np.ndarray) -> None:
        clip_ufunc(a, self.lo, self.hi, a)

    def bind(self, a: np.ndarray) -> Call:
        """The clamp of ``a`` as a ready call."""
        return partial(clip_ufunc, a, self.lo, self.hi, a)


def _divisor_check(ctx: OpContext, b: TensorSpec) -> Callable[[np.ndarray], None] | None:
    """None when a constant divisor has no zero; else a run-time check (or ModelError)."""
    if b.is_constant:
        if not np.all(b.data):
            raise ctx.invalid(f"constant divisor {b.name!r} holds a zero")
        return None

    def check(divisor: np.ndarray) -> None:
        if not np.all(divisor):
            raise ZeroDivisionError(f"division by zero: divisor {b.name!r} holds a 0")
    return check


# -- binary ops --------------------------------------------------------------------------
def _arith(ctx: OpContext, compute: Callable[[np.ndarray, np.ndarray, np.ndarray], object],
           max_rank: int | None = MAX_BROADCAST_RANK, zero_check: bool = False,
           scratch_bytes: int = 0) -> Prepared:
    """A binary op with a fused activation: ``compute(a, b, out)`` then the clamp
    (a ufunc ``compute`` is called directly). The calls are bound to the step's
    arrays once (:class:`~.windows.BoundRun`); the interpreter runs them with
    numpy's floating-point warnings off."""
    a, b, shape = binary_operands(ctx, max_rank)
    expect_output_type(ctx, a.type_name)
    clamp = activation_clamp(ctx, a.dtype)
    check = _divisor_check(ctx, b) if zero_check else None
    if is_empty(shape):
        return nothing_to_do(ctx, shape)

    def bind(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> Calls:
        calls: list[Call] = [] if check is None else [partial(check, ins[1])]
        calls.append(partial(compute, ins[0], ins[1], outs[0]))
        if clamp is not None:
            calls.append(clamp.bind(outs[0]))
        return Calls([], calls)
    return ctx.done(BoundRun(bind), shape, scratch_bytes=scratch_bytes)


def _ufunc2(ufunc: Ufunc) -> Callable[[np.ndarray, np.ndarray, np.ndarray], object]:
    return lambda a, b, out: ufunc(a, b, out=out)


def _trunc_divide(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """C++ integer division (toward zero) without temporaries: (a - fmod(a, b)) // b."""
    np.fmod(a, b, out=out)
    np.subtract(a, out, out=out)
    np.floor_divide(out, b, out=out)


@register("ADD", versions=(1, 6), types=NUMERIC)
def prepare_add(ctx: OpContext) -> Prepared:
    """ADD: a + b with broadcasting and a fused activation."""
    return _arith(ctx, np.add, max_rank=None)


@register("SUB", versions=(1, 5), types=F32 | I32 | I64)
def prepare_sub(ctx: OpContext) -> Prepared:
    """SUB: a - b with broadcasting and a fused activation."""
    return _arith(ctx, np.subtract)


@register("MUL", versions=(1, 8), types=NUMERIC | {"UINT32", "COMPLEX64"})
def prepare_mul(ctx: OpContext) -> Prepared:
    """MUL: a * b with broadcasting and a fused activation (none for COMPLEX64)."""
    if ctx.input(0).type_name != "COMPLEX64":
        return _arith(ctx, np.multiply, max_rank=None)
    tmp = np.empty(binary_operands(ctx, None)[2], np.float32)
    return _arith(ctx, _complex_multiply(tmp), max_rank=None, scratch_bytes=tmp.nbytes)


def _complex_multiply(tmp: np.ndarray) -> Callable[[np.ndarray, np.ndarray, np.ndarray], None]:
    """(ar br - ai bi) + (ar bi + ai br) i with every product rounded (no FMA), as LiteRT."""
    def compute(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        re, im = out.real, out.imag
        np.multiply(a.real, b.real, out=re)
        np.multiply(a.imag, b.imag, out=tmp)
        np.subtract(re, tmp, out=re)
        np.multiply(a.real, b.imag, out=im)
        np.multiply(a.imag, b.real, out=tmp)
        np.add(im, tmp, out=im)
    return compute


@register("DIV", versions=(1, 2), types=F32_I32)
def prepare_div(ctx: OpContext) -> Prepared:
    """DIV: a / b; integers truncate toward zero and a zero divisor fails."""
    if ctx.input(0).type_name == "INT32":
        return _arith(ctx, _trunc_divide, zero_check=True)
    return _arith(ctx, np.divide)


def _binary(ctx: OpContext, compute: Callable[[np.ndarray, np.ndarray, np.ndarray], object]
            ) -> Prepared:
    """A binary op without options: ``compute(a, b, out)``."""
    a, _, shape = binary_operands(ctx)
    expect_output_type(ctx, a.type_name)
    if is_empty(shape):
        return nothing_to_do(ctx, shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        compute(ins[0], ins[1], outs[0])
    return ctx.done(quiet(run) if a.dtype.kind == "f" else run, shape)


def _squared_difference(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    np.subtract(a, b, out=out)
    np.square(out, out=out)


@register("SQUARED_DIFFERENCE", versions=(1, 2), types=F32_I32)
def prepare_squared_difference(ctx: OpContext) -> Prepared:
    """SQUARED_DIFFERENCE: (a - b)^2 (integers wrap like C++)."""
    return _binary(ctx, _squared_difference)


def _float_maximum(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    # a > b ? a : b  ==  max(b, fmax(a, b)): NaN only when b is NaN.
    np.fmax(a, b, out=out)
    np.maximum(b, out, out=out)


def _float_minimum(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    np.fmin(a, b, out=out)
    np.minimum(b, out, out=out)


@register("MAXIMUM", versions=(1, 4), types=NUMERIC)
def prepare_maximum(ctx: OpContext) -> Prepared:
    """MAXIMUM: a > b ? a : b, broadcast."""
    kind = ctx.input(0).dtype.kind
    return _binary(ctx, _float_maximum if kind == "f" else _ufunc2(np.maximum))


@register("MINIMUM", versions=(1, 4), types=NUMERIC)
def prepare_minimum(ctx: OpContext) -> Prepared:
    """MINIMUM: a < b ? a : b, broadcast."""
    kind = ctx.input(0).dtype.kind
    return _binary(ctx, _float_minimum if kind == "f" else _ufunc2(np.minimum))


@register("POW", versions=(1, 1), types=F32_I32)
def prepare_pow(ctx: OpContext) -> Prepared:
    """POW: a ** b; int32 goes through double (C's std::pow) and needs b >= 0."""
    a, b, shape = binary_operands(ctx)
    if a.type_name == "FLOAT32":
        return _binary(ctx, _ufunc2(np.power))
    expect_output_type(ctx, a.type_name)
    if b.is_constant and np.any(b.data < 0):
        raise ctx.invalid(f"constant exponent {b.name!r} of an INT32 POW is negative")
    if is_empty(shape):
        return nothing_to_do(ctx, shape)
    wide = np.empty(shape, np.float64)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        if not b.is_constant and ins[1].min() < 0:
            raise ValueError(f"INT32 POW needs non-negative exponents; {b.name!r} has one")
        np.power(ins[0], ins[1], out=wide, dtype=np.float64)
        with np.errstate(invalid="ignore"):   # out of range -> INT_MIN, like the C cast
            np.copyto(outs[0], wide, casting="unsafe")
    return ctx.done(run, shape, scratch_bytes=wide.nbytes)


@register("FLOOR_DIV", versions=(1, 3), types=F32_I32)
def prepare_floor_div(ctx: OpContext) -> Prepared:
    """FLOOR_DIV: floor(a / b); any zero divisor (float too) fails like LiteRT."""
    a, b, shape = binary_operands(ctx)
    expect_output_type(ctx, a.type_name)
    check = _divisor_check(ctx, b)
    if is_empty(shape):
        return nothing_to_do(ctx, shape)
    wide = np.empty(shape, np.float64) if a.type_name == "FLOAT32" else None

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        if check is not None:
            check(ins[1])
        if wide is None:
            np.floor_divide(ins[0], ins[1], out=outs[0])
        else:   # LiteRT divides in double and floors before rounding to float
            np.divide(ins[0], ins[1], out=wide, dtype=np.float64)
            np.floor(wide, out=outs[0])
    return ctx.done(quiet(run), shape, scratch_bytes=0 if wide is None else wide.nbytes)


@register("FLOOR_MOD", versions=(1, 2), types=F32 | I32 | I64)
def prepare_floor_mod(ctx: OpContext) -> Prepared:
    """FLOOR_MOD: a - floor(a / b) * b; an integer zero divisor fails, a float one gives NaN."""
    a, b, shape = binary_operands(ctx)
    expect_output_type(ctx, a.type_name)
    check = _divisor_check(ctx, b) if a.dtype.kind == "i" else None
    if is_empty(shape):
        return nothing_to_do(ctx, shape)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        if check is not None:
            check(ins[1])
        np.remainder(ins[0], ins[1], out=outs[0])
    return ctx.done(quiet(run), shape)


# -- unary ops ---------------------------------------------------------------------------
def unary(ctx: OpContext, compute: Callable[[np.ndarray, np.ndarray], object]) -> Prepared:
    """A one-input op with output of the input's type and shape: ``compute(x, out)``."""
    x = unary_operand(ctx)
    if is_empty(x.shape):
        return nothing_to_do(ctx, x.shape)
    return ctx.done(BoundRun(lambda ins, outs: Calls([], [partial(compute, ins[0], outs[0])])),
                    x.shape)


def _ufunc1(ufunc: Ufunc) -> Callable[[np.ndarray, np.ndarray], object]:
    return lambda x, out: ufunc(x, out=out)


def _rsqrt(x: np.ndarray, out: np.ndarray) -> None:
    # LiteRT computes 1.f / std::sqrt(x): two float roundings.
    np.sqrt(x, out=out)
    np.reciprocal(out, out=out)


#: op -> (ufunc-like compute, LiteRT versions, types).
_UNARY = {
    "ABS": (_ufunc1(np.abs), (1, 5), F32_I32),
    "NEG": (_ufunc1(np.negative), (1, 1), NUMERIC),
    "EXP": (_ufunc1(np.exp), (1, 2), F32),
    "LOG": (_ufunc1(np.log), (1, 2), F32),
    "SQRT": (_ufunc1(np.sqrt), (1, 2), F32),
    "RSQRT": (_rsqrt, (1, 3), F32),
    "SQUARE": (_ufunc1(np.square), (1, 1), F32),
    "SIN": (_ufunc1(np.sin), (1, 2), F32 | F16),
    "COS": (_ufunc1(np.cos), (1, 2), F32 | F16),
    "FLOOR": (_ufunc1(np.floor), (1, 1), F32 | F16),
    "CEIL": (_ufunc1(np.ceil), (1, 1), F32),
    "ROUND": (_ufunc1(np.rint), (1, 1), F32 | F16),   # half to even, like LiteRT
    "SIGN": (_ufunc1(np.sign), (1, 2), F32_I32 | {"FLOAT64"}),
}


def register_unary(op: str, versions: tuple[int, int], types: frozenset[str],
                   compute: Callable[[np.ndarray, np.ndarray], object]) -> None:
    """Register ``op`` as a :func:`unary` op computing ``compute(x, out)``."""
    def prepare(ctx: OpContext) -> Prepared:
        return unary(ctx, compute)
    prepare.__name__ = prepare.__qualname__ = f"prepare_{op.lower()}"
    prepare.__doc__ = f"{op}: elementwise on {', '.join(sorted(types))}, shape unchanged."
    register(op, versions=versions, types=types)(prepare)


for _op, (_compute, _versions, _types) in _UNARY.items():
    register_unary(_op, _versions, _types, _compute)
