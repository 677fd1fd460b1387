"""The placement report: ``interpreter.placement``.

What went where and why: the partitions (delegate, nodes, op histogram,
boundary tensors), every node's verdict from every delegate asked, the
transfers between memory domains, and the fallbacks taken. ``str()`` is a
readable table; :meth:`PlacementReport.to_json` a stable document whose
``version`` changes only when its shape does.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .graph import Graph
from .types import Placement

REPORT_VERSION = 1
#: The ``delegate`` of a node folded into a constant at prepare time.
FOLDED = "folded"


@dataclass(frozen=True)
class DelegateRow:
    """A delegate that was considered, and whether it could be used."""

    name: str
    domain: str
    available: bool
    reason: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PartitionRow:
    """One partition: who runs it, which nodes, which tensors cross its edge."""

    id: int
    delegate: str
    domain: str
    nodes: tuple[int, ...]
    ops: Mapping[str, int]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class VerdictRow:
    """One delegate's answer for one node."""

    delegate: str
    supported: bool
    reason: str
    source: str


@dataclass(frozen=True)
class NodeRow:
    """One node: where it runs, why, and what every delegate said."""

    index: int
    op: str
    version: int
    delegate: str
    partition: int
    decided_by: str
    verdicts: tuple[VerdictRow, ...]


@dataclass(frozen=True)
class TransferRow:
    """One tensor moved between memory domains on every invoke."""

    tensor: str
    index: int
    bytes: int
    src: str
    dst: str
    before_partition: int


@dataclass(frozen=True)
class FallbackRow:
    """A delegate's ``prepare`` failed; its nodes went to the next claimant."""

    delegate: str
    nodes: tuple[int, ...]
    error: str


