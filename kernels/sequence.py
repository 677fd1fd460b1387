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

Vectorisation: prepare packs the gate weights into one matrix per source
(input, auxiliary input, recurrent), so a whole sequence's input projection
is one matmul and each time step one more; the time loop is Python.

These kernels take FLOAT32 weights only (``when=``); hybrid and integer
variants are registered by other modules for the same ops.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

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


@dataclass(frozen=True)
class LstmWeights:
    """One direction's weights packed for one matmul per source and step.

    ``w_x``: (n_input, G*n_cell); ``w_h``: (n_output, G*n_cell), or (G, n_cell)
    diagonals; ``bias``, ``layer_norm``: (G, n_cell); ``peep_in``: (G-2, n_cell)
    for the gates before the cell gate; ``proj_w``: (n_cell, n_output).
    """

    w_x: np.ndarray
    w_aux: np.ndarray | None
    w_h: np.ndarray
    bias: np.ndarray
    peep_in: np.ndarray | None
    peep_out: np.ndarray | None
    layer_norm: np.ndarray | None
    proj_w: np.ndarray | None
    proj_b: np.ndarray | None


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


def pack_lstm(spec: LstmSpec, ins: Any) -> LstmWeights:
    """Concatenate one direction's gate weights (``ins[i]``: op input ``i``)."""
    lay, gates = spec.layout, spec.gates
    f32 = lambda i: np.asarray(ins[i], np.float32)                      # noqa: E731
    cols = lambda idx: np.concatenate([f32(idx[g]).T for g in gates], axis=1)  # noqa: E731
    rows = lambda idx: np.stack([f32(idx[g]) for g in gates])          # noqa: E731
    if spec.diagonal:
        w_h = rows(lay.recurrent_w)
    else:
        w_h = np.ascontiguousarray(cols(lay.recurrent_w))
    peep = [f32(lay.peephole[k]) for k, g in enumerate((0, 1, 3)) if g in gates] \
        if spec.peephole else None
    return LstmWeights(
        w_x=np.ascontiguousarray(cols(lay.input_w)),
        w_aux=np.ascontiguousarray(cols(lay.aux_w)) if spec.aux else None,
        w_h=w_h, bias=rows(lay.bias),
        peep_in=np.stack(peep[:-1]) if peep else None,
        peep_out=peep[-1] if peep else None,
        layer_norm=rows(lay.layer_norm) if spec.layer_norm else None,
        proj_w=np.ascontiguousarray(f32(lay.projection[0]).T) if spec.projection else None,
        proj_b=f32(lay.projection[1]) if spec.projection_bias else None)


def _weight_indices(spec: LstmSpec) -> list[int]:
    lay = spec.layout
    idx = [*lay.input_w, *lay.recurrent_w, *lay.peephole, *lay.bias, *lay.projection,
           *lay.layer_norm, *lay.aux_w]
    return [i for i in idx if i != NO]


def weights_source(ctx: OpContext, spec: LstmSpec) -> Callable[[Sequence[Any]], LstmWeights]:
    """Packed weights: computed once when constant, else at every invoke."""
    specs = [ctx.optional_input(i) for i in _weight_indices(spec)]
    if all(s is None or s.is_constant for s in specs):
        arrays = {i: s.data for i, s in zip(_weight_indices(spec), specs) if s is not None}
        packed = pack_lstm(spec, arrays)
        return lambda ins: packed
    return lambda ins: pack_lstm(spec, ins)


# ---------------------------------------------------------------------------------
# The LSTM time loop
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LstmParams:
    """Options shared by the directions of one op."""

    activation: InPlace
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
    return LstmParams(fused_activation(ctx, act), float(opts.cell_clip), float(opts.proj_clip))


def _sigmoid(a: np.ndarray) -> None:
    """In-place logistic function (exp overflow gives the right limit 0)."""
    with np.errstate(over="ignore"):
        np.negative(a, out=a)
        np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)


def _normalize(z: np.ndarray, coef: np.ndarray, bias: np.ndarray) -> None:
    """In place over the last axis: (z - mean) / sqrt(var + eps) * coef + bias."""
    z -= z.mean(axis=-1, keepdims=True)
    std = np.sqrt(np.mean(np.square(z), axis=-1, keepdims=True) + LAYER_NORM_EPSILON)
    z /= std
    z *= coef
    z += bias


