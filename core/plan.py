"""Compile a subgraph once into a flat list of prepared steps.

``SubgraphPlan`` runs every kernel's prepare half in op order (propagating
shapes), plans activation memory, allocates every static tensor and binds
each step to its input and output arrays. ``run()`` then only calls the
steps. Ops downstream of a data-dependent shape are prepared again during
``run()`` whenever their input shapes change, as TFLite does for dynamic
tensors.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np

from .errors import EdgeplexError, InterpreterError, ModelError, UnsupportedOpError
from .fuse import fold_biases, fuse_activations, fuse_pads, fuse_residual_adds
from .ir import Model, Operator, Subgraph
from .kernel_api import BoundRun, OpContext, Prepared, Runtime, TensorSpec
from .memory import ArenaPlan, Interval, arena_views, plan_arena

DEFAULT_MEMORY_LIMIT = 4 * 2**30


class Resolver:  # pragma: no cover - protocol documentation only
    """What a plan needs from a kernel resolver."""

    def prepare(self, ctx: OpContext) -> Prepared: ...


@dataclass
class ProfileRecord:
    """Wall time of one step of one invoke."""

    op_index: int
    op_name: str
    microseconds: float
    subgraph: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The record as a plain dict."""
        return {"op_index": self.op_index, "op_name": self.op_name,
                "microseconds": self.microseconds, "subgraph": self.subgraph}


@dataclass
class Step:
    """One op, ready to run: ``call()`` reads its inputs and writes outputs."""

    op: Operator
    call: Callable[[], Any]
    prepared: Prepared | None = None
    dynamic: bool = False

    @property
    def reads(self) -> Sequence[int]:
        """Host tensors the step reads (memory planning)."""
        return self.op.inputs

    @property
    def writes(self) -> Sequence[int]:
        """Host tensors the step writes (memory planning)."""
        return self.op.outputs

    @property
    def label(self) -> str:
        """What profiling records and errors call this step."""
        return self.op.op


class ForeignStep:
    """A step that is not one CPU kernel: a delegate partition or a transfer.

    ``reads`` / ``writes`` list the host tensors it touches (memory
    planning); :meth:`bind` returns the callable ``run()`` will call, given
    the plan once its arrays are allocated. Delegation (not core) makes them.
    """

    op: Operator | None = None
    prepared: Prepared | None = None
    dynamic = False
    reads: Sequence[int] = ()
    writes: Sequence[int] = ()
    label = "step"
    #: the op index profiling records show (-1: not one op)
    op_index = -1

    def __init__(self) -> None:
        self.call: Callable[[], Any] = _unbound

    def bind(self, plan: "SubgraphPlan") -> Callable[[], Any]:
        """The callable that runs this step against ``plan``'s arrays."""
        raise NotImplementedError


@dataclass
class PlanOptions:
    """Settings shared by every plan of one interpreter."""

    preserve_all_tensors: bool = False
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    fold_constants: bool = True
    #: fold standalone RELU / RELU6 / RELU_N1_TO_1 into the op before, zero PADs
    #: into the convolution after, a depthwise bias into the 1x1 conv after and
    #: residual ADDs into the convolution before (core.fuse)
    fuse_ops: bool = True


#: Ops never computed at allocate time even when their inputs are constant.
UNFOLDABLE_OPS = frozenset({
    "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "WHILE", "IF", "CALL",
    "RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL", "MULTINOMIAL", "HASHTABLE",
    "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE",
})


def nbytes(shape: Sequence[int], dtype: np.dtype) -> int:
    """Bytes of a dense tensor (Python ints: no overflow)."""
    n = 1
    for d in shape:
        n *= int(d)
    return n * np.dtype(dtype).itemsize


