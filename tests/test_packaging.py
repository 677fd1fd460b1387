"""The built wheel installs everything under ``edgeplex`` and nothing else."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("core", "kernels", "partitioner", "delegates", "hwlab")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps",
           "-q", "-w", str(out), str(ROOT)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"building the wheel failed:\n{proc.stderr[-2000:]}"
    (path,) = out.glob("edgeplex-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_installs_nothing_at_the_top_level_but_edgeplex(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"edgeplex"}, f"unexpected top-level entries: {tops}"
    (info,) = dist_info
    top_level = wheel.read(f"{info}/top_level.txt").decode().split()
    assert top_level == ["edgeplex"]


def test_every_source_package_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for root in SUBPACKAGES:
        for init in (ROOT / root).rglob("__init__.py"):
            rel = init.relative_to(ROOT).as_posix()
            assert f"edgeplex/{rel}" in names, f"{rel} is missing from the wheel"
    assert "edgeplex/__init__.py" in names and "edgeplex/cli.py" in names


def test_wheel_declares_the_console_script_and_dependencies(wheel: zipfile.ZipFile) -> None:
    info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert "edgeplex = edgeplex.cli:main" in entry_points
    metadata = wheel.read(f"{info}/METADATA").decode()
    for dep in ("numpy", "flatbuffers", "tflite", "pluggy"):
        assert f"Requires-Dist: {dep}" in metadata