def _clip(a: np.ndarray, limit: float) -> None:
    if limit > 0:
        np.clip(a, -limit, limit, out=a)


def input_projection(spec: LstmSpec, w: LstmWeights, x: np.ndarray, aux: np.ndarray | None
                     ) -> np.ndarray:
    """(T, B, G, n_cell) input (and aux input) contributions, bias included unless
    layer norm adds it after normalising."""
    t, b = x.shape[:2]
    g = len(spec.gates)
    proj = np.matmul(x, w.w_x)
    if aux is not None:
        proj += np.matmul(aux, w.w_aux)
    proj = proj.reshape(t, b, g, spec.n_cell)
    if not spec.layer_norm:
        proj += w.bias
    return proj


def run_lstm(spec: LstmSpec, p: LstmParams, w: LstmWeights, x: np.ndarray,
             aux: np.ndarray | None, out: np.ndarray, h: np.ndarray, c: np.ndarray,
             reverse: bool = False) -> None:
    """Run a time-major sequence: ``x`` (T, B, I), ``out`` (T, B, n_output) may be a
    strided view; ``h`` (B, n_output) and ``c`` (B, n_cell) are updated in place."""
    proj = input_projection(spec, w, x, aux)
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:
        z = _recurrent(spec, w, h, proj[t])
        _cell_update(spec, p, w, z, c)
        _output(spec, p, w, z[:, -1], c, h)
        out[t] = h


def _recurrent(spec: LstmSpec, w: LstmWeights, h: np.ndarray, proj_t: np.ndarray
               ) -> np.ndarray:
    """Gate pre-activations (B, G, n_cell) for one step."""
    if spec.diagonal:
        z = h[:, None, :] * w.w_h
    else:
        z = np.matmul(h, w.w_h).reshape(proj_t.shape)
    z += proj_t
    return z


def _cell_update(spec: LstmSpec, p: LstmParams, w: LstmWeights, z: np.ndarray,
                 c: np.ndarray) -> None:
    """Input/forget/cell gates and the new cell state ``c`` (in place)."""
    k = len(spec.gates) - 2                      # sigmoid gates before the cell gate
    if spec.peephole:
        z[:, :k] += w.peep_in * c[:, None, :]
    if spec.layer_norm:
        _normalize(z[:, :k + 1], w.layer_norm[:k + 1], w.bias[:k + 1])
    _sigmoid(z[:, :k])
    gate = z[:, k]
    p.activation(gate)
    forget = z[:, k - 1]
    c *= forget
    if spec.cifg:
        np.subtract(1.0, forget, out=forget)
        gate *= forget
    else:
        gate *= z[:, 0]
    c += gate
    _clip(c, p.cell_clip)


def _output(spec: LstmSpec, p: LstmParams, w: LstmWeights, o: np.ndarray, c: np.ndarray,
            h: np.ndarray) -> None:
    """The output gate and the new output state ``h`` (in place)."""
    if spec.peephole:
        o += w.peep_out * c
    if spec.layer_norm:
        _normalize(o, w.layer_norm[-1], w.bias[-1])
    _sigmoid(o)
    act_c = c.copy()
    p.activation(act_c)
    o *= act_c
    if spec.projection:
        np.matmul(o, w.proj_w, out=h)
        if w.proj_b is not None:
            h += w.proj_b
        _clip(h, p.proj_clip)
    else:
        np.copyto(h, o)


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


def _scratch(spec: LstmSpec, steps: int, batch: int) -> int:
    """Bytes run_lstm allocates: the input projection of every step plus one
    step's gates, activated cell and output."""
    gates = len(spec.gates) * spec.n_cell
    return 4 * batch * (steps * gates + gates + 2 * spec.n_cell + spec.n_output)


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
    params, weights = lstm_params(ctx), weights_source(ctx, spec)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        h, c = _states(ins, spec, batch)
        run_lstm(spec, params, weights(ins), _time_major(ins[0], time_major), None,
                 _time_major(outs[0], time_major), h, c)
    return ctx.done(run, (*x.shape[:2], spec.n_output),
                    scratch_bytes=_scratch(spec, t_len, batch))


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
    params, weights = lstm_params(ctx), weights_source(ctx, spec)

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        h, c = _states(ins, spec, batch)
        run_lstm(spec, params, weights(ins), ins[0][None], None, outs[0][None], h, c)
    return ctx.done(run, (batch, spec.n_output), scratch_bytes=_scratch(spec, 1, batch))


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

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        h_out, c_out, concat, act = outs
        np.concatenate((ins[0], ins[1]), axis=1, out=concat)
        np.matmul(concat, ins[2].T if w_t is None else w_t, out=act)
        act += ins[3]
        _basic_cell(act.reshape(batch, 4, n), ins[4], h_out, c_out)
    return ctx.done(run, (batch, n), (batch, n), (batch, depth), (batch, 4 * n))


