"""Test delegates for the framework's tests.

- :class:`HostMath`: a host-domain delegate for float32 ADD/SUB/MUL (numpy).
- :class:`DeviceMath`: the same ops in its own memory domain ``"testdev"``;
  values are :class:`DeviceHandle` objects that refuse numpy conversion,
  so any accidental host access by the framework fails loudly. It counts
  ``to_host`` / ``from_host`` calls.
- :class:`Failing`: fails on request at init, is_available, supports,
  prepare or invoke (like LiteRT's dummy delegate), to test the fallbacks.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

import edgeplex
from edgeplex import Delegate, DelegateKernel, Option, Unsupported

UFUNCS: dict[str, Callable[..., np.ndarray]] = {
    "ADD": np.add, "SUB": np.subtract, "MUL": np.multiply}


def claim_math(node: Any, ops: Sequence[str]) -> bool | Unsupported:
    """Float32 binary math without fused activation."""
    if node.op not in ops:
        return Unsupported(f"only {', '.join(ops)}")
    if any(t is None or t.dtype != np.float32 for t in node.inputs):
        return Unsupported("only float32")
    if node.options.fused_activation_function != "NONE":
        return Unsupported(f"fused {node.options.fused_activation_function} not supported")
    return True


def evaluate(partition: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run a partition's nodes in numpy, returning its outputs."""
    env = {t.index: np.asarray(v) for t, v in zip(partition.inputs, inputs)}
    for node in partition.nodes:
        a, b = (env[t.index] if t.data is None else t.data for t in node.inputs)
        env[node.outputs[0].index] = UFUNCS[node.op](a, b).astype(np.float32)
    return [env[t.index] for t in partition.outputs]


class MathKernel(DelegateKernel):
    """Runs a partition with :func:`evaluate`; counts invokes."""

    def __init__(self, delegate: "HostMath", partition: Any) -> None:
        self.delegate, self.partition = delegate, partition

    def invoke(self, inputs: list) -> list:
        """Evaluate on host arrays."""
        self.delegate.invokes += 1
        return evaluate(self.partition, inputs)


class HostMath(Delegate):
    """Float32 ADD/SUB/MUL on the host."""

    name = "hostmath"
    OPTIONS = {"ops": Option(("ADD", "SUB", "MUL"), "ops to claim", type=(tuple, list))}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.invokes = 0
        self.prepared: list[Any] = []

    def supports(self, node: Any) -> bool | Unsupported:
        """Claim float32 math ops named in the ``ops`` option."""
        return claim_math(node, self.options["ops"])

    def prepare(self, partition: Any) -> DelegateKernel:
        """A numpy kernel for the partition."""
        self.prepared.append(partition)
        return MathKernel(self, partition)


class DeviceHandle:
    """A value in the test device's memory: no numpy conversion allowed."""

    __slots__ = ("_data",)

    def __init__(self, data: np.ndarray) -> None:
        self._data = np.array(data, copy=True)

    def __array__(self, *args: Any, **kw: Any) -> np.ndarray:
        raise TypeError("DeviceHandle refuses numpy conversion: call to_host()")


class DeviceKernel(DelegateKernel):
    """Runs a partition on device handles."""

    def __init__(self, delegate: "DeviceMath", partition: Any) -> None:
        self.delegate, self.partition = delegate, partition

    def invoke(self, inputs: list) -> list:
        """Unwrap, compute, wrap; every input must already be a DeviceHandle."""
        for v in inputs:
            assert isinstance(v, DeviceHandle), f"device kernel got {type(v).__name__}"
        self.delegate.invokes += 1
        outs = evaluate(self.partition, [v._data for v in inputs])
        return [DeviceHandle(o) for o in outs]


