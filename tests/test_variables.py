"""Resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE) and variable
tensors, against LiteRT over several invokes and reset_all_variables.

Tolerance: exact. The arithmetic is float32 ADD/MUL in the same order in both
runtimes; variables only store and return values.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.errors import InterpreterError
from stateful import check_invokes, fixture, invoke_all

EXACT = {"rtol": 0.0, "atol": 0.0}


def handle(g: Any, name: str, container: str = "") -> Any:
    """A VAR_HANDLE (int32 handle tensor, which LiteRT accepts as well as RESOURCE)."""
    return g.op("VAR_HANDLE", [], {"container": container, "shared_name": name},
                dtype=np.int32)


def read(g: Any, h: Any, shape: tuple[int, ...], dtype: Any = np.float32) -> Any:
    return g.op("READ_VARIABLE", [h], outputs=[g.tensor(f"read{len(g._ops)}", shape, dtype)])


def assign(g: Any, h: Any, value: Any) -> None:
    g.op("ASSIGN_VARIABLE", [h, value], outputs=[])


def test_resource_ids_follow_first_use() -> None:
    """Ids number (container, shared_name) pairs in subgraph then op order, so the
    same pair in two subgraphs is one variable; the handle values match LiteRT."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1,))
    init = mb.subgraph("init")
    g.op("CALL_ONCE", [], {"init_subgraph_index": init.index}, outputs=[])
    handles = [handle(g, "a"), handle(g, "b"), handle(g, "a", container="c"), handle(g, "a")]
    z = handle(init, "z")
    assign(init, z, init.constant("z0", np.float32([3])))
    assign(init, handle(init, "a"), init.constant("a0", np.float32([5])))
    g.output(*handles, g.op("ADD", [read(g, handles[3], (1,)), x]))
    got = check_invokes(mb.build(), invokes=2, reset_at=1, **EXACT)
    assert [int(h) for h in got[0][:4]] == [0, 1, 2, 0]


def counter_model(shape: tuple[int, ...] = (2, 3)) -> bytes:
    """CALL_ONCE sets variable v to ones; each invoke: v = v * 0.5 + x, outputs v, 2v."""
    mb = ModelBuilder()
    g = mb.main
    init = mb.subgraph("init")
    x = g.input("x", shape)
    g.op("CALL_ONCE", [], {"init_subgraph_index": init.index}, outputs=[])
    h = handle(g, "v")
    v = read(g, h, shape)
    new = g.op("ADD", [g.op("MUL", [v, g.constant("half", np.float32(0.5))]), x])
    assign(g, h, new)
    g.output(new, g.op("ADD", [new, new]))
    assign(init, handle(init, "v"), init.constant("v0", np.ones(shape, np.float32)))
    return mb.build()


@pytest.mark.parametrize("shape", [(), (4,), (2, 3)])
def test_variable_accumulates_across_invokes(shape: tuple[int, ...]) -> None:
    check_invokes(counter_model(shape), invokes=5, reset_at=3, **EXACT)


def test_variable_in_while_body() -> None:
    """The body of a WHILE adds to a variable each iteration; main reads it after."""
    mb = ModelBuilder()
    g = mb.main
    init, cond, body = mb.subgraph("init"), mb.subgraph("cond"), mb.subgraph("body")
    go = [g.input(f"go{i}", (), np.bool_) for i in range(3)]
    x = g.input("x", (2,))
    g.op("CALL_ONCE", [], {"init_subgraph_index": init.index}, outputs=[])
    outs = [g.tensor(f"o{i}", None, np.bool_) for i in range(3)]
    g.op("WHILE", go, {"cond_subgraph_index": cond.index, "body_subgraph_index": body.index},
         outputs=outs)
    h = handle(g, "acc")
    g.output(g.op("MUL", [read(g, h, (2,)), x]))
    assign(init, handle(init, "acc"), init.constant("zero", np.zeros(2, np.float32)))
    flags = [cond.input(f"f{i}", (), np.bool_) for i in range(3)]
    cond.output(flags[0])
    flags = [body.input(f"f{i}", (), np.bool_) for i in range(3)]
    bh = handle(body, "acc")
    assign(body, bh, body.op("ADD", [read(body, bh, (2,)),
                                     body.constant("one", np.float32([1, 10]))]))
    body.output(flags[1], flags[2], body.constant("false", np.array(False)))
    rng = np.random.default_rng(0)
    feeds = [[np.array(a), np.array(b), np.array(c), rng.uniform(-2, 2, 2).astype(np.float32)]
             for a, b, c in [(True, True, False), (True, True, True), (False, True, True)]]
    got = check_invokes(mb.build(), feeds=feeds, reset_at=None, **EXACT)
    np.testing.assert_array_equal(got[1][0], feeds[1][3] * np.float32([5, 50]))


