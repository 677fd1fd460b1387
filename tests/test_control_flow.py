"""WHILE, IF and CALL_ONCE on builder-made models with several subgraphs,
against LiteRT.

The subgraphs use only ADD/SUB/MUL and the control flow ops themselves. A
WHILE needs a data-dependent bool without comparison ops, so the loop count
is a shift register of bool loop values: the body returns (s1, s2, ..., False)
for inputs (go, s1, s2, ...) and cond returns ``go``; the model's bool inputs
decide how many iterations run (0 to the register's length). That also
checks the classic aliasing trap of loop values that are permuted inputs.

Tolerance: exact. Every value is a float32 ADD/SUB/MUL of the same operands
in the same order in both runtimes (no reductions), so results are
bit-identical.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.errors import ModelError
from stateful import check_invokes, fixture, invoke_all

EXACT = {"rtol": 0.0, "atol": 0.0}


def _flags(*values: bool) -> list[np.ndarray]:
    return [np.array(v) for v in values]


def shift_body(mb: ModelBuilder, n_flags: int, value_shape: tuple[int, ...],
               step: Any = None, name: str = "body") -> Any:
    """Body: flags shift left (False enters), x -> x * k + y (``step`` may
    replace that), y passes through."""
    body = mb.subgraph(name)
    flags = [body.input(f"f{i}", (), np.bool_) for i in range(n_flags)]
    x = body.input("x", value_shape)
    y = body.input("y", (3,))
    k = body.constant("k", np.float32(0.5))
    new_x = step(body, x, y) if step else body.op("ADD", [body.op("MUL", [x, k]), y])
    body.output(*flags[1:], body.constant("false", np.array(False)), new_x, y)
    return body


def go_cond(mb: ModelBuilder, n_flags: int, value_shape: tuple[int, ...]) -> Any:
    """Cond: the first flag."""
    cond = mb.subgraph("cond")
    flags = [cond.input(f"f{i}", (), np.bool_) for i in range(n_flags)]
    cond.input("x", value_shape)
    cond.input("y", (3,))
    cond.output(flags[0])
    return cond


def loop_outputs(g: Any, n_flags: int) -> list[Any]:
    """WHILE output tensors for (flags..., x, y), shapes left to inference."""
    n = len(g._ops)
    return [g.tensor(f"while{n}_f{i}", None, np.bool_) for i in range(n_flags)] + [
        g.tensor(f"while{n}_x", None), g.tensor(f"while{n}_y", None)]


def while_model(n_flags: int = 3, x_shape: tuple[int, ...] = (3,), step: Any = None,
                post: bool = True) -> bytes:
    """main: WHILE over (flags..., x, y), then ADD(x, y) on the result."""
    mb = ModelBuilder()
    g = mb.main
    flags = [g.input(f"go{i}", (), np.bool_) for i in range(n_flags)]
    x, y = g.input("x", x_shape), g.input("y", (3,))
    cond = go_cond(mb, n_flags, x_shape)
    body = shift_body(mb, n_flags, x_shape, step)
    outs = g.op("WHILE", [*flags, x, y], {"cond_subgraph_index": cond.index,
                                          "body_subgraph_index": body.index},
                outputs=loop_outputs(g, n_flags))
    g.output(*outs[:n_flags], outs[-2])
    if post:
        g.output(g.op("ADD", [outs[-2], outs[-1]]))
    return mb.build()


def _feeds(model: bytes, flags: list[tuple[bool, ...]], seed: int = 0) -> list[list]:
    rng = np.random.default_rng(seed)
    details = edgeplex.Interpreter(model_content=model).get_input_details()
    floats = [d for d in details if d["dtype"] == np.float32]
    return [_flags(*f) + [rng.uniform(-2, 2, tuple(d["shape"])).astype(np.float32)
                          for d in floats] for f in flags]


SCHEDULES = [(False, True, True), (True, False, True), (True, True, False), (True, True, True)]


def test_while_iteration_counts() -> None:
    """0, 1, 2 and 3 iterations, chosen by the inputs of successive invokes."""
    model = while_model()
    feeds = _feeds(model, SCHEDULES)
    got = check_invokes(model, feeds=feeds, reset_at=None, **EXACT)
    for feed, out, iterations in zip(feeds, got, (0, 1, 2, 3)):
        x, y = feed[3], feed[4]
        for _ in range(iterations):
            x = x * np.float32(0.5) + y
        np.testing.assert_array_equal(out[3], x)
        assert not out[0]


def test_while_zero_iterations_copies_inputs() -> None:
    model = while_model(post=False)
    feed = _feeds(model, [(False, True, True)])
    got = invoke_all(edgeplex.Interpreter(model_content=model), feed)[0]
    np.testing.assert_array_equal(got[-1], feed[0][3])


def test_while_static_shapes_are_static() -> None:
    it = edgeplex.Interpreter(model_content=while_model())
    it.allocate_tensors()
    assert [tuple(d["shape"]) for d in it.get_output_details()] == [(), (), (), (3,), (3,)]


def test_while_body_changes_shape() -> None:
    """x starts as [1] and becomes [3] after the first iteration (broadcast ADD):
    the WHILE outputs are data-dependent, and so is the ADD after it."""
    model = while_model(x_shape=(1,))
    check_invokes(model, feeds=_feeds(model, SCHEDULES), reset_at=None, **EXACT)


def test_while_nested_loop() -> None:
    """The body runs an inner WHILE (its own cond/body subgraphs) each iteration."""
    def inner(body: Any, x: Any, y: Any) -> Any:
        mb = body.model
        cond, ibody = go_cond(mb, 2, (3,)), shift_body(mb, 2, (3,), name="inner_body")
        t = body.constant("t", np.array(True))
        outs = body.op("WHILE", [t, t, x, y], {"cond_subgraph_index": cond.index,
                                              "body_subgraph_index": ibody.index},
                       outputs=loop_outputs(body, 2))
        return body.op("SUB", [outs[2], y])
    model = while_model(step=inner)
    check_invokes(model, feeds=_feeds(model, SCHEDULES), reset_at=None, **EXACT)


# -- IF -------------------------------------------------------------------------------------
def if_model(else_shape_differs: bool = False) -> bytes:
    """IF(c, a, b): then a + b * b, else a - b (or just a, of another shape)."""
    mb = ModelBuilder()
    g = mb.main
    c = g.input("c", (1,), np.bool_)
    a_shape = (1,) if else_shape_differs else (2, 3)
    a, b = g.input("a", a_shape), g.input("b", (2, 3))
    then, other = mb.subgraph("then"), mb.subgraph("else")
    ta, tb = then.input("a", a_shape), then.input("b", (2, 3))
    then.output(then.op("ADD", [ta, then.op("MUL", [tb, tb])]))
    ea, eb = other.input("a", a_shape), other.input("b", (2, 3))
    other.output(ea if else_shape_differs else other.op("SUB", [ea, eb]))
    y = g.op("IF", [c, a, b], {"then_subgraph_index": then.index,
                               "else_subgraph_index": other.index}, dtype=np.float32)
    g.output(g.op("MUL", [y, y]))
    return mb.build()


@pytest.mark.parametrize("else_shape_differs", [False, True])
def test_if_both_branches(else_shape_differs: bool) -> None:
    model = if_model(else_shape_differs)
    rng = np.random.default_rng(1)
    feeds = [[np.array([c]), *(rng.uniform(-2, 2, s).astype(np.float32)
                               for s in [(1,) if else_shape_differs else (2, 3), (2, 3)])]
             for c in (True, False, False, True)]
    got = check_invokes(model, feeds=feeds, reset_at=None, **EXACT)
    if else_shape_differs:
        assert [g[0].shape for g in got] == [(2, 3), (1,), (1,), (2, 3)]


# -- CALL_ONCE --------------------------------------------------------------------------------
def call_once_model() -> bytes:
    """CALL_ONCE sets a variable to [10, 20]; each invoke adds x to it and returns it."""
    mb = ModelBuilder()
    g = mb.main
    init = mb.subgraph("init")
    x = g.input("x", (2,))
    g.op("CALL_ONCE", [], {"init_subgraph_index": init.index}, outputs=[])
    h = g.op("VAR_HANDLE", [], {"shared_name": "acc"}, dtype=np.int32)
    y = g.op("ADD", [g.op("READ_VARIABLE", [h], dtype=np.float32, outputs=[
        g.tensor("v", (2,))]), x])
    g.op("ASSIGN_VARIABLE", [h, y], outputs=[])
    g.output(y)
    ih = init.op("VAR_HANDLE", [], {"shared_name": "acc"}, dtype=np.int32)
    init.op("ASSIGN_VARIABLE", [ih, init.constant("v0", np.float32([10, 20]))], outputs=[])
    return mb.build()


def test_call_once_runs_once_per_interpreter() -> None:
    """Init runs on the first invoke only, and not again after reset_all_variables
    (LiteRT keeps resource variables and the CALL_ONCE status across a reset)."""
    model = call_once_model()
    feeds = [[np.float32([1, 2])]] * 4
    got = check_invokes(model, feeds=feeds, reset_at=3, **EXACT)
    assert [g[0].tolist() for g in got] == [[11, 22], [12, 24], [13, 26], [14, 28]]


# -- variable tensors inside called subgraphs -------------------------------------------------
def _rnn(g: Any, x: Any) -> Any:
    """An RNN step on x (2, 3) with a variable-tensor state (2, 4)."""
    rng = np.random.default_rng(0)
    w, r, b = (g.constant(n, rng.uniform(-1, 1, s).astype(np.float32))
               for n, s in (("w", (4, 3)), ("r", (4, 4)), ("b", (4,))))
    return g.op("RNN", [x, w, r, b, g.variable("state", (2, 4))],
                {"fused_activation_function": "TANH"})


def test_while_body_state_carries_across_iterations_only() -> None:
    """An RNN state in a WHILE body carries from one iteration to the next but
    starts from zero at every execution of the WHILE, as in LiteRT.

    Tolerance 1e-6: the RNN's matmul sums in another order than LiteRT's."""
    mb = ModelBuilder()
    g = mb.main
    go = [g.input(f"go{i}", (), np.bool_) for i in range(3)]
    x = g.input("x", (2, 3))
    cond, body = mb.subgraph("cond"), mb.subgraph("body")

    def loop_inputs(sg: Any) -> tuple[list[Any], Any]:
        flags = [sg.input(f"f{i}", (), np.bool_) for i in range(3)]
        xs = sg.input("x", (2, 3))
        sg.input("y", (2, 4))
        return flags, xs
    cond.output(loop_inputs(cond)[0][0])
    flags, xs = loop_inputs(body)
    body.output(*flags[1:], body.constant("false", np.array(False)), xs, _rnn(body, xs))
    outs = loop_outputs(g, 3)
    g.op("WHILE", [*go, x, g.constant("y0", np.zeros((2, 4), np.float32))],
         {"cond_subgraph_index": 1, "body_subgraph_index": 2}, outputs=outs)
    g.output(outs[-1])
    xv = np.random.default_rng(1).uniform(-1, 1, (2, 3)).astype(np.float32)
    feeds = [_flags(*f) + [xv] for f in SCHEDULES[1:] + SCHEDULES[1:2]]
    got = check_invokes(mb.build(), feeds=feeds, reset_at=None, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[0][0], got[3][0])      # one iteration, fresh state
    assert not np.allclose(got[0][0], got[1][0])               # two iterations carry it


def test_if_branch_state_is_fresh_each_time() -> None:
    """Two IF ops calling one branch that holds an RNN state each see a fresh state,
    invoke after invoke, as in LiteRT. Tolerance as above."""
    mb = ModelBuilder()
    g = mb.main
    c, x = g.input("c", (1,), np.bool_), g.input("x", (2, 3))
    then, other = mb.subgraph("then"), mb.subgraph("else")
    then.output(_rnn(then, then.input("x", (2, 3))))
    other.input("x", (2, 3))
    one = other.constant("one", np.ones((2, 4), np.float32))
    other.output(other.op("ADD", [one, one]))
    ys = [g.op("IF", [c, x], {"then_subgraph_index": 1, "else_subgraph_index": 2},
               dtype=np.float32) for _ in range(2)]
    g.output(*ys)
    xv = np.random.default_rng(1).uniform(-1, 1, (2, 3)).astype(np.float32)
    feeds = [[np.array([flag]), xv] for flag in (True, True, False, True)]
    got = check_invokes(mb.build(), feeds=feeds, reset_at=None, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[0][0], got[1][1])


# -- malformed models ----------------------------------------------------------------------------
def _allocate(model: bytes) -> None:
    edgeplex.Interpreter(model_content=model).allocate_tensors()


def _loop(cond_index: int | None = None, body_index: int | None = None,
          cond_output: str = "bool", body_outputs: int = 2, op_outputs: int = 2) -> bytes:
    """A WHILE over (flag, x) with configurable faults; shapes declared up front."""
    mb = ModelBuilder()
    g = mb.main
    f, x = g.input("f", (), np.bool_), g.input("x", (3,))
    cond, body = mb.subgraph("cond"), mb.subgraph("body")
    cf, cx = cond.input("f", (), np.bool_), cond.input("x", (3,))
    cond.output(cf if cond_output == "bool" else cx)
    bf, bx = body.input("f", (), np.bool_), body.input("x", (3,))
    body.output(*[bf, bx, bx][:body_outputs])
    outs = [g.tensor("of", (), np.bool_), g.tensor("ox", (3,)), g.tensor("o3", (3,))]
    g.op("WHILE", [f, x], {"cond_subgraph_index": cond.index if cond_index is None
                           else cond_index,
                           "body_subgraph_index": body.index if body_index is None
                           else body_index}, outputs=outs[:op_outputs])
    g.output(*outs[:op_outputs])
    return mb.build()


MALFORMED = [
    ("body index out of range", dict(body_index=7), "body subgraph index 7 is out of range"),
    ("cond index negative", dict(cond_index=-1), "cond subgraph index -1 is out of range"),
    ("cond is body", dict(cond_index=2), "cond and body are the same subgraph 2"),
    ("body calls main", dict(body_index=0), "body subgraph 0 is the subgraph holding"),
    ("cond not bool", dict(cond_output="float"), "must be a single BOOL"),
    ("body output count", dict(body_outputs=3), "body subgraph 2 has 2 inputs and 3 outputs"),
    ("op output count", dict(op_outputs=3), "2 inputs but 3 outputs"),
]


@pytest.mark.parametrize("name,fault,match", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_while_malformed(name: str, fault: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        _allocate(_loop(**fault))
    assert "WHILE" in str(info.value)


def test_if_condition_must_be_bool() -> None:
    mb = ModelBuilder()
    g = mb.main
    c, a = g.input("c", (1,)), g.input("a", (2,))
    then = mb.subgraph("then")
    then.output(then.input("a", (2,)))
    y = g.tensor("y", (2,))
    g.op("IF", [c, a], {"then_subgraph_index": 1, "else_subgraph_index": 1}, outputs=[y])
    g.output(y)
    with pytest.raises(ModelError, match=r"IF .*must be a single BOOL"):
        _allocate(mb.build())


def test_if_branch_arity() -> None:
    mb = ModelBuilder()
    g = mb.main
    c, a = g.input("c", (1,), np.bool_), g.input("a", (2,))
    then = mb.subgraph("then")
    ta = then.input("a", (2,))
    then.output(ta, ta)
    y = g.tensor("y", (2,))
    g.op("IF", [c, a], {"then_subgraph_index": 1, "else_subgraph_index": 1}, outputs=[y])
    g.output(y)
    with pytest.raises(ModelError, match="then subgraph 1 has 1 inputs and 2 outputs"):
        _allocate(mb.build())


def test_call_once_init_with_inputs() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2,))
    init = mb.subgraph("init")
    init.output(init.input("a", (2,)))
    g.op("CALL_ONCE", [], {"init_subgraph_index": 1}, outputs=[])
    g.output(g.op("ADD", [x, x]))
    with pytest.raises(ModelError, match="CALL_ONCE.*init subgraph 1 has 1 inputs"):
        _allocate(mb.build())


def test_while_cond_output_must_be_one_bool() -> None:
    """A BOOL cond output of more than one element is refused too."""
    mb = ModelBuilder()
    g = mb.main
    f, x = g.input("f", (2,), np.bool_), g.input("x", (1,))
    cond, body = mb.subgraph("cond"), mb.subgraph("body")
    cf = cond.input("f", (2,), np.bool_)
    cond.input("x", (1,))
    cond.output(cf)
    bf, bx = body.input("f", (2,), np.bool_), body.input("x", (1,))
    body.output(bf, bx)
    outs = [g.tensor("of", (2,), np.bool_), g.tensor("ox", (1,))]
    g.op("WHILE", [f, x], {"cond_subgraph_index": 1, "body_subgraph_index": 2}, outputs=outs)
    g.output(*outs)
    with pytest.raises(ModelError, match=r"shape \[2\]; it must be a single BOOL"):
        _allocate(mb.build())


# -- converter-made models (tests/fixtures/make_sequence_models.py) -----------------------------
# The WHILE bodies hold FULLY_CONNECTED, GATHER, SPLIT, LOGISTIC, TANH, SLICE,
# CONCATENATION, ... Tolerance rtol=1e-5, atol=5e-6: the recurrences are float32
# matmuls summed in another order than LiteRT's plus its LOGISTIC/TANH, a few ulp
# per step fed back through 5 contracting steps (gates in (0, 1), |tanh'| <= 1),
# on values of O(1).
WHILE_TOLERANCE = {"rtol": 1e-5, "atol": 5e-6}


@pytest.mark.parametrize("name", ["keras_lstm_while", "keras_gru_while",
                                  "keras_simple_rnn_while"])
def test_fixture_keras_while_loops(name: str) -> None:
    """Keras 3 recurrent layers the converter lowers to a WHILE over time steps."""
    model = fixture(name)
    assert "WHILE" in [op.op for op in edgeplex.read_model(model).main.operators]
    check_invokes(model, invokes=3, reset_at=None, **WHILE_TOLERANCE)


def test_fixture_tf_cond() -> None:
    """tf.cond on a bool input: IF with MUL/ADD and MUL/SUB branches; both taken."""
    model = fixture("tf_cond")
    rng = np.random.default_rng(2)
    feeds = [[np.array(flag), *(rng.uniform(-2, 2, 4).astype(np.float32) for _ in "xy")]
             for flag in (True, False, True)]
    check_invokes(model, feeds=feeds, reset_at=None, **EXACT)


def test_fixture_tf_cond_computed() -> None:
    """tf.cond on SUM(x) > 0 (SUM, GREATER, IF): inputs of both signs take both
    branches. Tolerance 1e-6 for SUM's summation order near the branch point."""
    model = fixture("tf_cond_computed")
    rng = np.random.default_rng(3)
    feeds = [[np.float32(s) * np.abs(rng.uniform(0.1, 2, 4)).astype(np.float32),
              rng.uniform(-2, 2, 4).astype(np.float32)] for s in (1, -1, 1)]
    check_invokes(model, feeds=feeds, reset_at=None, rtol=1e-6, atol=1e-6)
