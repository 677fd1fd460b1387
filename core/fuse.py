"""Plan-level fusion: fold a standalone clamp activation into the op before it,
a zero PAD into the convolution reading it, and a residual ADD into the
kernel producing one of its operands.

``CONV_2D -> RELU`` computes the same float values as one ``CONV_2D`` with
``fused_activation_function=RELU`` writing straight into the RELU's output:
LiteRT's float kernels apply fused activations as a clamp, and RELU, RELU6
and RELU_N1_TO_1 are exactly those clamps (for ADD/SUB/MUL/DIV, whose
activation-free form already clamps to +-FLT_MAX, the combined clamp is the
same too). The rewrite saves one op, one pass over the tensor and the
intermediate tensor's memory. It applies when the producer is a CPU kernel
step with no fused activation yet, every tensor involved is FLOAT32, and the
intermediate tensor is read by nothing else and is not a subgraph output; it
is skipped when all tensors must stay readable (``preserve_all_tensors``).

A float PAD (or PADV2 with a constant zero) of height and width only, whose
output only a kernel offering ``Prepared.fuse_pad`` reads (the float
CONV_2D and DEPTHWISE_CONV_2D: the PAD's amounts join their own padding),
disappears: the kernel reads the PAD's input (a large depthwise layer then
reads its interior in place and copies only thin borders). Values are
unchanged.

A float op whose last step is adding a constant per-channel bias (it offers
``Prepared.unbias``: a depthwise convolution without activation), read only
by a linear op that can take that bias over (``Prepared.fold_bias``: a 1x1
stride-1 CONV_2D with constant weights adds ``bias @ W`` to its own bias),
skips the add: one pass fewer. The sums associate differently (within the
convolution's tolerance).

A float ADD of two same-shaped tensors where one operand comes from a CPU
kernel that offers ``Prepared.fuse_add`` (the float CONV_2D: it fills its
output with the other operand plus its bias and lets BLAS accumulate the
product into it) and is read by nothing else becomes one step at the ADD's
place. Sums are then associated differently ((residual + bias) + product
rather than (product + bias) + residual): equal within the convolution's
tolerance, not bit for bit.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from .errors import EdgeplexError
from .ir import Operator, Subgraph
from .kernel_api import Prepared
from .schema import Options

#: Standalone activations that are a fused-activation clamp.
CLAMP_OPS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1"})

#: Ops whose float kernels apply ``fused_activation_function`` as that clamp.
FUSING_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL",
                        "DIV", "MAX_POOL_2D", "AVERAGE_POOL_2D"})


def fusable_pairs(sg: Subgraph, steps: Sequence[Any], outputs_kept: set[int]
                  ) -> list[tuple[int, int]]:
    """(producer step, activation step) positions in ``steps`` that can be fused."""
    readers: dict[int, int] = {}
    for step in steps:
        for t in step.reads:
            if t >= 0:
                readers[t] = readers.get(t, 0) + 1
    kernel_steps = {i for i, step in enumerate(steps)
                    if getattr(step, "prepared", None) is not None and not step.dynamic
                    and step.op is not None}
    writer: dict[int, int] = {}
    for i, step in enumerate(steps):
        for t in step.writes:
            writer[t] = i
    pairs = []
    for j, step in enumerate(steps):
        op = step.op
        if op is None or op.op not in CLAMP_OPS or j not in kernel_steps:
            continue
        t = op.inputs[0]
        i = writer.get(t)
        if i is None or i not in kernel_steps or readers.get(t) != 1 or t in outputs_kept:
            continue
        a = steps[i].op
        tensors = [sg.tensors[x] for x in (*a.inputs, *a.outputs, *op.outputs) if x >= 0]
        if (a.op in FUSING_OPS and len(a.outputs) == 1 and a.outputs[0] == t
                and getattr(a.options, "fused_activation_function", None) == "NONE"
                and all(x.type_name == "FLOAT32" for x in tensors)):
            pairs.append((i, j))
    return pairs


def fused_operator(producer: Operator, activation: Operator) -> Operator:
    """``producer`` with the activation's clamp fused in, writing the activation's output."""
    values = dict(producer.options._values)
    values["fused_activation_function"] = activation.op
    return dataclasses.replace(producer, outputs=activation.outputs,
                               options=Options(producer.options.type_name, values))


def fuse_activations(sg: Subgraph, steps: list[Any], outputs_kept: set[int],
                     prepare: Callable[[Operator], Prepared | None],
                     make_step: Callable[[Operator, Prepared], Any]) -> list[Any]:
    """``steps`` with every fusable (producer, activation) pair replaced by one step.

    ``prepare(op)`` prepares the fused operator (None or an EdgeplexError: the
    pair stays as it was); ``make_step`` wraps it as a plan step.
    """
    replaced: dict[int, Any] = {}
    dropped: set[int] = set()
    for i, j in fusable_pairs(sg, steps, outputs_kept):
        op = fused_operator(steps[i].op, steps[j].op)
        try:
            prepared = prepare(op)
        except EdgeplexError:
            continue
        if prepared is None or list(prepared.output_shapes) != list(
                steps[j].prepared.output_shapes):
            continue
        replaced[i] = make_step(op, prepared)
        dropped.add(j)
    return [replaced.get(i, s) for i, s in enumerate(steps) if i not in dropped]


def fuse_residual_adds(sg: Subgraph, steps: list[Any], outputs_kept: set[int],
                       spec: Callable[[int], Any],
                       make_step: Callable[[Operator, Prepared], Any]) -> list[Any]:
    """``steps`` with every (producer offering ``fuse_add``, float ADD) pair merged
    into one step at the ADD's position (``spec(t)`` is tensor ``t``'s TensorSpec)."""
    readers: dict[int, int] = {}
    writer: dict[int, int] = {}
    for i, step in enumerate(steps):
        for t in step.reads:
            if t >= 0:
                readers[t] = readers.get(t, 0) + 1
        for t in step.writes:
            writer[t] = i
    replaced: dict[int, Any] = {}
    dropped: set[int] = set()
    for j, step in enumerate(steps):
        add = step.op
        if (add is None or add.op != "ADD" or getattr(step, "prepared", None) is None
                or step.dynamic or len(add.inputs) != 2 or j in dropped or j in replaced):
            continue
        for k in (0, 1):
            t, other = add.inputs[k], add.inputs[1 - k]
            i = writer.get(t)
            if i is None or i in dropped or i in replaced or readers.get(t) != 1 \
                    or t in outputs_kept or t == other:
                continue
            producer = steps[i]
            fuse = getattr(getattr(producer, "prepared", None), "fuse_add", None)
            tensors = [sg.tensors[x] for x in (t, other, *add.outputs)]
            if (fuse is None or producer.dynamic or len(producer.op.outputs) != 1
                    or any(x.type_name != "FLOAT32" for x in tensors)
                    or len({tuple(spec(x).shape) for x in (t, other, add.outputs[0])}) != 1):
                continue
            op = producer.op
            try:
                prepared = fuse(spec(other), len(op.inputs), add.options.fused_activation_function)
            except EdgeplexError:
                prepared = None
            if prepared is None:
                continue
            fused = dataclasses.replace(op, inputs=(*op.inputs, other), outputs=add.outputs)
            replaced[j] = make_step(fused, prepared)
            dropped.add(i)
            break
    return [replaced.get(i, s) for i, s in enumerate(steps) if i not in dropped]


def _zero_spatial_pads(step: Any, spec: Callable[[int], Any]) -> Any:
    """((top, bottom), (left, right)) of a float zero PAD / PADV2 of an NHWC
    tensor's height and width only, else None."""
    op = step.op
    if op is None or op.op not in ("PAD", "PADV2") or getattr(step, "prepared", None) is None \
            or step.dynamic or len(op.inputs) < 2 or op.inputs[1] < 0:
        return None
    if op.op == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = spec(op.inputs[2]).data
        if value is None or value.size != 1 or float(value.reshape(-1)[0]) != 0.0 \
                or np.signbit(value.reshape(-1)[0]):
            return None
    x, paddings = spec(op.inputs[0]), spec(op.inputs[1]).data
    if x.type_name != "FLOAT32" or x.rank != 4 or paddings is None or paddings.shape != (4, 2):
        return None
    pads = [(int(a), int(b)) for a, b in paddings.tolist()]
    if pads[0] != (0, 0) or pads[3] != (0, 0) or min(min(p) for p in pads) < 0:
        return None
    return pads[1], pads[2]


