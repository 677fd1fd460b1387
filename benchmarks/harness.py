"""Timing helpers shared by the benchmark scripts.

Every runtime is measured in the same process, with warm-up and interleaved
repetitions (one invoke of each runtime per round), so machine noise hits
all of them alike; we report medians and ratios, never absolute claims.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

import edgeplex

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from ai_edge_litert.interpreter import OpResolverType
except ImportError as e:  # pragma: no cover
    raise SystemExit("benchmarks need ai-edge-litert: pip install -e '.[test]'") from e

LITERT_MODES = {
    "xnnpack": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "ref": OpResolverType.BUILTIN_REF,
}


@dataclass
class Runner:
    """One runtime set up for one model: ``invoke()`` runs it once."""

    name: str
    invoke: Callable[[], Any]
    outputs: Callable[[], list[np.ndarray]]
    times_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        """Median invoke latency in milliseconds."""
        return statistics.median(self.times_ms)


def random_feed(details: Sequence[dict], seed: int = 0) -> list[np.ndarray]:
    """Random inputs matching input details (floats in [-1, 1], ints in range)."""
    rng = np.random.default_rng(seed)
    feed = []
    for d in details:
        dtype = np.dtype(d["dtype"])
        shape = tuple(d["shape"])
        if dtype.kind == "f":
            feed.append(rng.uniform(-1, 1, shape).astype(dtype))
        elif dtype.kind == "b":
            feed.append(rng.integers(0, 2, shape).astype(bool))
        elif dtype.itemsize >= 4:   # int32/int64 inputs are ids or indices: keep them small
            feed.append(rng.integers(0, 100, shape).astype(dtype))
        else:
            info = np.iinfo(dtype)
            feed.append(rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype))
    return feed


def _runner(name: str, it: Any, feed: list[np.ndarray]) -> Runner:
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), feed):
        it.set_tensor(d["index"], x)
    outs = it.get_output_details()
    return Runner(name, it.invoke, lambda: [it.get_tensor(d["index"]) for d in outs])


def edgeplex_runner(model: bytes, feed: list[np.ndarray], threads: int, **kw: Any) -> Runner:
    """edgeplex's Interpreter on ``model``."""
    return _runner("edgeplex", edgeplex.Interpreter(model_content=model, num_threads=threads,
                                                     **kw), feed)


def litert_runner(model: bytes, feed: list[np.ndarray], threads: int, mode: str) -> Runner:
    """LiteRT with one of LITERT_MODES."""
    it = LiteRT(model_content=model, num_threads=threads,
                experimental_op_resolver_type=LITERT_MODES[mode])
    return _runner(f"litert-{mode}", it, feed)


def measure(runners: Sequence[Runner], warmup: int = 3, rounds: int = 15,
            budget_s: float = 20.0) -> None:
    """Interleaved timing: each round invokes every runner once, in rotating order."""
    for r in runners:
        for _ in range(warmup):
            r.invoke()
    deadline = time.perf_counter() + budget_s
    for i in range(rounds):
        order = runners[i % len(runners):] + runners[:i % len(runners)]
        for r in order:
            t0 = time.perf_counter()
            r.invoke()
            r.times_ms.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > deadline and i >= 4:
            break


def geomean(values: Sequence[float]) -> float:
    """Geometric mean of positive values."""
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)