def _basic_cell(z: np.ndarray, prev_c: np.ndarray, h: np.ndarray, c: np.ndarray) -> None:
    """Gates (B, 4, n) in the basic kernel's order: input, new input, forget, output
    (``z`` itself is an op output and keeps the pre-activations)."""
    i, g, f, o = (z[:, k].copy() for k in range(4))
    for a in (i, f, o):
        _sigmoid(a)
    np.tanh(g, out=g)
    np.multiply(i, g, out=c)
    c += f * prev_c
    np.multiply(o, np.tanh(c), out=h)


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
    w_fw, w_bw = weights_source(ctx, fw), weights_source(ctx, bw)
    lead = x.shape[:2]

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        seq = _time_major(ins[0], time_major)
        aux_seq = None if aux is None else _time_major(ins[39], time_major)
        out_fw, out_bw = _bidi_outputs(outs, merge, fw.n_output, time_major)
        run_lstm(fw, params, w_fw(ins), seq, None if cross else aux_seq, out_fw,
                 *_states(ins, fw, batch))
        run_lstm(bw, params, w_bw(ins), aux_seq if cross else seq,
                 None if cross else aux_seq, out_bw, *_states(ins, bw, batch), reverse=True)
    scratch = _scratch(fw, t_len, batch) + _scratch(bw, t_len, batch)
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
    """(units, packed (W^T, R^T, bias) source) after LiteRT's shape checks."""
    w, r, b = ctx.input(1), ctx.input(2), ctx.input(3)
    units = w.shape[0] if w.rank == 2 else -1
    for spec, shape in ((w, (units, n_input)), (r, (units, units)), (b, (units,))):
        if spec.shape != shape:
            raise ctx.invalid(f"input {spec.name!r} has shape {list(spec.shape)}, expected "
                              f"{list(shape)}")
        if spec.type_name != "FLOAT32":
            ctx.fail(f"input {spec.name!r} is {spec.type_name}; this kernel takes FLOAT32")

    def pack(arrays: Sequence[Any]) -> tuple:
        return (np.ascontiguousarray(np.asarray(arrays[1]).T),
                np.ascontiguousarray(np.asarray(arrays[2]).T), np.asarray(arrays[3]))
    if all(s.is_constant for s in (w, r, b)):
        packed = pack([None, w.data, r.data, b.data])
        return units, lambda ins: packed
    return units, pack


def run_rnn(act: InPlace | None, weights: tuple, x: np.ndarray, out: np.ndarray,
            h: np.ndarray) -> None:
    """h = act(W x + R h + b) over a time-major sequence; ``h`` updated in place."""
    w_t, r_t, bias = weights
    proj = np.matmul(x, w_t)
    proj += bias
    for t in range(x.shape[0]):
        z = np.matmul(h, r_t)
        z += proj[t]
        if act is not None:
            act(z)
        np.copyto(h, z)
        out[t] = z


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

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        run_rnn(act, weights(ins), _time_major(ins[0], time_major),
                _time_major(outs[0], time_major), ins[4].reshape(batch, units))
    return ctx.done(run, (*x.shape[:2], units))


@register("RNN", versions=(1, 3), types=FLOAT_TYPES, when=_float_weights(1))
def prepare_rnn(ctx: OpContext) -> Prepared:
    """RNN: one step of a fully connected RNN."""
    x, act = _rnn_common(ctx, 2)
    batch = x.shape[0]
    units, weights = _rnn_weights(ctx, x.shape[1])
    _state(ctx, 4, batch * units, "hidden state")

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        run_rnn(act, weights(ins), ins[0][None], outs[0][None], ins[4].reshape(batch, units))
    return ctx.done(run, (batch, units))
