"""Delegates inside the interpreter: the contract, the CPU delegate's fast path,
handoffs between memory domains, fault isolation and strictness, partition models."""
from __future__ import annotations

import logging
from functools import partial
from typing import Any

import numpy as np
import pytest
from delegate_doubles import (DeviceMath, Failing, HostMath, chain_model, evaluate, run)
from oracle import run_litert

import edgeplex
from edgeplex import ConfigError, DelegateError, InterpreterError, Unsupported, UnsupportedOpError
from edgeplex.delegates.cpu import CPUDelegate

RNG = np.random.default_rng(7)


def inputs(shape: tuple[int, ...] = (2, 3)) -> list[np.ndarray]:
    return [RNG.uniform(-2, 2, shape).astype(np.float32) for _ in range(2)]


def cpu_result(model: bytes, xs: list[np.ndarray]) -> list[np.ndarray]:
    return run(model, xs)[1]


# -- the contract ---------------------------------------------------------------------
def test_unsupported_is_falsy_and_carries_its_reason() -> None:
    u = Unsupported("only float32")
    assert not u and u.reason == "only float32" and str(u) == "only float32"
    assert u == Unsupported("only float32") and repr(u) == "Unsupported('only float32')"


def test_options_are_declared_validated_and_defaulted() -> None:
    assert HostMath().options == {"ops": ("ADD", "SUB", "MUL")}
    with pytest.raises(ConfigError, match=r"hostmath\] unknown option\(s\) 'opz'; valid "
                                          r"options: ops"):
        HostMath(opz=["ADD"])
    with pytest.raises(ConfigError, match=r"hostmath\] ops = 3 has type int; expected tuple "
                                          r"or list"):
        HostMath(ops=3)
    with pytest.raises(ConfigError, match=r"fail_at = 'never' is not one of"):
        Failing(fail_at="never")


def test_node_and_tensor_infos_follow_the_contract() -> None:
    mb = edgeplex.ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 4))
    c = g.constant("c", np.arange(4, dtype=np.float32).reshape(1, 4))
    out = g.tensor("out", (1, 4))
    g.op("ADD", [x, c], {"fused_activation_function": "RELU"}, outputs=[out])
    g.output(out)
    seen: list[Any] = []

    class Spy(HostMath):
        name = "spy"

        def supports(self, node: Any) -> bool | Unsupported:
            seen.append(node)
            return Unsupported("just looking")
    run(mb.build(), [np.ones((1, 4), np.float32)], experimental_delegates=[Spy()])
    node = seen[0]
    assert (node.index, node.op, node.version) == (0, "ADD", 1)
    assert node.options.fused_activation_function == "RELU"
    a, b = node.inputs
    assert (a.index, a.name, a.shape, a.dtype, a.data, a.quantization) == (
        0, "x", (1, 4), np.dtype(np.float32), None, None)
    assert b.name == "c" and not b.data.flags.writeable
    np.testing.assert_array_equal(b.data, np.arange(4).reshape(1, 4))
    assert node.outputs[0].name == "out"


# -- the CPU delegate -------------------------------------------------------------------
def test_cpu_only_model_runs_the_flat_kernel_steps() -> None:
    """No per-partition wrapper: every call is the kernel's own run bound to arrays."""
    it, _ = run(chain_model(["ADD", "MUL", "SUB"] * 4))
    calls = it._plan._calls
    assert len(calls) == 12 and all(isinstance(c, partial) for c in calls)
    assert all(isinstance(a, np.ndarray) for c in calls for a in c.args[0] + c.args[1])
    assert it.placement.nodes_on("cpu") == list(range(12)) and len(it.placement.partitions) == 1


def test_cpu_claims_what_the_kernels_implement_with_their_reasons() -> None:
    cpu = CPUDelegate()
    mb = edgeplex.ModelBuilder()
    g = mb.main
    out = g.tensor("out", (2,), np.float32)
    g.op("NOT_AN_OP", [g.input("x", (2,))], outputs=[out], custom_options=b"")
    g.output(out)
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(NOT_AN_OP v1\): no CPU kernel "
                                                  r"implements this op"):
        edgeplex.Interpreter(model_content=mb.build()).allocate_tensors()
    assert cpu.name == "cpu" and cpu.is_available()
    it, _ = run(chain_model(["ADD"]))
    assert cpu.supports(_node(it, 0)) is True


