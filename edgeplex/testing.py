"""The plugin authors' conformance kit.

A delegate package's own tests call::

    from edgeplex.testing import check_delegate

    def test_conformance():
        report = check_delegate(MyDelegate)
        if not report.available:
            pytest.skip(report.unavailable_reason)
        report.assert_ok()

:func:`check_delegate` builds a catalog of small models (elementwise math
with broadcasting, constants and fused activations, activations, a few
layers, a chain, an int8 op, an unknown custom op), plus any ``models=``
you pass. For every model it runs your delegate ahead of the CPU and
compares the outputs with the CPU delegate (or with TensorFlow Lite where
the CPU has no kernel and ``ai-edge-litert`` is installed). It also checks
the error behaviour the framework relies on: ``supports`` never raises and
gives reasons, unknown options are rejected by name, kernels leave their
inputs alone and are deterministic, and a memory domain's ``to_host`` /
``from_host`` round-trip values and copy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from edgeplex.core.builder import ModelBuilder
from edgeplex.core.errors import ConfigError, EdgeplexError, UnsupportedOpError
from edgeplex.core.interpreter import Interpreter
from edgeplex.delegates.api import HOST, declared_options
from edgeplex.delegates.discovery import instantiate

BOGUS_OPTION = "edgeplex_conformance_no_such_option"
UNKNOWN_OP = "EDGEPLEX_CONFORMANCE_UNKNOWN_OP"


@dataclass(frozen=True)
class Case:
    """One model of the catalog (or one you pass), with how to feed it."""

    name: str
    model: bytes
    positive: bool = False            # inputs in (0.1, 3) instead of (-2, 2)


@dataclass
class CaseResult:
    """What happened to one case.

    ``status``: "pass" (ran on the delegate, matched), "fail", "not claimed"
    (the delegate took no node), "not runnable" (some node is taken neither
    by the delegate nor by the CPU), "no reference" (nothing to compare with).
    """

    case: str
    status: str
    claimed: list[int] = field(default_factory=list)
    detail: str = ""


@dataclass
class ConformanceReport:
    """The outcome of :func:`check_delegate`."""

    delegate: str
    available: bool = True
    unavailable_reason: str = ""
    results: list[CaseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """Every contract problem and failed case, one line each."""
        return self.problems + [f"{r.case}: {r.detail}" for r in self.results
                                if r.status == "fail"]

    @property
    def compared(self) -> list[str]:
        """Cases where the delegate ran ops and matched the reference."""
        return [r.case for r in self.results if r.status == "pass"]

    def assert_ok(self, min_compared: int = 1) -> None:
        """AssertionError listing every failure (or too few compared cases)."""
        failures = list(self.failures)
        if len(self.compared) < min_compared:
            failures.append(f"only {len(self.compared)} case(s) compared (want {min_compared}); "
                            "pass models= with ops your delegate takes")
        if failures:
            raise AssertionError(f"delegate {self.delegate!r} does not conform:\n  "
                                 + "\n  ".join(failures))

    def __str__(self) -> str:
        lines = [f"conformance of {self.delegate!r}: {len(self.compared)} compared, "
                 f"{len(self.failures)} failure(s)"]
        lines += [f"  {r.status:<13} {r.case}" + (f": {r.detail}" if r.detail else "")
                  for r in self.results]
        lines += [f"  problem       {p}" for p in self.problems]
        return "\n".join(lines)


def check_delegate(delegate: Any, *, options: dict[str, Any] | None = None,
                   models: Sequence[bytes | Case] = (), rtol: float = 1e-5, atol: float = 1e-6,
                   seed: int = 0) -> ConformanceReport:
    """Run the conformance checks on a delegate class/factory (or an instance)."""
    factory = type(delegate) if _is_instance(delegate) else delegate
    report = ConformanceReport(getattr(factory, "name", repr(factory)))
    _check_contract(factory, report)
    instance = delegate if _is_instance(delegate) else _create(factory, options or {}, report)
    if instance is None:
        return report
    if not _available(instance, report):
        return report
    if instance.memory_domain != HOST:
        _check_domain(instance, report)
    extra = [m if isinstance(m, Case) else Case(f"models[{i}]", m) for i, m in enumerate(models)]
    for case in catalog() + extra:
        report.results.append(_run_case(instance, case, rtol, atol, seed))
    return report


def _is_instance(obj: Any) -> bool:
    return not isinstance(obj, type) and callable(getattr(obj, "supports", None))


# -- contract checks ------------------------------------------------------------------
def _check_contract(factory: Any, report: ConformanceReport) -> None:
    name = getattr(factory, "name", None)
    if not isinstance(name, str) or not name:
        report.problems.append("the delegate needs a class attribute 'name' (non-empty str)")
    if not isinstance(getattr(factory, "memory_domain", HOST), str):
        report.problems.append("memory_domain must be a str")
    try:
        declared_options(factory)
        instantiate(factory, {BOGUS_OPTION: 1})
        report.problems.append(f"an unknown option {BOGUS_OPTION!r} was accepted; declare "
                               "OPTIONS (or keyword parameters) so it is rejected")
    except ConfigError as e:
        if BOGUS_OPTION not in str(e):
            report.problems.append(f"the error for an unknown option does not name it: {e}")
    except Exception as e:
        report.problems.append(f"an unknown option raised {type(e).__name__} instead of "
                               f"ConfigError: {e}")


def _create(factory: Any, options: dict[str, Any], report: ConformanceReport) -> Any:
    try:
        return instantiate(factory, options)
    except Exception as e:
        report.problems.append(f"creating the delegate with options {options!r} failed: "
                               f"{type(e).__name__}: {e}")
        return None


def _available(instance: Any, report: ConformanceReport) -> bool:
    available = instance.is_available()
    if not isinstance(available, bool):
        report.problems.append(f"is_available() returned {available!r}, not a bool")
    if not available:
        report.available = False
        report.unavailable_reason = str(instance.unavailable_reason())
        if not report.unavailable_reason:
            report.problems.append("is_available() is False but unavailable_reason() is empty")
    return bool(available)


def _check_domain(instance: Any, report: ConformanceReport) -> None:
    for dtype in (np.float32, np.int8, np.int32):
        source = (np.arange(12) - 6).astype(dtype).reshape(3, 4)
        try:
            value = instance.from_host(source)
            source += 1                                 # the device copy must not follow
            back = np.asarray(instance.to_host(value))
        except Exception as e:
            report.problems.append(f"to_host/from_host of {np.dtype(dtype).name} raised "
                                   f"{type(e).__name__}: {e}")
            continue
        if back.dtype != dtype or back.shape != (3, 4) or not np.array_equal(back, source - 1):
            report.problems.append(f"to_host(from_host(x)) does not return x for "
                                   f"{np.dtype(dtype).name} (or from_host kept a reference "
                                   "to the host array instead of copying)")


# -- running cases ---------------------------------------------------------------------
def _inputs(model: bytes, positive: bool, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    it = Interpreter(model_content=model)
    values = []
    for d in it.get_input_details():
        shape, dtype = tuple(d["shape"]), np.dtype(d["dtype"])
        if dtype.kind == "f":
            lo, hi = (0.1, 3.0) if positive else (-2.0, 2.0)
            values.append(rng.uniform(lo, hi, shape).astype(dtype))
        else:
            info = np.iinfo(dtype)
            values.append(rng.integers(max(info.min, -100), min(info.max, 100), shape,
                                       endpoint=True).astype(dtype))
    return values


def _invoke(it: Interpreter, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def _reference(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray] | None:
    try:
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        return _invoke(it, inputs)
    except UnsupportedOpError:
        pass
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRT
    except ImportError:
        return None
    from ai_edge_litert.interpreter import OpResolverType
    it = LiteRT(model_content=model,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return _invoke(it, inputs)


def _run_case(instance: Any, case: Case, rtol: float, atol: float, seed: int) -> CaseResult:
    result = CaseResult(case.name, "pass")
    try:
        it = Interpreter(model_content=case.model, experimental_delegates=[instance])
        it.allocate_tensors()
    except UnsupportedOpError as e:
        rows = getattr(e, "verdicts", {})
        problem = _verdict_problem(instance.name, rows)
        if problem:
            return CaseResult(case.name, "fail", detail=problem)
        return CaseResult(case.name, "not runnable", detail=str(e).splitlines()[-1].strip())
    except EdgeplexError as e:
        return CaseResult(case.name, "fail", detail=f"allocate_tensors: {e}")
    problem = _verdict_problem(instance.name, {n.index: n.verdicts for n in it.placement.nodes})
    if problem:
        return CaseResult(case.name, "fail", detail=problem)
    result.claimed = it.placement.nodes_on(instance.name)
    if case.name == "custom_unknown_op" and result.claimed:
        return CaseResult(case.name, "fail", result.claimed,
                          f"claimed {UNKNOWN_OP}, an op it cannot know")
    if not result.claimed:
        return CaseResult(case.name, "not claimed")
    return _compare(it, case, result, rtol, atol, seed)


def _verdict_problem(name: str, rows: dict[int, Sequence[Any]]) -> str:
    """Why the delegate's answers break the contract ('' when they do not)."""
    mine = [(n, v) for n, vs in rows.items() for v in vs if v.delegate == name]
    raised = [f"node {n}: {v.reason}" for n, v in mine if v.source == "error"]
    if raised:
        return "supports() must return Unsupported(reason), not raise: " + "; ".join(raised)
    if any(not v.supported and not v.reason.strip() for _, v in mine):
        return "a refusal without a reason: return Unsupported('why')"
    return ""