class SubgraphPlan:
    """The prepared steps, tensors and memory of one subgraph at given input shapes."""

    def __init__(self, model: Model, index: int, resolver: Any, runtime: Runtime,
                 input_shapes: Sequence[tuple[int, ...]] | None = None,
                 options: PlanOptions | None = None,
                 variables: dict[int, np.ndarray] | None = None, *,
                 allocate: bool = True, delegation: Any = None) -> None:
        self.model, self.sg = model, model.subgraphs[index]
        self.resolver, self.runtime = resolver, runtime
        self.options = options or PlanOptions()
        n = len(self.sg.tensors)
        self.shapes: list[tuple[int, ...] | None] = [t.shape for t in self.sg.tensors]
        self.values: list[Any] = [None] * n
        self.folded: dict[int, np.ndarray] = {}
        self.dynamic: set[int] = set()
        self.variables = variables if variables is not None else {}
        self.invoked = False
        #: ops the CPU kernels refused, when delegation may give them to a delegate
        self.cpu_errors: dict[int, UnsupportedOpError] = {}
        #: tensor -> why it has no host value (it lives in a delegate's memory)
        self.elsewhere: dict[int, str] = {}
        self._tolerant = delegation is not None and delegation.tolerant
        for t, shape in zip(self.sg.inputs, input_shapes or []):
            self.shapes[t] = tuple(int(d) for d in shape)
        steps = (self._prepare(op) for op in self.sg.operators)
        self.steps: list[Any] = [s for s in steps if s is not None]
        if delegation is not None:
            self.steps = delegation.schedule(self)
        if allocate and not self.options.preserve_all_tensors and self.options.fuse_ops:
            def step(op: Operator, prepared: Prepared) -> Step:
                return Step(op, _unbound, prepared)
            kept = set(self.sg.outputs)
            self.steps = fuse_activations(self.sg, self.steps, kept, self._prepare_fused, step)
            self.steps = fuse_pads(self.sg, self.steps, kept, self.spec, step)
            self.steps = fold_biases(self.sg, self.steps, kept, step)
            self.steps = fuse_residual_adds(self.sg, self.steps, kept, self.spec, step)
        if allocate:
            self._allocate()
        self._calls = [s.call for s in self.steps]
        self._flat, self._owners = self._flatten()

    # -- prepare -------------------------------------------------------------
    def spec(self, t: int, shape: tuple[int, ...] | None = None) -> TensorSpec:
        """The TensorSpec kernels see for tensor ``t``."""
        tensor = self.sg.tensors[t]
        data = tensor.data if tensor.data is not None else self.folded.get(t)
        return TensorSpec(tensor, self.shapes[t] if shape is None else shape, data)

    def _context(self, op: Operator, shapes: dict[int, tuple[int, ...]] | None = None
                 ) -> OpContext:
        shapes = shapes or {}
        ins = [None if t < 0 else self.spec(t, shapes.get(t)) for t in op.inputs]
        outs = [self.spec(t, self.sg.tensors[t].shape) for t in op.outputs]
        return OpContext(op, self.sg, self.model, ins, outs, self.runtime)

    def _prepare(self, op: Operator) -> Step | None:
        """The step for ``op``, or None when it was folded into a constant."""
        if any(t in self.dynamic for t in op.inputs):
            self.dynamic.update(op.outputs)
            return Step(op, _DynamicCall(self, op), dynamic=True)
        ctx = self._context(op)
        try:
            prepared = self.resolver.prepare(ctx)
        except UnsupportedOpError as e:
            if not self._tolerant:
                raise
            self.cpu_errors[op.index] = e      # a delegate may take it; keep declared shapes
            return Step(op, _unbound)
        self._check_prepared(op, prepared)
        if self._foldable(op, ctx, prepared):
            self._fold(op, ctx, prepared)
            return None
        for t, shape in zip(op.outputs, prepared.output_shapes):
            if shape is None:
                self.dynamic.add(t)
            else:
                self.shapes[t] = shape
        return Step(op, _unbound, prepared)

    def _prepare_fused(self, op: Operator) -> Prepared:
        """Prepare an operator the fusion pass made (core.fuse)."""
        prepared = self.resolver.prepare(self._context(op))
        self._check_prepared(op, prepared)
        return prepared

    def _foldable(self, op: Operator, ctx: OpContext, prepared: Prepared) -> bool:
        """Ops whose inputs are all constant are computed once, here, unless
        they have effects beyond their outputs (variables, control flow,
        random numbers, custom ops)."""
        present = [s for s in ctx.inputs if s is not None]
        return (self.options.fold_constants and bool(present)
                and all(s.data is not None for s in present)
                and not op.is_custom and op.op not in UNFOLDABLE_OPS
                and all(shape is not None for shape in prepared.output_shapes)
                and not any(self.sg.tensors[t].is_variable for t in op.outputs))

    def _fold(self, op: Operator, ctx: OpContext, prepared: Prepared) -> None:
        outs = [np.empty(shape, self.sg.tensors[t].dtype)
                for t, shape in zip(op.outputs, prepared.output_shapes)]
        try:
            with np.errstate(all="ignore"):
                prepared.run([None if s is None else s.data for s in ctx.inputs], outs)
        except EdgeplexError:
            raise
        except Exception as e:
            raise ModelError(f"{op.describe()}: folding constant inputs failed: "
                             f"{type(e).__name__}: {e}") from e
        for t, value, shape in zip(op.outputs, outs, prepared.output_shapes):
            value.flags.writeable = False
            self.folded[t] = value
            self.shapes[t] = shape

    def _check_prepared(self, op: Operator, prepared: Prepared) -> None:
        if len(prepared.output_shapes) != len(op.outputs):
            raise ModelError(f"{op.describe()}: the model gives {len(op.outputs)} outputs, "
                             f"the kernel produces {len(prepared.output_shapes)}")
        for t, shape in zip(op.outputs, prepared.output_shapes):
            if shape is not None and nbytes(shape, self.sg.tensors[t].dtype) > \
                    self.options.memory_limit:
                raise ModelError(f"{op.describe()}: output {self.sg.tensors[t].describe()} "
                                 f"of shape {list(shape)} needs "
                                 f"{nbytes(shape, self.sg.tensors[t].dtype):,} bytes, over the "
                                 f"memory limit of {self.options.memory_limit:,}")

    # -- memory ----------------------------------------------------------------
    def _allocate(self) -> None:
        sg = self.sg
        own = set(sg.inputs) | set(sg.outputs)
        for t in sg.inputs:
            self._check_size(t)
        self.intervals = self._intervals(own)
        self.arena_plan: ArenaPlan = plan_arena(list(self.intervals.values()),
                                                share=not self.options.preserve_all_tensors)
        io_bytes = sum(nbytes(self.shapes[t], sg.tensors[t].dtype) for t in own
                       if t not in self.dynamic and sg.tensors[t].data is None)
        scratch = sum(s.prepared.scratch_bytes for s in self.steps if s.prepared)
        total = self.arena_plan.arena_bytes + io_bytes + scratch
        if total > self.options.memory_limit:
            raise ModelError(f"subgraph {sg.index} needs {total:,} bytes of activations, over "
                             f"the memory limit of {self.options.memory_limit:,} bytes")
        self.io_bytes, self.scratch_bytes = io_bytes, scratch
        self._arena, views = arena_views(self.arena_plan, {
            t: (self.shapes[t], sg.tensors[t].dtype) for t in self.intervals})
        for t, view in views.items():
            self.values[t] = view
        for tensor in sg.tensors:
            self._bind_value(tensor.index, own)
        for step in self.steps:
            if not step.dynamic:
                step.call = self._bind(step)

    def _flatten(self) -> tuple[list[Callable[[], Any]], list[int]]:
        """The calls of one run in order, and the step each belongs to.

        A kernel whose run is a :class:`BoundRun` contributes its bound numpy
        calls themselves (the plan's arrays never change), so a run pays no
        per-step Python beyond the numpy calls.
        """
        calls: list[Callable[[], Any]] = []
        owners: list[int] = []
        for i, step in enumerate(self.steps):
            run = step.prepared.run if isinstance(step, Step) and step.prepared else None
            if isinstance(run, BoundRun) and not step.dynamic and step.call is not _unbound \
                    and not any(t in self.dynamic for t in step.op.outputs):
                ins = [None if t < 0 else self.values[t] for t in step.op.inputs]
                mine = run.flat(ins, [self.values[t] for t in step.op.outputs])
            else:
                mine = [step.call]
            calls += mine
            owners += [i] * len(mine)
        return calls, owners

    def _check_size(self, t: int) -> None:
        tensor = self.sg.tensors[t]
        size = nbytes(self.shapes[t] or (), tensor.dtype)
        if size > self.options.memory_limit:
            raise ModelError(f"{tensor.describe()} of shape {list(self.shapes[t] or ())} needs "
                             f"{size:,} bytes, over the memory limit of "
                             f"{self.options.memory_limit:,}")

    def _intervals(self, own: set[int]) -> dict[int, Interval]:
        sg, first, last = self.sg, {}, {}
        for i, step in enumerate(self.steps):
            for t in step.writes:
                first.setdefault(t, i)
                last[t] = max(last.get(t, i), i)
            for t in step.reads:
                if t >= 0:
                    last[t] = i
        return {t: Interval(t, nbytes(self.shapes[t], sg.tensors[t].dtype), first[t], last[t])
                for t in first
                if t not in own and t not in self.dynamic and not sg.tensors[t].is_variable
                and sg.tensors[t].data is None}

    def _bind_value(self, t: int, own: set[int]) -> None:
        tensor = self.sg.tensors[t]
        if tensor.data is not None:
            self.values[t] = tensor.data
        elif t in self.folded:
            self.values[t] = self.folded[t]
        elif tensor.is_variable:
            self.values[t] = self._variable(t)
        elif t in own and t not in self.dynamic and self.values[t] is None:
            self.values[t] = np.zeros(self.shapes[t], tensor.dtype)

    def _variable(self, t: int) -> np.ndarray:
        current = self.variables.get(t)
        if current is None or current.shape != self.shapes[t]:
            current = self.variables[t] = self.initial_variable(t)
        return current

    def initial_variable(self, t: int) -> np.ndarray:
        """A variable tensor's value at start and after reset_all_variables."""
        tensor = self.sg.tensors[t]
        value = np.zeros(self.shapes[t] or tensor.shape, tensor.dtype)
        q = tensor.quantization
        if tensor.type_name == "INT8" and q is not None and q.zero_point.size:
            value.fill(int(q.zero_point[0]))    # TFLite's ResetVariableTensor
        return value

    def _bind(self, step: Step | ForeignStep) -> Callable[[], Any]:
        if isinstance(step, ForeignStep):
            return step.bind(self)
        ins = [None if t < 0 else self.values[t] for t in step.op.inputs]
        outs = [self.values[t] for t in step.op.outputs]
        call = partial(step.prepared.run, ins, outs)
        if any(t in self.dynamic for t in step.op.outputs):
            return partial(_store_outputs, self.values, step.op.outputs, call)
        return call

    # -- run -------------------------------------------------------------------
    def run(self, profile: list[ProfileRecord] | None = None) -> None:
        """Run every step in order (timing each when ``profile`` is a list).

        numpy's floating-point warnings are off for the whole run (inf and NaN
        are results here, as in TFLite), so kernels need not switch them off
        one by one (``np.errstate`` costs ~0.5 us a time).
        """
        if profile is not None:
            with np.errstate(all="ignore"):
                return self._run_profiled(profile)
        calls = self._flat
        i = 0
        try:
            with np.errstate(all="ignore"):
                for i, call in enumerate(calls):
                    call()
        except EdgeplexError:
            raise
        except Exception as e:
            raise self._run_error(self._owners[i], e) from e
        self.invoked = True

    def _run_profiled(self, records: list[ProfileRecord]) -> None:
        clock = time.perf_counter_ns
        for i, step in enumerate(self.steps):
            t0 = clock()
            try:
                step.call()
            except EdgeplexError:
                raise
            except Exception as e:
                raise self._run_error(i, e) from e
            index = step.op.index if step.op is not None else step.op_index
            records.append(ProfileRecord(index, step.label, (clock() - t0) / 1e3, self.sg.index))
        self.invoked = True

    def _run_error(self, i: int, e: Exception) -> EdgeplexError:
        op = self.steps[i].op
        if op is None:
            return InterpreterError(f"step {self.steps[i].label} failed during invoke: "
                                    f"{type(e).__name__}: {e}")
        return InterpreterError(f"{op.describe()} failed during invoke: "
                                f"{type(e).__name__}: {e}")

    # -- introspection -----------------------------------------------------------
    def readable_error(self, t: int) -> str | None:
        """Why tensor ``t`` holds no value from the last invoke, or None."""
        tensor = self.sg.tensors[t]
        if (tensor.data is not None or t in self.folded or tensor.is_variable
                or t in self.sg.inputs):
            return None
        if not self.invoked:
            return f"{tensor.describe()} has not been computed: call invoke() first"
        if self.values[t] is None and t in self.elsewhere:
            return f"{tensor.describe()} {self.elsewhere[t]}"
        if self.values[t] is None:
            return f"{tensor.describe()} was not produced by the last invoke"
        if t in self.intervals and self.arena_plan.overwritten(t, self.intervals):
            return (f"{tensor.describe()} is an intermediate whose memory was reused later "
                    "in the same invoke; create the Interpreter with "
                    "experimental_preserve_all_tensors=True to read it")
        return None

    def memory_report(self) -> dict[str, int]:
        """Planned vs naive activation bytes of this plan."""
        return {"planned_activation_bytes": self.arena_plan.arena_bytes,
                "naive_activation_bytes": self.arena_plan.naive_bytes,
                "io_bytes": self.io_bytes, "scratch_bytes": self.scratch_bytes}


