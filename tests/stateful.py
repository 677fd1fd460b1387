"""Oracle checks over several invokes of one interpreter, for stateful models
(variable tensors, resource variables, CALL_ONCE) and control flow."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

import edgeplex
from oracle import RESOLVERS, LiteRT, assert_close, random_array


def invoke_all(it: Any, feeds: Sequence[Sequence[np.ndarray]], reset_at: int | None = None
               ) -> list[list[np.ndarray]]:
    """Allocate, then invoke once per feed (resetting variables before invoke
    ``reset_at``); returns every invoke's outputs."""
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    results = []
    for k, feed in enumerate(feeds):
        if k == reset_at:
            it.reset_all_variables()
        for d, x in zip(ins, feed):
            if tuple(d["shape"]) != np.shape(x):
                raise ValueError(f"feed {k}: shape {np.shape(x)} for {d['name']}")
            it.set_tensor(d["index"], x)
        it.invoke()
        results.append([it.get_tensor(d["index"]) for d in outs])
    return results


def random_feeds(model: bytes, invokes: int, seed: int = 0, low: float = -2.0,
                 high: float = 2.0) -> list[list[np.ndarray]]:
    """Random values for every model input, ``invokes`` times."""
    rng = np.random.default_rng(seed)
    details = edgeplex.Interpreter(model_content=model).get_input_details()
    return [[random_array(rng, tuple(d["shape"]), np.dtype(d["dtype"]), low, high)
             for d in details] for _ in range(invokes)]


def check_invokes(model: bytes, invokes: int = 3, reset_at: int | None = 2, seed: int = 0,
                  rtol: float = 1e-5, atol: float = 1e-6,
                  feeds: Sequence[Sequence[np.ndarray]] | None = None
                  ) -> list[list[np.ndarray]]:
    """Invoke LiteRT and edgeplex on the same feeds (random unless given), one
    interpreter each, and compare every output of every invoke."""
    feeds = feeds if feeds is not None else random_feeds(model, invokes, seed)
    want = invoke_all(LiteRT(model_content=model,
                             experimental_op_resolver_type=RESOLVERS["builtin"]),
                      feeds, reset_at)
    got = invoke_all(edgeplex.Interpreter(model_content=model), feeds, reset_at)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, rtol, atol, what=f"invoke {k}")
    return got


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> bytes:
    """The bytes of ``tests/fixtures/NAME.tflite`` (made by make_sequence_models.py)."""
    return (FIXTURES / f"{name}.tflite").read_bytes()