def fuse_pads(sg: Subgraph, steps: list[Any], outputs_kept: set[int],
              spec: Callable[[int], Any],
              make_step: Callable[[Operator, Prepared], Any]) -> list[Any]:
    """``steps`` without the zero spatial PADs a following kernel can absorb
    (``Prepared.fuse_pad``); the kernel's step then reads the PAD's input."""
    readers: dict[int, int] = {}
    writer: dict[int, int] = {}
    for i, step in enumerate(steps):
        for t in step.reads:
            if t >= 0:
                readers[t] = readers.get(t, 0) + 1
        for t in step.writes:
            writer[t] = i
    replaced: dict[int, Any] = {}
    dropped: set[int] = set()
    for j, step in enumerate(steps):
        fuse = getattr(getattr(step, "prepared", None), "fuse_pad", None)
        if fuse is None or step.dynamic or not step.op.inputs:
            continue
        t = step.op.inputs[0]
        i = writer.get(t)
        if i is None or i in dropped or readers.get(t) != 1 or t in outputs_kept \
                or sg.tensors[t].type_name != "FLOAT32":
            continue
        pads = _zero_spatial_pads(steps[i], spec)
        if pads is None:
            continue
        x = steps[i].op.inputs[0]
        try:
            prepared = fuse(spec(x), pads)
        except EdgeplexError:
            prepared = None
        if prepared is None:
            continue
        replaced[j] = make_step(dataclasses.replace(step.op, inputs=(x, *step.op.inputs[1:])),
                                prepared)
        dropped.add(i)
    return [replaced.get(i, s) for i, s in enumerate(steps) if i not in dropped]


