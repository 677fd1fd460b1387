"""The example delegate: which nodes it takes (a capability table) and how it runs them."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

import edgeplex
from edgeplex import DelegateKernel, Option, Unsupported

ACTIVATIONS: dict[str, Callable[[np.ndarray], None] | None] = {
    "NONE": None,
    "RELU": lambda a: np.maximum(a, 0, out=a),
}


def _fused(node: Any) -> str | None:
    """Why the node's fused activation is not supported, or None."""
    act = node.options.fused_activation_function
    return None if act in ACTIVATIONS else f"fused activation {act} is not supported"


#: op -> (number of inputs, extra check returning a reason or None)
CAPABILITIES: dict[str, tuple[int, Callable[[Any], str | None]]] = {
    "ADD": (2, _fused),
    "MUL": (2, _fused),
    "RELU": (1, lambda node: None),
}


class ExampleDelegate(edgeplex.Delegate):
    """Float32 ADD, MUL and RELU in numpy, on the host."""

    name = "example"
    memory_domain = "host"
    OPTIONS = {
        "ops": Option(["ADD", "MUL", "RELU"], "which of ADD, MUL, RELU to claim",
                      type=(list, tuple)),
        "min_elements": Option(0, "leave nodes whose output has fewer elements to others"),
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        unknown = sorted(set(self.options["ops"]) - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"ops {unknown} are not implemented; choose from "
                             f"{sorted(CAPABILITIES)}")
        if self.options["min_elements"] < 0:
            raise ValueError("min_elements must be >= 0")

    def supports(self, node: Any) -> bool | Unsupported:
        """Claim a node if the capability table and the options allow it."""
        if node.op not in self.options["ops"]:
            return Unsupported(f"{node.op} is not one of {', '.join(self.options['ops'])}")
        arity, check = CAPABILITIES[node.op]
        if len(node.inputs) != arity or any(t is None for t in node.inputs):
            return Unsupported(f"expects {arity} input(s)")
        for t in list(node.inputs) + list(node.outputs):
            if t.dtype != np.float32:
                return Unsupported(f"only float32 (tensor {t.name!r} is {t.dtype})")
        size = int(np.prod(node.outputs[0].shape, dtype=np.int64))
        if size < self.options["min_elements"]:
            return Unsupported(f"output has {size} elements, fewer than min_elements = "
                               f"{self.options['min_elements']}")
        reason = check(node)
        return Unsupported(reason) if reason else True

    def prepare(self, partition: Any) -> "ExampleKernel":
        """Turn the partition into a list of numpy calls over a value table."""
        return ExampleKernel(partition)


class ExampleKernel(DelegateKernel):
    """A partition compiled to numpy calls; values live in a list indexed by slot."""

    def __init__(self, partition: Any) -> None:
        slot: dict[int, int] = {t.index: i for i, t in enumerate(partition.inputs)}
        self.calls: list[tuple[Callable[..., None], list[Any], int, np.ndarray]] = []
        self.n_inputs = len(partition.inputs)
        for node in partition.nodes:
            args = [self._operand(t, slot) for t in node.inputs]
            out = node.outputs[0]
            slot[out.index] = len(slot)
            buffer = np.empty(out.shape, np.float32)      # preallocated output
            self.calls.append((_op(node), args, slot[out.index], buffer))
        self.outputs = [slot[t.index] for t in partition.outputs]
        self.size = len(slot)

    def _operand(self, t: Any, slot: dict[int, int]) -> Any:
        if t.data is not None:
            return ("const", t.data)
        return ("slot", slot[t.index])

    def invoke(self, inputs: list) -> list:
        """Run the compiled calls; returns copies of the partition outputs."""
        values: list[Any] = list(inputs) + [None] * (self.size - self.n_inputs)
        for fn, args, dst, buffer in self.calls:
            fn(*(v if kind == "const" else values[v] for kind, v in args), out=buffer)
            values[dst] = buffer
        return [values[i].copy() for i in self.outputs]


def _op(node: Any) -> Callable[..., None]:
    if node.op == "RELU":
        return lambda x, out: np.maximum(x, 0, out=out)
    ufunc = np.add if node.op == "ADD" else np.multiply
    act = ACTIVATIONS[node.options.fused_activation_function]

    def binary(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        ufunc(a, b, out=out)
        if act is not None:
            act(out)
    return binary


__all__: Sequence[str] = ["ExampleDelegate", "ExampleKernel", "CAPABILITIES"]
