"""Float recurrent layers: LSTM, UNIDIRECTIONAL_SEQUENCE_LSTM,
BIDIRECTIONAL_SEQUENCE_LSTM, RNN and UNIDIRECTIONAL_SEQUENCE_RNN.

The math follows LiteRT's ``lstm_eval.cc`` (float path) and
``kernel_utils.cc`` (RnnBatchStep). For one LSTM step, with gates in the
order input, forget, cell, output::

    z_g = W_g x + R_g h (+ P_g * c_prev for i, f)           (peephole)
    z_g = LN(z_g) * L_g + b_g   if layer norm, else   z_g + b_g
    i, f = sigmoid(z_i), sigmoid(z_f);  g = act(z_c)         (act: fused activation)
    i = 1 - f                    without input gate (CIFG)
    c = clip(f * c_prev + i * g, cell_clip)
    o = sigmoid(z_o (+ P_o * c))   (layer norm as above)
    h = clip(Proj (o * act(c)) + proj_bias, proj_clip)   or  o * act(c)

``LN`` normalises over the cells of each batch row (epsilon 1e-8). Output
and cell state are variable tensors that persist across invokes.

Speed: the time loop is Python, so a step's cost is its number of numpy
calls (about 0.2-0.5 us each at small sizes). :class:`LstmRunner` packs the
gate weights once, preallocates every buffer and per-step view, and runs a
plain TANH LSTM step in 7 calls: one matmul over [h, x, 1] rows (or h, plus
the whole sequence's input projection computed in one matmul), one tanh over
all four gates (sigmoid(z) = 0.5 + 0.5 tanh(z / 2), the 0.5 folded into the
weights), two for the sigmoid affine, one pair dot product for
``i*g + f*c``, tanh(c) and the output multiply. Constants are 0-d arrays
(a Python float operand doubles a call's cost).

These kernels take FLOAT32 weights only (``when=``); hybrid and integer
variants are registered by other modules for the same ops.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from .common import fused_activation
from .registry import FLOAT_TYPES, register

InPlace = Callable[[np.ndarray], Any]
NO = -1                                   # an input this op does not have

#: Activations LiteRT's LSTM applies out of place; NONE leaves its scratch
#: buffer untouched there (the result depends on stale memory), so it is refused.
LSTM_ACTIVATIONS = ("RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")
LAYER_NORM_EPSILON = np.float32(1e-8)


def _float_weights(index: int) -> Callable[[OpContext], bool]:
    """``when=`` predicate: the weight LiteRT dispatches on (input ``index``) is
    FLOAT32, or missing (then prepare reports the malformed model)."""
    def when(ctx: OpContext) -> bool:
        spec = ctx.optional_input(index)
        return spec is None or spec.type_name == "FLOAT32"
    return when


def _lstm_float_weights(ctx: OpContext) -> bool:
    """``when=`` for LSTM: the basic kernel's packed weights are input 2."""
    basic = getattr(ctx.options, "kernel_type", "FULL") == "BASIC"
    return _float_weights(2 if basic else 4)(ctx)


# ---------------------------------------------------------------------------------
# Where one LSTM direction's tensors sit in the op's inputs
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LstmLayout:
    """Input indices of one LSTM direction (``NO`` where the op has none).

    Gate tuples are ordered input, forget, cell, output; peepholes input,
    forget, output; ``state`` is (output state, cell state).
    """

    input_w: tuple[int, int, int, int]
    recurrent_w: tuple[int, int, int, int]
    peephole: tuple[int, int, int]
    bias: tuple[int, int, int, int]
    projection: tuple[int, int]
    state: tuple[int, int]
    layer_norm: tuple[int, int, int, int] = (NO, NO, NO, NO)
    aux_w: tuple[int, int, int, int] = (NO, NO, NO, NO)


#: LSTM / UNIDIRECTIONAL_SEQUENCE_LSTM (20 or 24 inputs).
FULL_LAYOUT = LstmLayout((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11), (12, 13, 14, 15), (16, 17),
                         (18, 19), (20, 21, 22, 23))
#: BIDIRECTIONAL_SEQUENCE_LSTM (48 inputs): forward and backward directions.
FW_LAYOUT = replace(FULL_LAYOUT, state=(35, 36), layer_norm=(NO,) * 4, aux_w=(40, 41, 42, 43))
BW_LAYOUT = LstmLayout((18, 19, 20, 21), (22, 23, 24, 25), (26, 27, 28), (29, 30, 31, 32),
                       (33, 34), (37, 38), (NO,) * 4, (44, 45, 46, 47))


@dataclass(frozen=True)
class LstmSpec:
    """One validated LSTM direction: which optional parts it has and its sizes."""

    layout: LstmLayout
    cifg: bool
    peephole: bool
    layer_norm: bool
    projection: bool
    projection_bias: bool
    aux: bool
    diagonal: bool
    n_input: int
    n_cell: int
    n_output: int

    @property
    def gates(self) -> tuple[int, ...]:
        """Indices (into input, forget, cell, output) of the gates computed."""
        return (1, 2, 3) if self.cifg else (0, 1, 2, 3)


def _present(ctx: OpContext, i: int) -> TensorSpec | None:
    return None if i == NO else ctx.optional_input(i)


