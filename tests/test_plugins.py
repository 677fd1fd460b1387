"""Plugin discovery through real entry points (fake distributions written to a
temporary site directory), isolation of broken plugins, the environment
switches, tracing, and a meta-test that every hook is documented and tested."""
from __future__ import annotations

import importlib
import inspect
import logging
import re
import subprocess
import sys
import textwrap
from itertools import count
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from delegate_doubles import chain_model, run

import edgeplex
from edgeplex import ConfigError, DelegateError
from edgeplex.cli import main as cli_main
from edgeplex.delegates import discovery, hookspecs

ROOT = Path(__file__).resolve().parents[1]
_ids = count()

GOOD = """
import numpy as np
import edgeplex


class Kernel(edgeplex.DelegateKernel):
    def __init__(self, partition):
        self.partition = partition

    def invoke(self, inputs):
        a, b = inputs
        return [a + b]


class {cls}(edgeplex.Delegate):
    name = "{name}"
    OPTIONS = {{"level": edgeplex.Option(1, "how hard to try", choices=(1, 2, 3))}}

    def supports(self, node):
        if node.op != "ADD" or any(t is None or t.data is not None for t in node.inputs):
            return edgeplex.Unsupported("only ADD of two tensors")
        return True

    def prepare(self, partition):
        if len(partition.nodes) != 1:
            raise RuntimeError("one node at a time")
        return Kernel(partition)


def make_{cls}(level=1):
    return {cls}(level=level)
make_{cls}.name = "{name}-factory"


@edgeplex.hookimpl
def edgeplex_delegates():
    return [{cls}, make_{cls}]
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``site(entry_name, source, dist=...)`` installs a fake plugin distribution."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    for var in ("EDGEPLEX_LOAD_PLUGINS", "EDGEPLEX_DISABLE_PLUGINS", "EDGEPLEX_STRICT_PLUGINS",
                "EDGEPLEX_TRACE_PLUGINS", "EDGEPLEX_DELEGATES", "EDGEPLEX_CONFIG"):
        monkeypatch.delenv(var, raising=False)

    def install(entry: str, source: str, dist: str | None = None, version: str = "1.0") -> str:
        module = f"fakeplug_{entry.replace('-', '_')}_{next(_ids)}"
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        dist = dist or f"fake-{entry}"
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: "
                                       f"{version}\n")
        (info / "entry_points.txt").write_text(f"[edgeplex.delegates]\n{entry} = {module}\n")
        importlib.invalidate_caches()
        discovery.clear_cache()
        return module
    yield install
    discovery.clear_cache()


def good(name: str) -> str:
    return GOOD.format(cls=name.replace("-", "_").title().replace("_", ""), name=name)


def delegates_listing(capsys: pytest.CaptureFixture[str]) -> str:
    assert cli_main(["delegates"]) == 0
    return capsys.readouterr().out


# -- the hook ------------------------------------------------------------------------------
def test_hook_edgeplex_delegates(site: Callable[..., str], capsys: pytest.CaptureFixture[str]
                                 ) -> None:
    """Classes and factories from the hook are found through the entry point and used."""
    site("good", good("good"), dist="good-edgeplex", version="2.5")
    registry = discovery.registry()
    assert {"good", "good-factory"} <= set(registry.delegates)
    entry = registry.entry("good")
    assert (entry.plugin, entry.distribution, entry.version) == ("good", "good-edgeplex", "2.5")
    assert edgeplex.load_delegate("good-factory", {"level": 3}).options == {"level": 3}
    model = chain_model(["ADD", "SUB", "ADD"])
    xs = [np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)]
    it, got = run(model, xs, delegates=["good"], delegate_options={"good": {"level": 2}})
    assert it.placement.nodes_on("good") == [0, 2]
    np.testing.assert_array_equal(got[0], np.full((2, 3), (1 + 2 - 2) + 2, np.float32))
    out = delegates_listing(capsys)
    assert "good  (good-edgeplex 2.5)" in out and "delegate 'good': available" in out
    assert "level = 1  how hard to try  (one of 1, 2, 3)" in out
    assert "hooks: edgeplex_delegates" in out


def test_bad_option_values_are_config_errors(site: Callable[..., str]) -> None:
    site("good", good("good"))
    with pytest.raises(ConfigError, match=r"\[edgeplex.delegate.good\] level = 7 is not one of "
                                          r"1, 2, 3"):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]), delegates=["good"],
                             delegate_options={"good": {"level": 7}})


def test_prepare_failure_reaches_the_next_claimant_through_real_plugins(
        site: Callable[..., str]) -> None:
    """'good' compiles one node at a time: a two-node partition fails and goes to the CPU."""
    site("good", good("good"))
    it, _ = run(chain_model(["ADD", "ADD"]), delegates=["good"])
    assert it.placement.nodes_on("cpu") == [0, 1]
    assert "one node at a time" in it.placement.prepare_fallbacks[0].error


# -- isolation ---------------------------------------------------------------------------
BROKEN_IMPORT = "raise ImportError('libacme.so.3: cannot open shared object file')\n"
HOOK_RAISES = """
import edgeplex
@edgeplex.hookimpl
def edgeplex_delegates():
    raise RuntimeError("probe failed")
