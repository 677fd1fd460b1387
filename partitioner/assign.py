"""Assign: choose one delegate per node among those that claim it.

``priority`` gives each node to the first claimant in the user's order.
``cost`` minimises estimated time: node execution (``estimate_seconds``
where a delegate gives it, else the CPU's FLOP estimate) plus a transfer for
every tensor that must reach another memory domain. It starts from the
fastest claimant per node and then moves whole islands (connected nodes on
one delegate) while that lowers the total, which is how a small island
stays on the CPU when moving it would cost more in transfers than it saves.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from .cost import cpu_seconds, transfer_seconds
from .graph import Graph
from .types import HOST, DelegateSpec, Pin

Assignment = dict[int, str]
_EPS = 1e-12
_MAX_ROUNDS = 50


def assign_priority(claims: Mapping[int, Sequence[str]], pins: Mapping[int, Pin]
                    ) -> tuple[Assignment, dict[int, str]]:
    """First claimant wins; pinned nodes go where the pin says."""
    assignment, why = {}, {}
    for n, names in claims.items():
        if n in pins:
            assignment[n], why[n] = pins[n].delegate, f"pin rule {pins[n].rule}"
        else:
            assignment[n], why[n] = names[0], "priority"
    return assignment, why


class CostModel:
    """Estimated seconds of an assignment: node times plus transfers."""

    def __init__(self, graph: Graph, specs: Sequence[DelegateSpec],
                 estimates: Mapping[tuple[int, str], float]) -> None:
        self.graph, self.estimates = graph, estimates
        self.domain = {s.name: s.domain for s in specs}
        self.bandwidth: dict[str, float] = {}
        for s in specs:
            self.bandwidth.setdefault(s.domain, s.transfer_bytes_per_second)
        self.producer = graph.producers()
        self.consumers = graph.consumers()
        self.outputs = set(graph.outputs)

    def node_seconds(self, n: int, delegate: str) -> float:
        """Time of node ``n`` on ``delegate``."""
        given = self.estimates.get((n, delegate))
        return float(given) if given is not None else cpu_seconds(self.graph.nodes[n].flops)

    def move_seconds(self, t: int, src: str, dst: str) -> float:
        """Time to move tensor ``t`` from domain ``src`` to ``dst`` (via the host)."""
        size = self.graph.bytes_of(t)
        legs = [d for d in (src, dst) if d != HOST]
        return sum(transfer_seconds(size, self.bandwidth.get(d, 4e9)) for d in legs)

    def tensor_seconds(self, t: int, assignment: Mapping[int, str]) -> float:
        """Transfers tensor ``t`` needs under ``assignment``."""
        p = self.producer.get(t)
        home = HOST if p is None else self.domain[assignment[p]]
        needs = {self.domain[assignment[c]] for c in self.consumers.get(t, ())}
        if t in self.outputs:
            needs.add(HOST)
        needs.discard(home)
        return sum(self.move_seconds(t, home, d) for d in needs)

    def local_seconds(self, nodes: Sequence[int], assignment: Mapping[int, str]) -> float:
        """The part of the total that depends on where ``nodes`` run."""
        tensors = {t for n in nodes for t in self.graph.nodes[n].inputs}
        tensors.update(t for n in nodes for t in self.graph.nodes[n].outputs)
        return (sum(self.node_seconds(n, assignment[n]) for n in nodes)
                + sum(self.tensor_seconds(t, assignment) for t in tensors))

    def total_seconds(self, assignment: Mapping[int, str]) -> float:
        """Estimated time of one invoke under ``assignment``."""
        tensors = set(self.producer) | set(self.consumers) | self.outputs
        return (sum(self.node_seconds(n, d) for n, d in assignment.items())
                + sum(self.tensor_seconds(t, assignment) for t in tensors))


def assign_cost(graph: Graph, claims: Mapping[int, Sequence[str]], pins: Mapping[int, Pin],
                model: CostModel) -> tuple[Assignment, dict[int, str]]:
    """Minimise estimated time: fastest claimant per node, then island moves."""
    assignment, why = assign_priority(claims, pins)
    for n, names in claims.items():
        if n not in pins:
            assignment[n] = min(names, key=lambda d: (model.node_seconds(n, d), names.index(d)))
    for _ in range(_MAX_ROUNDS):
        moved = False
        for group in _islands(graph, assignment) + [[n] for n in claims]:
            moved |= _try_move(group, claims, pins, assignment, model)
        if not moved:
            break
    for n, names in claims.items():
        if n not in pins:
            why[n] = "priority" if assignment[n] == names[0] else "cost"
    return assignment, why


def _try_move(group: list[int], claims: Mapping[int, Sequence[str]], pins: Mapping[int, Pin],
              assignment: Assignment, model: CostModel) -> bool:
    if any(n in pins for n in group):
        return False
    current = assignment[group[0]]
    options = [d for d in claims[group[0]] if d != current
               and all(d in claims[n] for n in group)]
    base = model.local_seconds(group, assignment)
    best, best_cost = None, base - _EPS
    for d in options:
        trial = dict(assignment)
        trial.update({n: d for n in group})
        cost = model.local_seconds(group, trial)
        if cost < best_cost:
            best, best_cost = d, cost
    if best is None:
        return False
    assignment.update({n: best for n in group})
    return True


def _islands(graph: Graph, assignment: Mapping[int, str]) -> list[list[int]]:
    """Connected components of same-delegate nodes (edges taken undirected)."""
    preds = graph.predecessors()
    neighbours: list[set[int]] = [set() for _ in graph.nodes]
    for n, ps in enumerate(preds):
        for p in ps:
            if assignment.get(p) == assignment.get(n):
                neighbours[n].add(p)
                neighbours[p].add(n)
    seen: set[int] = set()
    islands = []
    for start in assignment:
        if start in seen:
            continue
        stack, island = [start], []
        seen.add(start)
        while stack:
            n = stack.pop()
            island.append(n)
            for m in neighbours[n] - seen:
                seen.add(m)
                stack.append(m)
        islands.append(sorted(island))
    return islands