def test_assign_changes_shape() -> None:
    """A variable re-assigned with another shape reads back with that shape."""
    mb = ModelBuilder()
    g = mb.main
    a, b = g.input("a", (1,)), g.input("b", (3,))
    h = handle(g, "v")
    assign(g, h, a)
    first = g.op("ADD", [read(g, h, (1,)), a])
    assign(g, h, g.op("ADD", [first, b]))
    g.output(first, read(g, h, (3,)))
    got = check_invokes(mb.build(), invokes=2, reset_at=None, **EXACT)
    assert got[0][1].shape == (3,)


def test_read_before_assign_is_an_error() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2,))
    g.output(g.op("ADD", [read(g, handle(g, "never"), (2,)), x]))
    it = edgeplex.Interpreter(model_content=mb.build())
    it.allocate_tensors()
    with pytest.raises(InterpreterError, match="READ_VARIABLE.*resource variable 0 is read "
                                               "before any ASSIGN_VARIABLE"):
        it.invoke()


# -- variable tensors ------------------------------------------------------------------------
def rnn_state_model() -> bytes:
    """An RNN whose hidden state is a variable tensor (the older converters' way
    of keeping LSTM/RNN state between invokes)."""
    rng = np.random.default_rng(0)
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 3))
    w = g.constant("w", rng.uniform(-1, 1, (4, 3)).astype(np.float32))
    r = g.constant("r", rng.uniform(-1, 1, (4, 4)).astype(np.float32))
    b = g.constant("b", rng.uniform(-1, 1, 4).astype(np.float32))
    g.output(g.op("RNN", [x, w, r, b, g.variable("state", (2, 4))],
                  {"fused_activation_function": "TANH"}))
    return mb.build()


def test_variable_tensor_state_carries_and_resets() -> None:
    """The same input on every invoke: outputs change while the state moves,
    and the invoke after reset_all_variables repeats the first - in both runtimes.

    Tolerance 1e-6: the RNN's matmul sums in another order than LiteRT's."""
    model = rnn_state_model()
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3)).astype(np.float32)
    got = check_invokes(model, feeds=[[x]] * 4, reset_at=2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][0], got[2][0])
    it = edgeplex.Interpreter(model_content=model)
    again = invoke_all(it, [[x]] * 2)
    np.testing.assert_array_equal(again[1][0], got[1][0])


# -- converter-made models (tests/fixtures/make_sequence_models.py) -----------------------------
def test_fixture_tf_variable() -> None:
    """A tf.Variable updated each call: CALL_ONCE, VAR_HANDLE, READ/ASSIGN_VARIABLE."""
    model = fixture("tf_variable")
    ops = {op.op for sg in edgeplex.read_model(model).subgraphs for op in sg.operators}
    assert {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= ops
    got = check_invokes(model, invokes=4, reset_at=2, **EXACT)
    assert not np.array_equal(got[0][0], got[1][0])


def test_fixture_keras_lstm_stateful() -> None:
    """A stateful tf-keras LSTM: states in resource variables, a WHILE over time
    (TRANSPOSE, FULLY_CONNECTED, ... inside); the state carries over invokes and
    survives reset_all_variables as in LiteRT. Tolerance as for the WHILE-lowered
    recurrent layers (test_control_flow.py), over 4 invokes of 5 steps."""
    got = check_invokes(fixture("keras_lstm_stateful"), invokes=4, reset_at=2,
                        rtol=1e-5, atol=5e-6)
    assert len(got) == 4