"""
MISSPELLED = """
import edgeplex
@edgeplex.hookimpl
def edgeplex_delegate():
    return []
"""
NOT_A_LIST = """
import edgeplex
@edgeplex.hookimpl
def edgeplex_delegates():
    return "acme"
"""
NAMELESS = """
import edgeplex
class Anon(edgeplex.Delegate):
    pass
@edgeplex.hookimpl
def edgeplex_delegates():
    return [Anon]
"""


@pytest.mark.parametrize("source,error", [
    (BROKEN_IMPORT, "import failed: ImportError: libacme.so.3: cannot open shared object"),
    (HOOK_RAISES, "edgeplex_delegates() failed: RuntimeError: probe failed"),
    (MISSPELLED, "invalid hook: unknown hook 'edgeplex_delegate'"),
    (NOT_A_LIST, "edgeplex_delegates() failed: TypeError: edgeplex_delegates() must return a "
                 "list, got str"),
    (NAMELESS, "has no 'name' attribute"),
])
def test_a_broken_plugin_is_listed_and_the_rest_work(
        site: Callable[..., str], capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, source: str, error: str) -> None:
    site("acme", source, dist="acme-edgeplex", version="0.9")
    site("good", good("good"))
    with caplog.at_level(logging.WARNING, "edgeplex.delegates"):
        it, _ = run(chain_model(["ADD"]), delegates=["good"])
    assert it.placement.nodes_on("good") == [0]
    assert "'acme' (acme-edgeplex 0.9) is broken and was skipped" in caplog.text
    record = discovery.registry().plugins["acme"]
    assert record.status == "broken" and error in record.error
    out = delegates_listing(capsys)
    assert "broken plugins (not loaded" in out and error in out
    with pytest.raises(ConfigError, match=r"unknown delegate 'acme'.*acme \(broken: "):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]), delegates=["acme"])


def test_strict_plugins_turns_a_broken_plugin_into_an_error(
        site: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    site("acme", BROKEN_IMPORT, dist="acme-edgeplex", version="0.9")
    site("good", good("good"))
    monkeypatch.setenv("EDGEPLEX_STRICT_PLUGINS", "1")
    with pytest.raises(DelegateError, match=r"plugin 'acme' \(acme-edgeplex 0.9\) is broken: "
                                            r"import failed: ImportError"):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]), delegates=["good"])


def test_a_delegate_failing_at_init_is_unavailable_unless_strict(
        site: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    site("shy", """
        import edgeplex
        class Shy(edgeplex.Delegate):
            name = "shy"
            def __init__(self):
                raise OSError("no /dev/shy0")
        @edgeplex.hookimpl
        def edgeplex_delegates():
            return [Shy]
    """)
    it, _ = run(chain_model(["ADD"]), delegates=["shy"])
    row = next(d for d in it.placement.delegates if d.name == "shy")
    assert not row.available and row.reason == "failed to initialise: OSError: no /dev/shy0"
    with pytest.raises(DelegateError, match="failed to initialise: OSError"):
        edgeplex.load_delegate("shy")
    monkeypatch.setenv("EDGEPLEX_STRICT_PLUGINS", "1")
    discovery.clear_cache()
    with pytest.raises(DelegateError, match="delegate 'shy' failed to initialise"):
        edgeplex.Interpreter(model_content=chain_model(["ADD"]), delegates=["shy"])


MARKER = """
import os, pathlib
pathlib.Path(os.environ["EDGEPLEX_TEST_MARKER"]).write_text("imported")
import edgeplex
@edgeplex.hookimpl
def edgeplex_delegates():
    return []
