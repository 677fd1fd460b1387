"""Selecting delegates: edgeplex.toml, keyword arguments, environment; every
mistake is a ConfigError naming the key."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from delegate_doubles import HostMath, chain_model, run

import edgeplex
from edgeplex import ConfigError
from edgeplex.delegates.config import check_requirements, load_settings, parse_config

FULL = """
[edgeplex]
delegates = ["gpu", "cpu"]
disable_plugins = ["acme"]
require = ["acme-edgeplex>=1.2"]

[edgeplex.delegate.gpu]
precision = "fp16"

[edgeplex.partitioner]
policy = "cost"
min_nodes_per_partition = 2
max_partitions = 3
exclude = { gpu = ["SOFTMAX", "node:17"] }
pin = { cpu = ["logits"] }

[edgeplex.fallback]
allow_cpu = false
on_prepare_error = "raise"
on_invoke_error = "cpu"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgeplex.toml"
    path.write_text(text)
    return path


def test_the_design_schema_parses(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FULL), environ={})
    assert s.delegates == ("gpu",)                       # cpu is implied last
    assert (s.disable_plugins, s.require) == (("acme",), ("acme-edgeplex>=1.2",))
    assert s.delegate_options == {"gpu": {"precision": "fp16"}}
    assert (s.policy, s.min_nodes_per_partition, s.max_partitions) == ("cost", 2, 3)
    assert s.exclude == {"gpu": ("SOFTMAX", "node:17")} and s.pin == {"cpu": ("logits",)}
    assert (s.allow_cpu, s.on_prepare_error, s.on_invoke_error) == (False, "raise", "cpu")


