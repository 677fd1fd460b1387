"""The graph partitioner: which delegate runs which node, in which partitions.

Pure logic over the IR and the delegates' answers (it imports only core
types): :func:`place` asks nothing itself; it takes every delegate's
verdict per node and returns partitions, per-node decisions and the
transfers between memory domains. :class:`PlacementReport` presents a
placement to users.
"""
from __future__ import annotations

from .cost import node_flops
from .graph import FRAMEWORK_OPS, Graph, Node
from .place import POLICIES, NoDelegateError, place
from .report import (REPORT_VERSION, DelegateRow, FallbackRow, NodeRow, PartitionRow,
                     PlacementReport, TransferRow, VerdictRow, node_ranges)
from .types import (HOST, DelegateSpec, Partition, PartitionerOptions, Pin, Placement,
                    Transfer, Verdict)

__all__ = [
    "place", "Graph", "Node", "Verdict", "DelegateSpec", "Pin", "PartitionerOptions",
    "Partition", "Placement", "Transfer", "HOST", "POLICIES", "FRAMEWORK_OPS",
    "NoDelegateError", "node_flops", "PlacementReport", "DelegateRow", "PartitionRow",
    "NodeRow", "VerdictRow", "TransferRow", "FallbackRow", "REPORT_VERSION", "node_ranges",
]
