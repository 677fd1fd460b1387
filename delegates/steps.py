"""Execution steps for delegated work: partitions and transfers.

A CPU partition needs none of these: it stays the interpreter's flat list
of kernel steps. A delegate partition is one step calling
``DelegateKernel.invoke``; a transfer step moves one tensor between memory
domains. Values in a non-host domain live in :class:`Slot` objects bound at
allocation, so ``invoke`` does no lookups.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np

from edgeplex.core.errors import DelegateError
from edgeplex.core.plan import ForeignStep, SubgraphPlan

log = logging.getLogger("edgeplex.delegates")


class Slot:
    """Holds one tensor's value in a non-host memory domain."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None


def store_host(delegate: str, where: str, names: Sequence[str], outs: Sequence[np.ndarray],
               results: Sequence[Any]) -> None:
    """Copy a delegate's host results into the plan's arrays, checking shape and dtype."""
    for out, r, name in zip(outs, results, names):
        a = r if isinstance(r, np.ndarray) else np.asarray(r)
        if a.shape != out.shape or a.dtype != out.dtype:
            raise DelegateError(f"delegate {delegate!r} returned {a.dtype}{list(a.shape)} for "
                                f"tensor {name!r} of {where}; expected {out.dtype}"
                                f"{list(out.shape)}")
        np.copyto(out, a)


class PartitionStep(ForeignStep):
    """Runs one delegate partition through its ``DelegateKernel``."""

    def __init__(self, delegate: Any, kernel: Any, info: Any, host: bool,
                 slots: Callable[[int], Slot], on_error: "InvokeFallback") -> None:
        super().__init__()
        self.delegate, self.kernel, self.info, self.host = delegate, kernel, info, host
        self.inputs = [t.index for t in info.inputs]
        self.outputs = [t.index for t in info.outputs]
        self.names = [t.name for t in info.outputs]
        self.reads = tuple(self.inputs) if host else ()
        self.writes = tuple(self.outputs) if host else ()
        self.label = f"{delegate.name}: {info.describe()}"
        self.op_index = info.nodes[0].index
        self._slots, self.on_error = slots, on_error

    def bind(self, plan: SubgraphPlan) -> Callable[[], Any]:
        """The per-invoke call: gather inputs, invoke, store outputs."""
        run = self._checked_invoke
        if self.host:
            ins = [plan.values[t] for t in self.inputs]
            outs = [plan.values[t] for t in self.outputs]
            name, where, names = self.delegate.name, self.info.describe(), self.names

            def call_host() -> None:
                store_host(name, where, names, outs, run(list(ins)))
            return call_host
        in_slots = [self._slots(t) for t in self.inputs]
        out_slots = [self._slots(t) for t in self.outputs]

        def call_device() -> None:
            for slot, value in zip(out_slots, run([s.value for s in in_slots])):
                slot.value = value
        return call_device

    def _checked_invoke(self, values: list) -> Sequence[Any]:
        try:
            results = self.kernel.invoke(values)
        except Exception as e:
            return self.on_error(self, e, values)
        if results is None or len(results) != len(self.outputs):
            got = "None" if results is None else f"{len(results)} value(s)"
            raise DelegateError(f"delegate {self.delegate.name!r}: invoke of "
                                f"{self.info.describe()} returned {got}; expected "
                                f"{len(self.outputs)} (one per partition output)")
        return results


class InvokeFallback:
    """What happens when ``DelegateKernel.invoke`` raises (``on_invoke_error``)."""

    def __init__(self, policy: str, owner: Any, cpu_kernel: Any, why_no_cpu: str,
                 count: Callable[[int], None]) -> None:
        self.policy, self.owner, self.cpu_kernel = policy, owner, cpu_kernel
        self.why_no_cpu, self.count = why_no_cpu, count
        self.warned = False

    def __call__(self, step: PartitionStep, error: Exception, values: list) -> list:
        name, where = step.delegate.name, step.info.describe()
        message = f"delegate {name!r} failed in invoke of {where}: {type(error).__name__}: {error}"
        if self.policy != "cpu":
            raise DelegateError(message) from error
        if self.cpu_kernel is None:
            raise DelegateError(f"{message} (on_invoke_error = 'cpu' but the CPU cannot run "
                                f"this partition: {self.why_no_cpu})") from error
        if not self.warned:
            log.warning("%s; re-running it on the CPU (on_invoke_error = 'cpu')", message)
            self.warned = True
        host_in = values if step.host else [self.owner.to_host(v) for v in values]
        results = self.cpu_kernel.invoke(host_in)
        self.count(step.info.id)
        return results if step.host else [self.owner.from_host(a) for a in results]


class ToDevice(ForeignStep):
    """Copy a host tensor into a delegate's memory domain."""

    def __init__(self, tensor: int, name: str, owner: Any, slot: Slot) -> None:
        super().__init__()
        self.tensor, self.name, self.owner, self.slot = tensor, name, owner, slot
        self.reads = (tensor,)
        self.label = f"transfer {name!r} host -> {owner.memory_domain}"

    def bind(self, plan: SubgraphPlan) -> Callable[[], Any]:
        """Call ``from_host`` on the bound host array."""
        src, slot, from_host = plan.values[self.tensor], self.slot, self.owner.from_host

        def call() -> None:
            try:
                slot.value = from_host(src)
            except Exception as e:
                raise _transfer_error(self, "from_host", e) from e
        return call


class ToHost(ForeignStep):
    """Copy a tensor from a delegate's memory domain into its host array."""

    def __init__(self, tensor: int, name: str, owner: Any, slot: Slot) -> None:
        super().__init__()
        self.tensor, self.name, self.owner, self.slot = tensor, name, owner, slot
        self.writes = (tensor,)
        self.label = f"transfer {name!r} {owner.memory_domain} -> host"

    def bind(self, plan: SubgraphPlan) -> Callable[[], Any]:
        """Call ``to_host`` and copy into the bound host array."""
        dst, slot, to_host = plan.values[self.tensor], self.slot, self.owner.to_host
        who, names, where = self.owner.name, [self.name], "a transfer to the host"

        def call() -> None:
            try:
                value = to_host(slot.value)
            except Exception as e:
                raise _transfer_error(self, "to_host", e) from e
            store_host(who, where, names, [dst], [value])
        return call


class Between(ForeignStep):
    """Move a tensor between two non-host domains (through host memory)."""

    def __init__(self, tensor: int, name: str, src: Any, dst: Any, src_slot: Slot,
                 dst_slot: Slot) -> None:
        super().__init__()
        self.tensor, self.name, self.owner = tensor, name, dst
        self.src, self.src_slot, self.dst_slot = src, src_slot, dst_slot
        self.label = f"transfer {name!r} {src.memory_domain} -> {dst.memory_domain}"

    def bind(self, plan: SubgraphPlan) -> Callable[[], Any]:
        """``dst.from_host(src.to_host(value))``."""
        a, b, to_host, from_host = self.src_slot, self.dst_slot, self.src.to_host, \
            self.owner.from_host

        def call() -> None:
            try:
                b.value = from_host(np.asarray(to_host(a.value)))
            except Exception as e:
                raise _transfer_error(self, "to_host/from_host", e) from e
        return call


def _transfer_error(step: Any, method: str, e: Exception) -> DelegateError:
    return DelegateError(f"delegate {step.owner.name!r}: {method} failed in {step.label}: "
                         f"{type(e).__name__}: {e}")
