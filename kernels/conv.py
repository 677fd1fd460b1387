"""Float convolution and linear algebra: CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV,
CONV_3D, FULLY_CONNECTED and BATCH_MATMUL.

Convolutions are GEMMs: the input is padded once into a buffer allocated at
prepare, turned into a patch matrix by copying a strided im2col view into
another preallocated buffer (skipped for 1x1 stride-1 filters, whose patch
matrix is the input itself), and multiplied with the filter matrix. With a
bias the output is first filled with the bias (tiled along an output line)
and BLAS accumulates the product into it (:mod:`.blas`), so the bias costs
no pass of its own; the clamp follows. Depthwise convolution is one einsum
per output region over a strided view of all filter taps
(:class:`~.windows.TapRegions`: the interior read in place, thin padded
borders) with the weights tiled along the output width, so its inner loop
runs over whole output rows. Transposed convolution is one GEMM followed by
one strided add per filter tap (col2im). Constant filters are re-laid out
once, at prepare.

Every run is a list of numpy calls bound once to the step's arrays
(:class:`~edgeplex.core.kernel_api.BoundRun`); layers big enough are cut in
two halves of output rows for the interpreter's thread budget. The
prepared ops offer the plan's fusion hooks (core.fuse): CONV_2D takes over a
residual ADD after it and a depthwise bias before it, both take over a zero
PAD before them, and a depthwise layer without activation hands its bias on.

Weights must be float32 here: int8 / uint8 weights with a float input are
hybrid (dynamic-range) models, which this module refuses with an
UnsupportedOpError (a hybrid kernel registers with ``when=``).
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from edgeplex.core.parallel import span

from .blas import accumulate
from .common import broadcast_shape
from .elementwise import RangeClamp, add_clamp_bounds
from .registry import FLOAT_TYPES, register
from .windows import (PARALLEL_GEMM, PARALLEL_MACS, PARALLEL_ROWS, Axis, BoundRun, Call, Calls, Clamp,
                      PaddedInput, TapRegions, ViewCache, as_shape, c_einsum, clamp_activation,
                      split_parts, window_axes, window_view)

F32 = np.float32
InPlace = Callable[[np.ndarray], Any] | None
#: Weight types that make an op hybrid (float activations, integer weights).
HYBRID_WEIGHTS = frozenset({"INT8", "UINT8", "INT4"})


# -- operand checks ---------------------------------------------------------------
def expect_rank(ctx: OpContext, spec: TensorSpec, ranks: int | tuple[int, int], what: str
                ) -> None:
    """ModelError unless ``spec`` has the given rank (or rank range)."""
    lo, hi = (ranks, ranks) if isinstance(ranks, int) else ranks
    if not lo <= spec.rank <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise ctx.invalid(f"{what} must have rank {want}, got shape {list(spec.shape)}")


def expect_float_weights(ctx: OpContext, spec: TensorSpec, what: str) -> None:
    """UnsupportedOpError unless ``spec`` is dense float32 (hybrid models included)."""
    if spec.type_name in HYBRID_WEIGHTS:
        ctx.fail(f"{spec.type_name} {what} with a FLOAT32 input (a hybrid, dynamic-range "
                 "quantized model) is not supported by the float kernel")
    if spec.type_name != "FLOAT32":
        ctx.fail(f"{what} of type {spec.type_name} is not supported (expected FLOAT32)")
    if spec.sparsity is not None:
        ctx.fail(f"sparse {what} are not supported (densify them first)")


def expect_float_output(ctx: OpContext) -> None:
    """ModelError unless the op's single output is declared float32."""
    if ctx.outputs[0].type_name != "FLOAT32":
        raise ctx.invalid(f"output type {ctx.outputs[0].type_name} must be FLOAT32 like the "
                          "input")


def optional_bias(ctx: OpContext, index: int, channels: int) -> TensorSpec | None:
    """The float32 bias input (``channels`` values) or None when omitted."""
    bias = ctx.optional_input(index)
    if bias is None:
        return None
    if bias.type_name != "FLOAT32":
        raise ctx.invalid(f"bias type {bias.type_name} must be FLOAT32")
    if bias.size != channels:
        raise ctx.invalid(f"bias has {bias.size} values for {channels} output channels")
    return bias


def operand(spec: TensorSpec | None, index: int, relayout: Callable[[np.ndarray], np.ndarray]
            ) -> Callable[[Sequence[Any]], Any]:
    """A getter for input ``index`` in its kernel layout: constants re-laid out once,
    other tensors on each run (``relayout`` should then be a cheap view)."""
    if spec is None:
        return lambda ins: None
    if spec.is_constant:
        fixed = np.ascontiguousarray(relayout(spec.data))
        return lambda ins: fixed
    return lambda ins: relayout(ins[index])


