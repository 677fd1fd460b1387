"""Sequence models, the transformer block and control flow: edgeplex vs LiteRT.

    python benchmarks/bench_seq.py [--threads 2] [--rounds 31] [--only NAME]

The models of the suite whose time is dominated by per-op and per-step
overhead: the builder's LSTM and transformer encoder block, the converter-made
recurrent fixtures (fused LSTMs and Keras 3 WHILE loops) and the int8/hybrid
LSTMs. Same harness as bench_suite.py (one process, interleaved rounds,
medians); prints ratios to LiteRT's builtin kernels and XNNPACK, and the peak
traced memory of one invoke against the planned bytes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_suite import _traced_peak  # noqa: E402
from harness import edgeplex_runner, litert_runner, measure, random_feed, table  # noqa: E402

import edgeplex  # noqa: E402
from edgeplex.hwlab import builders  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
FIXTURE_NAMES = ("keras_lstm", "keras_bidirectional_lstm", "keras_lstm_while",
                 "keras_gru_while", "keras_simple_rnn_while", "quant_int8_lstm",
                 "quant_hybrid_lstm")


def models() -> dict[str, bytes]:
    """Name -> model bytes of every benchmarked model."""
    out = {"lstm_sequence": builders.lstm_sequence(),
           "transformer_encoder": builders.transformer_encoder()}
    for name in FIXTURE_NAMES:
        out[name] = (FIXTURES / f"{name}.tflite").read_bytes()
    return out


def main() -> None:
    """Measure and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=31)
    p.add_argument("--only", default="", help="comma-separated model names")
    args = p.parse_args()
    only = set(filter(None, args.only.split(",")))
    rows = []
    for name, model in models().items():
        if only and name not in only:
            continue
        feed = random_feed(edgeplex.Interpreter(model_content=model).get_input_details())
        runners = [edgeplex_runner(model, feed, args.threads),
                   litert_runner(model, feed, args.threads, "xnnpack"),
                   litert_runner(model, feed, args.threads, "builtin")]
        measure(runners, warmup=5, rounds=args.rounds)
        ep, xnn, builtin = (r.median_ms for r in runners)
        peak, planned = _traced_peak(model, feed)
        rows.append([name, f"{ep * 1e3:.1f}", f"{xnn * 1e3:.1f}", f"{builtin * 1e3:.1f}",
                     f"{ep / xnn:.2f}", f"{ep / builtin:.2f}", f"{planned}", f"{peak}",
                     f"{peak / max(planned, 1):.2f}"])
    print(f"num_threads={args.threads}; medians in us; ratios are edgeplex / LiteRT\n")
    print(table(rows, ["model", "edgeplex", "xnnpack", "builtin", "/xnnpack", "/builtin",
                       "planned B", "peak B", "peak/planned"]))


if __name__ == "__main__":
    main()