def _compare(it: Interpreter, case: Case, result: CaseResult, rtol: float, atol: float,
             seed: int) -> CaseResult:
    inputs = _inputs(case.model, case.positive, seed)
    try:
        got = _invoke(it, inputs)
        again = _invoke(it, inputs)
    except EdgeplexError as e:
        return CaseResult(case.name, "fail", result.claimed, f"invoke: {e}")
    for d, x in zip(it.get_input_details(), inputs):
        if not np.array_equal(it.get_tensor(d["index"]), x, equal_nan=True):
            return CaseResult(case.name, "fail", result.claimed,
                              f"input {d['name']!r} changed during invoke (kernels must not "
                              "write their inputs)")
    if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, again)):
        return CaseResult(case.name, "fail", result.claimed, "two invokes on the same inputs "
                          "gave different outputs")
    want = _reference(case.model, inputs)
    if want is None:
        return CaseResult(case.name, "no reference", result.claimed,
                          "the CPU has no kernel and ai-edge-litert is not installed")
    problem = _mismatch(got, want, rtol, atol)
    if problem:
        return CaseResult(case.name, "fail", result.claimed, problem)
    return result


def _mismatch(got: Sequence[np.ndarray], want: Sequence[np.ndarray], rtol: float,
              atol: float) -> str:
    for i, (g, w) in enumerate(zip(got, want)):
        if g.dtype != w.dtype or g.shape != w.shape:
            return f"output {i}: {g.dtype}{list(g.shape)} vs reference {w.dtype}{list(w.shape)}"
        if g.dtype.kind == "f":
            bad = ~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        else:
            bad = g != w
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            return (f"output {i}: {int(bad.sum())} of {g.size} values differ; first at flat "
                    f"index {k}: {g.reshape(-1)[k]} vs reference {w.reshape(-1)[k]}")
    return ""


