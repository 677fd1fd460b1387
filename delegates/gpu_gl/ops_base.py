"""What every GPU op is made of: a capability check and a builder.

``check(node) -> str | None`` runs at ``supports`` time on a NodeInfo and
returns the reason the GPU cannot run the node (None: it can). ``build(b)``
runs at ``prepare`` time with a :class:`Build` and returns what the node
becomes: a :class:`~.glsl.Shader` (one dispatch), an :class:`Alias` (the
output is the input's storage: RESHAPE, SQUEEZE) or a :class:`Value` (the
output is a constant computed now: DEQUANTIZE, DENSIFY of constants).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .glsl import CLAMPS, Operand, Shader

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Alias:
    """The node's output shares the storage of tensor ``tensor``."""

    tensor: int


@dataclass(frozen=True)
class Value:
    """The node's output is this constant, computed at prepare."""

    array: np.ndarray


class Build:
    """A node as its builder sees it at prepare: shapes, known constants, operands."""

    def __init__(self, node: Any, constants: Mapping[int, np.ndarray]) -> None:
        self.node = node
        self.options = node.options
        self._constants = constants

    def shape(self, k: int) -> tuple[int, ...]:
        """Shape of input ``k``."""
        return tuple(int(d) for d in self.node.inputs[k].shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of output 0."""
        return tuple(int(d) for d in self.node.outputs[0].shape)

    @property
    def out_count(self) -> int:
        """Number of elements of output 0."""
        return int(np.prod(self.out_shape, dtype=np.int64))

    def has(self, k: int) -> bool:
        """True when optional input ``k`` is present."""
        return k < len(self.node.inputs) and self.node.inputs[k] is not None

    def const(self, k: int) -> np.ndarray | None:
        """The value of input ``k`` when known at prepare (a constant, or computed
        from constants inside the partition), else None."""
        t = self.node.inputs[k]
        if t is None:
            return None
        if t.data is not None:
            return np.asarray(t.data)
        return self._constants.get(t.index)

    def x(self, k: int) -> Operand:
        """Input ``k`` as an operand (its storage, at the delegate's precision)."""
        return Operand(tensor=self.node.inputs[k].index)

    def shader(self, body: str, operands: list[Operand], *, width: int = 1,
               act: str = "NONE", helpers: tuple[str, ...] = (),
               invocations: int | None = None) -> Shader:
        """A Shader computing output 0 of this node (``width=0``: ``invocations``
        runs of ``run(g)``)."""
        count = self.out_count if invocations is None else invocations
        return Shader(body, operands, count, width, act,
                      f"{self.node.op} (op {self.node.index})", helpers)

    def xv(self, k: int) -> Operand:
        """Input ``k`` bound as an array of vec4 (see glsl)."""
        return Operand(tensor=self.node.inputs[k].index, vec4=True)


@dataclass(frozen=True)
class OpSpec:
    """One row of the capability table.

    ``data``: input positions that carry float tensors (possibly computed at
    run time); every other present input is a parameter that must be a
    constant. ``in_types`` / ``out_types``: dtypes accepted on data inputs
    and on outputs.
    """

    build: Callable[[Build], Any]
    check: Check | None = None
    data: tuple[int, ...] = (0,)
    in_types: frozenset[str] = frozenset({"float32"})
    out_types: frozenset[str] = frozenset({"float32"})


# -- checks shared by op families ----------------------------------------------------
def check_activation(node: Any) -> str | None:
    """Reason a fused activation is unsupported, or None."""
    act = getattr(node.options, "fused_activation_function", "NONE") or "NONE"
    if act not in CLAMPS:
        return (f"fused activation {act} is not supported on the GPU (NONE, RELU, RELU6 and "
                "RELU_N1_TO_1 are)")
    return None


def activation(node: Any) -> str:
    """The node's fused activation name (NONE when it has none)."""
    return getattr(node.options, "fused_activation_function", "NONE") or "NONE"


def const_ints(node: Any, k: int) -> list[int] | None:
    """Constant integer input ``k`` as a list, or None when not constant."""
    t = node.inputs[k] if k < len(node.inputs) else None
    if t is None or t.data is None:
        return None
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def all_checks(*checks: Check) -> Check:
    """A check that runs ``checks`` in order and returns the first reason."""
    def run(node: Any) -> str | None:
        for c in checks:
            reason = c(node)
            if reason:
                return reason
        return None
    return run