def fold_biases(sg: Subgraph, steps: list[Any], outputs_kept: set[int],
                make_step: Callable[[Operator, Prepared], Any]) -> list[Any]:
    """``steps`` where each (op offering ``unbias``, sole reader offering
    ``fold_bias``) pair moves the bias add into the reader."""
    readers: dict[int, int] = {}
    writer: dict[int, int] = {}
    for i, step in enumerate(steps):
        for t in step.reads:
            if t >= 0:
                readers[t] = readers.get(t, 0) + 1
        for t in step.writes:
            writer[t] = i
    steps = list(steps)
    for j, step in enumerate(steps):
        fold = getattr(getattr(step, "prepared", None), "fold_bias", None)
        if fold is None or step.dynamic or not step.op.inputs:
            continue
        t = step.op.inputs[0]
        i = writer.get(t)
        unbias = getattr(getattr(steps[i], "prepared", None), "unbias", None) \
            if i is not None else None
        if unbias is None or steps[i].dynamic or readers.get(t) != 1 or t in outputs_kept \
                or sg.tensors[t].type_name != "FLOAT32" or len(steps[i].op.outputs) != 1:
            continue
        try:
            bare, bias = unbias()
            folded = fold(bias)
        except EdgeplexError:
            continue
        if folded is None or bare.output_shapes != steps[i].prepared.output_shapes:
            continue
        steps[i] = make_step(steps[i].op, bare)
        steps[j] = make_step(step.op, folded)
    return steps
