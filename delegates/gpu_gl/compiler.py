"""Compile a partition into GL dispatches over preallocated buffers.

``prepare`` does all the work once: every node is built (a dispatch, an
alias of its input's storage, or a constant computed now), constants that a
dispatch or the partition's outputs need are uploaded, and every
intermediate gets a buffer. Intermediates whose lifetimes do not overlap
share buffers (best fit by size); partition outputs keep their own. Each
dispatch then only binds its buffers and runs a cached program, so
``invoke`` is a short loop with no allocation and no host round trip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edgeplex.delegates.api import DelegateKernel

from .capabilities import TABLE
from .device import GLDevice
from .glsl import Operand, Shader, render
from .memory import GLTensor, encode, storage_bytes
from .ops_base import Alias, Build, Value

#: glMemoryBarrier bits: SSBO writes visible to later dispatches and to buffer reads
SHADER_STORAGE_BARRIER_BIT = 0x2000
BUFFER_UPDATE_BARRIER_BIT = 0x200


@dataclass
class Dispatch:
    """One program run: its bindings (binding point, buffer slot) and work groups."""

    program: Any
    bindings: list[tuple[int, int]]
    groups: tuple[int, int]
    label: str
    source: str = field(repr=False, default="")


@dataclass
class Step:
    """One dispatch to be: the node, its shader and the tensor it writes."""

    node: Any
    shader: Shader
    out: int


#: standalone activations that fold into the producing dispatch's store (clamps commute
#: with rounding to float16, so fusing changes no result at either precision)
FUSABLE = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1"}


class Layout:
    """Which buffer slot holds each tensor, and the buffers themselves."""

    def __init__(self, device: GLDevice, fp16: bool) -> None:
        self.device, self.fp16 = device, fp16
        self.buffers: list[Any] = []          # slot -> moderngl buffer (inputs: per invoke)
        self.slot_of: dict[int, int] = {}     # tensor (storage root) -> slot
        self.sizes: list[int] = []            # slot -> bytes
        self.free: list[int] = []             # reusable intermediate slots

    def new_slot(self, buffer: Any, size: int) -> int:
        """Register a buffer (None for a partition input filled at invoke)."""
        self.buffers.append(buffer)
        self.sizes.append(size)
        return len(self.buffers) - 1

    def upload(self, array: np.ndarray, kind: str = "data") -> int:
        """A slot holding a constant."""
        data = encode(array, kind, self.fp16)
        return self.new_slot(self.device.buffer(data), len(data))

    def take(self, size: int) -> int:
        """A free intermediate slot of at least ``size`` bytes (best fit), or a new one."""
        fits = [s for s in self.free if self.sizes[s] >= size]
        if fits:
            slot = min(fits, key=lambda s: self.sizes[s])
            self.free.remove(slot)
            return slot
        return self.new_slot(self.device.buffer(reserve=size), size)


class Compiler:
    """Builds one partition: nodes -> steps -> slots -> dispatches."""

    def __init__(self, device: GLDevice, partition: Any, fp16: bool) -> None:
        self.device, self.partition, self.fp16 = device, partition, fp16
        self.known: dict[int, np.ndarray] = {}      # tensors whose value is known now
        self.root: dict[int, int] = {}              # tensor -> tensor owning its storage
        self.steps: list[Step] = []
        self.layout = Layout(device, fp16)
        self.infos = {t.index: t for n in partition.nodes for t in list(n.inputs) + list(n.outputs)
                      if t is not None}
        for t in self.infos.values():
            if t.data is not None:
                self.known[t.index] = np.asarray(t.data)
        self.uses: dict[int, int] = {}
        for n in partition.nodes:
            for t in n.inputs:
                if t is not None:
                    self.uses[t.index] = self.uses.get(t.index, 0) + 1
        self.boundary = {t.index for t in partition.outputs}
        self.producer: dict[int, Step] = {}

    # -- 1. build every node --------------------------------------------------------
    def build(self) -> None:
        """Turn each node into a dispatch, an alias or a constant."""
        for node in self.partition.nodes:
            if self._fuse(node):
                continue
            result = TABLE[node.op].build(Build(node, self.known))
            out = node.outputs[0]
            if isinstance(result, Value):
                self.known[out.index] = np.asarray(result.array).reshape(out.shape)
            elif isinstance(result, Alias):
                if result.tensor in self.known:
                    self.known[out.index] = self.known[result.tensor].reshape(out.shape)
                else:
                    self.root[out.index] = self.root_of(result.tensor)
            else:
                step = Step(node, result, out.index)
                self.steps.append(step)
                self.producer[out.index] = step

    def _fuse(self, node: Any) -> bool:
        """Fold a standalone RELU / RELU6 / RELU_N1_TO_1 into the dispatch producing its
        input when nothing else reads that input; True when done."""
        if node.op not in FUSABLE:
            return False
        src = node.inputs[0].index
        step = self.producer.get(src)
        if step is None or step.shader.act != "NONE" or self.uses.get(src) != 1 \
                or src in self.boundary:
            return False
        step.shader.act = FUSABLE[node.op]
        step.shader.name += f" + {node.op} (op {node.index})"
        step.out = node.outputs[0].index
        del self.producer[src]
        self.producer[step.out] = step
        return True

    def root_of(self, t: int) -> int:
        """The tensor whose buffer holds ``t``."""
        while t in self.root:
            t = self.root[t]
        return t

    # -- 2. buffers -----------------------------------------------------------------
    def allocate(self) -> None:
        """Slots for inputs, constants and intermediates, reusing dead ones."""
        lay = self.layout
        for t in self.partition.inputs:
            lay.slot_of[t.index] = lay.new_slot(None, 0)
        pinned = {self.root_of(t.index) for t in self.partition.outputs}
        ends: dict[int, list[int]] = {}
        for root, end in self._last_uses().items():
            ends.setdefault(end, []).append(root)
        for i, step in enumerate(self.steps):
            out = step.out
            size = storage_bytes(int(np.prod(step.node.outputs[0].shape)), "data", self.fp16)
            lay.slot_of[out] = (lay.new_slot(self.device.buffer(reserve=size), size)
                                if out in pinned else lay.take(size))
            for root in ends.get(i, ()):
                if root not in pinned and root in lay.slot_of and root not in self.known \
                        and lay.buffers[lay.slot_of[root]] is not None:
                    lay.free.append(lay.slot_of[root])

    def _last_uses(self) -> dict[int, int]:
        """Storage root -> index of the last step reading or writing it."""
        last: dict[int, int] = {}
        for i, step in enumerate(self.steps):
            last[self.root_of(step.out)] = i
            for op in step.shader.operands:
                if op.tensor is not None:
                    last[self.root_of(op.tensor)] = i
        return last

    def slot(self, op: Operand) -> int:
        """The slot an operand reads (uploading constants on first use)."""
        lay = self.layout
        if op.tensor is None:
            return lay.upload(op.array, op.kind)
        root = self.root_of(op.tensor)
        if root not in lay.slot_of:
            if op.tensor not in self.known:
                raise RuntimeError(f"tensor {op.tensor} has no value on the GPU")
            lay.slot_of[root] = lay.upload(self.known[op.tensor])
        return lay.slot_of[root]

    # -- 3. dispatches ----------------------------------------------------------------
    def dispatches(self) -> list[Dispatch]:
        """Programs (compiled or from the cache) with their bindings."""
        out = []
        for step in self.steps:
            source, groups = render(step.shader, self.fp16)
            binds = [(0, self.layout.slot_of[step.out])]
            binds += [(k + 1, self.slot(op)) for k, op in enumerate(step.shader.operands)]
            out.append(Dispatch(self.device.program(source), binds, groups, step.shader.name,
                                source))
        return out

    def outputs(self) -> list[tuple[int, Any]]:
        """Per partition output: (slot, shape) — constants uploaded now."""
        res = []
        for t in self.partition.outputs:
            if t.index in self.known and self.root_of(t.index) not in self.layout.slot_of:
                slot = self.layout.upload(self.known[t.index])
            else:
                slot = self.layout.slot_of[self.root_of(t.index)]
            res.append((slot, tuple(int(d) for d in t.shape)))
        return res


def compile_partition(device: GLDevice, partition: Any, fp16: bool) -> "GLKernel":
    """The compiled kernel of ``partition``."""
    with device.lock, device.ctx:
        device.collect()                    # buffers of closed kernels and old uploads
        c = Compiler(device, partition, fp16)
        c.build()
        c.allocate()
        dispatches = c.dispatches()
        outputs = c.outputs()
    inputs = [c.layout.slot_of[t.index] for t in partition.inputs]
    return GLKernel(device, fp16, c.layout.buffers, inputs, dispatches, outputs,
                    [np.dtype(t.dtype) for t in partition.outputs])


class GLKernel(DelegateKernel):
    """A compiled partition: bind, dispatch, barrier — per op, nothing else."""

    def __init__(self, device: GLDevice, fp16: bool, buffers: list[Any], inputs: list[int],
                 dispatches: list[Dispatch], outputs: Sequence[tuple[int, Any]],
                 out_dtypes: Sequence[np.dtype]) -> None:
        self.device, self.fp16 = device, fp16
        self.buffers = buffers
        self.inputs = inputs
        self.dispatches = dispatches
        self.outputs = [(slot, shape, dtype) for (slot, shape), dtype in zip(outputs, out_dtypes)]
        self._fixed = {slot: GLTensor(buffers[slot], shape, dtype, fp16, device)
                       for slot, shape, dtype in self.outputs if slot not in set(inputs)}
        self._run = [(d.program, [(b, s) for b, s in d.bindings], d.groups) for d in dispatches]

    def invoke(self, inputs: list) -> list:
        """Run every dispatch; return GLTensor handles for the partition outputs."""
        bufs = self.buffers
        for slot, value in zip(self.inputs, inputs):
            if not isinstance(value, GLTensor) or value.device is not self.device:
                raise TypeError(f"expected a GLTensor of this GL context, got {value!r}")
            bufs[slot] = value.buffer
        ctx = self.device.ctx
        barrier = SHADER_STORAGE_BARRIER_BIT | BUFFER_UPDATE_BARRIER_BIT
        with self.device.lock, ctx:
            for program, bindings, (gx, gy) in self._run:
                for binding, slot in bindings:
                    bufs[slot].bind_to_storage_buffer(binding)
                program.run(gx, gy)
                ctx.memory_barrier(barrier)
        return [self._fixed[slot] if slot in self._fixed
                else GLTensor(bufs[slot], shape, dtype, self.fp16, self.device)
                for slot, shape, dtype in self.outputs]

    def close(self) -> None:
        """Drop this partition's buffers: the device releases them at its next
        collect (the next prepare); programs stay cached for the process."""
        self.buffers = [None] * len(self.buffers)
        self._fixed = {}
        self._run = []

    def describe(self) -> str:
        """One line per dispatch (for debugging)."""
        return "\n".join(f"{d.label}: groups {d.groups}, bindings {d.bindings}"
                         for d in self.dispatches)