@pytest.mark.parametrize("doc,message", [
    ({"edgplex": {}}, r"unknown key 'edgplex' \(did you mean 'edgeplex'\?\)"),
    ({"edgeplex": {"delegate_order": []}}, r"\[edgeplex\] unknown key 'delegate_order'"),
    ({"edgeplex": {"partitioner": {"polcy": "cost"}}},
     r"\[edgeplex.partitioner\] unknown key 'polcy' \(did you mean 'policy'\?\)"),
    ({"edgeplex": {"fallback": {"allow_gpu": True}}}, r"\[edgeplex.fallback\] unknown key"),
    ({"edgeplex": {"partitioner": {"policy": "fastest"}}},
     r"\[edgeplex.partitioner\] policy = 'fastest' must be one of 'priority', 'cost'"),
    ({"edgeplex": {"partitioner": {"min_nodes_per_partition": 0}}},
     r"min_nodes_per_partition = 0 must be an integer >= 1"),
    ({"edgeplex": {"partitioner": {"max_partitions": True}}},
     r"max_partitions = True must be an integer >= 0"),
    ({"edgeplex": {"partitioner": {"exclude": {"gpu": "SOFTMAX"}}}},
     r"exclude.gpu = 'SOFTMAX' must be a list of non-empty strings"),
    ({"edgeplex": {"fallback": {"allow_cpu": "no"}}}, r"allow_cpu = 'no' must be true or false"),
    ({"edgeplex": {"fallback": {"on_prepare_error": "ignore"}}},
     r"on_prepare_error = 'ignore' must be one of 'cpu', 'raise'"),
    ({"edgeplex": {"fallback": {"on_invoke_error": "retry"}}},
     r"on_invoke_error = 'retry' must be one of 'raise', 'cpu'"),
    ({"edgeplex": {"delegates": "gpu"}}, r"\[edgeplex\] delegates = 'gpu' must be a list"),
    ({"edgeplex": {"delegates": ["gpu", "gpu"]}}, r"gpu listed more than once"),
    ({"edgeplex": {"delegates": ["cpu", "gpu"]}}, r"'cpu' must come last"),
    ({"edgeplex": {"delegate": {"gpu": 3}}}, r"\[edgeplex.delegate.gpu\] must be a table"),
])
def test_mistakes_name_the_key(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(doc, "edgeplex.toml")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[edgeplex\n"), environ={})


def test_precedence_env_over_keywords_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[edgeplex]\ndelegates = ["a"]\n[edgeplex.delegate.a]\nx = 1\n')
    assert load_settings(path, environ={}).delegates == ("a",)
    s = load_settings(path, delegates=["b"], delegate_options={"a": {"y": 2}}, environ={})
    assert s.delegates == ("b",) and s.delegate_options == {"a": {"x": 1, "y": 2}}
    s = load_settings(path, delegates=["b"], environ={"EDGEPLEX_DELEGATES": "c, cpu"})
    assert s.delegates == ("c",)
    assert load_settings(environ={"EDGEPLEX_CONFIG": str(path)}).delegates == ("a",)
    with pytest.raises(ConfigError, match="delegates= must be a list"):
        load_settings(delegates="example", environ={})


def test_environment_selects_delegates_for_the_interpreter(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEPLEX_CONFIG", str(write(tmp_path, """
[edgeplex.partitioner]
exclude = { cpu = ["SUB"] }
""")))
    with pytest.raises(edgeplex.UnsupportedOpError, match=r"op 1 \(SUB v1\): cpu: excluded "
                                                          r"by rule exclude.cpu = 'SUB'"):
        run(chain_model(["ADD", "SUB"]))
    monkeypatch.setenv("EDGEPLEX_DELEGATES", "no-such-delegate")
    with pytest.raises(ConfigError, match="unknown delegate 'no-such-delegate'; available "
                                          "delegates: .*cpu"):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]))


def test_unknown_delegate_and_unknown_option_name_what_is_valid() -> None:
    model = chain_model(["ADD"])
    with pytest.raises(ConfigError, match=r"unknown delegate 'tpu'; available delegates:"):
        edgeplex.Interpreter(model_content=model, delegates=["tpu"])
    with pytest.raises(ConfigError, match=r"\[edgeplex.delegate.tpu\] .*unknown delegate|"
                                          r"unknown delegate 'tpu'"):
        edgeplex.Interpreter(model_content=model, delegate_options={"tpu": {}})
    with pytest.raises(ConfigError, match=r"\[edgeplex.delegate.cpu\] unknown option\(s\) "
                                          r"'threads'; valid options: none"):
        edgeplex.Interpreter(model_content=model, delegate_options={"cpu": {"threads": 2}})
    with pytest.raises(ConfigError, match="delegate_options.*must be a dict"):
        edgeplex.Interpreter(model_content=model, delegate_options={"cpu": 2})


def test_load_delegate_validates_options() -> None:
    cpu = edgeplex.load_delegate("cpu")
    assert cpu.name == "cpu"
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'x'"):
        edgeplex.load_delegate("cpu", {"x": 1})
    with pytest.raises(ConfigError, match="unknown delegate 'nope'"):
        edgeplex.load_delegate("nope")


# -- require -------------------------------------------------------------------------------
def test_require_names_what_is_missing() -> None:
    versions = {"acme-edgeplex": "1.1.0", "numpy": "2.1"}
    check_requirements(["numpy>=1.24,<3", "acme-edgeplex~=1.1"], version_of=versions.get)
    with pytest.raises(ConfigError) as e:
        check_requirements(["acme-edgeplex>=1.2", "zeta-npu", "numpy!=2.1"], "edgeplex.toml",
                           versions.get)
    assert str(e.value) == (
        "edgeplex.toml: [edgeplex] require is not met: 'acme-edgeplex>=1.2': acme-edgeplex "
        "1.1.0 is installed, need >=1.2; 'zeta-npu': zeta-npu is not installed; 'numpy!=2.1':"
        " numpy 2.1 is installed, need !=2.1")
    with pytest.raises(ConfigError, match="cannot read 'acme>>1'"):
        check_requirements(["acme>>1"], version_of=versions.get)


def test_require_is_checked_by_the_interpreter() -> None:
    model = chain_model(["ADD"])
    run(model, config={"edgeplex": {"require": ["numpy>=1.0", "edgeplex>=0.1"]}})
    with pytest.raises(ConfigError, match="edgeplex-nonexistent-plugin is not installed"):
        run(model, config={"edgeplex": {"require": ["edgeplex-nonexistent-plugin>=1"]}})


# -- exclude / pin rules --------------------------------------------------------------------
def rules(**partitioner: Any) -> dict[str, Any]:
    return {"edgeplex": {"partitioner": partitioner}}


@pytest.mark.parametrize("pattern,excluded", [
    ("MUL", [1, 3]), ("node:2", [2]), ("t3", [3]),
])
def test_exclude_by_op_node_or_tensor(pattern: str, excluded: list[int]) -> None:
    model = chain_model(["ADD", "MUL", "ADD", "MUL"])
    xs = [np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)]
    it, got = run(model, xs, experimental_delegates=[HostMath()],
                  config=rules(exclude={"hostmath": [pattern]}))
    assert it.placement.nodes_on("cpu") == excluded
    for n in excluded:
        v = it.placement.nodes[n].verdicts[0]
        assert (v.source, v.reason) == ("rule", f"excluded by rule exclude.hostmath = "
                                                f"{pattern!r}")
        assert it.placement.nodes[n].decided_by.startswith("rule (hostmath)")
    np.testing.assert_array_equal(got[0], ((1 + 2) * 2 + 2) * 2 * np.ones((2, 3)))


def test_pin_to_the_cpu_by_tensor_name() -> None:
    it, _ = run(chain_model(["ADD", "MUL"]), experimental_delegates=[HostMath()],
                config=rules(pin={"cpu": ["t1"]}))
    assert [n.delegate for n in it.placement.nodes] == ["hostmath", "cpu"]
    assert it.placement.nodes[1].decided_by == "pin rule pin.cpu = 't1'"
    assert "pin rule pin.cpu = 't1'" in str(it.placement)


@pytest.mark.parametrize("cfg,message", [
    (rules(pin={"cpu": ["no_such_tensor"]}),
     r"pin.cpu: 'no_such_tensor' is not an op name, 'node:N' or a tensor name"),
    (rules(exclude={"hostmath": ["node:9"]}), r"'node:9' does not name a node of this model"),
    (rules(exclude={"tpu": ["ADD"]}), r"unknown delegate 'tpu'; available delegates"),
    (rules(pin={"cpu": ["t0"], "hostmath": ["ADD"]}), r"op 0 \(ADD v1\) is pinned twice"),
    (rules(pin={"hostmath": ["node:1"]}),
     r"pin.hostmath = 'node:1': hostmath does not take op 1 \(SUB\): only ADD"),
])
def test_bad_rules(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(chain_model(["ADD", "SUB"]), experimental_delegates=[HostMath(ops=["ADD"])],
            config=cfg)


def test_disable_plugins_cannot_disable_the_cpu() -> None:
    with pytest.raises(ConfigError, match="'cpu' delegate cannot be disabled"):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]),
                             config={"edgeplex": {"disable_plugins": ["cpu"]}})


def test_policy_and_partition_limits_reach_the_partitioner() -> None:
    model = chain_model(["ADD", "SUB", "ADD", "ADD", "SUB", "ADD"])
    it, _ = run(model, experimental_delegates=[HostMath(ops=["ADD"])],
                config=rules(min_nodes_per_partition=2))
    assert it.placement.nodes_on("hostmath") == [2, 3]
    it, _ = run(model, experimental_delegates=[HostMath(ops=["ADD"])],
                config=rules(max_partitions=1, policy="cost"))
    assert it.placement.policy == "cost"
    assert len([p for p in it.placement.partitions if p.delegate == "hostmath"]) <= 1
