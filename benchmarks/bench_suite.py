"""The full CPU benchmark: edgeplex against LiteRT on every reference model.

    python benchmarks/bench_suite.py [--threads 2] [--rounds 15] [--quick] [--toy]

One process, same thread count for everyone, warm-up, interleaved rounds,
medians. For each model it prints the median invoke latency of edgeplex and
of LiteRT three ways (XNNPACK, builtin kernels, reference kernels) and the
ratios; then per model the load + allocate_tensors time, the planned
activation + scratch bytes and the peak Python memory traced during one
invoke; then the per-op dispatch overhead on a chain of 1,000 tiny ADDs;
then the geometric means and each target of the speed issue as met/missed.
The transformer block and the LSTM run at on-device sizes (TRANSFORMER_SIZE,
LSTM_SIZE below); ``--toy`` adds the tiny test-size versions as extra rows.
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (edgeplex_runner, geomean, litert_runner, measure,  # noqa: E402
                     random_feed, table)

import edgeplex  # noqa: E402
from edgeplex.hwlab import builders  # noqa: E402
from edgeplex.hwlab.ptq import quantize_model  # noqa: E402
from edgeplex.hwlab.zoo import MEDIAPIPE_MODELS, mediapipe_model  # noqa: E402


@dataclass
class Case:
    """A named model and whether it is float or int8."""

    name: str
    kind: str                      # "float" or "int8"
    make: Callable[[], bytes]


def _int8(make: Callable[[], bytes], samples: int = 4) -> Callable[[], bytes]:
    def build() -> bytes:
        model = make()
        details = edgeplex.Interpreter(model_content=model).get_input_details()
        calib = [random_feed(details, seed) for seed in range(samples)]
        return quantize_model(model, calib, "int8")
    return build


def cases(quick: bool) -> list[Case]:
    """Every model of the suite (``quick``: the small ones only)."""
    out = [Case(f"mediapipe/{n}", "float", lambda n=n: mediapipe_model(n))
           for n in MEDIAPIPE_MODELS]
    sizes = (96,) if quick else (96, 224)
    for size in sizes:
        alpha = 1.0 if size == 224 else 0.35
        make = (lambda size=size, alpha=alpha: builders.mobilenet_v2(size, alpha, 1000))
        out.append(Case(f"mobilenet_v2_{size}_a{alpha}", "float", make))
        out.append(Case(f"mobilenet_v2_{size}_a{alpha}_int8", "int8", _int8(make)))
    out.append(Case("transformer_encoder", "float", lambda: builders.transformer_encoder(
        **TRANSFORMER_SIZE)))
    out.append(Case("kws_dscnn_int8", "int8", _int8(builders.kws_dscnn)))
    out.append(Case("lstm_sequence", "float", lambda: builders.lstm_sequence(**LSTM_SIZE)))
    return out


#: Sizes of on-device sequence models: a BERT-tiny-like encoder block (d_model
#: 128, feed-forward 512, 64 tokens) and a 128-unit LSTM over 50 frames of 40
#: features (a keyword-spotting front end). The builders' defaults are toy
#: sizes for tests, where per-op overhead is all there is to measure; the
#: dispatch-overhead line measures that directly, and --toy adds those rows.
TRANSFORMER_SIZE = dict(seq=64, d_model=128, heads=4, ff=512, vocab=1000)
LSTM_SIZE = dict(units=128, features=40, steps=50)


def toy_cases() -> list[Case]:
    """The builders' tiny default transformer block and LSTM (overhead-bound)."""
    return [Case("toy_transformer_encoder", "toy", builders.transformer_encoder),
            Case("toy_lstm_sequence", "toy", builders.lstm_sequence)]


def _load_ms(model: bytes) -> float:
    t0 = time.perf_counter()
    edgeplex.Interpreter(model_content=model).allocate_tensors()
    return (time.perf_counter() - t0) * 1e3


def _traced_peak(model: bytes, feed: list[np.ndarray]) -> tuple[int, int]:
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), feed):
        it.set_tensor(d["index"], x)
    it.invoke()
    report = it.memory_report()
    tracemalloc.start()
    tracemalloc.reset_peak()
    it.invoke()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, report["planned_activation_bytes"] + report["scratch_bytes"]


