"""Float recurrent kernels against LiteRT: LSTM variants (every optional part),
UNIDIRECTIONAL_SEQUENCE_LSTM, BIDIRECTIONAL_SEQUENCE_LSTM, RNN and
UNIDIRECTIONAL_SEQUENCE_RNN, each over several invokes (state carried in
variable tensors) and across reset_all_variables.

Tolerance: rtol=1e-5, atol=1e-6. Both runtimes compute in float32 but sum
the gate matmuls in different orders (LiteRT: bias, then W x, then R h, with
its own GEMM blocking; edgeplex: one packed matmul over [h, x, 1] or R h plus
a precomputed W x + b) and use different sigmoid/tanh implementations
(Eigen's vs numpy's tanh, sigmoid as 0.5 + 0.5 tanh(z/2)), ~1 ulp each.
The state feeds these errors back through every time step and invoke, but
the gates are contracting (sigmoid' <= 1/4, tanh' <= 1, |f| < 1), so they
stay a few ulp of the O(1) values: the worst measured over every LSTM variant
here with 8 time steps x 3 invokes is 2.5e-7 absolute, 4x below atol.
"""
from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.errors import ModelError, UnsupportedOpError
from stateful import check_invokes, fixture


# -- LSTM models -------------------------------------------------------------------------
def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(-0.6, 0.6, shape).astype(np.float32)


def lstm_inputs(g: Any, rng: np.random.Generator, prefix: str, n_input: int, n_cell: int,
                n_output: int, *, cifg: bool = False, peephole: bool = False,
                projection: bool = False, projection_bias: bool = False,
                layer_norm: bool = False, diagonal: bool = False) -> list[Any]:
    """The 20 weight/bias/layer-norm operands of one direction (slots 1-17, 20-23
    of the full kernel; states are added by the caller), None where omitted."""
    c = lambda name, *shape: g.constant(f"{prefix}{name}", _w(rng, *shape))  # noqa: E731
    gates = "ifco"
    rec_shape = (n_cell,) if diagonal else (n_cell, n_output)
    i2g = [None if (cifg and k == "i") else c(f"i2{k}", n_cell, n_input) for k in gates]
    r2g = [None if (cifg and k == "i") else c(f"r2{k}", *rec_shape) for k in gates]
    peep = [None if (not peephole or (cifg and k == "i")) else c(f"c2{k}", n_cell)
            for k in "ifo"]
    bias = [None if (cifg and k == "i") else c(f"b{k}", n_cell) for k in gates]
    proj = [c("proj", n_output, n_cell) if projection else None,
            c("proj_b", n_output) if projection_bias else None]
    ln = [None if (not layer_norm or (cifg and k == "i")) else c(f"ln{k}", n_cell)
          for k in gates]
    return i2g + r2g + peep + bias + proj + ln


def lstm_model(op: str = "UNIDIRECTIONAL_SEQUENCE_LSTM", *, batch: int = 2, time: int = 4,
               n_input: int = 3, n_cell: int = 4, n_output: int | None = None,
               time_major: bool = False, activation: str = "TANH", cell_clip: float = 0.0,
               proj_clip: float = 0.0, seed: int = 0, inputs: int = 24, diagonal: bool = False,
               **parts: bool) -> bytes:
    """One UNIDIRECTIONAL_SEQUENCE_LSTM (or LSTM, ``time`` ignored) op model."""
    n_output = n_output or n_cell
    rng = np.random.default_rng(seed)
    mb = ModelBuilder()
    g = mb.main
    if op == "LSTM":
        shape = (batch, n_input)
    else:
        shape = (time, batch, n_input) if time_major else (batch, time, n_input)
    x = g.input("x", shape)
    w = lstm_inputs(g, rng, "", n_input, n_cell, n_output, diagonal=diagonal, **parts)
    states = [g.variable("h", (batch, n_output)), g.variable("c", (batch, n_cell))]
    operands = [x, *w[:17], *states, *w[17:]][:inputs]
    opts: dict[str, Any] = {"fused_activation_function": activation, "cell_clip": cell_clip,
                            "proj_clip": proj_clip}
    if op != "LSTM":
        opts["time_major"] = time_major
        if diagonal:
            opts["diagonal_recurrent_tensors"] = True
    y = g.op(op, operands, opts)
    g.output(y)
    return mb.build()


