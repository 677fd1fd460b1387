"""The placement report: what ran where and why, as a table and as stable JSON."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from delegate_doubles import DeviceMath, HostMath, chain_model, run

import edgeplex
from edgeplex.cli import main as cli_main
from edgeplex.partitioner import REPORT_VERSION
from edgeplex.partitioner.report import node_ranges


def device_report() -> edgeplex.Interpreter:
    it, _ = run(chain_model(["ADD", "SUB", "MUL"]),
                experimental_delegates=[DeviceMath(ops=["ADD", "MUL"])])
    return it


def test_partitions_verdicts_and_transfers() -> None:
    report = device_report().placement
    first = report.partitions[0]
    assert (first.id, first.delegate, first.domain, first.nodes) == (0, "testdev", "testdev",
                                                                      (0,))
    assert (first.ops, first.inputs, first.outputs) == ({"ADD": 1}, ("x", "y"), ("t0",))
    assert [p.delegate for p in report.partitions] == ["testdev", "cpu", "testdev"]
    sub = report.nodes[1]
    assert (sub.op, sub.delegate, sub.partition, sub.decided_by) == ("SUB", "cpu", 1, "priority")
    assert [(v.delegate, v.supported, v.reason) for v in sub.verdicts] == [
        ("testdev", False, "only ADD, MUL"), ("cpu", True, "")]
    assert [(t.tensor, t.bytes, t.src, t.dst, t.before_partition) for t in report.transfers] == [
        ("x", 24, "host", "testdev", 0), ("y", 24, "host", "testdev", 0),
        ("t0", 24, "testdev", "host", 1), ("t1", 24, "host", "testdev", 2),
        ("t2", 24, "testdev", "host", 3)]
    assert report.op_counts() == {"testdev": {"ADD": 1, "MUL": 1}, "cpu": {"SUB": 1}}


def test_the_table_reads_well() -> None:
    text = str(device_report().placement)
    lines = text.splitlines()
    assert lines[0] == "placement (subgraph 0, policy priority): 3 partition(s), 5 transfer(s)"
    assert lines[1] == "delegates: testdev [testdev], cpu [host]"
    assert "#  delegate  domain   nodes  ops     inputs  outputs" in text
    assert "0  testdev   testdev  0      ADD x1  x, y    t0" in text
    assert "t2        24     testdev -> host  end" in text
    assert "1     SUB  cpu #1      priority    no: only ADD, MUL  yes" in text


def test_json_is_stable_and_versioned() -> None:
    a = device_report().placement.to_json()
    b = device_report().placement.to_json()
    assert a == b
    doc = json.loads(a)
    assert doc["version"] == REPORT_VERSION == 1
    assert sorted(doc) == ["delegates", "estimated_seconds", "folded", "invoke_fallbacks",
                           "nodes", "partitions", "policy", "prepare_fallbacks", "subgraph",
                           "transfers", "version"]
    assert doc["transfers"][0] == {"tensor": "x", "index": 0, "bytes": 24, "from": "host",
                                   "to": "testdev", "before_partition": 0}
    assert doc["nodes"][1]["verdicts"][0] == {"delegate": "testdev", "supported": False,
                                              "reason": "only ADD, MUL", "source": "supports"}
    assert doc["delegates"][0] == {"name": "testdev", "domain": "testdev", "available": True,
                                   "reason": "", "options": {"ops": ["ADD", "MUL"]}}
    assert a == json.dumps(doc, indent=2, sort_keys=True)


def test_placement_needs_allocation() -> None:
    it = edgeplex.Interpreter(model_content=chain_model(["ADD"]))
    with pytest.raises(edgeplex.InterpreterError, match="allocate_tensors"):
        it.placement


def test_folded_nodes_are_listed_apart() -> None:
    """A node whose inputs are all constants is computed at allocation: nothing to place."""
    mb = edgeplex.ModelBuilder()
    g = mb.main
    c1 = g.constant("c1", np.ones((2, 3), np.float32))
    c2 = g.constant("c2", np.full((2, 3), 2, np.float32))
    folded = g.op("MUL", [c1, c2], outputs=[g.tensor("folded", (2, 3))])
    out = g.op("ADD", [g.input("x", (2, 3)), folded], outputs=[g.tensor("out", (2, 3))])
    g.output(out)
    it, got = run(mb.build(), [np.zeros((2, 3), np.float32)], experimental_delegates=[
        HostMath()])
    report = it.placement
    assert report.folded == (0,) and report.nodes[0].delegate == "folded"
    assert [p.nodes for p in report.partitions] == [(1,)]
    assert "folded at prepare time (constant inputs, nothing to run): 1 node(s), MUL x1: 0" \
        in str(report)
    np.testing.assert_array_equal(got[0], np.full((2, 3), 2, np.float32))


def test_node_ranges() -> None:
    assert node_ranges([0, 1, 2, 3, 5, 7, 8, 9]) == "0-3, 5, 7-9"
    assert node_ranges([]) == ""


def test_cli_inspect_prints_and_writes_the_placement(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "chain.tflite"
    model.write_bytes(chain_model(["ADD", "MUL"]))
    out = tmp_path / "placement.json"
    assert cli_main(["inspect", str(model), "--delegates", "cpu", "--placement-json",
                     str(out)]) == 0
    text = capsys.readouterr().out
    assert "placement (subgraph 0, policy priority): 1 partition(s), 0 transfer(s)" in text
    assert json.loads(out.read_text())["partitions"][0]["nodes"] == [0, 1]


def test_cli_inspect_reports_config_mistakes(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "chain.tflite"
    model.write_bytes(chain_model(["ADD"]))
    config = tmp_path / "edgeplex.toml"
    config.write_text("[edgeplex.partitioner]\npolcy = 'cost'\n")
    assert cli_main(["inspect", str(model), "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "ConfigError" in err and "unknown key 'polcy'" in err
    assert cli_main(["inspect", str(model), "--delegates", "warp-drive"]) == 1
    assert "unknown delegate 'warp-drive'" in capsys.readouterr().err
