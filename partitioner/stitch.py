"""Stitch: partition boundaries and the transfers between memory domains.

A tensor lives first where it is produced (model inputs on the host). For
every other domain that reads it, one transfer is placed just before its
first reader there; a model output produced off the host gets one transfer
at the end. Partitions in the same domain pass values without any.
"""
from __future__ import annotations

from typing import Sequence

from .graph import Graph
from .types import HOST, Partition, Transfer

Group = tuple[str, list[int]]


def partitions_of(graph: Graph, groups: Sequence[Group], domains: dict[str, str]
                  ) -> tuple[Partition, ...]:
    """Partitions (with their boundary tensors) for groups in execution order."""
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    result = []
    for pid, (delegate, nodes) in enumerate(groups):
        inside = set(nodes)
        produced = {t for n in nodes for t in graph.nodes[n].outputs}
        ins = [t for n in nodes for t in graph.nodes[n].inputs if t not in produced]
        outs = [t for n in nodes for t in graph.nodes[n].outputs
                if t in outputs or any(c not in inside for c in consumers.get(t, ()))]
        result.append(Partition(pid, delegate, domains[delegate], tuple(nodes),
                                tuple(dict.fromkeys(ins)), tuple(dict.fromkeys(outs))))
    return tuple(result)


def transfers_for(graph: Graph, partitions: Sequence[Partition]) -> tuple[Transfer, ...]:
    """One transfer per (tensor, domain it must reach), before its first reader there."""
    home = {t: p.domain for p in partitions for n in p.nodes for t in graph.nodes[n].outputs}
    moved: set[tuple[int, str]] = set()
    transfers = []
    for p in partitions:
        for t in p.inputs:
            src = home.get(t, HOST)
            if src != p.domain and (t, p.domain) not in moved:
                moved.add((t, p.domain))
                transfers.append(Transfer(t, src, p.domain, graph.bytes_of(t), p.id))
    for t in dict.fromkeys(graph.outputs):
        src = home.get(t, HOST)
        if src != HOST and (t, HOST) not in moved:
            moved.add((t, HOST))
            transfers.append(Transfer(t, src, HOST, graph.bytes_of(t), len(partitions)))
    return tuple(transfers)