PARTS = {
    "plain": {},
    "cifg": {"cifg": True},
    "peephole": {"peephole": True},
    "cifg_peephole": {"cifg": True, "peephole": True},
    "projection": {"projection": True},
    "projection_bias": {"projection": True, "projection_bias": True},
    "layer_norm": {"layer_norm": True},
    "cifg_layer_norm": {"cifg": True, "layer_norm": True},
    "everything": {"peephole": True, "projection": True, "projection_bias": True,
                   "layer_norm": True},
    "cifg_everything": {"cifg": True, "peephole": True, "projection": True,
                        "projection_bias": True, "layer_norm": True},
}


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("name", sorted(PARTS))
def test_unidirectional_lstm_parts(name: str, time_major: bool) -> None:
    parts = PARTS[name]
    n_output = 3 if parts.get("projection") else None
    check_invokes(lstm_model(time_major=time_major, n_output=n_output, **parts))


@pytest.mark.parametrize("activation", ["TANH", "RELU", "RELU6", "RELU_N1_TO_1", "SIGN_BIT"])
def test_unidirectional_lstm_activations(activation: str) -> None:
    check_invokes(lstm_model(activation=activation, peephole=True))


@pytest.mark.parametrize("cell_clip,proj_clip", [(0.3, 0.0), (0.0, 0.2), (0.25, 0.15)])
def test_unidirectional_lstm_clipping(cell_clip: float, proj_clip: float) -> None:
    # Larger weights push the cell state past the clip; projection makes proj_clip active.
    got = check_invokes(lstm_model(cell_clip=cell_clip, proj_clip=proj_clip, projection=True,
                                   n_output=3, seed=3))
    if proj_clip:
        assert np.abs(got[0][0]).max() <= proj_clip + 1e-7


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 7, 2, 6), (3, 2, 8, 5), (4, 5, 1, 2)])
def test_unidirectional_lstm_shapes(shape: tuple[int, int, int, int]) -> None:
    batch, time, n_input, n_cell = shape
    check_invokes(lstm_model(batch=batch, time=time, n_input=n_input, n_cell=n_cell,
                             peephole=True))


def test_unidirectional_lstm_20_inputs() -> None:
    check_invokes(lstm_model(inputs=20, peephole=True))


@pytest.mark.parametrize("name", ["plain", "cifg", "everything", "cifg_everything"])
def test_lstm_full_kernel(name: str) -> None:
    parts = PARTS[name]
    n_output = 3 if parts.get("projection") else None
    check_invokes(lstm_model("LSTM", n_output=n_output, cell_clip=0.5, **parts), invokes=4)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", ["plain", "cifg_peephole", "everything"])
def test_unidirectional_lstm_diagonal_recurrent(name: str, batch: int) -> None:
    """diagonal_recurrent_tensors: the recurrent weights are per-cell vectors
    (an elementwise product instead of a matmul)."""
    check_invokes(lstm_model(diagonal=True, batch=batch, cell_clip=0.4, **PARTS[name]),
                  invokes=3)