def _node(it: Any, index: int) -> Any:
    """The NodeInfo the delegates were asked about (rebuilt from the plan)."""
    from edgeplex.delegates.info import NodeInfo, TensorInfo
    plan = it._plan
    tensors = [TensorInfo.of(t, plan.shapes[t.index]) for t in plan.sg.tensors]
    return NodeInfo.of(plan.model, plan.sg, plan.sg.operators[index], tensors)


def test_cpu_is_always_last() -> None:
    with pytest.raises(ConfigError, match="'cpu' must come last"):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]), delegates=["cpu", "example"])


def test_cpu_prepare_is_the_generic_path() -> None:
    """CPUDelegate.prepare compiles a partition on its own (fallback, conformance)."""
    hm = HostMath()
    model = chain_model(["ADD", "MUL"])
    xs = inputs()
    run(model, xs, experimental_delegates=[hm])
    kernel = CPUDelegate().prepare(hm.prepared[0])
    np.testing.assert_allclose(kernel.invoke(xs)[0], cpu_result(model, xs)[0], rtol=1e-6)


# -- host delegates -------------------------------------------------------------------------
def test_host_delegate_takes_its_ops_and_matches_the_cpu() -> None:
    model = chain_model(["ADD", "SUB", "MUL", "SUB", "ADD"])
    xs = inputs()
    hm = HostMath(ops=["ADD", "MUL"])
    it, got = run(model, xs, experimental_delegates=[hm])
    assert it.placement.nodes_on("hostmath") == [0, 2, 4]
    assert [p.delegate for p in it.placement.partitions] == ["hostmath", "cpu", "hostmath",
                                                            "cpu", "hostmath"]
    assert it.placement.transfers == ()
    # float32 elementwise in numpy either way: identical results
    np.testing.assert_array_equal(got[0], cpu_result(model, xs)[0])


def test_delegate_order_is_priority() -> None:
    class Second(HostMath):
        name = "second"
    first, second = HostMath(ops=["ADD"]), Second(ops=["ADD", "MUL"])
    it, _ = run(chain_model(["ADD", "MUL"]), experimental_delegates=[first, second])
    assert [n.delegate for n in it.placement.nodes] == ["hostmath", "second"]


def test_intermediates_inside_a_delegate_are_not_readable() -> None:
    it, _ = run(chain_model(["ADD", "MUL", "ADD"]), experimental_delegates=[HostMath()],
                experimental_preserve_all_tensors=True)
    t1 = next(d["index"] for d in it.get_tensor_details() if d["name"] == "t1")
    with pytest.raises(InterpreterError, match="computed inside delegate 'hostmath'"):
        it.get_tensor(t1)


def test_resize_reprepares_delegates_at_the_new_shape() -> None:
    hm = HostMath()
    model = chain_model(["ADD", "MUL"])
    it = edgeplex.Interpreter(model_content=model, experimental_delegates=[hm])
    it.allocate_tensors()
    it.resize_tensor_input(0, (4, 3))
    it.resize_tensor_input(1, (4, 3))
    it.allocate_tensors()
    assert [p.inputs[0].shape for p in hm.prepared] == [(2, 3), (4, 3)]
    xs = inputs((4, 3))
    it.set_tensor(0, xs[0])
    it.set_tensor(1, xs[1])
    it.invoke()
    np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]),
                                  (xs[0] + xs[1]) * xs[1])


def test_profiling_names_delegate_steps() -> None:
    it, _ = run(chain_model(["ADD", "SUB"]), experimental_delegates=[HostMath(ops=["ADD"])],
                profile=True)
    names = [r["op_name"] for r in it.profile_records()]
    assert names == ["hostmath: partition 0 (nodes 0: ADD)", "SUB"]