# -- the catalog ------------------------------------------------------------------------
def catalog() -> list[Case]:
    """The built-in conformance models."""
    cases = []
    for op in ("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"):
        fused = op in ("ADD", "SUB", "MUL", "DIV")
        for act in ("NONE", "RELU") if fused else (None,):
            suffix = f"_{act.lower()}" if act else ""
            cases.append(Case(f"{op.lower()}{suffix}",
                              _binary(op, (1, 4, 4, 3), (1, 4, 4, 3), act), op == "DIV"))
        cases.append(Case(f"{op.lower()}_broadcast",
                          _binary(op, (1, 4, 4, 3), (3,), "NONE" if fused else None),
                          op == "DIV"))
    cases.append(Case("add_constant", _binary("ADD", (2, 5), (2, 5), "NONE", const=True)))
    for op in ("RELU", "RELU6", "LOGISTIC", "TANH", "ABS", "NEG", "EXP", "SQRT"):
        cases.append(Case(op.lower(), _unary(op, (2, 3, 4)), op == "SQRT"))
    cases += [Case("chain_add_relu_mul", _chain()), Case("softmax", _softmax()),
              Case("conv_2d", _conv()), Case("fully_connected", _fully_connected()),
              Case("max_pool_2d", _pool("MAX_POOL_2D")),
              Case("average_pool_2d", _pool("AVERAGE_POOL_2D")),
              Case("add_int8", _int8_add()), Case("custom_unknown_op", _custom())]
    return cases


