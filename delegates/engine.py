"""Delegation for one interpreter: ask, place, prepare, and build the steps.

:class:`Delegation` is made once per ``Interpreter`` from its settings (so
config mistakes surface at construction) and is called by the plan at
every ``allocate_tensors`` after the CPU kernels' shape pass:

1. every node becomes a :class:`NodeInfo`; every available delegate is
   asked ``supports`` (exceptions count as Unsupported with their text;
   ``exclude`` rules and framework-only ops answer without asking);
2. the partitioner places the nodes (``pin`` rules, policy, filters);
3. each non-CPU partition is prepared; a failure follows
   ``on_prepare_error`` (default: its nodes go to the next claimant and
   placement runs again);
4. the steps are built: CPU partitions are the plan's own kernel steps,
   untouched; delegate partitions and transfers are foreign steps.
"""
from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from typing import Any, Mapping, Sequence

from edgeplex.core.errors import ConfigError, DelegateError, EdgeplexError, UnsupportedOpError
from edgeplex.core.ir import Subgraph
from edgeplex.core.schema import BUILTIN_OP_CODES
from edgeplex.partitioner import (FRAMEWORK_OPS, DelegateRow, DelegateSpec, FallbackRow, Graph,
                                  NoDelegateError, PartitionerOptions, Pin, Placement,
                                  PlacementReport, Verdict, place)

from . import discovery
from .api import HOST, Unsupported, is_delegate, resolve_options
from .config import Settings, check_requirements, load_settings
from .cpu.delegate import CPUDelegate, CPUKernel, strip_where
from .info import NodeInfo, PartitionInfo, TensorInfo
from .steps import Between, InvokeFallback, PartitionStep, Slot, ToDevice, ToHost

log = logging.getLogger("edgeplex.delegates")
CPU = "cpu"