def test_variable_tensors_keep_their_nodes_on_the_cpu() -> None:
    mb = edgeplex.ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 3))
    state = g.variable("state", (2, 3))
    out = g.tensor("out", (2, 3))
    g.op("ADD", [x, state], outputs=[out])
    g.output(out)
    it, _ = run(mb.build(), [np.ones((2, 3), np.float32)], experimental_delegates=[HostMath()])
    verdict = it.placement.nodes[0].verdicts[0]
    assert (verdict.supported, verdict.source) == (False, "framework")
    assert "variable tensor" in verdict.reason and it.placement.nodes[0].delegate == "cpu"


# -- handoffs between memory domains -----------------------------------------------------
def minimum_transfers(placement: Any) -> int:
    """Count independently: each partition input not already in its domain moves once per
    domain; outputs produced off the host move back once."""
    home, needed = {}, set()
    for p in placement.partitions:
        for t in p.inputs:
            if home.get(t, "host") != p.domain:
                needed.add((t, p.domain))
        home.update({t: p.domain for t in p.outputs})
    last = placement.partitions[-1]
    return len(needed) + (1 if last.domain != "host" else 0)


def test_alternating_device_and_cpu_ops_move_each_tensor_once_per_invoke() -> None:
    ops = ["ADD", "SUB", "MUL", "SUB", "ADD", "SUB", "MUL"]
    model = chain_model(ops)
    xs = inputs()
    dev = DeviceMath(ops=["ADD", "MUL"])
    it, got = run(model, xs, experimental_delegates=[dev])
    np.testing.assert_array_equal(got[0], cpu_result(model, xs)[0])
    placement = it.placement
    assert [p.delegate for p in placement.partitions] == ["testdev", "cpu"] * 3 + ["testdev"]
    expected = minimum_transfers(placement)
    # x and y go in once (y is reused by all four device partitions), each boundary once
    assert expected == 2 + 3 + 3 + 1 == len(placement.transfers) == 9
    assert len(dev.from_host_calls) + len(dev.to_host_calls) == expected
    dev.reset_counts()
    it.invoke()
    it.invoke()
    assert len(dev.from_host_calls) + len(dev.to_host_calls) == 2 * expected
    assert len(dev.from_host_calls) == 2 * 5 and len(dev.to_host_calls) == 2 * 4


def test_consecutive_partitions_in_one_domain_stay_off_the_host() -> None:
    """Two delegates sharing memory domain "testdev" hand values over directly."""
    class Neighbour(DeviceMath):
        name = "neighbour"
    adder, muller = DeviceMath(ops=["ADD"]), Neighbour(ops=["MUL"])
    model = chain_model(["ADD", "MUL", "ADD", "MUL"])
    xs = inputs()
    it, got = run(model, xs, experimental_delegates=[adder, muller])
    assert [p.delegate for p in it.placement.partitions] == ["testdev", "neighbour"] * 2
    assert [(t.tensor, t.src, t.dst) for t in it.placement.transfers] == [
        ("x", "host", "testdev"), ("y", "host", "testdev"), ("t3", "testdev", "host")]
    np.testing.assert_allclose(got[0], cpu_result(model, xs)[0], rtol=1e-6)


def test_device_handles_never_reach_numpy() -> None:
    """DeviceHandle raises on numpy conversion; a full run proves the framework only
    crosses domains through to_host/from_host."""
    model = chain_model(["ADD", "SUB", "ADD"])
    it, got = run(model, inputs(), experimental_delegates=[DeviceMath(ops=["ADD"])])
    assert got[0].dtype == np.float32


# -- fault isolation and strictness --------------------------------------------------------
def test_delegate_failing_at_init_is_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(HostMath):
        name = "broken"

        def is_available(self) -> bool:
            return False

        def unavailable_reason(self) -> str:
            return "no device node /dev/broken"
    with caplog.at_level(logging.WARNING, "edgeplex.delegates"):
        it, _ = run(chain_model(["ADD"]), experimental_delegates=[Broken()])
    assert "no device node /dev/broken" in caplog.text
    row = next(d for d in it.placement.delegates if d.name == "broken")
    assert not row.available and row.reason == "no device node /dev/broken"
    assert it.placement.nodes[0].delegate == "cpu"
    assert "UNAVAILABLE: no device node" in str(it.placement)