def _unbound() -> None:
    raise InterpreterError("internal error: step run before allocation")


def _store_outputs(values: list[Any], outputs: Sequence[int], call: Callable[[], Any]) -> None:
    produced = call()
    for t, array in zip(outputs, produced):
        values[t] = array


class _DynamicCall:
    """Runs an op whose input shapes are only known during invoke."""

    #: prepared ops kept per op, one per set of input shapes (a WHILE body's
    #: shapes may change every iteration and repeat every invoke)
    CACHE_SIZE = 64

    def __init__(self, plan: SubgraphPlan, op: Operator) -> None:
        self.plan, self.op = plan, op
        self.cache: dict[tuple, Prepared] = {}

    def __call__(self) -> None:
        values, op = self.plan.values, self.op
        ins = [None if t < 0 else values[t] for t in op.inputs]
        key = tuple(None if a is None else a.shape for a in ins)
        prepared = self.cache.get(key)
        if prepared is None:
            shapes = {t: a.shape for t, a in zip(op.inputs, ins) if a is not None}
            prepared = self.plan.resolver.prepare(self.plan._context(op, shapes))
            if len(self.cache) >= self.CACHE_SIZE:
                self.cache.clear()
            self.cache[key] = prepared
        outs = [None if s is None else np.empty(s, self.plan.sg.tensors[t].dtype)
                for t, s in zip(op.outputs, prepared.output_shapes)]
        produced = prepared.run(ins, outs)
        for i, t in enumerate(op.outputs):
            values[t] = outs[i] if outs[i] is not None else produced[i]


