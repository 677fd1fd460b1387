"""The example plugin package (examples/edgeplex-example-delegate), as a third
party would ship it: found through its entry point (never imported directly
here), listed by ``edgeplex delegates``, selected by config, equal to the CPU.

CI installs it (``pip install -e examples/edgeplex-example-delegate``); these
tests fail, with that instruction, when it is missing.
"""
from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from delegate_doubles import chain_model, run
from oracle import assert_close, random_inputs, run_litert

import edgeplex
from edgeplex.cli import main as cli_main
from edgeplex.delegates import discovery
from edgeplex.hwlab.zoo import FetchError, mediapipe_model

DIST = "edgeplex-example-delegate"
INSTALL = "pip install -e examples/edgeplex-example-delegate"


@pytest.fixture(autouse=True)
def installed() -> None:
    """Fail (not skip) with the fix when the example package is not installed."""
    try:
        metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        pytest.fail(f"the example plugin {DIST} is not installed; run: {INSTALL}")
    discovery.clear_cache()


def model_with_relu() -> bytes:
    mb = edgeplex.ModelBuilder()
    g = mb.main
    x, y = g.input("x", (2, 8)), g.input("y", (2, 8))
    s = g.op("ADD", [x, y], outputs=[g.tensor("sum", (2, 8))])
    d = g.op("SUB", [s, y], outputs=[g.tensor("diff", (2, 8))])
    r = g.op("RELU", [d], outputs=[g.tensor("relu", (2, 8))])
    m = g.op("MUL", [r, x], {"fused_activation_function": "RELU"},
             outputs=[g.tensor("out", (2, 8))])
    g.output(m)
    return mb.build()


def test_discovered_through_its_entry_point() -> None:
    eps = [ep for ep in metadata.entry_points(group="edgeplex.delegates") if ep.name == "example"]
    assert [ep.value for ep in eps] == ["edgeplex_example_delegate.plugin"]
    entry = discovery.registry().entry("example")
    assert (entry.plugin, entry.distribution) == ("example", DIST)
    assert entry.version == metadata.version(DIST)


def test_listed_by_edgeplex_delegates(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["delegates", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    plugin = next(p for p in listing["plugins"] if p["entry_point"] == "example")
    assert (plugin["distribution"], plugin["status"]) == (DIST, "loaded")
    delegate = plugin["delegates"][0]
    assert (delegate["name"], delegate["available"]) == ("example", True)
    assert delegate["options"]["ops"]["default"] == ["ADD", "MUL", "RELU"]
    assert cli_main(["delegates"]) == 0
    assert f"example  ({DIST} " in capsys.readouterr().out


def test_selected_by_config_takes_its_ops_and_matches_the_cpu(tmp_path: Path) -> None:
    config = tmp_path / "edgeplex.toml"
    config.write_text('[edgeplex]\ndelegates = ["example"]\nrequire = ["edgeplex-example-'
                      'delegate>=0.1"]\n[edgeplex.delegate.example]\nops = ["ADD", "MUL"]\n')
    model = chain_model(["ADD", "SUB", "MUL", "ADD"])
    xs = [np.random.default_rng(3).uniform(-2, 2, (2, 3)).astype(np.float32) for _ in "xy"]
    it, got = run(model, xs, config=str(config))
    assert it.placement.nodes_on("example") == [0, 2, 3]
    assert [p.delegate for p in it.placement.partitions] == ["example", "cpu", "example"]
    _, want = run(model, xs)
    np.testing.assert_array_equal(got[0], want[0])     # float32 numpy on both sides


def test_example_ahead_of_the_cpu_matches_litert() -> None:
    """RELU and fused RELU on the example; the rest on the CPU; LiteRT agrees."""
    model = model_with_relu()
    xs = random_inputs(model, 0)
    it, got = run(model, xs, delegates=["example", "cpu"])
    assert [n.delegate for n in it.placement.nodes] == ["example", "cpu", "example", "example"]
    assert_close(got, run_litert(model, xs), rtol=1e-6, atol=1e-6, what="example + cpu")


def test_conformance_through_the_entry_point() -> None:
    from edgeplex.testing import check_delegate
    report = check_delegate(discovery.registry().entry("example").factory)
    report.assert_ok(min_compared=4)


def test_cli_inspect_with_the_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(model_with_relu())
    assert cli_main(["inspect", str(path), "--delegates", "example,cpu"]) == 0
    text = capsys.readouterr().out
    assert "0  example   host    0      ADD x1" in text
    assert "1     SUB   cpu #1      priority    no: SUB is not one of ADD, MUL, RELU  yes" \
        in text


def test_mediapipe_face_detector_with_the_example_ahead_of_the_cpu() -> None:
    """Every ADD and RELU of face_detection_front goes to the example; outputs match
    LiteRT (tolerance as in test_mediapipe.py: float32 CNN, BLAS summation order)."""
    try:
        model = mediapipe_model("face_detection_front")
    except FetchError as e:
        pytest.fail(f"cannot fetch the MediaPipe models: {e}")
    it = edgeplex.Interpreter(model_content=model, delegates=["example"])
    it.allocate_tensors()
    report = it.placement
    counts = report.op_counts()
    assert set(counts["example"]) == {"ADD", "RELU"}
    assert counts["example"]["ADD"] == 16 and counts["example"]["RELU"] == 17
    assert "ADD" not in counts.get("cpu", {}) and report.transfers == ()
    xs = random_inputs(model, 0, low=-1.0, high=1.0)
    for d, x in zip(it.get_input_details(), xs):
        it.set_tensor(d["index"], x)
    it.invoke()
    got = [it.get_tensor(d["index"]) for d in it.get_output_details()]
    want = run_litert(model, xs)
    scale = max(float(np.max(np.abs(w))) for w in want)
    assert_close(got, want, rtol=1e-4, atol=1e-4 * scale, what="face_detection_front")
