"""The GPU delegate's capability table: op -> (check, builder).

:func:`check_node` answers ``supports``: first the rules every op shares
(float types, rank <= 4, static non-empty shapes, constant parameters, the
storage-buffer limit), then the op's own check. Each check returns the
reason it refuses (shown in the placement report), never raises.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import ops_const, ops_conv, ops_math, ops_movement, ops_window
from .ops_base import OpSpec

MAX_RANK = 4


def _table() -> dict[str, OpSpec]:
    rows: dict[str, OpSpec] = {}
    for family in (ops_math, ops_conv, ops_window, ops_movement, ops_const):
        for op, spec in family.table().items():
            if op in rows:
                raise RuntimeError(f"GPU op {op} is declared twice")
            rows[op] = spec
    return rows


#: op name -> OpSpec
TABLE: dict[str, OpSpec] = _table()


@dataclass(frozen=True)
class Limits:
    """What the GL implementation can bind: storage blocks per program and bytes per block
    (GL 4.3 guarantees 8 and 2^24)."""

    storage_blocks: int = 8
    block_bytes: int = 2 ** 24


def _tensor_problem(t: Any, what: str, types: frozenset[str], limits: Limits) -> str | None:
    dtype = np.dtype(t.dtype).name
    if dtype not in types:
        return f"{what} {t.name!r} is {dtype}; the GPU takes {', '.join(sorted(types))}"
    shape = tuple(t.shape)
    if len(shape) > MAX_RANK:
        return f"{what} {t.name!r} has rank {len(shape)} (the GPU handles rank <= {MAX_RANK})"
    if any(d is None or int(d) < 0 for d in shape):
        return f"{what} {t.name!r} has a dynamic shape {shape}"
    if any(int(d) == 0 for d in shape):
        return f"{what} {t.name!r} is empty (shape {shape})"
    size = int(np.prod(shape, dtype=np.int64)) * 4
    if size > limits.block_bytes:
        return (f"{what} {t.name!r} needs {size:,} bytes, over the GL storage block limit of "
                f"{limits.block_bytes:,}")
    return None


def check_node(node: Any, limits: Limits = Limits()) -> str | None:
    """Why the GPU cannot run ``node``, or None when it can."""
    if getattr(node, "is_custom", False):
        return f"custom op {node.op!r} is not implemented on the GPU"
    spec = TABLE.get(node.op)
    if spec is None:
        return f"{node.op} is not implemented on the GPU"
    if len(node.outputs) != 1:
        return f"{node.op} with {len(node.outputs)} outputs"
    problem = _tensor_problem(node.outputs[0], "output", spec.out_types, limits)
    if problem:
        return problem
    data = 0
    for k, t in enumerate(node.inputs):
        if t is None:
            continue
        if k in spec.data:
            data += 1
            problem = _tensor_problem(t, "input", spec.in_types, limits)
            if problem:
                return problem
        elif t.data is None:
            return f"input {k} ({t.name!r}) must be a constant"
    if data + 1 > limits.storage_blocks:
        return (f"{data} inputs need more storage buffers than the GL implementation binds "
                f"({limits.storage_blocks})")
    return spec.check(node) if spec.check is not None else None


def supported_ops() -> list[str]:
    """Every op name in the table, sorted."""
    return sorted(TABLE)