def test_availability_check_raising_counts_as_unavailable() -> None:
    it, _ = run(chain_model(["ADD"]), experimental_delegates=[Failing(fail_at="available")])
    row = next(d for d in it.placement.delegates if d.name == "failing")
    assert "OSError: failing delegate: driver probe crashed" in row.reason


def test_supports_raising_counts_as_unsupported_with_the_text() -> None:
    model = chain_model(["ADD", "MUL"])
    xs = inputs()
    it, got = run(model, xs, experimental_delegates=[Failing(fail_at="supports",
                                                             fail_ops=["MUL"])])
    v = it.placement.nodes[1].verdicts[0]
    assert (v.supported, v.source) == (False, "error")
    assert v.reason == "supports() raised ValueError: failing delegate: cannot inspect MUL"
    assert [n.delegate for n in it.placement.nodes] == ["failing", "cpu"]
    np.testing.assert_array_equal(got[0], cpu_result(model, xs)[0])


def test_prepare_failure_falls_back_to_the_next_claimant(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    model = chain_model(["ADD", "MUL"])
    xs = inputs()
    second = HostMath()
    with caplog.at_level(logging.WARNING, "edgeplex.delegates"):
        it, got = run(model, xs, experimental_delegates=[Failing(fail_at="prepare"), second])
    assert "failed to prepare partition 0 (nodes 0-1: ADD, MUL)" in caplog.text
    assert [n.delegate for n in it.placement.nodes] == ["hostmath", "hostmath"]
    fb = it.placement.prepare_fallbacks[0]
    assert (fb.delegate, fb.nodes) == ("failing", (0, 1)) and "compiler crashed" in fb.error
    v = it.placement.nodes[0].verdicts[0]
    assert v.source == "prepare" and "prepare failed: RuntimeError" in v.reason
    assert "prepare fallback: failing nodes 0-1" in str(it.placement)
    np.testing.assert_array_equal(got[0], cpu_result(model, xs)[0])


def test_prepare_failure_can_raise() -> None:
    with pytest.raises(DelegateError, match=r"delegate 'failing' failed to prepare partition 0 "
                                            r"\(nodes 0-1: ADD, MUL\): RuntimeError"):
        run(chain_model(["ADD", "MUL"]), experimental_delegates=[Failing(fail_at="prepare")],
            config={"edgeplex": {"fallback": {"on_prepare_error": "raise"}}})


def test_invoke_failure_is_a_delegate_error_naming_delegate_and_partition() -> None:
    with pytest.raises(DelegateError, match=r"delegate 'failing' failed in invoke of partition "
                                            r"1 \(nodes 1: MUL\): RuntimeError: failing "
                                            r"delegate: device lost"):
        run(chain_model(["SUB", "MUL"]), experimental_delegates=[Failing(fail_at="invoke",
                                                                         ops=["MUL"])])


def test_invoke_failure_can_rerun_on_the_cpu_and_is_counted() -> None:
    model = chain_model(["SUB", "MUL", "SUB"])
    xs = inputs()
    it, got = run(model, xs, experimental_delegates=[Failing(fail_at="invoke", ops=["MUL"])],
                  config={"edgeplex": {"fallback": {"on_invoke_error": "cpu"}}})
    np.testing.assert_array_equal(got[0], cpu_result(model, xs)[0])
    it.invoke()
    assert dict(it.placement.invoke_fallbacks) == {1: 2}
    assert it.placement.to_dict()["invoke_fallbacks"] == [
        {"partition": 1, "delegate": "failing", "count": 2}]


def test_device_invoke_fallback_converts_through_the_domain() -> None:
    class LostDevice(DeviceMath):
        name = "lost"

        def prepare(self, partition: Any) -> Any:
            kernel = super().prepare(partition)

            def fail(values: list) -> list:
                raise RuntimeError("device lost")
            kernel.invoke = fail  # type: ignore[method-assign]
            return kernel
    model = chain_model(["ADD", "SUB", "MUL"])
    xs = inputs()
    it, got = run(model, xs, experimental_delegates=[LostDevice()],
                  config={"edgeplex": {"fallback": {"on_invoke_error": "cpu"}}})
    np.testing.assert_allclose(got[0], cpu_result(model, xs)[0], rtol=1e-6)
    assert sum(it.placement.invoke_fallbacks.values()) == 1


def test_strict_mode_lists_every_op_left_to_the_cpu() -> None:
    strict = {"edgeplex": {"fallback": {"allow_cpu": False}}}
    with pytest.raises(UnsupportedOpError) as e:
        run(chain_model(["ADD", "SUB", "MUL", "SUB"]), experimental_delegates=[HostMath(
            ops=["ADD", "MUL"])], config=strict)
    assert str(e.value).splitlines() == [
        "allow_cpu = false, but 2 op(s) would run on the CPU because no chosen delegate takes "
        "them:",
        "  op 1 (SUB v1): hostmath: only ADD, MUL",
        "  op 3 (SUB v1): hostmath: only ADD, MUL"]
    it, _ = run(chain_model(["ADD", "MUL"]), experimental_delegates=[HostMath()],
                config=strict)
    assert it.placement.nodes_on("cpu") == []


def test_kernel_returning_the_wrong_shape_is_a_delegate_error() -> None:
    class Sloppy(HostMath):
        name = "sloppy"

        def prepare(self, partition: Any) -> Any:
            kernel = super().prepare(partition)
            kernel.invoke = lambda xs: [np.zeros((1,), np.float32)]  # type: ignore
            return kernel
    with pytest.raises(DelegateError, match=r"'sloppy' returned float32\[1\] for tensor 't0' "
                                            r"of partition 0 .*expected float32\[2, 3\]"):
        run(chain_model(["ADD"]), experimental_delegates=[Sloppy()])


def test_experimental_delegates_must_be_delegates() -> None:
    with pytest.raises(ConfigError, match=r"experimental_delegates\[0\] is 'gpu', not an "
                                          r"edgeplex delegate"):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]), experimental_delegates=["gpu"])