def lstm_spec(ctx: OpContext, layout: LstmLayout, n_input: int, n_aux: int = 0,
              diagonal: bool = False) -> LstmSpec:
    """Check one direction's tensors (presence, shapes, FLOAT32) like LiteRT."""
    for g in (1, 2, 3):                      # forget, cell and output gates are required
        for i in (layout.input_w[g], layout.recurrent_w[g], layout.bias[g]):
            ctx.input(i)
    i2g = [_present(ctx, i) for i in layout.input_w]
    r2g = [_present(ctx, i) for i in layout.recurrent_w]
    cifg = i2g[0] is None
    if (r2g[0] is None) != cifg:
        raise ctx.invalid("input-to-input and recurrent-to-input weights must be both "
                          "present or both omitted (CIFG)")
    if cifg and _present(ctx, layout.bias[0]) is not None:
        raise ctx.invalid("an input gate bias is given but there is no input gate (CIFG)")
    n_cell = i2g[3].shape[0] if i2g[3].rank >= 1 else 0
    n_output = n_cell if diagonal else (r2g[3].shape[1] if r2g[3].rank == 2 else -1)
    spec = LstmSpec(layout, cifg, _peephole(ctx, layout, cifg),
                    _layer_norm(ctx, layout, cifg), _present(ctx, layout.projection[0]) is not None,
                    _present(ctx, layout.projection[1]) is not None,
                    n_aux > 0, diagonal, n_input, n_cell, n_output)
    _check_shapes(ctx, spec, n_aux)
    return spec


def _peephole(ctx: OpContext, layout: LstmLayout, cifg: bool) -> bool:
    ci, cf, co = (_present(ctx, i) is not None for i in layout.peephole)
    if not (cf or co or ci):
        return False
    if not (cf and co and (ci or cifg)) or (ci and cifg):
        raise ctx.invalid("peephole weights must be all present (cell-to-input only "
                          "without CIFG) or all omitted")
    return True


def _layer_norm(ctx: OpContext, layout: LstmLayout, cifg: bool) -> bool:
    li, lf, lc, lo = (_present(ctx, i) is not None for i in layout.layer_norm)
    if not lf:
        if li or lc or lo:
            raise ctx.invalid("layer norm coefficients given without the forget gate's")
        return False
    if not (lc and lo) or li == cifg:
        raise ctx.invalid("layer norm coefficients must be given for every gate computed "
                          "(no input gate coefficients with CIFG)")
    return True


def _check_shapes(ctx: OpContext, spec: LstmSpec, n_aux: int) -> None:
    lay, n, out = spec.layout, spec.n_cell, spec.n_output
    gates = spec.gates
    want: list[tuple[int, tuple[int, ...], str]] = []
    want += [(lay.input_w[g], (n, spec.n_input), "input weights") for g in gates]
    rec = (n,) if spec.diagonal else (n, out)
    want += [(lay.recurrent_w[g], rec, "recurrent weights") for g in gates]
    want += [(lay.bias[g], (n,), "gate bias") for g in gates]
    if spec.peephole:
        want += [(lay.peephole[k], (n,), "peephole weights")
                 for k, g in enumerate((0, 1, 3)) if g in gates]
    if spec.layer_norm:
        want += [(lay.layer_norm[g], (n,), "layer norm coefficients") for g in gates]
    if spec.projection:
        want.append((lay.projection[0], (out, n), "projection weights"))
    elif spec.projection_bias:
        raise ctx.invalid("projection bias given without projection weights")
    elif out != n:
        raise ctx.invalid(f"output size {out} differs from the {n} cells but there is no "
                          "projection")
    if spec.projection_bias:
        want.append((lay.projection[1], (out,), "projection bias"))
    if spec.aux:
        want += [(lay.aux_w[g], (n, n_aux), "auxiliary input weights") for g in gates]
    for i, shape, role in want:
        _expect(ctx, i, shape, role)


def _expect(ctx: OpContext, i: int, shape: tuple[int, ...], role: str) -> None:
    spec = ctx.input(i)
    if spec.shape != shape:
        raise ctx.invalid(f"input {i} ({role}) {spec.name!r} has shape {list(spec.shape)}, "
                          f"expected {list(shape)}")
    if spec.type_name != "FLOAT32":
        ctx.fail(f"input {i} ({role}) {spec.name!r} is {spec.type_name}; this kernel takes "
                 "FLOAT32 weights")


def _weight_indices(spec: LstmSpec) -> list[int]:
    lay = spec.layout
    idx = [*lay.input_w, *lay.recurrent_w, *lay.peephole, *lay.bias, *lay.projection,
           *lay.layer_norm, *lay.aux_w]
    return [i for i in idx if i != NO]


def constant_weights(ctx: OpContext, spec: LstmSpec) -> dict[int, np.ndarray] | None:
    """The direction's weights by op input index when all are constant, else None."""
    specs = [ctx.optional_input(i) for i in _weight_indices(spec)]
    if not all(s is None or s.is_constant for s in specs):
        return None
    return {i: s.data for i, s in zip(_weight_indices(spec), specs) if s is not None}


# ---------------------------------------------------------------------------------
# The LSTM time loop
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LstmParams:
    """Options shared by the directions of one op."""

    activation: InPlace
    tanh: bool                    # the fused activation is TANH
    cell_clip: float
    proj_clip: float


def lstm_params(ctx: OpContext) -> LstmParams:
    """The fused activation and clips, checked like LiteRT."""
    opts = ctx.options
    act = opts.fused_activation_function
    if act not in LSTM_ACTIVATIONS:
        ctx.fail(f"fused activation {act!r} is not supported for LSTM (LiteRT's float LSTM "
                 "leaves NONE undefined)")
    if opts.cell_clip < 0 or opts.proj_clip < 0:
        raise ctx.invalid(f"cell_clip {opts.cell_clip} and proj_clip {opts.proj_clip} must "
                          "be >= 0")
    return LstmParams(fused_activation(ctx, act), act == "TANH", float(opts.cell_clip),
                      float(opts.proj_clip))


