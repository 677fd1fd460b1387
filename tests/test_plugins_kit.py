"""edgeplex.testing, the conformance kit: it passes good delegates and catches
each kind of broken one."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from delegate_doubles import DeviceHandle, DeviceMath, Failing, HostMath, MathKernel

from edgeplex import Unsupported
from edgeplex.testing import catalog, check_delegate


def test_good_delegates_conform() -> None:
    for factory in (HostMath, DeviceMath):
        report = check_delegate(factory)
        report.assert_ok(min_compared=5)
        assert {"add_none", "sub_broadcast", "add_constant"} <= set(report.compared)
        statuses = {r.case: r.status for r in report.results}
        assert statuses["custom_unknown_op"] == "not runnable"     # declined, CPU lacks it
        assert statuses["add_relu"] == "not claimed"               # fused RELU declined


def test_wrong_results_fail() -> None:
    class OffByOne(HostMath):
        name = "offbyone"

        def prepare(self, partition: Any) -> Any:
            kernel = MathKernel(self, partition)
            real = kernel.invoke
            kernel.invoke = lambda xs: [o + 1 for o in real(xs)]  # type: ignore
            return kernel
    report = check_delegate(OffByOne)
    assert "add_none" in " ".join(report.failures)
    with pytest.raises(AssertionError, match=r"add_none: output 0: 48 of 48 values differ"):
        report.assert_ok()


def test_supports_raising_fails() -> None:
    failures = check_delegate(Failing, options={"fail_at": "supports"}).failures
    assert any("supports() must return Unsupported(reason), not raise" in f for f in failures)


def test_refusing_without_a_reason_fails() -> None:
    class Mute(HostMath):
        name = "mute"

        def supports(self, node: Any) -> bool | Unsupported:
            return False if node.op == "SUB" else super().supports(node)
    assert any("a refusal without a reason" in f for f in check_delegate(Mute).failures)


def test_bad_options_are_reported() -> None:
    report = check_delegate(HostMath, options={"ops": ["ADD"], "nope": 1})
    assert any("creating the delegate" in p and "'nope'" in p for p in report.problems)
    assert report.results == []


def test_mutating_inputs_fails() -> None:
    class Scribbler(HostMath):
        name = "scribbler"

        def prepare(self, partition: Any) -> Any:
            kernel = MathKernel(self, partition)
            real = kernel.invoke

            def invoke(xs: list) -> list:
                out = real(xs)
                xs[0][...] = 0
                return out
            kernel.invoke = invoke  # type: ignore[method-assign]
            return kernel
    failures = check_delegate(Scribbler).failures
    assert any("changed during invoke" in f for f in failures)


def test_from_host_keeping_a_reference_fails() -> None:
    class Lazy(DeviceMath):
        name = "lazy"

        def from_host(self, array: np.ndarray) -> DeviceHandle:
            handle = DeviceHandle(array)
            handle._data = array              # no copy: follows later writes
            return handle
    problems = check_delegate(Lazy).problems
    assert any("kept a reference" in p for p in problems)


def test_unavailable_delegates_report_why() -> None:
    class Absent(HostMath):
        name = "absent"

        def is_available(self) -> bool:
            return False

        def unavailable_reason(self) -> str:
            return "no /dev/absent0"
    report = check_delegate(Absent)
    assert (report.available, report.unavailable_reason) == (False, "no /dev/absent0")
    assert report.results == []


def test_extra_models_are_checked() -> None:
    from delegate_doubles import chain_model
    report = check_delegate(HostMath, models=[chain_model(["ADD", "SUB", "MUL"] * 3)])
    assert "models[0]" in report.compared


def test_the_catalog_builds_valid_models() -> None:
    names = [c.name for c in catalog()]
    assert len(names) == len(set(names)) and len(names) >= 30