def _build(fn: Callable[[Any], None]) -> bytes:
    mb = ModelBuilder("edgeplex conformance case")
    fn(mb.main)
    return mb.build()


def _binary(op: str, a: tuple[int, ...], b: tuple[int, ...], act: str | None,
            const: bool = False) -> bytes:
    out_shape = tuple(np.broadcast_shapes(a, b))

    def body(g: Any) -> None:
        x = g.input("a", a)
        y = g.constant("b", np.linspace(0.5, 2.0, int(np.prod(b))).reshape(b).astype(
            np.float32)) if const else g.input("b", b)
        out = g.tensor("out", out_shape)
        g.op(op, [x, y], {"fused_activation_function": act} if act else None, outputs=[out])
        g.output(out)
    return _build(body)


def _unary(op: str, shape: tuple[int, ...]) -> bytes:
    def body(g: Any) -> None:
        out = g.tensor("out", shape)
        g.op(op, [g.input("x", shape)], outputs=[out])
        g.output(out)
    return _build(body)


def _chain() -> bytes:
    def body(g: Any) -> None:
        x, y = g.input("x", (1, 8)), g.input("y", (1, 8))
        s = g.tensor("sum", (1, 8))
        r = g.tensor("relu", (1, 8))
        out = g.tensor("out", (1, 8))
        g.op("ADD", [x, y], {"fused_activation_function": "NONE"}, outputs=[s])
        g.op("RELU", [s], outputs=[r])
        g.op("MUL", [r, y], {"fused_activation_function": "NONE"}, outputs=[out])
        g.output(out)
    return _build(body)


def _softmax() -> bytes:
    def body(g: Any) -> None:
        out = g.tensor("out", (2, 10))
        g.op("SOFTMAX", [g.input("x", (2, 10))], {"beta": 1.0}, outputs=[out])
        g.output(out)
    return _build(body)


def _conv() -> bytes:
    rng = np.random.default_rng(1)

    def body(g: Any) -> None:
        w = g.constant("w", rng.uniform(-1, 1, (4, 3, 3, 2)).astype(np.float32))
        bias = g.constant("bias", rng.uniform(-1, 1, (4,)).astype(np.float32))
        out = g.tensor("out", (1, 5, 5, 4))
        g.op("CONV_2D", [g.input("x", (1, 5, 5, 2)), w, bias],
             {"padding": "SAME", "stride_w": 1, "stride_h": 1}, outputs=[out])
        g.output(out)
    return _build(body)


def _fully_connected() -> bytes:
    rng = np.random.default_rng(2)

    def body(g: Any) -> None:
        w = g.constant("w", rng.uniform(-1, 1, (3, 6)).astype(np.float32))
        out = g.tensor("out", (2, 3))
        g.op("FULLY_CONNECTED", [g.input("x", (2, 6)), w, None], outputs=[out])
        g.output(out)
    return _build(body)


def _pool(op: str) -> bytes:
    def body(g: Any) -> None:
        out = g.tensor("out", (1, 2, 2, 3))
        g.op(op, [g.input("x", (1, 4, 4, 3))], {"padding": "VALID", "stride_w": 2,
                                                  "stride_h": 2, "filter_width": 2,
                                                  "filter_height": 2}, outputs=[out])
        g.output(out)
    return _build(body)


def _int8_add() -> bytes:
    from edgeplex.core.ir import Quantization
    q = Quantization.of(0.05, 3)

    def body(g: Any) -> None:
        a = g.input("a", (2, 4), np.int8, quantization=q)
        b = g.input("b", (2, 4), np.int8, quantization=q)
        out = g.tensor("out", (2, 4), np.int8, quantization=Quantization.of(0.1, -2))
        g.op("ADD", [a, b], {"fused_activation_function": "NONE"}, outputs=[out])
        g.output(out)
    return _build(body)


def _custom() -> bytes:
    def body(g: Any) -> None:
        out = g.tensor("out", (2, 3))
        g.op(UNKNOWN_OP, [g.input("x", (2, 3))], outputs=[out], custom_options=b"")
        g.output(out)
    return _build(body)
