"""edgeplex.Interpreter is a drop-in for ai_edge_litert's Interpreter: one
program written for LiteRT runs against both and prints the same things."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import edgeplex
from edgeplex import InterpreterError, ModelBuilder
from oracle import LiteRT


def _model() -> bytes:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 4, 4, 3), np.float32, shape_signature=(-1, 4, 4, 3))
    y = g.input("y", (1, 1, 1, 3), np.float32)
    s = g.op("ADD", [x, y], {"fused_activation_function": "RELU"})
    p = g.op("MUL", [s, g.constant("scale", np.float32([0.5, 2.0, -1.0]))])
    q = g.op("SUB", [p, x])
    g.output(p, q)
    mb.signature("serving_default", {"image": x, "bias": y}, {"scaled": p, "residual": q})
    return mb.build()


def _fmt(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array{value.shape}:{value.dtype}:" + np.array2string(
            value.reshape(-1)[:12], precision=5, separator=",")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return type(value).__name__ + "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, type):
        return f"type:{value.__name__}"
    return repr(value)


def _program(make: Callable[..., Any], model: bytes) -> list[str]:
    """A user program written against LiteRT's Interpreter API."""
    out: list[str] = []
    say = out.append
    it = make(model_content=model)
    say(_fmt(it.get_input_details()))
    say(_fmt(it.get_output_details()))
    it.allocate_tensors()
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, (1, 4, 4, 3)).astype(np.float32)
    y = rng.uniform(-2, 2, (1, 1, 1, 3)).astype(np.float32)
    ix, iy = (d["index"] for d in it.get_input_details())
    it.set_tensor(ix, x)
    it.set_tensor(iy, y)
    it.invoke()
    for d in it.get_output_details():
        say(_fmt(it.get_tensor(d["index"])))
    # resize the dynamic batch dimension
    it.resize_tensor_input(ix, [3, 4, 4, 3], strict=True)
    it.allocate_tensors()
    say(_fmt(it.get_input_details()))
    x3 = rng.uniform(-2, 2, (3, 4, 4, 3)).astype(np.float32)
    it.set_tensor(ix, x3)
    it.set_tensor(iy, y)  # values of inputs after re-allocation are unspecified in LiteRT
    it.invoke()
    say(_fmt(it.get_output_details()))
    say(_fmt([it.get_tensor(d["index"]) for d in it.get_output_details()]))
    for bad in ([1, 5, 4, 3],):
        try:
            it.resize_tensor_input(ix, bad, strict=True)
            say("no error")
        except Exception as e:  # noqa: BLE001 - printing the type is the point
            say(f"strict resize: RuntimeError={isinstance(e, RuntimeError)}")
    for wrong in (x3.astype(np.float64), x3[:2]):
        try:
            it.set_tensor(ix, wrong)
            say("no error")
        except ValueError:
            say("set_tensor: ValueError")
    # zero-copy access through tensor()
    it.tensor(ix)()[...] = 1.0
    it.invoke()
    say(_fmt(it.tensor(it.get_output_details()[0]["index"])()))
    say(_fmt(it.get_signature_list()))
    runner = it.get_signature_runner()
    result = runner(image=x, bias=y)
    say(_fmt(result))
    say(_fmt(sorted(runner.get_input_details())))
    say(_fmt([(d["name"], d["shape"]) for d in it.get_tensor_details()]))
    it.reset_all_variables()
    return out


def test_same_program_prints_the_same_with_both_interpreters() -> None:
    model = _model()
    theirs = _program(LiteRT, model)
    ours = _program(edgeplex.Interpreter, model)
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"line {i} differs:\n edgeplex: {a}\n LiteRT:   {b}"


def test_invoke_before_allocate_tensors_is_a_clear_error() -> None:
    it = edgeplex.Interpreter(model_content=_model())
    with pytest.raises(InterpreterError, match=r"call allocate_tensors\(\) first"):
        it.invoke()
    it.allocate_tensors()
    it.resize_tensor_input(0, [2, 4, 4, 3])
    with pytest.raises(InterpreterError, match="allocate_tensors"):
        it.invoke()


def test_set_tensor_errors_say_what_was_expected() -> None:
    it = edgeplex.Interpreter(model_content=_model())
    it.allocate_tensors()
    with pytest.raises(InterpreterError, match="Got value of type FLOAT64 but expected type "
                                               "FLOAT32 for tensor 0 'x'"):
        it.set_tensor(0, np.zeros((1, 4, 4, 3)))
    with pytest.raises(InterpreterError, match=r"Got shape \[2, 4, 4, 3\] but expected "
                                               r"\[1, 4, 4, 3\] for tensor 0 'x'"):
        it.set_tensor(0, np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(InterpreterError, match="not an input or variable"):
        it.set_tensor(3, np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(InterpreterError, match="out of range"):
        it.get_tensor(99)


def test_reading_a_tensor_the_last_invoke_did_not_produce() -> None:
    it = edgeplex.Interpreter(model_content=_model())
    it.allocate_tensors()
    out = it.get_output_details()[0]["index"]
    with pytest.raises(InterpreterError, match="has not been computed: call invoke"):
        it.get_tensor(out)
    it.invoke()
    it.get_tensor(out)


def test_intermediates_whose_memory_was_reused_are_not_readable() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (64,))
    a = g.op("ADD", [x, x])
    b = g.op("MUL", [a, a])
    c = g.op("ADD", [b, b])
    d = g.op("MUL", [c, c])
    g.output(d)
    model = mb.build()
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    it.invoke()
    reused = [i for i in (1, 2, 3) if it._plan.readable_error(i)]
    assert reused, "a chain of four ops must reuse some intermediate memory"
    with pytest.raises(InterpreterError, match="memory was reused"):
        it.get_tensor(reused[0])
    keep = edgeplex.Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    keep.allocate_tensors()
    x_val = np.arange(64, dtype=np.float32)
    keep.set_tensor(0, x_val)
    keep.invoke()
    np.testing.assert_array_equal(keep.get_tensor(1), x_val + x_val)


def test_profiling_records_each_op() -> None:
    it = edgeplex.Interpreter(model_content=_model(), profile=True)
    it.allocate_tensors()
    it.invoke()
    it.invoke()
    records = it.profile_records()
    assert [r["op_name"] for r in records] == ["ADD", "MUL", "SUB"] * 2
    assert [r["op_index"] for r in records] == [0, 1, 2] * 2
    assert all(r["microseconds"] > 0 for r in records)
    plain = edgeplex.Interpreter(model_content=_model())
    with pytest.raises(InterpreterError, match="profiling is off"):
        plain.profile_records()


def test_num_threads_is_validated_and_accepted() -> None:
    it = edgeplex.Interpreter(model_content=_model(), num_threads=2)
    it.allocate_tensors()
    it.invoke()
    with pytest.raises(ValueError, match="num_threads"):
        edgeplex.Interpreter(model_content=_model(), num_threads="two")


def test_model_path_and_content_are_exclusive(tmp_path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        edgeplex.Interpreter()
    path = tmp_path / "m.tflite"
    path.write_bytes(_model())
    with pytest.raises(ValueError, match="exactly one"):
        edgeplex.Interpreter(model_path=str(path), model_content=_model())


def test_litert_only_options_are_accepted_and_typos_are_not() -> None:
    from ai_edge_litert.interpreter import OpResolverType
    edgeplex.Interpreter(model_content=_model(),
                         experimental_op_resolver_type=OpResolverType.AUTO).allocate_tensors()
    with pytest.raises(TypeError, match="num_thread"):
        edgeplex.Interpreter(model_content=_model(), num_thread=2)
