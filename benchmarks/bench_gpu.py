"""GPU vs CPU invoke latency of the seven MediaPipe models.

    python benchmarks/bench_gpu.py [--threads 2] [--rounds 10] [--models a,b]

Per model: median invoke latency (ms) of edgeplex with delegates ["gpu", "cpu"]
at fp32 and fp16 storage, edgeplex on its CPU kernels, and LiteRT's builtin
kernels; the GPU's first-invoke cost (allocate_tensors plus the driver's
shader compilation, paid once per process); and the GPU's largest output
difference from LiteRT relative to the output's scale. The GPU latency
includes copying the input to the GPU and the outputs back.

On Mesa's llvmpipe (the software renderer CI uses) the "GPU" is the CPU
running compiled shaders, so these numbers are informational only: they show
the delegate works end to end and what it costs there, not what a GPU does.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import edgeplex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Runner, edgeplex_runner, litert_runner, measure,  # noqa: E402
                     random_feed, table)

from edgeplex.delegates.gpu_gl import GPUDelegate  # noqa: E402
from edgeplex.hwlab.zoo import MEDIAPIPE_MODELS, mediapipe_model  # noqa: E402


def gpu_runner(model: bytes, feed: list[np.ndarray], threads: int, precision: str
               ) -> tuple[Runner, float]:
    """A GPU runner and the seconds its allocate + first invoke took."""
    t0 = time.perf_counter()
    r = edgeplex_runner(model, feed, threads, delegates=["gpu", "cpu"],
                        delegate_options={"gpu": {"precision": precision}})
    r.invoke()
    r.name = f"gpu-{precision}"
    return r, time.perf_counter() - t0


def cpu_runner(model: bytes, feed: list[np.ndarray], threads: int) -> Runner | str:
    """edgeplex's CPU kernels, or why they cannot run the model."""
    try:
        return edgeplex_runner(model, feed, threads)
    except edgeplex.EdgeplexError as e:
        return f"n/a ({str(e).splitlines()[0][:60]})"


def rel_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Largest |a - b| relative to the largest |b| of each output."""
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30))
               for x, y in zip(a, b))


def bench(name: str, threads: int, rounds: int) -> list[str]:
    """One table row."""
    model = mediapipe_model(name)
    feed = random_feed(edgeplex.Interpreter(model_content=model).get_input_details())
    g32, first32 = gpu_runner(model, feed, threads, "fp32")
    g16, first16 = gpu_runner(model, feed, threads, "fp16")
    cpu = cpu_runner(model, feed, threads)
    lite = litert_runner(model, feed, threads, "builtin")
    runners: list[Any] = [g32, g16, lite] + ([cpu] if isinstance(cpu, Runner) else [])
    measure(runners, warmup=2, rounds=rounds)
    cpu_ms = f"{cpu.median_ms:.1f}" if isinstance(cpu, Runner) else cpu
    ratio = f"{g32.median_ms / cpu.median_ms:.2f}" if isinstance(cpu, Runner) else "-"
    return [name, f"{g32.median_ms:.1f}", f"{g16.median_ms:.1f}", cpu_ms,
            f"{lite.median_ms:.1f}", ratio, f"{first32:.2f}/{first16:.2f}",
            f"{rel_diff(g32.outputs(), lite.outputs()):.1e}",
            f"{rel_diff(g16.outputs(), lite.outputs()):.1e}"]


def main() -> None:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--models", default=",".join(MEDIAPIPE_MODELS))
    args = p.parse_args()
    gpu = GPUDelegate()
    if not gpu.is_available():
        raise SystemExit(f"the gpu delegate is unavailable: {gpu.unavailable_reason()}")
    renderer = gpu.device.describe()
    print(f"GL device: {renderer}")
    if "llvmpipe" in renderer.lower() or "softpipe" in renderer.lower():
        print("NOTE: this is Mesa's software renderer: the 'GPU' runs on the CPU, so the GPU "
              "columns are informational only (correctness and overhead, not GPU speed).")
    print(f"fp16: {GPUDelegate(precision='fp16').precision_note()}")
    print(f"num_threads={args.threads} (CPU kernels and LiteRT), medians in ms\n")
    rows = [bench(m, args.threads, args.rounds) for m in args.models.split(",")]
    print(table(rows, ["model", "gpu-fp32", "gpu-fp16", "edgeplex-cpu", "litert-builtin",
                       "gpu/cpu", "first invoke s (fp32/fp16)", "gpu32 diff", "gpu16 diff"]))


if __name__ == "__main__":
    main()