@dataclass
class PlanRuntime(Runtime):
    """Runtime services for the kernels of one interpreter."""

    model: Model
    resolver: Any
    options: PlanOptions = field(default_factory=PlanOptions)
    _resources: dict[Any, Any] = field(default_factory=dict)
    _runners: dict[int, "SubgraphRunner"] = field(default_factory=dict)

    @property
    def resources(self) -> dict[Any, Any]:
        """Resource variables shared by VAR_HANDLE/READ/ASSIGN_VARIABLE."""
        return self._resources

    def subgraph_runner(self, index: int, input_specs: Sequence[TensorSpec] = ()
                        ) -> "SubgraphRunner":
        """The (shared, cached) runner for subgraph ``index``."""
        if not 0 <= index < len(self.model.subgraphs):
            raise ModelError(f"subgraph index {index} is out of range "
                             f"(the model has {len(self.model.subgraphs)})")
        if index not in self._runners:
            self._runners[index] = SubgraphRunner(self, index)
        return self._runners[index]


class SubgraphRunner:
    """Runs one subgraph on arrays, keeping a plan per set of input shapes."""

    def __init__(self, runtime: PlanRuntime, index: int) -> None:
        self.runtime, self.index = runtime, index
        self.subgraph: Subgraph = runtime.model.subgraphs[index]
        self._plans: dict[tuple, SubgraphPlan] = {}
        self._active = 0

    def plan(self, shapes: Sequence[tuple[int, ...]]) -> SubgraphPlan:
        """The plan for these input shapes (built once)."""
        key = tuple(tuple(s) for s in shapes)
        plan = self._plans.get(key)
        if plan is None:
            if self._active:
                raise ModelError(f"subgraph {self.index} calls itself recursively")
            self._active += 1
            try:
                plan = SubgraphPlan(self.runtime.model, self.index, self.runtime.resolver,
                                    self.runtime, key, self.runtime.options)
            finally:
                self._active -= 1
            self._plans[key] = plan
        return plan

    def reset_variables(self) -> None:
        """Put every plan's variable tensors back to their initial values."""
        for plan in self._plans.values():
            for t, value in plan.variables.items():
                np.copyto(value, plan.initial_variable(t))

    def output_shapes(self, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...] | None]:
        """Output shapes for these input shapes (None where data-dependent)."""
        plan = self.plan(shapes)
        return [None if t in plan.dynamic else plan.shapes[t] for t in self.subgraph.outputs]

    def __call__(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run on ``arrays``; returns views of the outputs (copy before rerunning)."""
        plan = self.plan([np.shape(a) for a in arrays])
        for t, a in zip(self.subgraph.inputs, arrays):
            np.copyto(plan.values[t], a, casting="unsafe")
        plan.run()
        return [plan.values[t] for t in self.subgraph.outputs]