class PlacementReport:
    """Partitions, verdicts, transfers and fallbacks of one allocated plan."""

    def __init__(self, placement: Placement, graph: Graph, versions: Mapping[int, int],
                 delegates: Sequence[DelegateRow], prepare_fallbacks: Sequence[FallbackRow] = (),
                 subgraph: int = 0) -> None:
        self.policy = placement.policy
        self.subgraph = subgraph
        self.estimated_seconds = placement.estimated_seconds
        self.delegates = tuple(delegates)
        self.partitions = tuple(_partition_row(p, graph) for p in placement.partitions)
        where = {n: p.id for p in placement.partitions for n in p.nodes}
        self.nodes = tuple(_node_row(n, placement, graph, versions, where) for n in
                           range(len(graph.nodes)))
        #: nodes computed once at prepare time (constant inputs): nothing to place
        self.folded = tuple(sorted(graph.skip))
        self.transfers = tuple(TransferRow(graph.name_of(t.tensor), t.tensor, t.nbytes, t.src,
                                           t.dst, t.before) for t in placement.transfers)
        self.prepare_fallbacks = tuple(prepare_fallbacks)
        #: partition id -> invokes re-run on the CPU after the delegate raised
        self.invoke_fallbacks: Counter[int] = Counter()

    # -- queries ---------------------------------------------------------------
    def delegate_of(self, node: int) -> str:
        """The delegate running ``node``."""
        return self.nodes[node].delegate

    def nodes_on(self, delegate: str) -> list[int]:
        """Indices of the nodes ``delegate`` runs."""
        return [n.index for n in self.nodes if n.delegate == delegate]

    def op_counts(self) -> dict[str, dict[str, int]]:
        """delegate -> op -> how many nodes of that op it runs."""
        counts: dict[str, Counter[str]] = {}
        for n in self.nodes:
            counts.setdefault(n.delegate, Counter())[n.op] += 1
        return {d: dict(c) for d, c in counts.items()}

    # -- output ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (what :meth:`to_json` writes)."""
        return {
            "version": REPORT_VERSION,
            "subgraph": self.subgraph,
            "policy": self.policy,
            "estimated_seconds": round(self.estimated_seconds, 9),
            "delegates": [_plain(d) for d in self.delegates],
            "partitions": [_plain(p) for p in self.partitions],
            "nodes": [_plain(n) for n in self.nodes],
            "transfers": [{"tensor": t.tensor, "index": t.index, "bytes": t.bytes,
                           "from": t.src, "to": t.dst, "before_partition": t.before_partition}
                          for t in self.transfers],
            "prepare_fallbacks": [_plain(f) for f in self.prepare_fallbacks],
            "folded": list(self.folded),
            "invoke_fallbacks": [{"partition": p, "delegate": self.partitions[p].delegate,
                                  "count": c} for p, c in sorted(self.invoke_fallbacks.items())],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """A stable JSON document (sorted keys, a ``version`` field)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def __repr__(self) -> str:
        return (f"<PlacementReport {len(self.partitions)} partition(s), "
                f"{len(self.transfers)} transfer(s)>")

    def _lines(self) -> Iterable[str]:
        yield (f"placement (subgraph {self.subgraph}, policy {self.policy}): "
               f"{len(self.partitions)} partition(s), {len(self.transfers)} transfer(s)")
        yield "delegates: " + ", ".join(
            f"{d.name} [{d.domain}]" + ("" if d.available else f" UNAVAILABLE: {d.reason}")
            for d in self.delegates)
        yield ""
        yield from _table(["#", "delegate", "domain", "nodes", "ops", "inputs", "outputs"], [
            [str(p.id), p.delegate, p.domain, node_ranges(p.nodes), _histogram(p.ops),
             _names(p.inputs), _names(p.outputs)] for p in self.partitions])
        if self.transfers:
            yield ""
            yield from _table(["transfer", "bytes", "from -> to", "before partition"], [
                [t.tensor, f"{t.bytes:,}", f"{t.src} -> {t.dst}",
                 "end" if t.before_partition == len(self.partitions) else str(t.before_partition)]
                for t in self.transfers])
        for f in self.prepare_fallbacks:
            yield f"prepare fallback: {f.delegate} nodes {node_ranges(f.nodes)}: {f.error}"
        for p, c in sorted(self.invoke_fallbacks.items()):
            yield f"invoke fallback: partition {p} ({self.partitions[p].delegate}) re-run on " \
                  f"the CPU {c} time(s)"
        if self.folded:
            ops = Counter(self.nodes[n].op for n in self.folded)
            yield (f"folded at prepare time (constant inputs, nothing to run): "
                   f"{len(self.folded)} node(s), {_histogram(ops)}: "
                   f"{_short(node_ranges(self.folded), 60)}")
        yield ""
        names = [d.name for d in self.delegates if d.available]
        yield from _table(["node", "op", "placed", "decided by"] + names, [
            [str(n.index), n.op, f"{n.delegate} #{n.partition}", _short(n.decided_by, 40)]
            + [_verdict_cell(n, d) for d in names] for n in self.nodes
            if n.delegate != FOLDED])


def _partition_row(p: Any, graph: Graph) -> PartitionRow:
    ops = Counter(graph.nodes[n].op for n in p.nodes)
    return PartitionRow(p.id, p.delegate, p.domain, p.nodes, dict(sorted(ops.items())),
                        tuple(graph.name_of(t) for t in p.inputs),
                        tuple(graph.name_of(t) for t in p.outputs))


def _node_row(n: int, placement: Placement, graph: Graph, versions: Mapping[int, int],
              where: Mapping[int, int]) -> NodeRow:
    if n in graph.skip:
        return NodeRow(n, graph.nodes[n].op, versions.get(n, 1), FOLDED, -1,
                       "folded into a constant at prepare time", ())
    verdicts = tuple(VerdictRow(v.delegate, v.supported, v.reason, v.source)
                     for v in placement.verdicts.get(n, ()))
    return NodeRow(n, graph.nodes[n].op, versions.get(n, 1), placement.assignment[n],
                   where[n], placement.decided_by.get(n, ""), verdicts)


def _plain(row: Any) -> dict[str, Any]:
    data = asdict(row)
    return {k: list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v
            for k, v in data.items()}


def node_ranges(nodes: Sequence[int]) -> str:
    """``0-3, 5, 7-9`` for a sorted list of node indices."""
    parts, start = [], None
    for i, n in enumerate(nodes):
        if start is None:
            start = n
        if i + 1 == len(nodes) or nodes[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts)


def _histogram(ops: Mapping[str, int]) -> str:
    return ", ".join(f"{op} x{c}" for op, c in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))


def _names(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" +{len(names) - limit}" if len(names) > limit else "") or "-"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _verdict_cell(n: NodeRow, delegate: str) -> str:
    v = next((v for v in n.verdicts if v.delegate == delegate), None)
    if v is None:
        return "-"
    if v.supported:
        return "yes"
    tag = "" if v.source == "supports" else f"[{v.source}] "
    return _short(f"no: {tag}{v.reason or 'declined (no reason given)'}", 48)


def _table(header: list[str], rows: list[list[str]]) -> Iterable[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        yield "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
