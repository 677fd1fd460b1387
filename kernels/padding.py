"""PAD, PADV2 and MIRROR_PAD.

The output is written as: the input into the interior (one copy), then the
border slabs, one or two per padded axis. PAD/PADV2 fill them with the pad
value; MIRROR_PAD copies them from the already-written output, axis after
axis, which reproduces TFLite's per-axis index mapping (corners included).

Quantized PAD follows TFLite: UINT8 (and INT8/INT16 tensors that carry
quantization) pad with the output zero point, or with PADV2's constant,
whose scale and zero point must equal the output's; values are never
rescaled.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from .movement_common import (QUANTIZED_TYPES, SIZED_TYPES, Arrays, Plan,
                              expect_int16_symmetric, expect_same_params, expect_same_types,
                              index_values, legacy_params, prepare_planned)
from .registry import register

Shape = tuple[int, ...]
Pads = list[tuple[int, int]]

PAD_TYPES = frozenset({"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "INT64",
                       "BOOL"})
MIRROR_PAD_TYPES = SIZED_TYPES
PADDING_TYPES = ("INT32", "INT64")


def _paddings(ctx: OpContext, x: TensorSpec) -> np.ndarray | None:
    spec = ctx.input(1)
    values = index_values(ctx, spec, "paddings", PADDING_TYPES, rank=2)
    if spec.shape != (x.rank, 2):
        raise ctx.invalid(f"paddings must have shape [{x.rank}, 2], got {list(spec.shape)}")
    return values


def _pairs(ctx: OpContext, paddings: np.ndarray) -> Pads:
    pairs = [(int(a), int(b)) for a, b in paddings.reshape(-1, 2).tolist()]
    if any(a < 0 or b < 0 for a, b in pairs):
        raise ctx.invalid(f"paddings {pairs} must be >= 0")
    return pairs


def _interior(pads: Pads, shape: Shape) -> tuple[slice, ...]:
    return tuple(slice(lo, lo + d) for (lo, _), d in zip(pads, shape))


def _padded_shape(pads: Pads, shape: Shape) -> Shape:
    return tuple(d + lo + hi for (lo, hi), d in zip(pads, shape))


# -- PAD, PADV2 --------------------------------------------------------------------
def _border_slabs(pads: Pads, shape: Shape) -> list[tuple[slice, ...]]:
    """Index tuples covering every output element outside the interior."""
    slabs = []
    for axis, (lo, hi) in enumerate(pads):
        head = (slice(None),) * axis
        if lo:
            slabs.append(head + (slice(0, lo),))
        if hi:
            slabs.append(head + (slice(lo + shape[axis], None),))
    return slabs


def _pad_value_source(ctx: OpContext, x: TensorSpec) -> Callable[[Arrays], Any]:
    """How run gets the pad value: from the constant_values input or fixed."""
    const_in = ctx.optional_input(2)
    out = ctx.outputs[0]
    quantized = x.type_name == "UINT8" or (x.type_name in ("INT8", "INT16")
                                           and x.quantization is not None)
    if const_in is not None:
        if const_in.type_name != x.type_name:
            raise ctx.invalid(f"constant_values is {const_in.type_name}, the input "
                              f"{x.type_name}")
        if const_in.size != 1:
            raise ctx.invalid(f"constant_values must hold one value, got shape "
                              f"{list(const_in.shape)}")
        if quantized and legacy_params(const_in) != legacy_params(out):
            raise ctx.invalid(f"constant_values is quantized {legacy_params(const_in)} but the "
                              f"output {legacy_params(out)}")
        return lambda ins: ins[2].reshape(-1)[0]
    fill = 0
    if quantized:
        fill = legacy_params(out)[1]
        info = np.iinfo(out.dtype)
        if not info.min <= fill <= info.max:
            raise ctx.invalid(f"output zero point {fill} does not fit {x.type_name}")
    value = np.array(fill).astype(out.dtype)
    return lambda ins: value


@register(("PAD", "PADV2"), versions=(1, 6), types=PAD_TYPES)
def prepare_pad(ctx: OpContext) -> Prepared:
    """PAD with zeros (or the quantized zero point); PADV2 with constant_values."""
    ctx.expect_counts((2, 3))
    x = expect_same_types(ctx)
    value_of = _pad_value_source(ctx, x)

    def plan(paddings: np.ndarray) -> Plan:
        pads = _pairs(ctx, paddings)
        interior, slabs = _interior(pads, x.shape), _border_slabs(pads, x.shape)

        def write(ins: Arrays, outs: Arrays) -> None:
            out = outs[0]
            value = value_of(ins)
            for slab in slabs:
                out[slab] = value
            np.copyto(out[interior], ins[0])
        return Plan([_padded_shape(pads, x.shape)], write)
    return prepare_planned(ctx, plan, [_paddings(ctx, x)], [1])


# -- MIRROR_PAD --------------------------------------------------------------------
def _mirror_copies(pads: Pads, shape: Shape, offset: int
                   ) -> list[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """(destination, source) index pairs filling the borders from the output.

    Axis by axis: earlier axes are already complete across their full
    extent, later ones only in the interior, so corners come out right.
    """
    copies = []
    for axis, (lo, hi) in enumerate(pads):
        n = shape[axis]
        head = (slice(None),) * axis
        tail = tuple(slice(p, p + d) for (p, _), d in zip(pads[axis + 1:], shape[axis + 1:]))
        if lo:
            src = slice(2 * lo - 1 + offset, lo - 1 + offset, -1)
            copies.append((head + (slice(0, lo),) + tail, head + (src,) + tail))
        if hi:
            first = lo + n - 1 - offset
            stop = first - hi
            src = slice(first, stop if stop >= 0 else None, -1)
            copies.append((head + (slice(lo + n, lo + n + hi),) + tail, head + (src,) + tail))
    return copies


@register("MIRROR_PAD", versions=(1, 3), types=MIRROR_PAD_TYPES)
def prepare_mirror_pad(ctx: OpContext) -> Prepared:
    """MIRROR_PAD in REFLECT (edge not repeated) or SYMMETRIC mode."""
    ctx.expect_counts(2)
    x = expect_same_types(ctx)
    expect_same_params(ctx, x, ctx.outputs[0], QUANTIZED_TYPES)
    expect_int16_symmetric(ctx, x)
    mode = ctx.options.mode
    if mode not in ("REFLECT", "SYMMETRIC"):
        ctx.fail(f"mirror pad mode {mode!r} is not supported")
    offset = 1 if mode == "REFLECT" else 0

    def plan(paddings: np.ndarray) -> Plan:
        pads = _pairs(ctx, paddings)
        for axis, ((lo, hi), n) in enumerate(zip(pads, x.shape)):
            if max(lo, hi) > n - offset:
                raise ctx.invalid(f"{mode} padding {lo, hi} of axis {axis} must be at most "
                                  f"{n - offset} for its size {n}")
        interior = _interior(pads, x.shape)
        copies = _mirror_copies(pads, x.shape, offset)

        def write(ins: Arrays, outs: Arrays) -> None:
            out = outs[0]
            np.copyto(out[interior], ins[0])
            for dst, src in copies:
                np.copyto(out[dst], out[src])
        return Plan([_padded_shape(pads, x.shape)], write)
    return prepare_planned(ctx, plan, [_paddings(ctx, x)], [1])