class DeviceMath(Delegate):
    """Float32 ADD/SUB/MUL in the memory domain ``"testdev"``."""

    name = "testdev"
    memory_domain = "testdev"
    OPTIONS = {"ops": Option(("ADD", "SUB", "MUL"), "ops to claim", type=(tuple, list))}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.to_host_calls: list[tuple[int, ...]] = []
        self.from_host_calls: list[tuple[int, ...]] = []
        self.invokes = 0

    def supports(self, node: Any) -> bool | Unsupported:
        """Claim float32 math ops named in the ``ops`` option."""
        return claim_math(node, self.options["ops"])

    def prepare(self, partition: Any) -> DelegateKernel:
        """A kernel working on handles."""
        return DeviceKernel(self, partition)

    def to_host(self, value: Any) -> np.ndarray:
        """Unwrap a handle (counted)."""
        assert isinstance(value, DeviceHandle), f"to_host got {type(value).__name__}"
        self.to_host_calls.append(value._data.shape)
        return value._data.copy()

    def from_host(self, array: np.ndarray) -> DeviceHandle:
        """Wrap a copy of a host array (counted)."""
        assert isinstance(array, np.ndarray), f"from_host got {type(array).__name__}"
        self.from_host_calls.append(array.shape)
        return DeviceHandle(array)

    def reset_counts(self) -> None:
        """Forget counted transfers and invokes."""
        self.to_host_calls.clear()
        self.from_host_calls.clear()
        self.invokes = 0


class Failing(HostMath):
    """HostMath that fails where ``fail_at`` says (init, available, supports, prepare, invoke)."""

    name = "failing"
    OPTIONS = {**HostMath.OPTIONS,
               "fail_at": Option("prepare", "where to fail",
                                 choices=("init", "available", "supports", "prepare", "invoke",
                                          "none")),
               "fail_ops": Option((), "with fail_at=supports: ops whose check raises",
                                  type=(tuple, list))}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["fail_at"] == "init":
            raise RuntimeError("failing delegate: no device at init")

    def is_available(self) -> bool:
        """Raises with fail_at=available."""
        if self.options["fail_at"] == "available":
            raise OSError("failing delegate: driver probe crashed")
        return True

    def supports(self, node: Any) -> bool | Unsupported:
        """Raises with fail_at=supports (for ``fail_ops``, or every op when empty)."""
        if self.options["fail_at"] == "supports" and (
                not self.options["fail_ops"] or node.op in self.options["fail_ops"]):
            raise ValueError(f"failing delegate: cannot inspect {node.op}")
        return super().supports(node)

    def prepare(self, partition: Any) -> DelegateKernel:
        """Raises with fail_at=prepare."""
        if self.options["fail_at"] == "prepare":
            raise RuntimeError("failing delegate: compiler crashed")
        kernel = super().prepare(partition)
        if self.options["fail_at"] == "invoke":
            def broken(inputs: list) -> list:
                raise RuntimeError("failing delegate: device lost")
            kernel.invoke = broken  # type: ignore[method-assign]
        return kernel


def chain_model(ops: Sequence[str], shape: Sequence[int] = (2, 3), name_prefix: str = "t"
                ) -> bytes:
    """x -> op0(x, c0) -> op1(., c1) -> ... with named intermediates ``t0, t1, ...``.

    Each op's second operand is the model input ``y``, so every op reads two
    non-constant tensors.
    """
    mb = edgeplex.ModelBuilder()
    g = mb.main
    x = g.input("x", shape)
    y = g.input("y", shape)
    cur = x
    for i, op in enumerate(ops):
        out = g.tensor(f"{name_prefix}{i}", shape)
        g.op(op, [cur, y], outputs=[out])
        cur = out
    g.output(cur)
    return mb.build()


def run(model: bytes, inputs: Sequence[np.ndarray] | None = None, **kw: Any
        ) -> tuple[Any, list[np.ndarray]]:
    """Interpreter with ``kw``, allocated, invoked once on ``inputs`` (seeded random if None)."""
    it = edgeplex.Interpreter(model_content=model, **kw)
    it.allocate_tensors()
    details = it.get_input_details()
    if inputs is None:
        rng = np.random.default_rng(0)
        inputs = [rng.uniform(-2, 2, tuple(d["shape"])).astype(np.float32) for d in details]
    for d, x in zip(details, inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it, [it.get_tensor(d["index"]) for d in it.get_output_details()]