def finish_calls(out: np.ndarray, bias: np.ndarray | None, act: Clamp | None) -> list[Call]:
    """Bias add and fused activation of ``out``, in place, as bound calls."""
    calls: list[Call] = []
    if bias is not None:
        calls.append(partial(np.add, out, bias, out))
    if act is not None:
        calls.append(act.bind(out))
    return calls


# -- GEMM convolution (CONV_2D, CONV_3D) ----------------------------------------------
class Im2col:
    """Turns an ``(N, *spatial, C)`` input into its ``(groups, M, K)`` patch matrix.

    ``M`` is the number of output positions, ``K`` the taps times the channels
    of one group. 1x1 stride-1 filters use the input itself (a view);
    otherwise the padded input's strided window view is copied into a buffer
    allocated once, one block of output *lines* (a batch item's output row:
    ``line_rows`` matrix rows) at a time, so the GEMM of a block can follow
    its copy while it is still in cache.
    """

    def __init__(self, in_shape: Sequence[int], axes: Sequence[Axis], groups: int) -> None:
        n, c = in_shape[0], in_shape[-1]
        self.groups, self.cg = groups, c // groups
        self.first = axes[0].out
        self.lines = n * self.first
        self.line_rows = int(np.prod([a.out for a in axes[1:]], dtype=np.int64))
        self.rows = self.lines * self.line_rows
        self.depth = int(np.prod([a.filter for a in axes], dtype=np.int64)) * self.cg
        self.direct = all(a.filter == 1 and a.stride == 1 for a in axes)
        self.scratch_bytes = 0
        if self.direct:
            return
        self._pad = PaddedInput(in_shape, axes, F32)
        cols = np.empty((groups, n, *(a.out for a in axes), *(a.filter for a in axes),
                         self.cg), F32)
        self._matrix = cols.reshape(groups, self.rows, self.depth)
        self._dst = np.moveaxis(cols, 0, -2)
        self._axes = axes
        self.scratch_bytes = self._pad.nbytes + cols.nbytes

    def bind(self, x: np.ndarray) -> tuple[np.ndarray, list[Call]]:
        """The patch matrix of input ``x`` and the calls that pad ``x`` each run."""
        if self.direct:
            return as_shape(x, (self.rows, self.groups, self.cg)).transpose(1, 0, 2), []
        if self._pad.buffer is None:
            return self._matrix, []
        return self._matrix, [partial(np.copyto, self._pad.interior, x[..., None])]

    def fill_calls(self, x: np.ndarray, lines: slice) -> list[Call]:
        """Calls copying the patches of output ``lines`` of ``x`` (after the padding)."""
        if self.direct or lines.stop <= lines.start:
            return []
        src = window_view(x if self._pad.buffer is None else self._pad.buffer, self._axes,
                          self.groups)
        calls: list[Call] = []
        for b in range(lines.start // self.first, (lines.stop - 1) // self.first + 1):
            y0 = max(lines.start - b * self.first, 0)
            y1 = min(lines.stop - b * self.first, self.first)
            calls.append(partial(np.copyto, self._dst[b, y0:y1], src[b, y0:y1]))
        return calls


def gemm_conv(ctx: OpContext, x: TensorSpec, axes: Sequence[Axis], groups: int,
              weights: Callable[[Sequence[Any]], np.ndarray], out_channels: int,
              bias: TensorSpec | None) -> Prepared:
    """Prepared convolution: im2col, one (grouped) matmul into the output, bias, clamp;
    large ones in two halves of output lines shared out to the thread budget.

    ``weights(ins)`` returns the filter as a ``(groups, K, out_channels / groups)`` matrix.
    """
    act = clamp_activation(ctx)
    out_shape = (x.shape[0], *(a.out for a in axes), out_channels)
    im2col = Im2col(x.shape, axes, groups)
    ocg = out_channels // groups
    size = im2col.line_rows
    # bias and clamp run over whole output lines (the bias tiled along a line):
    # numpy's inner loop is then a line, not out_channels elements
    line_bias = tiled(bias, 2, (size, out_channels), lambda b: b.reshape(1, -1))
    parts = gemm_parts(im2col.rows, im2col.lines, im2col.depth, out_channels, x.size * 4)
    scratch = im2col.scratch_bytes + copied_bytes(bias, (size, out_channels))

    def binder(residual: int | None, clamp: Any) -> Callable[..., Calls]:
        """The bind of the convolution, or (``residual``: the index of an extra
        input added to the output, ``clamp`` then the ADD's) of conv + ADD."""
        def bind(ins: Sequence[Any], outs: Sequence[Any]) -> Calls:
            x, w = ins[0], weights(ins)
            lines_out = as_shape(outs[0], (im2col.lines, size * out_channels))
            res = None if residual is None else as_shape(ins[residual], lines_out.shape)
            b_line, refresh = line_bias(ins)
            b_line = None if b_line is None else as_shape(b_line, (size * out_channels,))
            out = as_shape(outs[0], (im2col.rows, groups, ocg)).transpose(1, 0, 2)
            matrix, first = im2col.bind(x)
            first += refresh

            def lines(block: slice) -> list[Call]:
                r = slice(block.start * size, block.stop * size)
                fill = im2col.fill_calls(x, block)
                acc = (accumulate(matrix[0, r], w[0], out[0, r])
                       if groups == 1 and (b_line is not None or res is not None) else None)
                if acc is not None:   # out = (residual +) bias, BLAS adds the product
                    dst = lines_out[block]
                    start = (partial(np.copyto, dst, b_line) if res is None
                             else partial(np.copyto, dst, res[block]) if b_line is None
                             else partial(np.add, res[block], b_line, dst))
                    return [*fill, start, acc] + ([] if clamp is None else [clamp.bind(dst)])
                product = (partial(np.matmul, matrix[0, r], w[0], out[0, r]) if groups == 1
                           else partial(np.matmul, matrix[:, r], w, out[:, r]))
                calls = [*fill, product, *finish_calls(lines_out[block], b_line, None)]
                if res is not None:
                    calls.append(partial(np.add, lines_out[block], res[block], lines_out[block]))
                return calls + ([] if clamp is None else [clamp.bind(lines_out[block])])
            return Calls(first, lines(slice(0, im2col.lines)),
                         [lines(span(im2col.lines, i, parts)) for i in range(parts)]
                         if parts > 1 else [])
        return bind

    def fuse_add(residual: TensorSpec, index: int, activation: str) -> Prepared | None:
        """conv + ``residual`` then ADD's clamp, for core.fuse (no activation of our own)."""
        bounds = add_clamp_bounds(activation)
        if act is not None or groups != 1 or bounds is None or residual.shape != out_shape:
            return None
        return ctx.done(BoundRun(binder(index, RangeClamp(*bounds))), out_shape,
                        scratch_bytes=scratch)
    prepared = ctx.done(BoundRun(binder(None, act)), out_shape, scratch_bytes=scratch)
    prepared.fuse_add = fuse_add
    return prepared


def gemm_parts(rows: int, lines: int, depth: int, out_channels: int, input_bytes: int = 0
               ) -> int:
    """Parts (halves of the output lines, or 1) of a convolution's matrix product.

    Only products with many rows split: splitting output channels, or a few
    rows, lost more to moving data between the cores' caches than it won
    (measured on MobileNetV2-224's 14x14 and 7x7 layers).
    """
    if lines < 2 or rows < 2 * PARALLEL_ROWS or rows < out_channels:
        return 1
    return split_parts(rows * depth * out_channels, PARALLEL_GEMM, input_bytes)


def copied_bytes(spec: TensorSpec | None, shape: tuple[int, ...]) -> int:
    """Scratch bytes of a :func:`tiled` operand (a buffer only for non-constant inputs)."""
    return 0 if spec is None or spec.is_constant else 4 * int(np.prod(shape, dtype=np.int64))


@register("CONV_2D", versions=(1, 8), types=FLOAT_TYPES)
def prepare_conv_2d(ctx: OpContext) -> Prepared:
    """CONV_2D (float): SAME/VALID, strides, dilation, groups, optional bias, clamp."""
    ctx.expect_counts((2, 3))
    x, w = ctx.input(0), ctx.input(1)
    expect_rank(ctx, x, 4, "input")
    expect_rank(ctx, w, 4, "filter")
    expect_float_weights(ctx, w, "filter")
    expect_float_output(ctx)
    n, h, wd, c = x.shape
    oc, kh, kw, cg = w.shape
    if cg < 1 or c % cg:
        raise ctx.invalid(f"input has {c} channels, not a multiple of the filter's {cg} "
                          "input channels")
    groups = c // cg
    if oc % groups:
        raise ctx.invalid(f"{oc} output channels do not split into {groups} groups")
    o = ctx.options
    axes = window_axes(ctx, o.padding, (h, wd), (kh, kw), (o.stride_h, o.stride_w),
                       (o.dilation_h_factor, o.dilation_w_factor))
    weights = operand(w, 1, lambda f: f.reshape(groups, oc // groups, -1).transpose(0, 2, 1))
    bias = optional_bias(ctx, 2, oc)

    def build(x: TensorSpec, axes: Sequence[Axis], bias: TensorSpec | None = bias
              ) -> Prepared:
        prepared = gemm_conv(ctx, x, axes, groups, weights, oc, bias)
        prepared.fuse_pad = pad_fusion(prepared, lambda x, grown: build(x, grown, bias), axes)
        direct = all(a.filter == 1 and a.stride == 1 and not a.before and not a.after
                     for a in axes)
        if direct and groups == 1 and w.is_constant and (bias is None or bias.is_constant):
            prepared.fold_bias = partial(_fold_bias, build, x, axes, w, bias)
        return prepared
    return build(x, axes)


def _fold_bias(build: Callable[..., Prepared], x: TensorSpec, axes: Sequence[Axis],
               w: TensorSpec, bias: TensorSpec | None, incoming: np.ndarray) -> Prepared:
    """A 1x1 convolution whose input lost its per-channel bias ``incoming``: its own
    bias grows by ``incoming @ W`` (computed once, in double)."""
    matrix = w.data.reshape(w.shape[0], -1).astype(np.float64)
    total = matrix @ incoming.astype(np.float64).reshape(-1)
    if bias is not None:
        total += bias.data.reshape(-1)
    grown = TensorSpec(w.tensor, (w.shape[0],), total.astype(np.float32))
    return build(x, axes, grown)


@register("CONV_3D", versions=(1, 1), types=FLOAT_TYPES)
def prepare_conv_3d(ctx: OpContext) -> Prepared:
    """CONV_3D (float, NDHWC input, DHWIO filter): padding, strides, dilation, bias, clamp."""
    ctx.expect_counts((2, 3))
    x, w = ctx.input(0), ctx.input(1)
    expect_rank(ctx, x, 5, "input")
    expect_rank(ctx, w, 5, "filter")
    expect_float_weights(ctx, w, "filter")
    expect_float_output(ctx)
    kd, kh, kw, ic, oc = w.shape
    if x.shape[4] != ic:
        raise ctx.invalid(f"input has {x.shape[4]} channels but the filter expects {ic}")
    o = ctx.options
    axes = window_axes(ctx, o.padding, x.shape[1:4], (kd, kh, kw),
                       (o.stride_d, o.stride_h, o.stride_w),
                       (o.dilation_d_factor, o.dilation_h_factor, o.dilation_w_factor))
    weights = operand(w, 1, lambda f: f.reshape(1, -1, oc))
    return gemm_conv(ctx, x, axes, 1, weights, oc, optional_bias(ctx, 2, oc))


# -- DEPTHWISE_CONV_2D ---------------------------------------------------------------
@register("DEPTHWISE_CONV_2D", versions=(1, 7), types=FLOAT_TYPES)
def prepare_depthwise_conv_2d(ctx: OpContext) -> Prepared:
    """DEPTHWISE_CONV_2D (float): depth multiplier, dilation, strides, padding, bias, clamp.

    Like LiteRT, the depth multiplier is the filter's channels over the
    input's; the ``depth_multiplier`` option is not consulted.
    """
    ctx.expect_counts((2, 3))
    x, w = ctx.input(0), ctx.input(1)
    expect_rank(ctx, x, 4, "input")
    expect_rank(ctx, w, 4, "filter")
    expect_float_weights(ctx, w, "filter")
    expect_float_output(ctx)
    n, h, wd, c = x.shape
    one, kh, kw, oc = w.shape
    if one != 1:
        raise ctx.invalid(f"filter shape {list(w.shape)} must be [1, height, width, channels]")
    if c < 1 or oc % c:
        raise ctx.invalid(f"filter has {oc} channels, not a multiple of the input's {c}")
    o = ctx.options
    axes = window_axes(ctx, o.padding, (h, wd), (kh, kw), (o.stride_h, o.stride_w),
                       (o.dilation_h_factor, o.dilation_w_factor))
    bias_spec = optional_bias(ctx, 2, oc)
    act = clamp_activation(ctx)

    def build(x: TensorSpec, axes: Sequence[Axis], bias_spec: TensorSpec | None = bias_spec
              ) -> Prepared:
        prepared = depthwise(x, axes, bias_spec)
        prepared.fuse_pad = pad_fusion(prepared, lambda x, grown: build(x, grown, bias_spec),
                                       axes)
        if act is None and bias_spec is not None and bias_spec.is_constant:
            prepared.unbias = lambda: (build(x, axes, None), bias_spec.data.reshape(-1))
        return prepared

    def depthwise(x: TensorSpec, axes: Sequence[Axis], bias_spec: TensorSpec | None
                  ) -> Prepared:
        out_shape = (n, axes[0].out, axes[1].out, oc)
        flat = _depthwise_flat(axes, oc, x.size * 4)
        work = int(np.prod(out_shape, dtype=np.int64)) * kh * kw
        regions = TapRegions(x.shape, axes, F32, flat=flat, repeat=oc // c,
                             split=x.size >= DEPTHWISE_SPLIT)
        width = axes[1].out if flat else 1
        weights = tiled(w, 1, (kh, kw, width, oc), lambda f: f.reshape(kh, kw, 1, oc))
        bias = tiled(bias_spec, 2, (axes[1].out, oc), lambda b: b.reshape(1, oc))
        bind = _depthwise_bind(regions, out_shape, weights, bias, act,
                               split_parts(work, PARALLEL_MACS, x.size * 4))
        scratch = (regions.nbytes + copied_bytes(w, (kh, kw, width, oc))
                   + copied_bytes(bias_spec, (axes[1].out, oc)))
        return ctx.done(BoundRun(bind), out_shape, scratch_bytes=scratch)
    return build(x, axes)


def pad_fusion(prepared: Prepared, build: Callable[[TensorSpec, Sequence[Axis]], Prepared],
               axes: Sequence[Axis]) -> Callable[..., Prepared | None]:
    """The ``fuse_pad`` hook (core.fuse) of ``prepared``: the same op reading the
    input of a zero PAD before it, whose height and width padding joins its own."""
    def fuse_pad(x: TensorSpec, pads: Sequence[tuple[int, int]]) -> Prepared | None:
        grown = []
        for a, (lo, hi) in zip(axes, pads):
            if lo < 0 or hi < 0 or a.size - lo - hi < 0:
                return None
            grown.append(dataclasses.replace(a, size=a.size - lo - hi, before=a.before + lo,
                                             after=a.after + hi))
        fused = build(x, grown)
        return fused if fused.output_shapes == prepared.output_shapes else None
    return fuse_pad


#: Input elements from which a depthwise convolution reads its padding-free
#: interior straight from the input (and only the border through small padded
#: copies) rather than copying the whole input into a padded buffer: the copy
#: saved outweighs the four extra (small) einsum calls.
DEPTHWISE_SPLIT = 1 << 16


#: Longest flat row one depthwise einsum call multiply-accumulates: the output,
#: tap and weight stretches of longer rows no longer fit the L1 cache together
#: (rows of 5-8K floats ran 10-15% faster cut in 4K pieces).
FLAT_CHUNK = 4096


def _row_chunks(length: int) -> list[slice]:
    """Near-equal pieces of a flat row of ``length`` (0: the whole last axis)."""
    if length <= FLAT_CHUNK:
        return [slice(None)]
    n = -(-length // FLAT_CHUNK)
    return [span(length, i, n) for i in range(n)]


def _depthwise_flat(axes: Sequence[Axis], channels: int, in_bytes: int) -> bool:
    """Whether whole output rows (flat views) beat per-pixel channel runs.

    Flat einsum loops run over ``out_w * C`` elements (fast for any ``C``), but a
    width stride > 1 must first gather the column taps (about 1.5 input copies).
    Per-pixel loops read the input in place but run over only ``C`` elements:
    they win with strides when channels are many, or the input is too big for
    the gather to stay in cache (measured on MobileNet and MediaPipe shapes).
    """
    if axes[1].stride == 1 or axes[1].out == 1:
        return True
    return channels < (64 if in_bytes > (2 << 20) else 128)


def tiled(spec: TensorSpec | None, index: int, shape: tuple[int, ...],
          view: Callable[[np.ndarray], np.ndarray]
          ) -> Callable[[Sequence[Any]], tuple[np.ndarray | None, list[Call]]]:
    """A binder for input ``index`` broadcast to ``shape``: (array, calls refreshing
    it each run). Constants are broadcast once, at prepare; other inputs are
    copied into one buffer by the calls."""
    if spec is None:
        return lambda ins: (None, [])
    if spec.is_constant:
        fixed = np.ascontiguousarray(np.broadcast_to(view(spec.data), shape))
        return lambda ins: (fixed, [])
    buf = np.empty(shape, F32)
    return lambda ins: (buf, [partial(np.copyto, buf, view(ins[index]))])


def _depthwise_bind(regions: TapRegions, out_shape: tuple[int, ...],
                    weights: Callable[[Sequence[Any]], tuple[Any, list[Call]]],
                    bias: Callable[[Sequence[Any]], tuple[Any, list[Call]]],
                    act: Clamp | None, parts: int) -> Callable[..., Calls]:
    """out = bias + sum over taps of (tap view * tap weights): one einsum per region.

    Flat regions multiply-accumulate whole output rows (the weights are tiled
    along the output width), so einsum's inner loop is long however few
    channels there are; per-pixel regions use the untiled weights. Large
    layers split the output rows across threads (bias and clamp included).
    """
    n, ho, wo, oc = out_shape
    kh, kw = regions.ay.filter, regions.ax.filter
    spec = "nhijx,ijx->nhx" if regions.flat else "nhwijc,ijc->nhwc"

    def bind(ins: Sequence[Any], outs: Sequence[Any]) -> Calls:
        x, out = ins[0], outs[0]
        (w, w_calls), (b, b_calls) = weights(ins), bias(ins)
        w = as_shape(w, (kh, kw, -1) if regions.flat else (kh, kw, oc))
        b = None if b is None else as_shape(b, (wo * oc,))
        jobs = []
        for r in regions.regions:
            (r0, r1), (c0, c1) = r.rows, r.cols
            o = out[:, r0:r1, c0:c1]
            if regions.flat:
                o, ww = as_shape(o, (n, r1 - r0, (c1 - c0) * oc)), w[..., :(c1 - c0) * oc]
            else:
                ww = w
            jobs.append((r0, r.view(x), o, ww))
        rows = as_shape(out, (n, ho, wo * oc))

        def block(part: slice) -> list[Call]:
            calls: list[Call] = []
            for r0, src, dst, ww in jobs:
                a, z = max(part.start - r0, 0), min(part.stop - r0, dst.shape[1])
                if z <= a:
                    continue
                for q in _row_chunks(dst.shape[2] if regions.flat else 0):
                    calls.append(partial(c_einsum, spec, src[:, a:z, ..., q], ww[..., q],
                                         out=dst[:, a:z, ..., q]))
            return calls + finish_calls(rows[:, part], b, act)
        first = [partial(np.copyto, dst, x[index]) for r in regions.regions
                 for dst, index in r.copies] + w_calls + b_calls
        return Calls(first, block(slice(0, ho)), [block(span(ho, i, parts)) for i in range(parts)]
                     if parts > 1 else [])
    return bind


# -- TRANSPOSE_CONV --------------------------------------------------------------------
def transpose_conv_type_key(ctx: OpContext) -> str:
    """TRANSPOSE_CONV's type key: its data input (input 2), not the output shape
    (input 0, always INT32). For integer TRANSPOSE_CONV kernels to reuse."""
    return ctx.input(2).type_name if len(ctx.inputs) > 2 and ctx.inputs[2] else "NONE"


@register("TRANSPOSE_CONV", versions=(1, 5), types=FLOAT_TYPES, type_key=transpose_conv_type_key)
def prepare_transpose_conv(ctx: OpContext) -> Prepared:
    """TRANSPOSE_CONV (float): inputs (output_shape, weights, input[, bias]); padding,
    strides, optional bias, clamp; a non-constant output_shape gives a dynamic output."""
    ctx.expect_counts((3, 4))
    shape_spec, w, x = ctx.input(0), ctx.input(1), ctx.input(2)
    if shape_spec.type_name != "INT32" or shape_spec.shape != (4,):
        raise ctx.invalid(f"output_shape must be an INT32 vector of 4 values, got "
                          f"{shape_spec.type_name} {list(shape_spec.shape)}")
    expect_rank(ctx, x, 4, "input")
    expect_rank(ctx, w, 4, "weights")
    expect_float_weights(ctx, w, "weights")
    expect_float_output(ctx)
    oc, kh, kw, ic = w.shape
    if x.shape[3] != ic:
        raise ctx.invalid(f"input has {x.shape[3]} channels but the weights expect {ic}")
    weights = operand(w, 1, _transposed_weights_relayout(w.shape))
    bias = operand(optional_bias(ctx, 3, oc), 3, lambda b: b.reshape(-1))
    act = clamp_activation(ctx)

    def build(out_shape: tuple[int, ...]) -> tuple[Callable[..., None], int]:
        return _transpose_conv_run(ctx, x.shape, w.shape, out_shape, weights, bias, act)
    if shape_spec.is_constant:
        out_shape = tuple(int(v) for v in shape_spec.data)
        run, scratch = build(out_shape)
        return ctx.done(run, out_shape, scratch_bytes=scratch)
    return ctx.done(_dynamic_output(build), None)


def _transposed_weights_relayout(shape: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
    """OHWI weights to the (I, H * W * O) GEMM matrix, into one reused buffer."""
    oc, kh, kw, ic = shape
    buf = np.empty((ic, kh, kw, oc), F32)

    def relayout(f: np.ndarray) -> np.ndarray:
        np.copyto(buf, f.transpose(3, 1, 2, 0))
        return buf.reshape(ic, kh * kw * oc)
    return relayout


def _dynamic_output(build: Callable[[tuple[int, ...]], tuple[Callable[..., None], int]]
                    ) -> Callable[..., list[np.ndarray]]:
    """A run for an output whose shape is input 0's value: one plan per shape seen."""
    plans: dict[tuple[int, ...], Callable[..., None]] = {}

    def run(ins: Sequence[Any], outs: Sequence[Any]) -> list[np.ndarray]:
        shape = tuple(int(v) for v in ins[0])
        if shape not in plans:
            plans[shape] = build(shape)[0]
        out = np.empty(shape, F32)
        plans[shape](ins, [out])
        return [out]
    return run


def _transpose_conv_run(ctx: OpContext, in_shape: tuple[int, ...], w_shape: tuple[int, ...],
                        out_shape: tuple[int, ...], weights: Callable[..., np.ndarray],
                        bias: Callable[..., np.ndarray | None], act: InPlace
                        ) -> tuple[Callable[..., None], int]:
    n, h, w, ic = in_shape
    oc, kh, kw, _ = w_shape
    o = ctx.options
    ys, xs = _transpose_axes(ctx, o.padding, in_shape, w_shape, out_shape,
                             (o.stride_h, o.stride_w))
    cols = np.empty((n, h, w, kh, kw, oc), F32)
    matrix = cols.reshape(n * h * w, kh * kw * oc)
    # LiteRT's col2im adds, per output element, the taps in reverse order.
    steps = [((slice(None), yi, xi, ky, kx), (slice(None), yo, xo))
             for ky, (yi, yo) in reversed(list(enumerate(ys))) if yi is not None
             for kx, (xi, xo) in reversed(list(enumerate(xs))) if xi is not None]
    col_views = [cols[i] for i, _ in steps]
    out_views = ViewCache(lambda out: [out[j] for _, j in steps])

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray]) -> None:
        out, b = outs[0], bias(ins)
        np.matmul(as_shape(ins[2], (n * h * w, ic)), weights(ins), out=matrix)
        if b is None:
            out.fill(0)
        else:
            np.copyto(out, b)
        for src, dst in zip(col_views, out_views(out)):
            np.add(dst, src, out=dst)
        if act is not None:
            act(out)
    return run, cols.nbytes


Scatter = list[tuple[slice | None, slice | None]]


def _transpose_axes(ctx: OpContext, padding: str, in_shape: Sequence[int],
                    w_shape: Sequence[int], out_shape: Sequence[int], strides: Sequence[int]
                    ) -> tuple[Scatter, Scatter]:
    """Per spatial axis and tap: (input slice, output slice) it scatters, or Nones."""
    if out_shape[0] != in_shape[0] or out_shape[3] != w_shape[0]:
        raise ctx.invalid(f"output_shape {list(out_shape)} does not match batch "
                          f"{in_shape[0]} and {w_shape[0]} output channels")
    scatters = []
    for size, out, k, s in zip(in_shape[1:3], out_shape[1:3], w_shape[1:3], strides):
        axis = window_axes(ctx, padding, [out], [k], [s])[0]
        if axis.out != size:
            raise ctx.invalid(f"output_shape {list(out_shape)} does not match the input: a "
                              f"{padding} convolution of size {out} gives {axis.out}, not {size}")
        scatters.append([_scatter(size, out, ky, s, axis.before) for ky in range(k)])
    return scatters[0], scatters[1]


def _scatter(size: int, out: int, k: int, stride: int, pad: int
             ) -> tuple[slice | None, slice | None]:
    """Input positions i whose output i * stride + k - pad lies in [0, out), as slices."""
    lo = max(0, -((k - pad) // stride))
    hi = min(size, (out - 1 - k + pad) // stride + 1)
    if hi <= lo:
        return None, None
    start = lo * stride + k - pad
    return slice(lo, hi), slice(start, start + (hi - lo - 1) * stride + 1, stride)


# -- FULLY_CONNECTED / BATCH_MATMUL --------------------------------------------------
@register("FULLY_CONNECTED", versions=(1, 14), types=FLOAT_TYPES)
def prepare_fully_connected(ctx: OpContext) -> Prepared:
    """FULLY_CONNECTED (float, DEFAULT weights): keep_num_dims, optional bias, clamp."""
    if ctx.options.weights_format != "DEFAULT":
        ctx.fail(f"weights_format {ctx.options.weights_format} is not supported")
    ctx.expect_counts((2, 3))
    x, w = ctx.input(0), ctx.input(1)
    expect_rank(ctx, w, 2, "weights")
    expect_float_weights(ctx, w, "weights")
    expect_float_output(ctx)
    units, depth = w.shape
    if depth == 0 or x.size % depth:
        raise ctx.invalid(f"input of shape {list(x.shape)} does not flatten into rows of "
                          f"{depth} (the weights' input size)")
    rows = x.size // depth
    if ctx.options.keep_num_dims:
        if x.shape[-1] != depth:
            raise ctx.invalid(f"keep_num_dims needs the input's last dimension "
                              f"({x.shape[-1]}) to equal the weights' input size {depth}")
        out_shape = (*x.shape[:-1], units)
    else:
        out_shape = (rows, units)
    weights = operand(w, 1, lambda f: f.T)
    bias = operand(optional_bias(ctx, 2, units), 2, lambda b: b.reshape(-1))
    act = clamp_activation(ctx)
    parts = gemm_parts(rows, rows, depth, units, x.size * 4)

    def bind(ins: Sequence[Any], outs: Sequence[Any]) -> Calls:
        x, out = as_shape(ins[0], (rows, depth)), as_shape(outs[0], (rows, units))
        w, b = weights(ins), bias(ins)

        def block(part: slice) -> list[Call]:
            acc = None if b is None else accumulate(x[part], w, out[part])
            if acc is not None:   # out = bias, then BLAS adds the product (no bias pass)
                return [partial(np.copyto, out[part], b), acc,
                        *([] if act is None else [act.bind(out[part])])]
            return [partial(np.matmul, x[part], w, out[part]), *finish_calls(out[part], b, act)]
        return Calls([], block(slice(0, rows)),
                     [block(span(rows, i, parts)) for i in range(parts)] if parts > 1 else [])
    return ctx.done(BoundRun(bind), out_shape)


@register("BATCH_MATMUL", versions=(1, 4), types=FLOAT_TYPES)
def prepare_batch_matmul(ctx: OpContext) -> Prepared:
    """BATCH_MATMUL (float): adj_x / adj_y, broadcast batch dimensions, ranks 2 to 5."""
    ctx.expect_counts(2)
    a, b = ctx.input(0), ctx.input(1)
    expect_float_weights(ctx, b, "right-hand side")
    expect_float_output(ctx)
    for spec, what in ((a, "left"), (b, "right")):
        if spec.rank < 2:
            raise ctx.invalid(f"{what}-hand side must have rank >= 2, got {list(spec.shape)}")
        if spec.rank > 5:
            ctx.fail(f"{what}-hand side of rank {spec.rank} is not supported (max 5)")
    adj_x, adj_y = ctx.options.adj_x, ctx.options.adj_y
    m, k = (a.shape[-1], a.shape[-2]) if adj_x else a.shape[-2:]
    k2, n = (b.shape[-1], b.shape[-2]) if adj_y else b.shape[-2:]
    if k != k2:
        raise ctx.invalid(f"contracted dimensions differ: {list(a.shape)} (adj_x={adj_x}) "
                          f"and {list(b.shape)} (adj_y={adj_y})")
    out_shape = (*broadcast_shape(ctx, a.shape[:-2], b.shape[:-2]), m, n)

    def adjoint(t: np.ndarray, adj: bool) -> np.ndarray:
        return t.swapaxes(-1, -2) if adj else t
    lhs = operand(a, 0, lambda t: adjoint(t, adj_x))
    rhs = operand(b, 1, lambda t: adjoint(t, adj_y))

    def bind(ins: Sequence[Any], outs: Sequence[Any]) -> Calls:
        return Calls([], [partial(np.matmul, lhs(ins), rhs(ins), outs[0])])
    return ctx.done(BoundRun(bind), out_shape)
