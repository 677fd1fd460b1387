"""The oracle harness: build small models, run them in edgeplex and in
TensorFlow Lite (ai-edge-litert), compare.

    model = one_op_model("ADD", [inp((2, 3)), inp((1, 3))],
                         {"fused_activation_function": "RELU"})
    check(model, rtol=1e-6)           # random inputs, compares every output

Tolerances are the caller's: each test states and justifies its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

import edgeplex
from edgeplex import ModelBuilder, Quantization

try:
    from ai_edge_litert.interpreter import Interpreter as _LiteRT
    from ai_edge_litert.interpreter import OpResolverType
except ImportError as e:  # pragma: no cover - the oracle is a test dependency
    raise ImportError("the tests need ai-edge-litert: pip install -e '.[test]'") from e


class LiteRT(_LiteRT):
    """LiteRT's Interpreter, checking edgeplex's writer on every model it runs.

    Each model a test hands to LiteRT is also read and re-written by edgeplex
    (``write_model(read_model(model))``); every ``invoke`` runs that copy on
    the same inputs in a twin LiteRT interpreter and asserts bit-identical
    outputs. So every model the tests use is round-tripped.
    """

    def __init__(self, model_path: Any = None, model_content: bytes | None = None,
                 **kw: Any) -> None:
        super().__init__(model_path=model_path, model_content=model_content, **kw)
        if model_content is None:
            with open(model_path, "rb") as f:
                model_content = f.read()
        self._source, self._kw, self._twin = model_content, kw, None

    def invoke(self) -> None:  # noqa: D102 - same as LiteRT's
        ins = self.get_input_details()
        values = [self.get_tensor(d["index"]) for d in ins]   # before a kernel may touch them
        super().invoke()
        twin = self._twin_interpreter()
        if any(tuple(a["shape"]) != tuple(b["shape"])
               for a, b in zip(ins, twin.get_input_details())):
            for d in ins:
                twin.resize_tensor_input(d["index"], d["shape"])
            twin.allocate_tensors()
        for d, v in zip(ins, values):
            twin.set_tensor(d["index"], v)
        _LiteRT.invoke(twin)
        for d in self.get_output_details():
            mine, theirs = self.get_tensor(d["index"]), twin.get_tensor(d["index"])
            assert mine.shape == theirs.shape and mine.tobytes() == theirs.tobytes(), (
                f"output {d['name']!r} differs after edgeplex read and re-wrote the model")

    def reset_all_variables(self) -> None:  # noqa: D102 - same as LiteRT's
        super().reset_all_variables()
        if self._twin is not None:
            self._twin.reset_all_variables()

    def _twin_interpreter(self) -> _LiteRT:
        if self._twin is None:
            rewritten = edgeplex.write_model(edgeplex.read_model(self._source))
            self._twin = _LiteRT(model_content=rewritten, **self._kw)
            self._twin.allocate_tensors()
        return self._twin

#: Which LiteRT kernels to compare against.
RESOLVERS = {
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "ref": OpResolverType.BUILTIN_REF,
    "default": OpResolverType.AUTO,
}


@dataclass(frozen=True)
class In:
    """An input placeholder for :func:`one_op_model`."""

    shape: tuple[int, ...]
    dtype: Any = np.float32
    quantization: Quantization | None = None
    name: str | None = None
    shape_signature: tuple[int, ...] | None = None


def inp(shape: Sequence[int], dtype: Any = np.float32, quantization: Quantization | None = None,
        name: str | None = None, shape_signature: Sequence[int] | None = None) -> In:
    """A model input of this shape and dtype."""
    return In(tuple(shape), dtype, quantization, name,
              None if shape_signature is None else tuple(shape_signature))


@dataclass(frozen=True)
class Const:
    """A constant input for :func:`one_op_model`."""

    value: np.ndarray
    quantization: Quantization | None = None
    name: str | None = None


def const(value: Any, dtype: Any = None, quantization: Quantization | None = None,
          name: str | None = None) -> Const:
    """A constant operand holding ``value``."""
    return Const(np.asarray(value, dtype=dtype), quantization, name)


def one_op_model(op: str, inputs: Sequence[In | Const | None],
                 options: Mapping[str, Any] | None = None, *, outputs: int = 1,
                 out_dtype: Any = None, out_quantization: Any = None,
                 out_shapes: Sequence[Sequence[int]] | None = None, version: int = 1,
                 custom_options: bytes | None = None) -> bytes:
    """A model holding one op; its non-constant inputs are the model inputs.

    ``out_quantization`` may be one Quantization or a list (one per output).
    """
    mb = ModelBuilder()
    g = mb.main
    refs = [_operand(g, x, i) for i, x in enumerate(inputs)]
    outs = _outputs(g, op, outputs, out_dtype, out_quantization, out_shapes, refs)
    g.op(op, refs, options, outputs=outs, version=version, custom_options=custom_options)
    g.output(*outs)
    return mb.build()


def _operand(g: Any, x: In | Const | None, i: int) -> Any:
    if x is None:
        return None
    if isinstance(x, Const):
        return g.constant(x.name or f"const{i}", x.value, quantization=x.quantization)
    return g.input(x.name or f"input{i}", x.shape, x.dtype, quantization=x.quantization,
                   shape_signature=x.shape_signature)


def _outputs(g: Any, op: str, n: int, dtype: Any, quant: Any, shapes: Any, refs: list) -> list:
    first = next((r for r in refs if r is not None), None)
    dt = dtype if dtype is not None else (first.dtype if first is not None else np.float32)
    quants = quant if isinstance(quant, (list, tuple)) else [quant] * n
    return [g.tensor(f"output{i}", None if shapes is None else shapes[i], dt,
                     quantization=quants[i]) for i in range(n)]


# -- running ---------------------------------------------------------------------
def random_inputs(model: bytes, seed: int = 0, low: float = -3.0, high: float = 3.0
                  ) -> list[np.ndarray]:
    """Random values for every model input, by dtype."""
    rng = np.random.default_rng(seed)
    it = edgeplex.Interpreter(model_content=model)
    return [random_array(rng, tuple(d["shape"]), np.dtype(d["dtype"]), low, high)
            for d in it.get_input_details()]


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype,
                 low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """Uniform floats in [low, high), full-range small ints, or random bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(low, high, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = (max(info.min, -100), min(info.max, 100)) if dtype.itemsize >= 4 else (
            info.min, info.max)
        return rng.integers(lo, hi, shape, endpoint=True).astype(dtype)
    raise TypeError(f"no random values for {dtype}")


def run_litert(model: bytes, inputs: Sequence[np.ndarray], resolver: str = "builtin",
               num_threads: int = 1) -> list[np.ndarray]:
    """Outputs of TensorFlow Lite on ``inputs`` (resized to their shapes)."""
    it = LiteRT(model_content=model, experimental_op_resolver_type=RESOLVERS[resolver],
                num_threads=num_threads)
    return _run(it, inputs)


def run_edgeplex(model: bytes, inputs: Sequence[np.ndarray], **kw: Any) -> list[np.ndarray]:
    """Outputs of edgeplex on ``inputs`` (resized to their shapes)."""
    return _run(edgeplex.Interpreter(model_content=model, **kw), inputs)


def _run(it: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    details = it.get_input_details()
    resized = False
    for d, x in zip(details, inputs):
        if tuple(d["shape"]) != np.shape(x):
            it.resize_tensor_input(d["index"], np.shape(x))
            resized = True
    it.allocate_tensors()
    for d, x in zip(details, inputs):
        it.set_tensor(d["index"], np.asarray(x))
    it.invoke()
    del resized
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def assert_close(got: Sequence[np.ndarray], want: Sequence[np.ndarray], rtol: float,
                 atol: float, exact: bool = False, what: str = "") -> None:
    """Compare output lists: dtype and shape exactly, values within tolerance."""
    assert len(got) == len(want), f"{what}: {len(got)} outputs vs {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype, f"{what} output {i}: dtype {g.dtype} vs LiteRT {w.dtype}"
        assert g.shape == w.shape, f"{what} output {i}: shape {g.shape} vs LiteRT {w.shape}"
        if exact or g.dtype.kind not in "fc":
            bad = np.flatnonzero(g.reshape(-1) != w.reshape(-1))
            assert bad.size == 0, (f"{what} output {i}: {bad.size} of {g.size} values differ; "
                                   f"first at flat index {bad[0]}: {g.reshape(-1)[bad[0]]} vs "
                                   f"LiteRT {w.reshape(-1)[bad[0]]}")
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol,
                                       err_msg=f"{what} output {i}")


def check(model: bytes, inputs: Sequence[np.ndarray] | None = None, *, rtol: float = 1e-5,
          atol: float = 1e-6, exact: bool = False, resolver: str = "builtin", seed: int = 0,
          what: str = "") -> list[np.ndarray]:
    """Run ``model`` in both runtimes and assert the outputs agree; returns edgeplex's."""
    if inputs is None:
        inputs = random_inputs(model, seed)
    want = run_litert(model, inputs, resolver)
    got = run_edgeplex(model, inputs)
    assert_close(got, want, rtol, atol, exact, what)
    return got


def check_roundtrip(model: bytes, inputs: Sequence[np.ndarray] | None = None, *,
                    rtol: float = 0.0, atol: float = 0.0) -> bytes:
    """Read and re-write ``model``; LiteRT must give identical outputs for both."""
    rewritten = edgeplex.write_model(edgeplex.read_model(model))
    if inputs is None:
        inputs = random_inputs(model)
    assert_close(run_litert(rewritten, inputs), run_litert(model, inputs), rtol, atol,
                 exact=(rtol == 0 and atol == 0), what="round trip")
    return rewritten
