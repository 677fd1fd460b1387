"""The whole placement: claims, assign, cut, filter, stitch.

:func:`place` is pure: it reads the graph and the delegates' verdicts and
returns a :class:`~edgeplex.partitioner.types.Placement`. Partitions that
fail ``min_nodes_per_partition`` or ``max_partitions`` hand their nodes to
the next claimant (their verdict records why) and placement runs again
until it is stable.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from edgeplex.core.errors import ConfigError, UnsupportedOpError

from .assign import CostModel, assign_cost, assign_priority
from .cut import cut
from .graph import Graph
from .stitch import partitions_of, transfers_for
from .types import DelegateSpec, PartitionerOptions, Placement, Verdict

POLICIES = ("priority", "cost")
Group = tuple[str, list[int]]


class NoDelegateError(UnsupportedOpError):
    """Some nodes are claimed by no delegate; ``.verdicts`` says what each one answered."""

    def __init__(self, message: str, verdicts: Mapping[int, Sequence[Verdict]]) -> None:
        super().__init__(message)
        self.verdicts = dict(verdicts)


def place(graph: Graph, delegates: Sequence[DelegateSpec],
          verdicts: Mapping[int, Sequence[Verdict]],
          options: PartitionerOptions | None = None) -> Placement:
    """Place every node of ``graph`` on one of ``delegates`` (priority order)."""
    options = options or PartitionerOptions()
    if options.policy not in POLICIES:
        raise ConfigError(f"partitioner policy {options.policy!r} is not one of "
                          f"{', '.join(POLICIES)}")
    order = [d.name for d in delegates]
    table = {n: list(verdicts.get(n, ())) for n in graph.placeable()}
    model = CostModel(graph, delegates, options.estimates)
    for _ in range(len(graph.nodes) * len(order) + 1):
        claims = _claims(graph, table, order, options)
        if options.policy == "cost":
            assignment, why = assign_cost(graph, claims, options.pins, model)
        else:
            assignment, why = assign_priority(claims, options.pins)
        groups = cut(graph, assignment)
        rejected = _filter(graph, groups, delegates, options)
        if not rejected:
            break
        for node, verdict in rejected:
            _override(table, node, verdict)
    partitions = partitions_of(graph, groups, {d.name: d.domain for d in delegates})
    return Placement(partitions, assignment, _explain(table, order, assignment, why),
                     {n: tuple(v) for n, v in table.items()}, transfers_for(graph, partitions),
                     model.total_seconds(assignment), options.policy)


def _claims(graph: Graph, table: Mapping[int, list[Verdict]], order: Sequence[str],
            options: PartitionerOptions) -> dict[int, list[str]]:
    claims, orphans = {}, {}
    for node in (graph.nodes[n] for n in graph.placeable()):
        ok = {v.delegate for v in table[node.index] if v.supported}
        names = [d for d in order if d in ok]
        pin = options.pins.get(node.index)
        if pin is not None and pin.delegate not in names:
            why = next((v.reason for v in table[node.index] if v.delegate == pin.delegate),
                       "it was not asked")
            raise ConfigError(f"[edgeplex.partitioner] {pin.rule}: {pin.delegate} does not "
                              f"take op {node.index} ({node.op}): {why}")
        if not names:
            orphans[node.index] = table[node.index]
        claims[node.index] = names
    if orphans:
        raise NoDelegateError(_orphan_message(graph, orphans), orphans)
    return claims


def _orphan_message(graph: Graph, orphans: Mapping[int, Sequence[Verdict]]) -> str:
    lines = [f"{len(orphans)} op(s) are taken by no delegate:"]
    for n, vs in orphans.items():
        reasons = "; ".join(f"{v.delegate}: {v.reason or 'declined (no reason given)'}"
                            for v in vs) or "no verdicts"
        lines.append(f"  op {n} ({graph.nodes[n].op}): {reasons}")
    return "\n".join(lines)


def _filter(graph: Graph, groups: Sequence[Group], delegates: Sequence[DelegateSpec],
            options: PartitionerOptions) -> list[tuple[int, Verdict]]:
    """Verdicts withdrawing partitions that are too small or too many."""
    fallback = {d.name for d in delegates if d.is_fallback}
    rejected: list[tuple[int, Verdict]] = []
    kept: dict[str, list[list[int]]] = {}
    for delegate, nodes in groups:
        if delegate in fallback or any(n in options.pins for n in nodes):
            continue
        if len(nodes) < options.min_nodes_per_partition:
            reason = (f"its partition would have {len(nodes)} node(s), fewer than "
                      f"min_nodes_per_partition = {options.min_nodes_per_partition}")
            rejected += [(n, Verdict(delegate, False, reason, "min_nodes")) for n in nodes]
        else:
            kept.setdefault(delegate, []).append(nodes)
    if options.max_partitions > 0:
        for delegate, parts in kept.items():
            parts.sort(key=lambda ns: (-sum(graph.nodes[n].flops for n in ns), ns[0]))
            reason = (f"{delegate} keeps its {options.max_partitions} largest partition(s) "
                      f"by estimated work (max_partitions = {options.max_partitions})")
            rejected += [(n, Verdict(delegate, False, reason, "max_partitions"))
                         for nodes in parts[options.max_partitions:] for n in nodes]
    return rejected


def _override(table: dict[int, list[Verdict]], node: int, verdict: Verdict) -> None:
    rows = table[node]
    for i, v in enumerate(rows):
        if v.delegate == verdict.delegate:
            rows[i] = verdict
            return
    rows.append(verdict)


def _explain(table: Mapping[int, list[Verdict]], order: Sequence[str],
             assignment: Mapping[int, str], why: Mapping[int, str]) -> dict[int, str]:
    """Why each node sits where it does; names the rule or filter when one decided."""
    result = {}
    for n, chosen in assignment.items():
        reason = why[n]
        if reason == "priority":
            skipped = [v for v in table[n] if v.delegate in order[:order.index(chosen)]
                       and not v.supported and v.source != "supports"]
            if skipped:
                v = skipped[0]
                reason = f"{v.source} ({v.delegate}): {v.reason}"
        result[n] = reason
    return result