#: Rows of the per-step gate buffer (each B x n_cell): the gates between two
#: cell-state slots. Without CIFG [c_a, o, i, f, g, c_b], with CIFG
#: [c_a, i, o, f, g, c_b] (i = 1 - f is not a matmul output): the matmul
#: output and the sigmoid gates are contiguous either way. The previous cell
#: state alternates between c_a and c_b, so ``i*g + f*c_prev`` is one dot
#: product of strided pairs ((i, f) . (g, c_prev)) written to the other slot.
_SLOTS = {False: {0: 2, 1: 3, 2: 4, 3: 1}, True: {1: 3, 2: 4, 3: 2}}   # cifg: gate -> row
#: Input weights up to this many elements ride in each step's matmul (batch 1):
#: the rows are [h, x, 1], so no separate input projection or bias add.
_AUGMENT_MAX = 16384

#: numpy calls with a 0-d array operand cost about half those with a Python float.
_HALF, _ONE = np.array(0.5, np.float32), np.array(1.0, np.float32)

if hasattr(np, "vecdot"):                                 # numpy >= 2.0
    _pair_dot: Callable[..., Any] = np.vecdot

    def _pair_args(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> tuple:
        return a, b, out
else:                                                     # pragma: no cover - numpy 1.x
    _pair_dot = np.matmul

    def _pair_args(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> tuple:
        return a[..., None, :], b[..., :, None], out[..., None, None]


class LstmRunner:
    """One LSTM direction over ``steps`` time steps of ``batch`` rows.

    Every buffer and every per-step view is made here, so :meth:`run`
    allocates nothing and each time step is a handful of numpy calls on
    preallocated arrays (7 for a plain TANH LSTM: matmul, tanh, two for the
    sigmoid affine, the cell update's pair dot, tanh, multiply). The sigmoid
    gates use sigmoid(z) = 0.5 + 0.5 tanh(z / 2): their weights, bias and
    peepholes (with layer norm: its coefficients and bias) are prescaled by
    0.5, which is exact, so one tanh covers every gate. Output states live in
    ``h`` rows [h_t, x_t+1, 1] (batch 1, small inputs) that feed the next
    step's matmul directly.
    """

    def __init__(self, spec: LstmSpec, params: LstmParams, steps: int, batch: int,
                 n_aux: int = 0) -> None:
        self.spec, self.params, self.steps, self.batch = spec, params, steps, batch
        self.n_x = spec.n_input + (n_aux if spec.aux else 0)
        self.gates = len(spec.gates)
        self.mm_lo = 2 if spec.cifg else 1                       # first matmul row (= o)
        self.early = self.mm_lo + (1 if spec.peephole else 0)    # gates before the cell update
        self.rows = batch == 1 and not spec.diagonal             # 2-D (1, G*n) matmuls
        self.augment = self.rows and self.n_x * self.gates * spec.n_cell <= _AUGMENT_MAX
        self.clips, self.proj_clips = _bounds(params.cell_clip), _bounds(params.proj_clip)
        self.fast = params.tanh and not (spec.peephole or spec.layer_norm or spec.projection
                                         or spec.cifg or spec.diagonal)
        self._buffers: list[np.ndarray] = []
        self._allocate()
        self._bind_views()

    # -- buffers ---------------------------------------------------------------------
    def _new(self, *shape: int) -> np.ndarray:
        a = np.zeros(shape, np.float32)
        self._buffers.append(a)
        return a

    @property
    def scratch_bytes(self) -> int:
        """Bytes of every buffer this runner holds."""
        return sum(a.nbytes for a in self._buffers)

    def _allocate(self) -> None:
        """Buffers. Input rows are [x, 1] and the input weights end with the bias
        row, so the bias rides in the input matmul (with layer norm that row is 0)."""
        spec, t, b, n, g = self.spec, self.steps, self.batch, self.spec.n_cell, self.gates
        n_out, n_x = spec.n_output, self.n_x
        self.z, self.tmp = self._new(6, b, n), self._new(b, n)
        if self.augment:                          # rows [h, x, 1]: one matmul a step
            self.h = self._new(t + 1, b, n_out + n_x + 1)
            self.w = self._new(n_out + n_x + 1, g, n)
            self.w_rec, self.w_x = self.w[:n_out], self.w[n_out:]
            self.xbuf, self.p = self.h[:t, :, n_out:], None
        else:                                     # h, and [x, 1] @ w_x for every step
            self.h, self.xbuf = self._new(t + 1, b, n_out), self._new(t, b, n_x + 1)
            self.p = self._new(t, g, b, n)
            if self.rows:
                self.w_rec, self.w_x = self._new(n_out, g, n), self._new(n_x + 1, g, n)
            else:
                self.w_rec = self._new(g, 1, n) if spec.diagonal else self._new(g, n_out, n)
                self.w_x = self._new(g, n_x + 1, n)
        self.xbuf[..., -1] = 1.0
        self.bias = self.w_x[-1] if self.rows else self.w_x[:, -1:]
        self.peep = self._new(g, 1, n) if spec.peephole else None
        self.peep_tmp = self._new(5 - self.early - 1, b, n) if spec.peephole else None
        if spec.layer_norm:
            self.ln_coef, self.ln_bias = self._new(g, 1, n), self._new(g, 1, n)
            self.ln_red, self.ln_sq = self._new(5 - self.early, b, 1), self._new(5 - self.early, b, n)
        self.proj_w = self._new(n, n_out) if spec.projection else None
        self.proj_b = self._new(n_out) if spec.projection_bias else None

    def _block(self, w: np.ndarray, j: int) -> np.ndarray:
        """Gate ``j``'s (rows, n_cell) block of a packed weight."""
        return w[:, j] if self.rows else w[j]

    def fill(self, ins: Any) -> None:
        """Pack the direction's weights (``ins[i]``: op input ``i``) into the buffers."""
        spec, lay = self.spec, self.spec.layout
        f32 = lambda i: np.asarray(ins[i], np.float32)               # noqa: E731
        for gate in spec.gates:
            j = _SLOTS[spec.cifg][gate] - self.mm_lo
            sig = gate != 2
            pre = 0.5 if sig and not spec.layer_norm else 1.0
            rec = f32(lay.recurrent_w[gate])
            np.multiply(rec if spec.diagonal else rec.T, pre, out=self._block(self.w_rec, j))
            w_x = self._block(self.w_x, j)
            np.multiply(f32(lay.input_w[gate]).T, pre, out=w_x[:spec.n_input])
            if spec.aux:
                np.multiply(f32(lay.aux_w[gate]).T, pre, out=w_x[spec.n_input:-1])
            if spec.layer_norm:
                post = 0.5 if sig else 1.0
                np.multiply(f32(lay.layer_norm[gate]), post, out=self.ln_coef[j, 0])
                np.multiply(f32(lay.bias[gate]), post, out=self.ln_bias[j, 0])
            else:
                np.multiply(f32(lay.bias[gate]), pre, out=self.bias[j])
            if spec.peephole and sig:
                np.multiply(f32(lay.peephole[(0, 1, None, 2)[gate]]), pre, out=self.peep[j, 0])
        if self.proj_w is not None:
            np.copyto(self.proj_w, f32(lay.projection[0]).T)
        if self.proj_b is not None:
            np.copyto(self.proj_b, f32(lay.projection[1]))

    # -- per-step views ----------------------------------------------------------------
    def _bind_views(self) -> None:
        spec, z, n, g, t = self.spec, self.z, self.spec.n_cell, self.gates, self.steps
        n_out = spec.n_output
        self.z_mm = z[self.mm_lo:5]
        if self.rows:
            self.z_mm = self.z_mm.reshape(1, g * n)
            self.w_mm = (self.w if self.augment else self.w_rec).reshape(-1, g * n)
        else:
            self.w_mm = self.w_rec
        if self.p is not None:
            if self.rows:
                self.p_in = (self.xbuf.reshape(t, self.n_x + 1),
                             self.w_x.reshape(self.n_x + 1, g * n), self.p.reshape(t, g * n))
            else:
                self.p_in = (self.xbuf[:, None], self.w_x, self.p)
        self.x_parts = [self.xbuf[..., :spec.n_input], self.xbuf[..., spec.n_input:-1]]
        self.h0, self.h_seq = self.h[0, :, :n_out], self.h[1:, :, :n_out]
        pairs = (z[1:4:2] if spec.cifg else z[2:4]).transpose(1, 2, 0)     # (i, f)
        self.plan = []
        for k in range(t):
            prev, new = (0, 5) if k % 2 == 0 else (5, 0)
            gc_pairs = (z[4::-4] if prev == 0 else z[4:6]).transpose(1, 2, 0)  # (g, c_prev)
            addend = None if self.p is None else self.p[k].reshape(self.z_mm.shape)
            self.plan.append((self.h[k], addend, z[prev],
                              *_pair_args(pairs, gc_pairs, z[new]), z[new],
                              self.h[k + 1, :, :n_out]))
        self.c_last = z[5] if t % 2 == 1 else z[0]

    # -- running -------------------------------------------------------------------------
    def run(self, sources: Sequence[np.ndarray], out: np.ndarray, h_state: np.ndarray,
            c_state: np.ndarray) -> None:
        """Run time-major ``sources`` (input, then aux input: (T, B, *)); ``out``
        (T, B, n_output) may be a strided view; the (B, *) states are updated."""
        for part, src in zip(self.x_parts, sources):
            np.copyto(part, src)
        if self.p is not None:
            np.matmul(*self.p_in[:2], out=self.p_in[2])
        np.copyto(self.h0, h_state)
        np.copyto(self.z[0], c_state)
        self._loop()
        np.copyto(out, self.h_seq)
        np.copyto(h_state, self.h[-1, :, :self.spec.n_output])
        np.copyto(c_state, self.c_last)

    def _loop(self) -> None:
        if self.fast:
            return self._fast_steps(self.plan, clip=self.params.cell_clip > 0)
        return self._general_loop()

    def _fast_steps(self, steps: Iterable[tuple], clip: bool) -> None:
        """Plain TANH LSTM steps: 7 numpy calls each (+1 input projection add without
        augmented rows, +2 with the cell clip)."""
        # np.dot is the cheapest call for the 2-D case (its out= must be contiguous: it is)
        mm = np.dot if self.rows else np.matmul
        mul, add, tanh, pdot = np.multiply, np.add, np.tanh, _pair_dot
        lo, hi = self.clips or (None, None)
        w_mm, z_mm, tmp = self.w_mm, self.z_mm, self.tmp
        sig, o, half = self.z[1:4], self.z[1], _HALF
        for rec_in, addend, _, pa, pb, pout, c_new, h_next in steps:
            mm(rec_in, w_mm, z_mm)
            if addend is not None:
                add(z_mm, addend, z_mm)
            tanh(z_mm, z_mm)
            mul(sig, half, sig)
            add(sig, half, sig)
            pdot(pa, pb, pout)
            if clip:
                np.minimum(c_new, hi, out=c_new)
                np.maximum(c_new, lo, out=c_new)
            tanh(c_new, tmp)
            mul(o, tmp, h_next)

    def _general_loop(self) -> None:
        spec, prm, z = self.spec, self.params, self.z
        w_mm, z_mm, early = self.w_mm, self.z_mm, self.early
        acts = z[early:5] if prm.tanh else z[early:4]        # gates through one tanh
        sig = z[early:4]                                     # sigmoid gates among them
        for rec_in, addend, c_prev, pa, pb, pout, c_new, h_next in self.plan:
            if spec.diagonal:
                np.multiply(w_mm, rec_in, out=z_mm)
            else:
                np.matmul(rec_in, w_mm, out=z_mm)
            if addend is not None:
                np.add(z_mm, addend, out=z_mm)
            if spec.peephole:                                # i, f see the previous cell
                np.multiply(self.peep[1:5 - early], c_prev, out=self.peep_tmp)
                np.add(sig, self.peep_tmp, out=sig)
            if spec.layer_norm:
                self._layer_norm(z[early:5], early - self.mm_lo)
            np.tanh(acts, out=acts)
            if not prm.tanh:
                prm.activation(z[4])
            _affine_half(sig)
            if spec.cifg:
                np.subtract(_ONE, z[3], out=z[1])
            _pair_dot(pa, pb, pout)
            _clip(c_new, self.clips)
            if spec.peephole:                                # o sees the new cell
                self._output_gate(c_new)
            self._hidden(c_new, h_next)

    def _output_gate(self, c: np.ndarray) -> None:
        o = self.z[self.mm_lo]
        np.multiply(self.peep[0], c, out=self.tmp)
        np.add(o, self.tmp, out=o)
        if self.spec.layer_norm:
            self._layer_norm(self.z[self.mm_lo:self.mm_lo + 1], 0)
        np.tanh(o, out=o)
        _affine_half(o)

    def _layer_norm(self, y: np.ndarray, j: int) -> None:
        """Normalise gates ``y`` (k, B, n) over the cells, then coefficient and bias
        of gates j..j+k: (y - mean) / sqrt(mean((y - mean)^2) + eps) * L + b."""
        k, n = y.shape[0], y.shape[-1]
        red, sq = self.ln_red[:k], self.ln_sq[:k]
        np.add.reduce(y, axis=-1, keepdims=True, out=red)
        np.divide(red, n, out=red)
        np.subtract(y, red, out=y)
        np.square(y, out=sq)
        np.add.reduce(sq, axis=-1, keepdims=True, out=red)
        np.divide(red, n, out=red)
        np.add(red, LAYER_NORM_EPSILON, out=red)
        np.sqrt(red, out=red)
        np.divide(y, red, out=y)
        np.multiply(y, self.ln_coef[j:j + k], out=y)
        np.add(y, self.ln_bias[j:j + k], out=y)

    def _hidden(self, c: np.ndarray, h: np.ndarray) -> None:
        """h = o * act(c), through the projection when there is one."""
        prm, tmp, o = self.params, self.tmp, self.z[self.mm_lo]
        if prm.tanh:
            np.tanh(c, out=tmp)
        else:
            np.copyto(tmp, c)
            prm.activation(tmp)
        if self.proj_w is None:
            np.multiply(o, tmp, out=h)
            return
        np.multiply(o, tmp, out=tmp)
        np.matmul(tmp, self.proj_w, out=h)
        if self.proj_b is not None:
            np.add(h, self.proj_b, out=h)
        _clip(h, self.proj_clips)


def _affine_half(a: np.ndarray) -> None:
    """a = 0.5 + 0.5 * a in place (tanh(z/2) to sigmoid(z))."""
    np.multiply(a, _HALF, out=a)
    np.add(a, _HALF, out=a)


def _bounds(limit: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(-limit, limit) as float32 0-d arrays, or None for no clipping (limit 0)."""
    if limit <= 0:
        return None
    return np.array(-limit, np.float32), np.array(limit, np.float32)


def _clip(a: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Clip in place to ``bounds`` (numpy's clip function costs 3x more)."""
    if bounds is not None:
        np.minimum(a, bounds[1], out=a)
        np.maximum(a, bounds[0], out=a)

# ---------------------------------------------------------------------------------
# Shared op checks
# ---------------------------------------------------------------------------------
def _state(ctx: OpContext, i: int, size: int, role: str) -> None:
    spec = ctx.input(i)
    if not spec.is_variable:
        raise ctx.invalid(f"input {i} ({role}) {spec.name!r} must be a variable tensor")
    if spec.type_name != "FLOAT32":
        ctx.fail(f"input {i} ({role}) {spec.name!r} is {spec.type_name}; expected FLOAT32")
    if spec.size != size:
        raise ctx.invalid(f"input {i} ({role}) {spec.name!r} has {spec.size} elements, "
                          f"expected {size}")


def _float_io(ctx: OpContext, rank: int) -> TensorSpec:
    x = ctx.input(0)
    if x.type_name != "FLOAT32":
        ctx.fail(f"input {x.name!r} is {x.type_name}; this kernel takes FLOAT32")
    if x.rank != rank:
        raise ctx.invalid(f"input {x.name!r} has shape {list(x.shape)}; expected rank {rank}")
    for out in ctx.outputs:
        if out.type_name != "FLOAT32":
            raise ctx.invalid(f"output {out.name!r} is {out.type_name}; expected FLOAT32")
    return x


def _check_states(ctx: OpContext, spec: LstmSpec, batch: int) -> None:
    _state(ctx, spec.layout.state[0], batch * spec.n_output, "output state")
    _state(ctx, spec.layout.state[1], batch * spec.n_cell, "cell state")


def lstm_runner(ctx: OpContext, spec: LstmSpec, params: LstmParams, steps: int, batch: int,
                n_aux: int = 0) -> tuple[LstmRunner, Callable[[Sequence[Any]], None]]:
    """(runner, per-invoke weight refresh): constant weights are packed once here."""
    runner = LstmRunner(spec, params, steps, batch, n_aux)
    weights = constant_weights(ctx, spec)
    if weights is not None:
        runner.fill(weights)
        return runner, _no_refresh
    return runner, runner.fill


def _no_refresh(ins: Sequence[Any]) -> None:
    return None


def _time_major(a: np.ndarray, time_major: bool) -> np.ndarray:
    """A (T, B, ...) view of a sequence tensor."""
    return a if time_major else a.swapaxes(0, 1)


def _states(ins: Sequence[np.ndarray], spec: LstmSpec, batch: int
            ) -> tuple[np.ndarray, np.ndarray]:
    h_i, c_i = spec.layout.state
    return ins[h_i].reshape(batch, spec.n_output), ins[c_i].reshape(batch, spec.n_cell)


# ---------------------------------------------------------------------------------
# UNIDIRECTIONAL_SEQUENCE_LSTM and LSTM
# ---------------------------------------------------------------------------------
def _full_lstm_inputs(ctx: OpContext) -> None:
    if len(ctx.inputs) not in (20, 24):
        raise ctx.invalid(f"the full LSTM kernel takes 20 or 24 inputs, got {len(ctx.inputs)}")
    if len(ctx.outputs) != 1:
        raise ctx.invalid(f"expects 1 output, got {len(ctx.outputs)}")


@register("UNIDIRECTIONAL_SEQUENCE_LSTM", versions=(1, 4), types=FLOAT_TYPES,
          when=_float_weights(4))
def prepare_unidirectional_sequence_lstm(ctx: OpContext) -> Prepared:
    """UNIDIRECTIONAL_SEQUENCE_LSTM: an LSTM over a (time, batch, input) sequence."""
    _full_lstm_inputs(ctx)
    x = _float_io(ctx, 3)
    opts = ctx.options
    time_major = bool(opts.time_major)
    t_len, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    spec = lstm_spec(ctx, FULL_LAYOUT, x.shape[2],
                     diagonal=bool(getattr(opts, "diagonal_recurrent_tensors", False)))
    _check_states(ctx, spec, batch)
    runner, refresh = lstm_runner(ctx, spec, lstm_params(ctx), t_len, batch)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        refresh(ins)
        runner.run((_time_major(ins[0], time_major),), _time_major(outs[0], time_major),
                   *_states(ins, spec, batch))
    return ctx.done(run, (*x.shape[:2], spec.n_output), scratch_bytes=runner.scratch_bytes)


@register("LSTM", versions=(1, 4), types=FLOAT_TYPES, when=_lstm_float_weights)
def prepare_lstm(ctx: OpContext) -> Prepared:
    """LSTM: one step of the full kernel (20/24 inputs) or the basic kernel (5)."""
    if ctx.options.kernel_type == "BASIC":
        return _prepare_basic_lstm(ctx)
    _full_lstm_inputs(ctx)
    x = _float_io(ctx, 2)
    batch = x.shape[0]
    spec = lstm_spec(ctx, FULL_LAYOUT, x.shape[1])
    _check_states(ctx, spec, batch)
    runner, refresh = lstm_runner(ctx, spec, lstm_params(ctx), 1, batch)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        refresh(ins)
        runner.run((ins[0][None],), outs[0][None], *_states(ins, spec, batch))
    return ctx.done(run, (batch, spec.n_output), scratch_bytes=runner.scratch_bytes)


def _prepare_basic_lstm(ctx: OpContext) -> Prepared:
    """The basic LSTM cell: one packed weight matrix over [input, prev_activation],
    gates input, new input, forget, output; tanh and sigmoid fixed."""
    ctx.expect_counts(5, 4)
    x, prev_h, weights, bias, prev_c = (ctx.input(i) for i in range(5))
    for s in (x, prev_h, weights, bias, prev_c):
        if s.type_name != "FLOAT32":
            ctx.fail(f"input {s.name!r} is {s.type_name}; this kernel takes FLOAT32")
    if x.rank != 2 or prev_h.rank != 2 or prev_h.shape[0] != x.shape[0]:
        raise ctx.invalid(f"input {list(x.shape)} and previous activation "
                          f"{list(prev_h.shape)} must be [batch, depth] matrices")
    batch, depth = x.shape[0], x.shape[1] + prev_h.shape[1]
    n = prev_h.shape[1]
    for spec, shape in ((weights, (4 * n, depth)), (bias, (4 * n,)), (prev_c, (batch, n))):
        if spec.shape != shape:
            raise ctx.invalid(f"input {spec.name!r} has shape {list(spec.shape)}, expected "
                              f"{list(shape)}")
    w_t = None if weights.data is None else np.ascontiguousarray(weights.data.T)
    cell = _BasicCell(batch, n)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        h_out, c_out, concat, act = outs
        np.concatenate((ins[0], ins[1]), axis=1, out=concat)
        np.matmul(concat, ins[2].T if w_t is None else w_t, out=act)
        act += ins[3]
        cell(act.reshape(batch, 4, n), ins[4], h_out, c_out)
    return ctx.done(run, (batch, n), (batch, n), (batch, depth), (batch, 4 * n),
                    scratch_bytes=cell.scratch_bytes)


class _BasicCell:
    """The basic kernel's gates: input, new input, forget, output (B, 4, n) in;
    sigmoid(z) = 0.5 + 0.5 tanh(z / 2) as in :class:`LstmRunner`, on gate-major
    scratch (``z`` itself is an op output and keeps the pre-activations)."""

    def __init__(self, batch: int, n: int) -> None:
        sig = np.array([0.5, 1.0, 0.5, 0.5], np.float32)[:, None, None]
        self.scale, self.offset = sig, np.where(sig == 0.5, sig, 0).astype(np.float32)
        self.g, self.tmp = np.zeros((4, batch, n), np.float32), np.zeros((batch, n), np.float32)

    @property
    def scratch_bytes(self) -> int:
        """Bytes of the scratch buffers."""
        return self.g.nbytes + self.tmp.nbytes

    def __call__(self, z: np.ndarray, prev_c: np.ndarray, h: np.ndarray, c: np.ndarray
                 ) -> None:
        g, tmp = self.g, self.tmp
        np.multiply(z.transpose(1, 0, 2), self.scale, out=g)
        np.tanh(g, out=g)
        np.multiply(g, self.scale, out=g)
        np.add(g, self.offset, out=g)
        np.multiply(g[0], g[1], out=c)
        np.multiply(g[2], prev_c, out=tmp)
        np.add(c, tmp, out=c)
        np.tanh(c, out=tmp)
        np.multiply(g[3], tmp, out=h)


# ---------------------------------------------------------------------------------
# BIDIRECTIONAL_SEQUENCE_LSTM
# ---------------------------------------------------------------------------------
@register("BIDIRECTIONAL_SEQUENCE_LSTM", versions=(1, 3), types=FLOAT_TYPES,
          when=_float_weights(4))
def prepare_bidirectional_sequence_lstm(ctx: OpContext) -> Prepared:
    """BIDIRECTIONAL_SEQUENCE_LSTM: a forward and a backward LSTM over one sequence,
    outputs separate or merged on the last axis; optional auxiliary input."""
    opts = ctx.options
    merge = bool(opts.merge_outputs)
    if len(ctx.inputs) != 48 or len(ctx.outputs) != (1 if merge else 2):
        raise ctx.invalid(f"expects 48 inputs and {1 if merge else 2} outputs "
                          f"(merge_outputs={merge}), got {len(ctx.inputs)} and "
                          f"{len(ctx.outputs)}")
    x = _float_io(ctx, 3)
    time_major = bool(opts.time_major)
    t_len, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    aux, n_aux, cross = _aux_input(ctx, x)
    fw = lstm_spec(ctx, FW_LAYOUT, x.shape[2], n_aux)
    bw_in = aux.shape[2] if cross else x.shape[2]
    bw = lstm_spec(ctx, BW_LAYOUT, bw_in, n_aux)
    for spec in (fw, bw):
        _check_states(ctx, spec, batch)
    params = lstm_params(ctx)
    run_fw, refresh_fw = lstm_runner(ctx, fw, params, t_len, batch, n_aux)
    run_bw, refresh_bw = lstm_runner(ctx, bw, params, t_len, batch, n_aux)
    lead = x.shape[:2]

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        refresh_fw(ins)
        refresh_bw(ins)
        seq = _time_major(ins[0], time_major)
        aux_seq = None if aux is None else _time_major(ins[39], time_major)
        out_fw, out_bw = _bidi_outputs(outs, merge, fw.n_output, time_major)
        run_fw.run((seq, aux_seq) if fw.aux else (seq,), out_fw, *_states(ins, fw, batch))
        backward = (aux_seq,) if cross else (seq, aux_seq) if bw.aux else (seq,)
        run_bw.run([a[::-1] for a in backward], out_bw[::-1], *_states(ins, bw, batch))
    scratch = run_fw.scratch_bytes + run_bw.scratch_bytes
    if merge:
        return ctx.done(run, (*lead, fw.n_output + bw.n_output), scratch_bytes=scratch)
    return ctx.done(run, (*lead, fw.n_output), (*lead, bw.n_output), scratch_bytes=scratch)


def _aux_input(ctx: OpContext, x: TensorSpec) -> tuple[TensorSpec | None, int, bool]:
    """(aux input, its width when aux weights use it, True when the backward
    direction reads the aux input instead of the input - LiteRT's
    "non-stacking" mode: aux input given, aux weights omitted)."""
    aux = ctx.optional_input(39)
    weights = [ctx.optional_input(i) is not None for i in (41, 42, 43, 45, 46, 47)]
    if any(weights) and not all(weights):
        raise ctx.invalid("auxiliary input weights must be all present or all omitted")
    if aux is None:
        if any(weights):
            raise ctx.invalid("auxiliary input weights given without an auxiliary input")
        return None, 0, False
    if aux.type_name != "FLOAT32" or aux.rank != 3 or aux.shape[:2] != x.shape[:2]:
        raise ctx.invalid(f"auxiliary input {aux.name!r} ({aux.type_name} "
                          f"{list(aux.shape)}) must be FLOAT32 with the input's first two "
                          f"dimensions {list(x.shape[:2])}")
    if all(weights):
        return aux, aux.shape[2], False
    return aux, 0, True


def _bidi_outputs(outs: Sequence[np.ndarray], merge: bool, n_fw: int, time_major: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    if merge:
        seq = _time_major(outs[0], time_major)
        return seq[..., :n_fw], seq[..., n_fw:]
    return _time_major(outs[0], time_major), _time_major(outs[1], time_major)


# ---------------------------------------------------------------------------------
# RNN and UNIDIRECTIONAL_SEQUENCE_RNN
# ---------------------------------------------------------------------------------
def _rnn_weights(ctx: OpContext, n_input: int) -> tuple[int, Callable[[Sequence[Any]], tuple]]:
    """(units, packed ([W^T; bias], R^T) source) after LiteRT's shape checks."""
    w, r, b = ctx.input(1), ctx.input(2), ctx.input(3)
    units = w.shape[0] if w.rank == 2 else -1
    for spec, shape in ((w, (units, n_input)), (r, (units, units)), (b, (units,))):
        if spec.shape != shape:
            raise ctx.invalid(f"input {spec.name!r} has shape {list(spec.shape)}, expected "
                              f"{list(shape)}")
        if spec.type_name != "FLOAT32":
            ctx.fail(f"input {spec.name!r} is {spec.type_name}; this kernel takes FLOAT32")

    def pack(arrays: Sequence[Any]) -> tuple:
        """([W^T; b] for input rows [x, 1], R^T)."""
        w_b = np.concatenate([np.asarray(arrays[1], np.float32).T,
                              np.asarray(arrays[3], np.float32)[None]])
        return w_b, np.ascontiguousarray(np.asarray(arrays[2], np.float32).T)
    if all(s.is_constant for s in (w, r, b)):
        packed = pack([None, w.data, r.data, b.data])
        return units, lambda ins: packed
    return units, pack


class RnnRunner:
    """h = act(W x + R h + b) over ``steps`` time steps with preallocated buffers:
    the input projection of the whole sequence (bias included) is one matmul,
    a step is 2-3 numpy calls writing the next state straight into its row of
    ``h``. (numpy 2.4 buffers a broadcasting ufunc call, allocating up to 32 KiB:
    bias adds ride in matmuls instead.)"""

    def __init__(self, act: InPlace | None, steps: int, batch: int, n_input: int,
                 units: int) -> None:
        self.act = act
        self.h = np.zeros((steps + 1, batch, units), np.float32)
        self.x = np.ones((steps, batch, n_input + 1), np.float32)     # rows [x, 1]
        self.p = np.zeros((steps, batch, units), np.float32)
        self.x2, self.p2 = self.x.reshape(-1, n_input + 1), self.p.reshape(-1, units)
        self.plan = [(self.h[k], self.h[k + 1], self.p[k]) for k in range(steps)]

    @property
    def scratch_bytes(self) -> int:
        """Bytes of the buffers."""
        return self.h.nbytes + self.x.nbytes + self.p.nbytes

    def run(self, weights: tuple, x: np.ndarray, out: np.ndarray, h_state: np.ndarray
            ) -> None:
        """Run time-major ``x``; ``out`` may be a strided view; ``h_state`` updated."""
        w_b, r_t = weights
        np.copyto(self.x[..., :-1], x)
        np.matmul(self.x2, w_b, out=self.p2)        # W x + b: the bias rides in the matmul
        np.copyto(self.h[0], h_state)
        dot, add, act = np.dot, np.add, self.act
        for h, h_next, p in self.plan:
            dot(h, r_t, h_next)
            add(h_next, p, h_next)
            if act is not None:
                act(h_next)
        np.copyto(out, self.h[1:])
        np.copyto(h_state, self.h[-1])


def _rnn_common(ctx: OpContext, rank: int) -> tuple[TensorSpec, InPlace | None]:
    ctx.expect_counts(5, 1)
    x = _float_io(ctx, rank)
    return x, fused_activation(ctx)


@register("UNIDIRECTIONAL_SEQUENCE_RNN", versions=(1, 3), types=FLOAT_TYPES,
          when=_float_weights(1))
def prepare_unidirectional_sequence_rnn(ctx: OpContext) -> Prepared:
    """UNIDIRECTIONAL_SEQUENCE_RNN: a fully connected RNN over a sequence."""
    x, act = _rnn_common(ctx, 3)
    time_major = bool(ctx.options.time_major)
    batch = x.shape[1] if time_major else x.shape[0]
    units, weights = _rnn_weights(ctx, x.shape[2])
    _state(ctx, 4, batch * units, "hidden state")
    runner = RnnRunner(act, x.shape[0] if time_major else x.shape[1], batch, x.shape[2], units)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        runner.run(weights(ins), _time_major(ins[0], time_major),
                   _time_major(outs[0], time_major), ins[4].reshape(batch, units))
    return ctx.done(run, (*x.shape[:2], units), scratch_bytes=runner.scratch_bytes)


@register("RNN", versions=(1, 3), types=FLOAT_TYPES, when=_float_weights(1))
def prepare_rnn(ctx: OpContext) -> Prepared:
    """RNN: one step of a fully connected RNN."""
    x, act = _rnn_common(ctx, 2)
    batch = x.shape[0]
    units, weights = _rnn_weights(ctx, x.shape[1])
    _state(ctx, 4, batch * units, "hidden state")
    runner = RnnRunner(act, 1, batch, x.shape[1], units)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        runner.run(weights(ins), ins[0][None], outs[0][None], ins[4].reshape(batch, units))
    return ctx.done(run, (batch, units), scratch_bytes=runner.scratch_bytes)