class Delegation:
    """The delegates of one interpreter and what they were given."""

    def __init__(self, settings: Settings, delegates: Sequence[Any], cpu: CPUDelegate,
                 unavailable: Mapping[str, str] | None = None, trace: bool = False,
                 domains: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.delegates = list(delegates)             # usable, priority order, cpu excluded
        self.cpu = cpu
        self.unavailable = dict(unavailable or {})    # name -> reason
        self.domains = dict(domains or {})            # memory domain of every chosen delegate
        self.trace = trace
        self.report: PlacementReport | None = None
        self._kernels: list[Any] = []
        self._check_rule_names()

    # -- construction ------------------------------------------------------------
    @classmethod
    def configure(cls, *, delegates: Sequence[str] | None = None,
                  delegate_options: Mapping[str, Mapping[str, Any]] | None = None,
                  config: Any = None, experimental_delegates: Sequence[Any] | None = None,
                  resolver: Any = None, environ: Mapping[str, str] | None = None
                  ) -> "Delegation":
        """Read the settings, load the plugins they need, create the delegates."""
        settings = load_settings(config, delegates=delegates, delegate_options=delegate_options,
                                 environ=environ)
        if settings.require:
            check_requirements(settings.require, settings.source)
        load = discovery.LoadSettings.from_env(settings.disable_plugins, environ)
        extra = _checked_experimental(experimental_delegates or [])
        registry = _registry(settings, load, {d.name for d in extra})
        cpu = registry.create(CPU, settings.delegate_options.get(CPU, {}))
        cpu._resolver = resolver
        chosen, unavailable = _instances(registry, settings, extra, load.strict)
        chosen = [d for d in chosen if not isinstance(d, CPUDelegate)]
        for d in chosen:
            reason = _availability(d)
            if reason is not None:
                unavailable[d.name] = reason
                log.warning("delegate %r is unavailable and will not be used: %s", d.name, reason)
        usable = [d for d in chosen if d.name not in unavailable]
        return cls(settings, usable, cpu, unavailable, load.trace,
                   {d.name: d.memory_domain for d in chosen})

    def _check_rule_names(self) -> None:
        """A pin needs its delegate in use (exclude rules for unused ones are moot)."""
        in_use = {d.name for d in self.delegates} | set(self.unavailable) | {CPU}
        for name in self.settings.pin:
            if name not in in_use:
                raise ConfigError(f"{self.settings.source}: [edgeplex.partitioner] pin.{name}: "
                                  f"{name!r} is not a delegate in use (in use: "
                                  f"{', '.join(sorted(in_use))})")

    @property
    def tolerant(self) -> bool:
        """True when some delegate besides the CPU may take ops the CPU refuses."""
        return bool(self.delegates or self.unavailable)

    @property
    def order(self) -> list[Any]:
        """Usable delegates in priority order, the CPU last."""
        return self.delegates + [self.cpu]

    # -- scheduling (called by SubgraphPlan) ------------------------------------------
    def schedule(self, plan: Any) -> list[Any]:
        """The plan's steps with delegation applied (see module doc)."""
        self.release()
        self.report = None
        sg, model = plan.sg, plan.model
        tensors = [TensorInfo.of(t, plan.shapes[t.index] or t.shape,
                                 t.data if t.data is not None else plan.folded.get(t.index))
                   for t in sg.tensors]
        nodes = [NodeInfo.of(model, sg, op, tensors) for op in sg.operators]
        steps = {s.op.index: s for s in plan.steps}
        folded = {op.index for op in sg.operators if op.index not in steps}
        graph = Graph.from_subgraph(sg, [tuple(t.shape) for t in tensors], set(plan.folded),
                                    folded)
        verdicts = self._ask(steps, plan.cpu_errors,
                             [n for n in nodes if n.index not in folded])
        options = PartitionerOptions(self.settings.policy, self.settings.min_nodes_per_partition,
                                     self.settings.max_partitions, self._pins(sg, nodes),
                                     self._estimates(nodes, verdicts))
        placement, kernels, fallbacks = self._place_and_prepare(plan, graph, nodes, tensors,
                                                                verdicts, options)
        self.report = PlacementReport(placement, graph, {n.index: n.version for n in nodes},
                                      self._delegate_rows(), fallbacks, sg.index)
        return self._steps(plan, steps, placement, kernels, nodes, tensors)

    def release(self) -> None:
        """Close the kernels of the previous schedule."""
        for kernel in self._kernels:
            try:
                kernel.close()
            except Exception as e:                  # a delegate's cleanup must not break us
                log.warning("closing a delegate kernel failed: %s", e)
        self._kernels = []

    # -- 1. ask ---------------------------------------------------------------------
    def _ask(self, steps: Mapping[int, Any], cpu_errors: Mapping[int, Exception],
             nodes: Sequence[NodeInfo]) -> dict[int, list[Verdict]]:
        table: dict[int, list[Verdict]] = {}
        for node in nodes:
            step = steps[node.index]
            special = _framework_reason(step, node)
            row = [self._verdict(d, node, special) for d in self.delegates]
            row.append(self._cpu_verdict(cpu_errors.get(node.index), step, node))
            row += [Verdict(name, False, f"unavailable: {why}", "unavailable")
                    for name, why in self.unavailable.items()]
            table[node.index] = row
        return table

    def _verdict(self, delegate: Any, node: NodeInfo, special: str | None) -> Verdict:
        name = delegate.name
        if special is not None:
            return Verdict(name, False, special, "framework")
        rule = self._excluded(name, node)
        if rule is not None:
            return Verdict(name, False, f"excluded by rule {rule}", "rule")
        try:
            answer = delegate.supports(node)
        except Exception as e:
            verdict = Verdict(name, False, f"supports() raised {type(e).__name__}: {e}", "error")
        else:
            verdict = _as_verdict(name, answer)
        if self.trace:
            _trace(f"{name}.supports({node.describe()}) -> "
                   f"{'yes' if verdict.supported else verdict.reason}")
        return verdict

    def _cpu_verdict(self, error: Exception | None, step: Any, node: NodeInfo) -> Verdict:
        rule = self._excluded(CPU, node)
        if rule is not None:
            return Verdict(CPU, False, f"excluded by rule {rule}", "rule")
        if error is not None:
            return Verdict(CPU, False, strip_where(str(error), node.describe()), "supports")
        if step.prepared is not None:                  # the shape pass prepared its kernel
            return Verdict(CPU, True)
        try:
            return _as_verdict(CPU, self.cpu.supports(node))
        except EdgeplexError as e:
            return Verdict(CPU, False, str(e), "error")

    def _excluded(self, delegate: str, node: NodeInfo) -> str | None:
        for pattern in self.settings.exclude.get(delegate, ()):
            if _matches(pattern, node):
                return f"exclude.{delegate} = {pattern!r}"
        return None

    def _pins(self, sg: Subgraph, nodes: Sequence[NodeInfo]) -> dict[int, Pin]:
        for key in ("exclude", "pin"):
            for delegate, patterns in getattr(self.settings, key).items():
                for pattern in patterns:
                    _check_pattern(pattern, sg, f"{self.settings.source}: "
                                   f"[edgeplex.partitioner] {key}.{delegate}")
        pins: dict[int, Pin] = {}
        for delegate, patterns in self.settings.pin.items():
            for pattern in patterns:
                for node in nodes:
                    if not _matches(pattern, node):
                        continue
                    rule = f"pin.{delegate} = {pattern!r}"
                    other = pins.get(node.index)
                    if other is not None and other.delegate != delegate:
                        raise ConfigError(f"{self.settings.source}: [edgeplex.partitioner] "
                                          f"{node.describe()} is pinned twice: {other.rule} "
                                          f"and {rule}")
                    pins[node.index] = Pin(delegate, rule)
        return pins

    def _estimates(self, nodes: Sequence[NodeInfo], verdicts: Mapping[int, list[Verdict]]
                   ) -> dict[tuple[int, str], float]:
        if self.settings.policy != "cost":
            return {}
        estimates = {}
        for d in self.order:
            estimate = getattr(d, "estimate_seconds", None)
            if not callable(estimate):
                continue
            for node in nodes:
                if any(v.delegate == d.name and v.supported for v in verdicts[node.index]):
                    try:
                        estimates[(node.index, d.name)] = float(estimate(node))
                    except Exception as e:
                        log.warning("%s.estimate_seconds(%s) failed: %s", d.name,
                                    node.describe(), e)
        return estimates

    # -- 2. + 3. place and prepare -----------------------------------------------------
    def _place_and_prepare(self, plan: Any, graph: Graph, nodes: Sequence[NodeInfo],
                           tensors: Sequence[TensorInfo], verdicts: dict[int, list[Verdict]],
                           options: PartitionerOptions
                           ) -> tuple[Placement, dict[int, Any], list[FallbackRow]]:
        specs = [DelegateSpec(d.name, d.memory_domain, float(d.transfer_bytes_per_second))
                 for d in self.delegates] + [DelegateSpec(CPU, HOST, is_fallback=True)]
        cache: dict[tuple[str, tuple[int, ...]], Any] = {}
        fallbacks: list[FallbackRow] = []
        while True:
            try:
                placement = place(graph, specs, verdicts, options)
            except NoDelegateError as e:
                raise self._no_delegate(nodes, e) from None
            if not self.settings.allow_cpu:
                self._forbid_cpu(placement, nodes, options)
            failed = self._prepare(plan, placement, nodes, tensors, cache)
            if failed is None:
                break
            partition, error = failed
            fallbacks.append(self._prepare_failed(partition, error, verdicts))
        kernels = {p.id: cache[(p.delegate, p.nodes)] for p in placement.partitions
                   if p.delegate != CPU}
        used = {id(k) for k in kernels.values()}
        self._kernels = list(kernels.values())
        for kernel in cache.values():
            if id(kernel) not in used:
                _close(kernel)
        return placement, kernels, fallbacks

    def _prepare(self, plan: Any, placement: Placement, nodes: Sequence[NodeInfo],
                 tensors: Sequence[TensorInfo], cache: dict) -> tuple[Any, Exception] | None:
        for p in placement.partitions:
            key = (p.delegate, p.nodes)
            if p.delegate == CPU or key in cache:
                continue
            info = self._partition_info(plan, p, nodes, tensors)
            delegate = self._by_name(p.delegate)
            try:
                kernel = delegate.prepare(info)
                if not callable(getattr(kernel, "invoke", None)):
                    raise TypeError(f"prepare() returned {kernel!r}, which has no invoke()")
            except Exception as e:
                if self.trace:
                    _trace(f"{p.delegate}.prepare({info.describe()}) raised {e!r}")
                if self.settings.on_prepare_error == "raise":
                    raise DelegateError(f"delegate {p.delegate!r} failed to prepare "
                                        f"{info.describe()}: {type(e).__name__}: {e} "
                                        "(on_prepare_error = 'raise')") from e
                return info, e
            if self.trace:
                _trace(f"{p.delegate}.prepare({info.describe()}) -> {type(kernel).__name__}")
            cache[key] = kernel
        return None

    def _prepare_failed(self, info: PartitionInfo, error: Exception,
                        verdicts: dict[int, list[Verdict]]) -> FallbackRow:
        text = f"{type(error).__name__}: {error}"
        log.warning("delegate %r failed to prepare %s (%s); its nodes go to the next "
                    "claimant (on_prepare_error = 'cpu')", info.delegate, info.describe(), text)
        for node in info.nodes:
            row = verdicts[node.index]
            for i, v in enumerate(row):
                if v.delegate == info.delegate:
                    row[i] = Verdict(v.delegate, False, f"prepare failed: {text}", "prepare")
        return FallbackRow(info.delegate, tuple(n.index for n in info.nodes), text)

    def _partition_info(self, plan: Any, p: Any, nodes: Sequence[NodeInfo],
                        tensors: Sequence[TensorInfo]) -> PartitionInfo:
        return PartitionInfo(p.id, p.delegate, tuple(nodes[n] for n in p.nodes),
                             tuple(tensors[t] for t in p.inputs),
                             tuple(tensors[t] for t in p.outputs), plan.model, plan.sg)

    def _by_name(self, name: str) -> Any:
        return next(d for d in self.order if d.name == name)

    # -- errors ----------------------------------------------------------------------
    def _no_delegate(self, nodes: Sequence[NodeInfo], e: NoDelegateError
                     ) -> UnsupportedOpError:
        first = min(e.verdicts)
        cpu = [v for v in e.verdicts[first] if v.delegate == CPU and v.source == "supports"]
        if not self.tolerant and len(e.verdicts[first]) == 1 and cpu:
            # CPU only: the kernels' own message, as without delegation
            return NoDelegateError(f"{nodes[first].describe()}: {cpu[0].reason}", e.verdicts)
        lines = [f"{len(e.verdicts)} op(s) are taken by no delegate "
                 f"(delegates asked: {', '.join(d.name for d in self.order)}):"]
        for n, vs in sorted(e.verdicts.items()):
            lines.append(f"  {nodes[n].describe()}: {_reasons(vs)}")
        return NoDelegateError("\n".join(lines), e.verdicts)

    def _forbid_cpu(self, placement: Placement, nodes: Sequence[NodeInfo],
                    options: PartitionerOptions) -> None:
        left = [n for n, d in sorted(placement.assignment.items())
                if d == CPU and n not in options.pins]
        if not left:
            return
        lines = [f"allow_cpu = false, but {len(left)} op(s) would run on the CPU because no "
                 "chosen delegate takes them:"]
        for n in left:
            others = [v for v in placement.verdicts[n] if v.delegate != CPU]
            lines.append(f"  {nodes[n].describe()}: {_reasons(others) or 'no delegates'}")
        raise UnsupportedOpError("\n".join(lines))

    def _delegate_rows(self) -> list[DelegateRow]:
        rows = [DelegateRow(d.name, d.memory_domain, True, "", _jsonable(getattr(d, "options", {})))
                for d in self.order]
        rows += [DelegateRow(name, self.domains.get(name, "?"), False, why)
                 for name, why in self.unavailable.items()]
        return rows

    # -- 4. steps --------------------------------------------------------------------
    def _steps(self, plan: Any, kernel_steps: Mapping[int, Any], placement: Placement,
               kernels: Mapping[int, Any], nodes: Sequence[NodeInfo],
               tensors: Sequence[TensorInfo]) -> list[Any]:
        owners: dict[str, Any] = {}
        for d in self.order:
            owners.setdefault(d.memory_domain, d)
        slots: dict[tuple[str, int], Slot] = defaultdict(Slot)
        before: dict[int, list[Any]] = defaultdict(list)
        for tr in placement.transfers:
            before[tr.before].append(self._transfer(tr, tensors, owners, slots))
        steps: list[Any] = []
        report = self.report
        for p in placement.partitions:
            steps += before[p.id]
            if p.delegate == CPU:
                steps += [kernel_steps[n] for n in p.nodes]
                continue
            info = self._partition_info(plan, p, nodes, tensors)
            delegate = self._by_name(p.delegate)
            domain = delegate.memory_domain
            fallback = self._invoke_fallback(info, owners.get(domain, delegate), report)
            steps.append(PartitionStep(delegate, kernels[p.id], info, domain == HOST,
                                       lambda t, dom=domain: slots[(dom, t)], fallback))
            self._note_elsewhere(plan, p, placement, delegate)
        steps += before[len(placement.partitions)]
        for n in placement.assignment:
            if placement.assignment[n] != CPU:
                kernel_steps[n].prepared = None          # the CPU kernel is not needed
        return steps

    def _transfer(self, tr: Any, tensors: Sequence[TensorInfo], owners: Mapping[str, Any],
                  slots: Mapping[tuple[str, int], Slot]) -> Any:
        name = tensors[tr.tensor].name
        if tr.src == HOST:
            return ToDevice(tr.tensor, name, owners[tr.dst], slots[(tr.dst, tr.tensor)])
        if tr.dst == HOST:
            return ToHost(tr.tensor, name, owners[tr.src], slots[(tr.src, tr.tensor)])
        return Between(tr.tensor, name, owners[tr.src], owners[tr.dst],
                       slots[(tr.src, tr.tensor)], slots[(tr.dst, tr.tensor)])

    def _invoke_fallback(self, info: PartitionInfo, owner: Any,
                         report: PlacementReport) -> InvokeFallback:
        kernel, why = None, ""
        if self.settings.on_invoke_error == "cpu":
            try:
                kernel = CPUKernel(info.to_model(), self.cpu.resolver)
            except EdgeplexError as e:
                why = str(e)

        def count(partition: int) -> None:
            report.invoke_fallbacks[partition] += 1
        return InvokeFallback(self.settings.on_invoke_error, owner, kernel, why, count)

    def _note_elsewhere(self, plan: Any, p: Any, placement: Placement, delegate: Any) -> None:
        on_host = {tr.tensor for tr in placement.transfers if tr.dst == HOST}
        host = delegate.memory_domain == HOST
        for n in p.nodes:
            for t in plan.sg.operators[n].outputs:
                if t in p.outputs and (host or t in on_host):
                    continue
                where = "inside" if t not in p.outputs else "in the memory of"
                plan.elsewhere[t] = (f"is computed {where} delegate {delegate.name!r} "
                                     f"(partition {p.id}) and never copied to host memory")


# -- helpers ----------------------------------------------------------------------------
def _checked_experimental(extra: Sequence[Any]) -> list[Any]:
    """``experimental_delegates`` after checking each is a delegate with its own name."""
    for i, d in enumerate(extra):
        if not is_delegate(d):
            raise ConfigError(f"experimental_delegates[{i}] is {d!r}, not an edgeplex "
                              "delegate (create one with edgeplex.load_delegate(name))")
        if any(other.name == d.name for other in extra[:i]):
            raise ConfigError(f"experimental_delegates: two delegates are named {d.name!r}")
    return list(extra)


def _registry(settings: Settings, load: discovery.LoadSettings, provided: set[str]) -> Any:
    """The plugins the settings need (only the CPU's when they name no other delegate);
    every named delegate must exist and its options must be valid."""
    needed = [n for n in settings.names() if n != CPU and n not in provided]
    registry = discovery.registry(load, cpu_only=not needed)
    for name in needed:
        resolve_options(registry.entry(name).factory, settings.delegate_options.get(name, {}))
    return registry


def _instances(registry: Any, settings: Settings, extra: Sequence[Any], strict: bool
               ) -> tuple[list[Any], dict[str, str]]:
    """Delegate instances in priority order: experimental ones first, then by name."""
    chosen = list(extra)
    unavailable: dict[str, str] = {}
    names = {d.name for d in chosen}
    for name in settings.delegates:
        if name in names:
            continue
        factory = registry.entry(name).factory
        try:
            chosen.append(registry.create(name, settings.delegate_options.get(name, {})))
        except ConfigError:
            raise
        except Exception as e:
            reason = f"failed to initialise: {type(e).__name__}: {e}"
            if strict:
                raise DelegateError(f"delegate {name!r} {reason}") from e
            unavailable[name] = reason
            log.warning("delegate %r (%r) %s", name, factory, reason)
    return chosen, unavailable


def _availability(delegate: Any) -> str | None:
    """None when usable, else why not (a raising check counts as unavailable)."""
    try:
        if delegate.is_available():
            return None
        return str(delegate.unavailable_reason() or "is_available() returned False")
    except Exception as e:
        return f"availability check raised {type(e).__name__}: {e}"


def _as_verdict(name: str, answer: Any) -> Verdict:
    if isinstance(answer, Unsupported):
        return Verdict(name, False, answer.reason)
    if answer is None:
        return Verdict(name, False, "supports() returned None instead of True or "
                       "Unsupported(reason)", "error")
    if answer:
        return Verdict(name, True)
    return Verdict(name, False, "")                   # reports show "declined (no reason)"


def _reasons(verdicts: Sequence[Verdict]) -> str:
    return "; ".join(f"{v.delegate}: {v.reason or 'declined (no reason given)'}"
                     for v in verdicts)


def _framework_reason(step: Any, node: NodeInfo) -> str | None:
    """Why edgeplex keeps this node on the CPU without asking, or None."""
    if node.op in FRAMEWORK_OPS:
        return f"{node.op} needs the interpreter (control flow or shared state)"
    if any(t is not None and t.is_variable for t in node.inputs + node.outputs):
        return "reads or writes a variable tensor (state lives in host memory)"
    if step.dynamic:
        return "an input's shape is known only during invoke"
    return None


def _matches(pattern: str, node: NodeInfo) -> bool:
    if pattern.startswith("node:"):
        return pattern[5:].strip().isdigit() and int(pattern[5:]) == node.index
    if pattern == node.op:
        return True
    return any(t.name == pattern for t in node.outputs)


def _check_pattern(pattern: str, sg: Subgraph, where: str) -> None:
    if pattern.startswith("node:"):
        text = pattern[5:].strip()
        if not text.isdigit() or int(text) >= len(sg.operators):
            raise ConfigError(f"{where}: {pattern!r} does not name a node of this model "
                              f"(nodes are node:0 to node:{len(sg.operators) - 1})")
        return
    if pattern in BUILTIN_OP_CODES or any(op.op == pattern for op in sg.operators):
        return
    if sg.tensor_by_name(pattern) is None:
        raise ConfigError(f"{where}: {pattern!r} is not an op name, 'node:N' or a tensor name "
                          "of this model")


def _jsonable(options: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in dict(options).items():
        try:
            json.dumps(v)
            out[k] = v
        except TypeError:
            out[k] = repr(v)
    return out


def _close(kernel: Any) -> None:
    try:
        kernel.close()
    except Exception as e:
        log.warning("closing a delegate kernel failed: %s", e)


def _trace(text: str) -> None:
    sys.stderr.write(f"edgeplex trace: {text}\n")
