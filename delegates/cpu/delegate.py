"""The CPU delegate: every op edgeplex's kernels implement.

It is always available and always last. Inside an interpreter its
partitions do not go through :meth:`CPUDelegate.prepare`: they run as the
interpreter's own flat list of prepared kernel steps bound to preallocated
arrays, exactly as a model without delegates does. ``prepare`` is the
generic path (a partition compiled on its own), used to re-run a failed
delegate partition on the CPU and by the conformance kit.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgeplex.core.plan import PlanRuntime, SubgraphPlan

from ..api import Delegate, DelegateKernel, Unsupported


class CPUDelegate(Delegate):
    """edgeplex's numpy kernels as a delegate named ``"cpu"``."""

    name = "cpu"
    memory_domain = "host"
    OPTIONS: dict[str, Any] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._resolver: Any = None

    @classmethod
    def with_resolver(cls, resolver: Any) -> "CPUDelegate":
        """A CPU delegate using ``resolver`` instead of the default kernels."""
        cpu = cls()
        cpu._resolver = resolver
        return cpu

    @property
    def resolver(self) -> Any:
        """The kernel resolver (edgeplex.kernels.default_resolver() unless given)."""
        if self._resolver is None:
            from edgeplex.kernels import default_resolver
            self._resolver = default_resolver()
        return self._resolver

    def supports(self, node: Any) -> bool | Unsupported:
        """True when a kernel implements the op, version and type; else the kernels' reason."""
        ctx = node.op_context()
        reason = self.resolver.supports(ctx)
        return True if reason is None else Unsupported(strip_where(reason, ctx.where()))

    def prepare(self, partition: Any) -> "CPUKernel":
        """Prepare the partition's kernels on a standalone plan."""
        return CPUKernel(partition.to_model(), self.resolver)


def strip_where(message: str, where: str) -> str:
    """``message`` without a leading ``"op 3 (ADD v1): "`` (the report names the node)."""
    prefix = f"{where}: "
    return message[len(prefix):] if message.startswith(prefix) else message


class CPUKernel(DelegateKernel):
    """A partition's kernels prepared and allocated once; ``invoke`` copies in and out."""

    def __init__(self, model: Any, resolver: Any) -> None:
        runtime = PlanRuntime(model, resolver)
        sg = model.main
        self.plan = SubgraphPlan(model, 0, resolver, runtime,
                                 [sg.tensors[t].shape for t in sg.inputs])
        self.inputs, self.outputs = sg.inputs, sg.outputs

    def invoke(self, inputs: list) -> list:
        """Run the partition on host arrays; returns fresh arrays."""
        values = self.plan.values
        for t, x in zip(self.inputs, inputs):
            np.copyto(values[t], np.asarray(x), casting="no")
        self.plan.run()
        return [np.array(values[t], copy=True) for t in self.outputs]


__all__: Sequence[str] = ["CPUDelegate", "CPUKernel", "strip_where"]
