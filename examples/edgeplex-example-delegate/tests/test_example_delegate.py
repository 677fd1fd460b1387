"""The example delegate's own tests: conformance kit, refusals with reasons, options."""
from __future__ import annotations

import numpy as np
import pytest

import edgeplex
from edgeplex.testing import check_delegate

try:
    from edgeplex_example_delegate import ExampleDelegate
except ImportError as e:        # collected with edgeplex's suite before being installed
    MISSING: ImportError | None = e
else:
    MISSING = None


@pytest.fixture(autouse=True)
def installed() -> None:
    """Fail (never skip) with the fix when the package is not installed."""
    if MISSING is not None:
        pytest.fail(f"edgeplex-example-delegate is not installed ({MISSING}); run: "
                    "pip install -e examples/edgeplex-example-delegate")


def test_conformance() -> None:
    """The kit runs the ops it claims against the CPU (or LiteRT) and checks errors."""
    report = check_delegate(ExampleDelegate)
    if not report.available:                      # honest skip: never an early return
        pytest.skip(report.unavailable_reason)
    report.assert_ok(min_compared=4)
    assert {"add_none", "add_relu", "mul_broadcast", "add_constant"} <= set(report.compared)


def _model(op: str, act: str = "NONE", dtype: type = np.float32) -> bytes:
    mb = edgeplex.ModelBuilder()
    g = mb.main
    a = g.input("a", (2, 3), dtype)
    ins = [a] if op == "RELU" else [a, g.input("b", (2, 3), dtype)]
    out = g.tensor("out", (2, 3), dtype)
    g.op(op, ins, None if op == "RELU" else {"fused_activation_function": act}, outputs=[out])
    g.output(out)
    return mb.build()


@pytest.mark.parametrize("op,act,dtype,reason", [
    ("SUB", "NONE", np.float32, "SUB is not one of ADD, MUL, RELU"),
    ("ADD", "RELU6", np.float32, "fused activation RELU6 is not supported"),
    ("ADD", "NONE", np.int32, "only float32"),
])
def test_refusals_carry_reasons(op: str, act: str, dtype: type, reason: str) -> None:
    """What the delegate declines shows up in the placement report with its reason."""
    it = edgeplex.Interpreter(model_content=_model(op, act, dtype),
                              experimental_delegates=[ExampleDelegate()])
    it.allocate_tensors()
    verdict = next(v for v in it.placement.nodes[0].verdicts if v.delegate == "example")
    assert not verdict.supported and reason in verdict.reason
    assert it.placement.nodes[0].delegate == "cpu"


def test_takes_its_ops_and_matches_numpy() -> None:
    """ADD with fused RELU runs on the delegate and equals numpy."""
    it = edgeplex.Interpreter(model_content=_model("ADD", "RELU"),
                              experimental_delegates=[ExampleDelegate()])
    it.allocate_tensors()
    assert it.placement.nodes_on("example") == [0]
    a = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    b = np.ones((2, 3), np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], a)
    it.set_tensor(it.get_input_details()[1]["index"], b)
    it.invoke()
    np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]),
                                  np.maximum(a + b, 0))


def test_options_are_validated() -> None:
    """Unknown options and bad values are ConfigErrors naming them."""
    with pytest.raises(edgeplex.ConfigError, match="unknown option.*'precision'.*min_elements"):
        edgeplex.load_delegate("example", {"precision": "fp16"})
    with pytest.raises(edgeplex.ConfigError, match="ops"):
        edgeplex.load_delegate("example", {"ops": ["CONV_2D"]})
    with pytest.raises(edgeplex.ConfigError, match="min_elements"):
        edgeplex.load_delegate("example", {"min_elements": "many"})


def test_min_elements_leaves_small_nodes_to_the_cpu() -> None:
    """The option changes what the delegate claims."""
    it = edgeplex.Interpreter(model_content=_model("MUL"),
                              delegates=["example"], delegate_options={
                                  "example": {"min_elements": 100}})
    it.allocate_tensors()
    assert it.placement.nodes_on("example") == []
    assert "fewer than min_elements = 100" in it.placement.nodes[0].verdicts[0].reason
