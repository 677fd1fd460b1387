"""Cut: group same-delegate nodes into maximal partitions that keep the graph acyclic.

First a greedy pass in dependency order (as TFLite's partitioner does):
take every ready node of one delegate, and the nodes that become ready on
that delegate, into one group. Then merge pass: two groups of the same
delegate merge when no path leaves one and re-enters the other (which would
make the graph of partitions cyclic); passes repeat until nothing merges,
so the result is maximal: no two groups of a delegate can be joined.
Finally the groups are put in an order that respects every dependency.
"""
from __future__ import annotations

import heapq
from typing import Mapping

from .graph import Graph

Group = tuple[str, list[int]]


def cut(graph: Graph, assignment: Mapping[int, str]) -> list[Group]:
    """Groups ``(delegate, nodes in model order)`` in a valid execution order."""
    groups = _greedy(graph, assignment)
    return _ordered(graph, _merge(graph, groups))


def _greedy(graph: Graph, assignment: Mapping[int, str]) -> list[Group]:
    preds, succ = graph.predecessors(), graph.successors()
    waiting = [len(p) for p in preds]
    ready = [n for n, w in enumerate(waiting) if w == 0 and n not in graph.skip]
    heapq.heapify(ready)
    groups: list[Group] = []
    while ready:
        kind = assignment[ready[0]]
        same = [n for n in ready if assignment[n] == kind]
        ready = [n for n in ready if assignment[n] != kind]
        heapq.heapify(same)
        heapq.heapify(ready)
        members = []
        while same:
            n = heapq.heappop(same)
            members.append(n)
            for s in succ[n]:
                waiting[s] -= 1
                if waiting[s] == 0:
                    heapq.heappush(same if assignment[s] == kind else ready, s)
        groups.append((kind, sorted(members)))
    if sum(len(m) for _, m in groups) != len(graph.nodes) - len(graph.skip):
        raise ValueError("the graph has a cycle: some nodes never became ready")
    return groups


class _Quotient:
    """The graph of groups, with reachability as bit masks for cheap cycle checks."""

    def __init__(self, graph: Graph, groups: list[Group]) -> None:
        self.kind = [k for k, _ in groups]
        self.members = [list(m) for _, m in groups]
        self.alive = [True] * len(groups)
        owner = {n: g for g, (_, ms) in enumerate(groups) for n in ms}
        self.succ: list[set[int]] = [set() for _ in groups]
        self.pred: list[set[int]] = [set() for _ in groups]
        for n, ps in enumerate(graph.predecessors()):
            for p in ps:
                a, b = owner[p], owner[n]
                if a != b:
                    self.succ[a].add(b)
                    self.pred[b].add(a)
        self.reach = [0] * len(groups)
        for g in reversed(range(len(groups))):       # greedy groups are in dependency order
            for s in self.succ[g]:
                self.reach[g] |= self.reach[s] | (1 << s)

    def mergeable(self, a: int, b: int) -> bool:
        """True if joining ``a`` and ``b`` keeps the quotient graph acyclic."""
        return not (any(self.reach[s] >> b & 1 for s in self.succ[a] if s != b)
                    or any(self.reach[s] >> a & 1 for s in self.succ[b] if s != a))

    def merge(self, a: int, b: int) -> None:
        """Fold group ``b`` into ``a``."""
        self.members[a] += self.members[b]
        self.alive[b] = False
        for s in self.succ[b]:
            self.pred[s].discard(b)
            if s != a:
                self.pred[s].add(a)
                self.succ[a].add(s)
        for p in self.pred[b]:
            self.succ[p].discard(b)
            if p != a:
                self.succ[p].add(a)
                self.pred[a].add(p)
        self.succ[a] -= {a, b}
        self.pred[a] -= {a, b}
        bits = (1 << a) | (1 << b)
        joined = (self.reach[a] | self.reach[b]) & ~bits
        self.reach[a] = joined
        for g, r in enumerate(self.reach):
            if self.alive[g] and g != a and r & bits:
                self.reach[g] = (r & ~(1 << b)) | (1 << a) | joined


def _merge(graph: Graph, groups: list[Group]) -> list[Group]:
    q = _Quotient(graph, groups)
    changed = True
    while changed:
        changed = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                if (q.alive[a] and q.alive[b] and q.kind[a] == q.kind[b]
                        and q.mergeable(a, b)):
                    q.merge(a, b)
                    changed = True
    return [(q.kind[g], sorted(q.members[g])) for g in range(len(groups)) if q.alive[g]]


def _ordered(graph: Graph, groups: list[Group]) -> list[Group]:
    """Groups in dependency order; ties go to the group holding the earliest node."""
    owner = {n: g for g, (_, ms) in enumerate(groups) for n in ms}
    succ: list[set[int]] = [set() for _ in groups]
    waiting = [0] * len(groups)
    for n, ps in enumerate(graph.predecessors()):
        for p in ps:
            a, b = owner[p], owner[n]
            if a != b and b not in succ[a]:
                succ[a].add(b)
                waiting[b] += 1
    ready = [(groups[g][1][0], g) for g in range(len(groups)) if waiting[g] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, g = heapq.heappop(ready)
        order.append(groups[g])
        for s in succ[g]:
            waiting[s] -= 1
            if waiting[s] == 0:
                heapq.heappush(ready, (groups[s][1][0], s))
    if len(order) != len(groups):
        raise ValueError("internal error: partitions form a cycle")
    return order