def test_lstm_state_carries_across_invokes() -> None:
    """The same input twice gives different outputs (the state moved) until a reset."""
    model = lstm_model(batch=1, time=2)
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    x = np.full((1, 2, 3), 0.5, np.float32)
    outs = []
    for reset in (False, False, True):
        if reset:
            it.reset_all_variables()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"]))
    assert not np.allclose(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


# -- BIDIRECTIONAL_SEQUENCE_LSTM ---------------------------------------------------------
def bidi_model(*, batch: int = 2, time: int = 4, n_input: int = 3, n_cell: int = 4,
               n_output: int | None = None, time_major: bool = True, merge: bool = False,
               aux: str = "none", n_aux: int = 2, activation: str = "TANH",
               cell_clip: float = 0.0, proj_clip: float = 0.0, seed: int = 0,
               **parts: bool) -> bytes:
    """One BIDIRECTIONAL_SEQUENCE_LSTM op. ``aux``: "none", "weights" (stacking with
    cross links: aux weights used by both directions) or "backward" (the backward
    direction reads the aux input instead of the input)."""
    n_output = n_output or n_cell
    rng = np.random.default_rng(seed)
    mb = ModelBuilder()
    g = mb.main
    lead = (time, batch) if time_major else (batch, time)
    x = g.input("x", (*lead, n_input))
    fw = lstm_inputs(g, rng, "fw_", n_input, n_cell, n_output, **parts)[:17]
    bw = lstm_inputs(g, rng, "bw_", n_input, n_cell, n_output, **parts)[:17]
    states = [g.variable(name, (batch, n)) for name, n in
              (("fw_h", n_output), ("fw_c", n_cell), ("bw_h", n_output), ("bw_c", n_cell))]
    aux_in: Any = None
    aux_w: list[Any] = [None] * 8
    if aux != "none":
        aux_in = g.input("aux", (*lead, n_aux if aux == "weights" else n_input))
    if aux == "weights":
        aux_w = [None if (parts.get("cifg") and k == "i") else
                 g.constant(f"{d}_aux_{k}", _w(rng, n_cell, n_aux)) for d in ("fw", "bw")
                 for k in "ifco"]
    operands = [x, *fw, *bw, *states, aux_in, *aux_w]
    opts = {"fused_activation_function": activation, "cell_clip": cell_clip,
            "proj_clip": proj_clip, "merge_outputs": merge, "time_major": time_major}
    outs = g.op("BIDIRECTIONAL_SEQUENCE_LSTM", operands, opts, outputs=1 if merge else 2)
    g.output(*(outs if isinstance(outs, tuple) else (outs,)))
    return mb.build()


@pytest.mark.parametrize("merge", [False, True])
@pytest.mark.parametrize("name", ["plain", "cifg_peephole", "projection_bias",
                                  "cifg_everything"])
def test_bidirectional_lstm_parts(name: str, merge: bool) -> None:
    parts = {k: v for k, v in PARTS[name].items() if k != "layer_norm"}
    n_output = 3 if parts.get("projection") else None
    check_invokes(bidi_model(merge=merge, n_output=n_output, cell_clip=0.4, **parts))


@pytest.mark.parametrize("merge,batch", [(False, 1), (False, 3), (True, 1)])
def test_bidirectional_lstm_batch_major(merge: bool, batch: int) -> None:
    # Not merged + batch-major + batch > 1 only: LiteRT's batch-major loop offsets the
    # output state of batch row b by b * (fw + bw output size) when outputs are
    # merged, reading past the state tensor for b > 0 (lstm_eval.cc EvalFloat).
    # edgeplex keeps one state row per batch row, as the op is documented.
    check_invokes(bidi_model(time_major=False, merge=merge, peephole=True, batch=batch))


@pytest.mark.parametrize("aux", ["weights", "backward"])
@pytest.mark.parametrize("cifg", [False, True])
def test_bidirectional_lstm_aux_input(aux: str, cifg: bool) -> None:
    check_invokes(bidi_model(aux=aux, cifg=cifg, merge=True))


# -- LSTM basic kernel ----------------------------------------------------------------------
@pytest.mark.parametrize("batch,n_input,n_cell", [(1, 1, 1), (2, 3, 4), (3, 5, 2)])
def test_lstm_basic_kernel(batch: int, n_input: int, n_cell: int) -> None:
    """kernel_type BASIC: one packed weight matrix, four outputs (activation, state,
    the concatenated input and the pre-activation gates)."""
    rng = np.random.default_rng(batch)
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (batch, n_input))
    h = g.input("prev_h", (batch, n_cell))
    c = g.input("prev_c", (batch, n_cell))
    w = g.constant("w", _w(rng, 4 * n_cell, n_input + n_cell))
    b = g.constant("b", _w(rng, 4 * n_cell))
    outs = g.op("LSTM", [x, h, w, b, c], {"kernel_type": "BASIC",
                                          "fused_activation_function": "TANH"}, outputs=4)
    g.output(*outs)
    check_invokes(mb.build(), invokes=2, reset_at=None)


