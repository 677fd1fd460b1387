"""What goes into the partitioner and what comes out: plain data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .cost import TRANSFER_BYTES_PER_SECOND

#: The memory domain numpy arrays live in.
HOST = "host"

#: Where a verdict came from (shown in the placement report).
SOURCES = ("supports", "error", "rule", "framework", "prepare", "min_nodes", "max_partitions",
           "unavailable")


@dataclass(frozen=True)
class Verdict:
    """One delegate's answer for one node, and why.

    ``source`` says who decided: the delegate's ``supports`` ("supports"),
    ``supports`` raising ("error"), a user rule ("rule"), edgeplex itself
    ("framework": ops that must stay on the CPU), a failed ``prepare``
    ("prepare"), or the partition filters ("min_nodes", "max_partitions").
    """

    delegate: str
    supported: bool
    reason: str = ""
    source: str = "supports"


@dataclass(frozen=True)
class DelegateSpec:
    """A delegate as placement sees it: a name, a memory domain and its link to the host."""

    name: str
    domain: str = HOST
    transfer_bytes_per_second: float = TRANSFER_BYTES_PER_SECOND
    is_fallback: bool = False        # the CPU: never filtered by partition size or count


@dataclass(frozen=True)
class Pin:
    """A user rule forcing one node onto one delegate."""

    delegate: str
    rule: str                        # e.g. "pin.cpu = 'logits'"


@dataclass(frozen=True)
class PartitionerOptions:
    """Placement settings (the ``[edgeplex.partitioner]`` table)."""

    policy: str = "priority"          # or "cost"
    min_nodes_per_partition: int = 1
    max_partitions: int = 0           # per delegate; 0 = no limit
    pins: Mapping[int, Pin] = field(default_factory=dict)
    #: (node, delegate) -> seconds, where a delegate gives estimate_seconds
    estimates: Mapping[tuple[int, str], float] = field(default_factory=dict)


@dataclass(frozen=True)
class Partition:
    """Nodes that one delegate runs as one unit, in execution order position ``id``."""

    id: int
    delegate: str
    domain: str
    nodes: tuple[int, ...]            # model order (a valid order inside the partition)
    inputs: tuple[int, ...]           # flowing tensors read from outside
    outputs: tuple[int, ...]          # tensors produced here and needed elsewhere


@dataclass(frozen=True)
class Transfer:
    """Move ``tensor`` from domain ``src`` to ``dst`` just before partition ``before``.

    ``before == len(partitions)`` means at the end of the invoke (a model
    output that must reach the host).
    """

    tensor: int
    src: str
    dst: str
    nbytes: int
    before: int


@dataclass(frozen=True)
class Placement:
    """The partitioner's answer."""

    partitions: tuple[Partition, ...]
    assignment: Mapping[int, str]                 # node -> delegate
    decided_by: Mapping[int, str]                 # node -> why this delegate
    verdicts: Mapping[int, tuple[Verdict, ...]]   # node -> every delegate's answer
    transfers: tuple[Transfer, ...]
    estimated_seconds: float
    policy: str = "priority"

    def partition_of(self, node: int) -> Partition:
        """The partition holding ``node``."""
        return next(p for p in self.partitions if node in p.nodes)
