"""Median invoke latency of the seven MediaPipe models: edgeplex vs LiteRT.

    python benchmarks/bench_mediapipe.py [--threads 2] [--rounds 15]

Prints one row per model with medians (ms) for edgeplex, LiteRT with its
default XNNPACK delegate and LiteRT's builtin kernels
(BUILTIN_WITHOUT_DEFAULT_DELEGATES), the ratios, and a check that outputs
agree. The bar for the foundation: edgeplex <= 3x LiteRT builtin per model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import edgeplex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (edgeplex_runner, geomean, litert_runner, measure,  # noqa: E402
                     random_feed, table)

from edgeplex.hwlab.zoo import MEDIAPIPE_MODELS, mediapipe_model  # noqa: E402


def bench(name: str, threads: int, rounds: int) -> list[str]:
    model = mediapipe_model(name)
    feed = random_feed(edgeplex.Interpreter(model_content=model).get_input_details())
    runners = [edgeplex_runner(model, feed, threads), litert_runner(model, feed, threads,
                                                                    "xnnpack"),
               litert_runner(model, feed, threads, "builtin")]
    measure(runners, rounds=rounds)
    ours, xnn, builtin = runners
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(ours.outputs(), builtin.outputs()))
    return [name, f"{ours.median_ms:.2f}", f"{xnn.median_ms:.2f}", f"{builtin.median_ms:.2f}",
            f"{ours.median_ms / xnn.median_ms:.2f}", f"{ours.median_ms / builtin.median_ms:.2f}",
            f"{err:.1e}"]


def main() -> None:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--models", default=",".join(MEDIAPIPE_MODELS))
    args = p.parse_args()
    rows = [bench(m, args.threads, args.rounds) for m in args.models.split(",")]
    print(f"MediaPipe models, num_threads={args.threads}, medians in ms\n")
    print(table(rows, ["model", "edgeplex", "litert-xnnpack", "litert-builtin",
                       "ep/xnnpack", "ep/builtin", "max|diff|"]))
    print(f"\ngeometric mean ep/xnnpack: {geomean([float(r[4]) for r in rows]):.2f}   "
          f"ep/builtin: {geomean([float(r[5]) for r in rows]):.2f}")


if __name__ == "__main__":
    main()