# -- RNN ------------------------------------------------------------------------------------
def rnn_model(op: str = "UNIDIRECTIONAL_SEQUENCE_RNN", *, batch: int = 2, time: int = 4,
              n_input: int = 3, units: int = 5, time_major: bool = False,
              activation: str = "TANH", seed: int = 0) -> bytes:
    """One UNIDIRECTIONAL_SEQUENCE_RNN (or RNN) op with a variable hidden state."""
    rng = np.random.default_rng(seed)
    mb = ModelBuilder()
    g = mb.main
    if op == "RNN":
        shape: tuple[int, ...] = (batch, n_input)
        opts: dict[str, Any] = {"fused_activation_function": activation}
    else:
        shape = (time, batch, n_input) if time_major else (batch, time, n_input)
        opts = {"fused_activation_function": activation, "time_major": time_major}
    x = g.input("x", shape)
    w = g.constant("w", _w(rng, units, n_input))
    r = g.constant("r", _w(rng, units, units))
    b = g.constant("b", _w(rng, units))
    y = g.op(op, [x, w, r, b, g.variable("h", (batch, units))], opts)
    g.output(y)
    return mb.build()


@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH",
                                        "SIGN_BIT"])
@pytest.mark.parametrize("time_major", [False, True])
def test_unidirectional_rnn(activation: str, time_major: bool) -> None:
    check_invokes(rnn_model(activation=activation, time_major=time_major))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 6, 2, 7)])
def test_unidirectional_rnn_shapes(shape: tuple[int, int, int, int]) -> None:
    batch, time, n_input, units = shape
    check_invokes(rnn_model(batch=batch, time=time, n_input=n_input, units=units))


@pytest.mark.parametrize("activation", ["NONE", "RELU", "TANH"])
def test_rnn(activation: str) -> None:
    check_invokes(rnn_model("RNN", activation=activation), invokes=4)


# -- malformed and unsupported models -----------------------------------------------------
def broken_lstm(change: Any, *, activation: str = "TANH", cell_clip: float = 0.0,
                x_shape: tuple[int, ...] = (2, 4, 3), **parts: bool) -> bytes:
    """A UNIDIRECTIONAL_SEQUENCE_LSTM model whose operand list ``change(g, ops)``
    edits; output shapes are declared so the builder runs no kernel."""
    rng = np.random.default_rng(0)
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", x_shape)
    w = lstm_inputs(g, rng, "", 3, 4, 4, **parts)
    ops = [x, *w[:17], g.variable("h", (2, 4)), g.variable("c", (2, 4)), *w[17:]]
    change(g, rng, ops)
    y = g.tensor("y", (2, 4, 4))
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ops, {"fused_activation_function": activation,
                                               "cell_clip": cell_clip}, outputs=[y])
    g.output(y)
    return mb.build()


def _set(i: int, value: Any) -> Any:
    def change(g: Any, rng: Any, ops: list) -> None:
        ops[i] = value(g, rng) if callable(value) else value
    return change


def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


BROKEN = [
    ("no forget weights", _set(2, None), {}, ModelError, "input 2 is required"),
    ("half cifg", _set(5, None), {}, ModelError, "CIFG"),
    ("cifg with input bias", lambda g, r, ops: ops.__setitem__(slice(1, 6, 4), [None, None]),
     {}, ModelError, "input gate bias"),
    ("partial peephole", _set(10, None), {"peephole": True}, ModelError, "peephole"),
    ("partial layer norm", _set(22, None), {"layer_norm": True}, ModelError, "layer norm"),
    ("projection bias alone", _set(17, lambda g, r: g.constant("pb", _w(r, 4))), {},
     ModelError, "projection bias"),
    ("wrong weight shape", _set(3, lambda g, r: g.constant("bad", _w(r, 4, 2))), {},
     ModelError, r"input 3 \(input weights\) .bad. has shape \[4, 2\]"),
    ("state not variable", _set(19, lambda g, r: g.input("c_in", (2, 4))), {},
     ModelError, "variable tensor"),
    ("state size", _set(18, lambda g, r: g.variable("h5", (2, 5))), {}, ModelError,
     "output state"),
    ("int8 peephole", _set(9, lambda g, r: g.constant("c2i8", np.ones(4, np.int8))),
     {"peephole": True}, UnsupportedOpError, "FLOAT32 weights"),
]


@pytest.mark.parametrize("name,change,parts,error,match", BROKEN, ids=[b[0] for b in BROKEN])
def test_lstm_malformed(name: str, change: Any, parts: dict, error: type, match: str | None
                        ) -> None:
    model = broken_lstm(change, **parts)
    with pytest.raises(error, match=match) as info:
        _allocate(model)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in str(info.value)


