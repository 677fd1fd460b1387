"""Normalization: L2_NORMALIZATION and LOCAL_RESPONSE_NORMALIZATION (float32).

L2_NORMALIZATION divides each vector along the last axis by
``max(sqrt(sum(x * x)), 1e-6)`` — TFLite's epsilon bounds the *norm*, not
the squared norm. LOCAL_RESPONSE_NORMALIZATION scales each channel by
``(bias + alpha * sum of squares over channels c-radius..c+radius) ** -beta``
with the window summed exactly as TFLite's optimized kernel does (a running
sum); beta 1 and 0.5 use its reciprocal / reciprocal-sqrt shortcuts and are
bit-exact, other betas differ from Eigen's vectorized pow by an ulp or two. The int8/uint8
L2_NORMALIZATION (fixed output scale 1/128) belongs to the integer kernels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .registry import FLOAT_TYPES, register

#: TFLite's floor on the L2 norm (l2norm.cc).
L2_EPSILON = np.float32(1e-6)


def _same_type_output(ctx: OpContext) -> None:
    if ctx.outputs[0].dtype != ctx.input(0).dtype:
        raise ctx.invalid(f"output type {ctx.outputs[0].type_name} differs from the input's "
                          f"{ctx.input(0).type_name}")


@register("L2_NORMALIZATION", versions=(1, 2), types=FLOAT_TYPES)
def prepare_l2_normalization(ctx: OpContext) -> Prepared:
    """L2_NORMALIZATION along the last axis (no fused activation, as TFLite)."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    _same_type_output(ctx)
    if x.rank < 1:
        raise ctx.invalid("the input must have rank >= 1")
    act = ctx.options.fused_activation_function
    if act != "NONE":
        ctx.fail(f"fused activation {act} is not supported (TFLite takes none)")
    norm = np.empty(x.shape[:-1] + (1,), np.float32)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        # Squares summed left to right (a running sum), as TFLite does.
        np.multiply(ins[0], ins[0], out=outs[0])
        np.add.accumulate(outs[0], axis=-1, out=outs[0])
        np.sqrt(outs[0][..., -1:], out=norm)
        np.maximum(norm, L2_EPSILON, out=norm)
        np.divide(ins[0], norm, out=outs[0])
    return ctx.done(run, x.shape, scratch_bytes=norm.nbytes)


@register("LOCAL_RESPONSE_NORMALIZATION", versions=(1, 1), types=FLOAT_TYPES)
def prepare_local_response_normalization(ctx: OpContext) -> Prepared:
    """LOCAL_RESPONSE_NORMALIZATION across the channels of a 4-D input."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    _same_type_output(ctx)
    if x.rank != 4:
        raise ctx.invalid(f"input must be 4-D, got rank {x.rank}")
    opts = ctx.options
    radius = int(opts.radius)
    if radius < 0:
        raise ctx.invalid(f"radius {radius} must be >= 0")
    window = _SlidingWindow(x.size // max(x.shape[-1], 1), x.shape[-1], radius,
                            np.float32(opts.alpha))
    bias, beta = np.float32(opts.bias), np.float32(opts.beta)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        x2, out = window.rows(ins[0]), window.rows(outs[0])
        np.add(window.sums(x2), bias, out=out)
        if beta == 1:
            np.reciprocal(out, out=out)
        elif beta == np.float32(0.5):
            np.sqrt(out, out=out)
            np.reciprocal(out, out=out)
        else:
            np.power(out, -beta, out=out)
        np.multiply(x2, out, out=out)
    return ctx.done(run, x.shape, scratch_bytes=window.nbytes)


class _SlidingWindow:
    """TFLite's optimized LRN window sum, reproduced exactly.

    Per pixel, TFLite keeps one running float sum of ``alpha * x*x`` over the
    channels c-radius..c+radius: it adds the entering channel, reads the sum,
    then subtracts the leaving one. That scan is a single left-to-right
    ``np.add.accumulate`` over the interleaved sequence
    ``p[0..2r-1], +p[2r], -p[0], +p[2r+1], -p[1], ...`` of the zero-padded
    scaled squares ``p`` — vectorized over pixels, no loop over channels.
    """

    def __init__(self, pixels: int, depth: int, radius: int, alpha: np.float32) -> None:
        self.depth, self.radius, self.alpha = depth, radius, alpha
        self.padded = np.zeros((pixels, depth + 2 * radius), np.float32)
        self.scan = np.empty((pixels, 2 * radius + 2 * depth), np.float32)
        self.nbytes = self.padded.nbytes + self.scan.nbytes

    def rows(self, a: np.ndarray) -> np.ndarray:
        """(pixels, depth) view of an NHWC array."""
        return a.reshape(-1, self.depth)

    def sums(self, x2: np.ndarray) -> np.ndarray:
        """(pixels, depth) strided view of the window sums for rows ``x2``."""
        r, c = self.radius, self.depth
        squares = self.padded[:, r:r + c]
        np.multiply(x2, x2, out=squares)
        np.multiply(squares, self.alpha, out=squares)
        scan = self.scan
        scan[:, :2 * r] = self.padded[:, :2 * r]
        scan[:, 2 * r::2] = self.padded[:, 2 * r:]
        np.negative(self.padded[:, :c], out=scan[:, 2 * r + 1::2])
        np.add.accumulate(scan, axis=1, out=scan)
        return scan[:, 2 * r::2]