# -- partition models ----------------------------------------------------------------------
def test_partition_models_run_in_litert_and_stitch_into_the_full_result() -> None:
    """Every partition is prepared by a test delegate, so each gives its to_tflite();
    running them in order in LiteRT reproduces the whole model."""
    class Subber(HostMath):
        name = "subber"
    mb = edgeplex.ModelBuilder()
    g = mb.main
    x, y = g.input("x", (2, 3)), g.input("y", (2, 3))
    c = g.constant("c", np.full((2, 3), 0.5, np.float32))
    names = ["a", "b", "d", "e"]
    a = g.op("ADD", [x, c], outputs=[g.tensor(names[0], (2, 3))])
    b = g.op("SUB", [a, y], outputs=[g.tensor(names[1], (2, 3))])
    d = g.op("MUL", [b, a], outputs=[g.tensor(names[2], (2, 3))])     # a skips over SUB
    e = g.op("SUB", [d, c], outputs=[g.tensor(names[3], (2, 3))])
    g.output(e, a)
    model = mb.build()
    hm, sb = HostMath(ops=["ADD", "MUL"]), Subber(ops=["SUB"])
    xs = inputs()
    it, want = run(model, xs, experimental_delegates=[hm, sb])
    parts = sorted(hm.prepared + sb.prepared, key=lambda p: p.id)
    assert len(parts) == 4
    values = {"x": xs[0], "y": xs[1]}
    for p in parts:
        sub = edgeplex.read_model(p.to_tflite())
        assert [t.name for t in (sub.main.tensors[i] for i in sub.main.inputs)] == \
            [t.name for t in p.inputs]
        outs = run_litert(p.to_tflite(), [values[t.name] for t in p.inputs])
        values.update({t.name: o for t, o in zip(p.outputs, outs)})
    # LiteRT and numpy float32 elementwise agree exactly on these ops
    np.testing.assert_array_equal(values["e"], want[0])
    np.testing.assert_array_equal(values["a"], want[1])
    assert "c" in [t.name for t in edgeplex.read_model(parts[0].to_tflite()).main.tensors]


def test_evaluate_helper_agrees_with_partitions() -> None:
    """The doubles' evaluator (used by every test delegate) is itself right."""
    hm = HostMath()
    model = chain_model(["ADD", "MUL", "SUB"])
    xs = inputs()
    run(model, xs, experimental_delegates=[hm])
    np.testing.assert_array_equal(evaluate(hm.prepared[0], xs)[0],
                                  (xs[0] + xs[1]) * xs[1] - xs[1])