def test_lstm_activation_none_unsupported() -> None:
    """LiteRT's float LSTM with activation NONE reads stale scratch memory (its
    ApplyActivationToVector returns without writing), so edgeplex refuses it."""
    with pytest.raises(UnsupportedOpError, match="fused activation 'NONE'"):
        _allocate(broken_lstm(lambda g, r, ops: None, activation="NONE"))


def test_lstm_negative_clip() -> None:
    with pytest.raises(ModelError, match="cell_clip"):
        _allocate(broken_lstm(lambda g, r, ops: None, cell_clip=-1.0))


def test_sequence_lstm_needs_rank_3() -> None:
    with pytest.raises(ModelError, match="expected rank 3"):
        _allocate(broken_lstm(lambda g, r, ops: None, x_shape=(2, 3)))


def test_lstm_input_count() -> None:
    with pytest.raises(ModelError, match="20 or 24 inputs"):
        _allocate(broken_lstm(lambda g, r, ops: ops.pop()))


def test_bidirectional_output_count() -> None:
    model = bidi_model(merge=True)
    m = edgeplex.read_model(model)
    from dataclasses import replace
    sg = m.main
    op = sg.operators[0]
    bad = replace(op, options=op.options.replace(merge_outputs=False))
    m2 = replace(m, subgraphs=(replace(sg, operators=(bad,)),))
    with pytest.raises(ModelError, match="48 inputs and 2 outputs"):
        _allocate(edgeplex.write_model(m2))


def test_lstm_weights_from_graph_inputs() -> None:
    """Weights that are not constants are packed at every invoke."""
    def weights_as_inputs(g: Any, rng: Any, ops: list) -> None:
        ops[3] = g.input("i2c", (4, 3))
        ops[7] = g.input("r2c", (4, 4))
    rng_model = broken_lstm(weights_as_inputs, peephole=True)
    check_invokes(rng_model)


# -- converter-made models (tests/fixtures/make_sequence_models.py) -----------------------------
def test_fixture_keras_lstm() -> None:
    """tf-keras LSTM fused by the converter: UNIDIRECTIONAL_SEQUENCE_LSTM with
    cell_clip 10 and variable-tensor states carried across invokes."""
    model = fixture("keras_lstm")
    assert [op.op for op in edgeplex.read_model(model).main.operators] == [
        "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    check_invokes(model, invokes=4, reset_at=2)


def test_fixture_keras_bidirectional_lstm() -> None:
    """tf-keras Bidirectional(LSTM): two fused LSTMs, REVERSE_V2, CONCATENATION
    (exact data movement, so the LSTM tolerance applies)."""
    check_invokes(fixture("keras_bidirectional_lstm"), invokes=3, reset_at=1)


# -- speed structure: no per-invoke allocation --------------------------------------------
def _invoke_peak_bytes(model: bytes) -> int:
    """Peak memory traced during the second invoke (the first one warms up)."""
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        it.set_tensor(d["index"], rng.uniform(-1, 1, d["shape"]).astype(np.float32))
    it.invoke()
    tracemalloc.start()
    try:
        it.invoke()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", ["plain", "cifg_peephole", "everything"])
def test_lstm_invoke_does_not_allocate(name: str, batch: int) -> None:
    """The recurrent kernels run on buffers made at allocate_tensors: an invoke
    allocates a few Python objects, nothing the size of the sequence (the input
    projection alone would be 16 x batch x 4 x 64 floats, 16-64 KiB)."""
    parts = PARTS[name]
    n_output = 48 if parts.get("projection") else None
    model = lstm_model(batch=batch, time=16, n_input=24, n_cell=64, n_output=n_output,
                       cell_clip=5.0, **parts)
    assert _invoke_peak_bytes(model) < 8192


@pytest.mark.parametrize("op", ["UNIDIRECTIONAL_SEQUENCE_RNN", "RNN"])
def test_rnn_invoke_does_not_allocate(op: str) -> None:
    """Like the LSTM: one invoke allocates nothing the size of the sequence."""
    assert _invoke_peak_bytes(rnn_model(op, batch=4, time=16, n_input=24, units=64)) < 8192
