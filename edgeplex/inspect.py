"""Static reports on a model: op coverage, quantization, the kernel op table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from edgeplex.core.errors import EdgeplexError
from edgeplex.core.ir import Model, Subgraph, Tensor
from edgeplex.core.kernel_api import OpContext, TensorSpec


@dataclass(frozen=True)
class OpCoverage:
    """How many operators use (op, version, input type), and why not supported."""

    op: str
    version: int
    type_name: str
    count: int
    reason: str | None            # None when a CPU kernel takes it

    @property
    def supported(self) -> bool:
        """True when a CPU kernel takes every such operator."""
        return self.reason is None


def _context(model: Model, sg: Subgraph, op: Any) -> OpContext:
    def spec(t: int) -> TensorSpec:
        tensor = sg.tensors[t]
        return TensorSpec(tensor, tensor.shape, tensor.data)
    return OpContext(op, sg, model, [None if t < 0 else spec(t) for t in op.inputs],
                     [spec(t) for t in op.outputs])


def op_coverage(model: Model, resolver: Any = None) -> list[OpCoverage]:
    """Per (op, version, type): operator count and whether a kernel takes it.

    This checks op, version and type (what the resolver keys on); options
    are checked when the op is prepared at ``allocate_tensors``.
    """
    if resolver is None:
        from edgeplex.kernels import default_resolver
        resolver = default_resolver()
    rows: dict[tuple[str, int, str], list] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            ctx = _context(model, sg, op)
            type_name = next((t.type_name for t in ctx.inputs if t is not None), "-")
            key = (op.op, op.version, type_name)
            if key not in rows:
                rows[key] = [0, _reason(resolver, ctx)]
            rows[key][0] += 1
    return [OpCoverage(op, v, ty, n, reason) for (op, v, ty), (n, reason) in sorted(rows.items())]


def _reason(resolver: Any, ctx: OpContext) -> str | None:
    try:
        resolver.find(ctx)
    except EdgeplexError as e:
        return str(e).split(": ", 1)[-1]
    return None


def quantized_tensors(sg: Subgraph) -> Iterable[Tensor]:
    """Tensors of a subgraph that carry quantization parameters."""
    return (t for t in sg.tensors if t.quantization is not None)


def describe_quantization(t: Tensor, limit: int = 4) -> str:
    """``scale=0.0235 zero_point=-128`` or ``per-channel axis 0: 32 scales [...]``."""
    q = t.quantization
    if q is None:
        return "-"
    if not q.per_channel:
        return f"scale={float(q.scale[0]):.6g} zero_point={int(q.zero_point[0])}"
    shown = ", ".join(f"{s:.4g}" for s in q.scale[:limit])
    more = ", ..." if q.scale.size > limit else ""
    zps = np.unique(q.zero_point)
    zp = f"zero_point={int(zps[0])}" if zps.size == 1 else f"{zps.size} zero points"
    return f"per-channel axis {q.axis}: {q.scale.size} scales [{shown}{more}] {zp}"


def op_table(resolver: Any = None) -> str:
    """Markdown table of every CPU kernel: op, versions, types (from the registry)."""
    if resolver is None:
        from edgeplex.kernels import default_resolver
        resolver = default_resolver()
    merged: dict[str, list[tuple[tuple[int, int], set[str], bool]]] = {}
    for reg in resolver.registrations():
        merged.setdefault(reg.op, []).append((reg.versions, set(reg.types), reg.when is not None))
    lines = ["| op | versions | input types |", "|---|---|---|"]
    for op in sorted(merged):
        entries = merged[op]
        lo = min(v[0] for v, _, _ in entries)
        hi = max(v[1] for v, _, _ in entries)
        types = sorted(set().union(*(t for _, t, _ in entries)))
        lines.append(f"| {op} | {lo}–{hi} | {', '.join(types)} |")
    return "\n".join(lines) + "\n"