def run_case(case: Case, threads: int, rounds: int) -> dict:
    """Time one model in all runtimes; returns one result row."""
    model = case.make()
    feed = random_feed(edgeplex.Interpreter(model_content=model).get_input_details())
    runners = [edgeplex_runner(model, feed, threads),
               litert_runner(model, feed, threads, "xnnpack"),
               litert_runner(model, feed, threads, "builtin")]
    measure(runners, rounds=rounds)
    ref = litert_runner(model, feed, threads, "ref")
    measure([ref], warmup=1, rounds=max(3, rounds // 5), budget_s=10)
    ep, xnn, builtin = runners
    peak, planned = _traced_peak(model, feed)
    return dict(name=case.name, kind=case.kind, ep=ep.median_ms, xnn=xnn.median_ms,
                builtin=builtin.median_ms, ref=ref.median_ms, load_ms=_load_ms(model),
                planned=planned, peak=peak, bytes=len(model))


def dispatch_overhead_us(threads: int) -> float:
    """Per-op time of a chain of 1,000 tiny ADDs (median of rounds)."""
    model = builders.add_chain(1000)
    runner = edgeplex_runner(model, [np.zeros(4, np.float32)], threads)
    measure([runner], rounds=30)
    return runner.median_ms * 1e3 / 1000


def main() -> None:
    """Run the suite and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="skip the 224x224 models")
    p.add_argument("--toy", action="store_true",
                   help="also time the tiny test-size transformer and LSTM (not in the means)")
    args = p.parse_args()
    rows = []
    for case in cases(args.quick) + (toy_cases() if args.toy else []):
        rows.append(run_case(case, args.threads, args.rounds))
        print(f"  measured {case.name}", file=sys.stderr, flush=True)
    print(f"num_threads={args.threads}; medians in ms; ratios are edgeplex / LiteRT\n")
    print(table([[r["name"], r["kind"], f"{r['ep']:.2f}", f"{r['xnn']:.2f}",
                  f"{r['builtin']:.2f}", f"{r['ref']:.2f}", f"{r['ep'] / r['xnn']:.2f}",
                  f"{r['ep'] / r['builtin']:.2f}", f"{r['ep'] / r['ref']:.2f}"] for r in rows],
                ["model", "kind", "edgeplex", "xnnpack", "builtin", "ref", "/xnnpack",
                 "/builtin", "/ref"]))
    print()
    print(table([[r["name"], f"{r['bytes'] / 1e6:.2f}", f"{r['load_ms']:.1f}",
                  f"{r['planned'] / 1e6:.2f}", f"{r['peak'] / 1e6:.3f}",
                  f"{r['peak'] / max(r['planned'], 1):.2f}"] for r in rows],
                ["model", "file MB", "load+alloc ms", "planned MB", "invoke peak MB",
                 "peak/planned"]))
    per_op = dispatch_overhead_us(args.threads)
    print(f"\ndispatch overhead: {per_op:.2f} us per op (chain of 1,000 ADDs)")
    _targets(rows, per_op)


def _targets(rows: list[dict], per_op: float) -> None:
    floats = [r for r in rows if r["kind"] == "float"]
    ints = [r for r in rows if r["kind"] == "int8"]
    g_fb = geomean([r["ep"] / r["builtin"] for r in floats])
    g_fx = geomean([r["ep"] / r["xnn"] for r in floats])
    g_ib = geomean([r["ep"] / r["builtin"] for r in ints])
    worst_mem = max(r["peak"] / max(r["planned"], 1) for r in rows)
    iris = next((r["load_ms"] for r in rows if r["name"].endswith("iris_landmark")), None)
    checks = [
        ("float geomean edgeplex/builtin <= 1.0", g_fb, g_fb <= 1.0),
        ("float geomean edgeplex/xnnpack <= 3.0", g_fx, g_fx <= 3.0),
        ("int8 geomean edgeplex/builtin <= 1.5", g_ib, g_ib <= 1.5),
        ("dispatch overhead <= 10 us/op", per_op, per_op <= 10),
        ("invoke peak traced memory <= 1.25x planned", worst_mem, worst_mem <= 1.25),
    ]
    if iris is not None:
        checks.append(("iris_landmark load+allocate <= 100 ms", iris, iris <= 100))
    print("\ntargets:")
    for label, value, ok in checks:
        print(f"  {'MET   ' if ok else 'MISSED'} {label}: {value:.2f}")


if __name__ == "__main__":
    main()