def test_between_two_device_domains_the_value_goes_through_the_host_once() -> None:
    class Other(DeviceMath):
        name = "other"
        memory_domain = "otherdev"
    a, b = DeviceMath(ops=["ADD"]), Other(ops=["MUL"])
    model = chain_model(["ADD", "MUL", "SUB"])
    xs = inputs()
    it, got = run(model, xs, experimental_delegates=[a, b])
    assert [(t.tensor, t.src, t.dst) for t in it.placement.transfers] == [
        ("x", "host", "testdev"), ("y", "host", "testdev"), ("t0", "testdev", "otherdev"),
        ("y", "host", "otherdev"), ("t1", "otherdev", "host")]
    assert (len(a.to_host_calls), len(b.from_host_calls)) == (1, 2)    # t0 once; t0 and y
    np.testing.assert_allclose(got[0], cpu_result(model, xs)[0], rtol=1e-6)


def test_experimental_delegates_need_distinct_names() -> None:
    with pytest.raises(ConfigError, match="two delegates are named 'hostmath'"):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]),
                             experimental_delegates=[HostMath(), HostMath()])


def test_option_defaults_are_not_shared_between_instances() -> None:
    from edgeplex import Option

    class Listy(HostMath):
        name = "listy"
        OPTIONS = {"ops": Option(["ADD"], type=list)}
    a = Listy()
    a.options["ops"].append("MUL")
    assert Listy().options["ops"] == ["ADD"]


def test_cost_policy_uses_estimate_seconds_and_keeps_a_small_island_home() -> None:
    """The device claims the middle MUL and says it is a bit faster; with 256 KB tensors
    the two transfers cost more than that saves, so under "cost" it stays on the CPU."""
    class Estimating(DeviceMath):
        name = "estimating"

        def estimate_seconds(self, node: Any) -> float:
            self.asked = getattr(self, "asked", 0) + 1
            return 1e-6
    model = chain_model(["SUB", "MUL", "SUB"], shape=(256, 256))
    xs = inputs((256, 256))
    dev = Estimating(ops=["MUL"])
    it, got = run(model, xs, experimental_delegates=[dev],
                  config={"edgeplex": {"partitioner": {"policy": "cost"}}})
    assert dev.asked == 1 and it.placement.nodes_on("estimating") == []
    assert it.placement.nodes[1].decided_by == "cost" and it.placement.transfers == ()
    it, _ = run(model, xs, experimental_delegates=[Estimating(ops=["MUL"])])
    assert it.placement.nodes_on("estimating") == [1]           # priority would move it
    np.testing.assert_array_equal(got[0], cpu_result(model, xs)[0])


def dynamic_model(second: str) -> bytes:
    """WHERE (data-dependent output shape) feeding ``second``."""
    mb = edgeplex.ModelBuilder()
    g = mb.main
    coords = g.tensor("coords", (0, 2), np.int64)
    g.op("WHERE", [g.input("x", (2, 3))], outputs=[coords])
    out = g.tensor("out", (0, 2), np.int64)
    custom = second == "NOT_AN_OP"
    g.op(second, [coords] if custom else [coords, coords], outputs=[out],
         custom_options=b"" if custom else None)
    g.output(out)
    return mb.build()


def test_nodes_after_a_data_dependent_shape_stay_on_the_cpu() -> None:
    it = edgeplex.Interpreter(model_content=dynamic_model("ADD"),
                              experimental_delegates=[HostMath(ops=["ADD"])])
    it.allocate_tensors()
    v = it.placement.nodes[1].verdicts[0]
    assert (v.source, v.reason) == ("framework", "an input's shape is known only during invoke")


def test_cpu_only_errors_keep_the_kernels_message() -> None:
    with pytest.raises(UnsupportedOpError) as e:
        edgeplex.Interpreter(model_content=dynamic_model("NOT_AN_OP")).allocate_tensors()
    assert str(e.value) == "op 1 (NOT_AN_OP v1): no CPU kernel implements this op"
