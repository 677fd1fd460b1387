"""The edgeplex command line: run, inspect, ops; friendly errors, exit codes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeplex import ModelBuilder, Quantization
from edgeplex.cli import OPS_HEADER, main
from edgeplex.inspect import op_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 3))
    g.output(g.op("ADD", [x, g.constant("c", np.float32([1, 2, 3]))]))
    path = tmp_path / "add.tflite"
    path.write_bytes(mb.build())
    return path


def test_run_with_random_inputs(model_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(model_file), "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    assert "output 'add_0': shape [2, 3] float32" in out
    assert "over 3 run(s)" in out


def test_run_with_given_inputs_and_save(model_file: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    saved = tmp_path / "out.npz"
    assert main(["run", str(model_file), "--input", f"x={tmp_path / 'x.npy'}",
                 "--save", str(saved)]) == 0
    assert "min 1  max 3  mean 2" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(saved)["add_0"], [[1, 2, 3], [1, 2, 3]])


@pytest.mark.parametrize("argv, message", [
    (["run", "/no/such/model.tflite"], "model file not found"),
    (["run", "{model}", "--input", "nonsense"], "--input expects NAME=FILE.npy"),
    (["run", "{model}", "--input", "y=/no/file.npy"], "cannot load /no/file.npy"),
    (["run", "{model}", "--repeat", "0"], "--repeat must be at least 1"),
])
def test_user_mistakes_are_one_line_errors(argv: list[str], message: str, model_file: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    code = main([a.replace("{model}", str(model_file)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_unknown_input_name(model_file: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture) -> None:
    np.save(tmp_path / "y.npy", np.zeros((2, 3), np.float32))
    assert main(["run", str(model_file), "--input", f"y={tmp_path / 'y.npy'}"]) == 2
    assert "unknown input(s) y; the model's inputs are x" in capsys.readouterr().err


def test_model_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage")
    assert main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgeplex: ModelError:") and "Traceback" not in err


def test_inspect_reports_ops_quantization_and_memory(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 4))
    g.constant("w", np.ones((3, 4), np.int8),
               quantization=Quantization.of([0.5, 0.25, 0.125], 0, axis=0))
    g.output(g.op("MUL", [x, x]))
    path = tmp_path / "m.tflite"
    path.write_bytes(mb.build())
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "MUL" in out and "yes" in out
    assert "per-channel axis 0: 3 scales [0.5, 0.25, 0.125] zero_point=0" in out
    assert "planned activation memory" in out


def test_inspect_lists_unsupported_ops_first(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 4))
    g.output(g.op("MY_CUSTOM_OP", [x], custom_options=b"\x00",
                  outputs=[g.tensor("y", (1, 4))]))
    path = tmp_path / "custom.tflite"
    path.write_bytes(mb.build())
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.index("UNSUPPORTED") < out.index("op coverage")
    assert "MY_CUSTOM_OP v1 (FLOAT32) x1: no CPU kernel implements this op" in out


def test_op_table_in_docs_is_generated_from_the_registry() -> None:
    doc = (ROOT / "docs" / "ops.md").read_text()
    assert doc == OPS_HEADER + op_table(), (
        "docs/ops.md is out of date: run `edgeplex ops --output docs/ops.md`")


def test_console_script_is_installed() -> None:
    proc = subprocess.run([sys.executable, "-m", "edgeplex.cli", "ops"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "| ADD |" in proc.stdout