"""


@pytest.mark.parametrize("how", ["load_only", "config", "env"])
def test_unselected_or_disabled_plugins_are_never_imported(
        site: Callable[..., str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        how: str) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("EDGEPLEX_TEST_MARKER", str(marker))
    site("spy", MARKER)
    site("good", good("good"))
    config = None
    if how == "load_only":
        monkeypatch.setenv("EDGEPLEX_LOAD_PLUGINS", "good")
    elif how == "env":
        monkeypatch.setenv("EDGEPLEX_DISABLE_PLUGINS", "spy, other")
    else:
        config = {"edgeplex": {"disable_plugins": ["spy"]}}
    it, _ = run(chain_model(["ADD"]), delegates=["good"], config=config)
    assert it.placement.nodes_on("good") == [0] and not marker.exists()
    settings = discovery.LoadSettings.from_env(["spy"] if config else ())
    status = discovery.registry(settings).plugins["spy"].status
    assert status == ("not selected" if how == "load_only" else "disabled")


def test_a_cpu_only_interpreter_imports_no_third_party_plugin(
        site: Callable[..., str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("EDGEPLEX_TEST_MARKER", str(marker))
    site("spy", MARKER)
    run(chain_model(["ADD"]))
    assert not marker.exists()
    discovery.registry()                       # the full registry does import it
    assert marker.read_text() == "imported"


def test_importing_edgeplex_loads_no_plugin(site: Callable[..., str], tmp_path: Path) -> None:
    """No import-time side effects: the plugin manager is built only when needed."""
    marker = tmp_path / "marker"
    site("spy", MARKER)
    code = "import edgeplex, edgeplex.delegates.discovery, edgeplex.delegates.engine"
    env = {"EDGEPLEX_TEST_MARKER": str(marker), "PYTHONPATH": str(tmp_path / "site"),
           "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert not marker.exists()


def test_name_conflicts_are_reported(site: Callable[..., str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    site("one", good("dup"))
    site("two", good("dup"))
    with pytest.raises(ConfigError, match=r"'dup' is provided by several plugins \(one, two\)"):
        edgeplex.load_delegate("dup")
    assert "conflict: delegate 'dup' is provided by one, two" in delegates_listing(capsys)


def test_a_plugin_cannot_replace_the_cpu(site: Callable[..., str]) -> None:
    site("fakecpu", good("cpu"))
    registry = discovery.registry()
    assert registry.entry("cpu").plugin == "cpu"
    assert "built-in delegate; ignored" in registry.plugins["fakecpu"].error


def test_tracing_shows_hook_and_delegate_calls(site: Callable[..., str],
                                               monkeypatch: pytest.MonkeyPatch,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    site("good", good("good"))
    monkeypatch.setenv("EDGEPLEX_TRACE_PLUGINS", "1")
    run(chain_model(["ADD", "SUB"]), delegates=["good"])
    err = capfd.readouterr().err
    assert "edgeplex_delegates [hook]" in err
    assert "edgeplex trace: good.supports(op 1 (SUB v1)) -> only ADD of two tensors" in err
    assert "edgeplex trace: good.prepare(partition 0 (nodes 0: ADD)) -> Kernel" in err


def test_builtin_cpu_without_its_entry_point_is_registered_directly() -> None:
    """A stale install (entry points not regenerated) still has the CPU, with a note."""
    registry = discovery.make_plugin_manager(discovery.LoadSettings(), entry_points=[])
    assert registry.entry("cpu").factory.__name__ == "CPUDelegate"
    assert "entry point not installed" in registry.plugins["cpu"].note


def test_the_cpu_is_registered_through_the_package_entry_point() -> None:
    from importlib import metadata
    eps = [ep for ep in metadata.entry_points(group="edgeplex.delegates") if ep.name == "cpu"]
    assert [ep.value for ep in eps] == ["edgeplex.delegates.cpu.plugin"]
    assert discovery.registry().plugins["cpu"].distribution == "edgeplex"


# -- documentation meta-test ----------------------------------------------------------------
def hooks() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, f"{hookspecs.PROJECT}_spec")]


def test_every_hook_is_documented_and_tested() -> None:
    docs = (ROOT / "docs" / "writing-a-delegate.md").read_text()
    tests = Path(__file__).read_text()
    assert hooks() == ["edgeplex_delegates"]
    for hook in hooks():
        assert f"## Hook: `{hook}`" in docs, f"docs/writing-a-delegate.md lacks a {hook} section"
        assert f"def test_hook_{hook}(" in tests, f"no test_hook_{hook} in {Path(__file__).name}"
        assert inspect.getdoc(getattr(hookspecs, hook)).count("When called") == 1


def test_every_delegate_method_is_documented() -> None:
    docs = (ROOT / "docs" / "writing-a-delegate.md").read_text()
    for name in ("supports", "prepare", "is_available", "unavailable_reason", "to_host",
                 "from_host", "estimate_seconds", "invoke", "to_tflite", "memory_domain",
                 "OPTIONS"):
        assert re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", docs), \
            f"docs/writing-a-delegate.md does not mention {name}"
