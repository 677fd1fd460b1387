"""What a kernel's *prepare* half sees and returns.

The interpreter calls ``prepare(ctx: OpContext) -> Prepared`` once per op at
``allocate_tensors``; all validation and precomputation happens there. The
returned ``run(inputs, outputs)`` writes into preallocated output arrays and
does nothing else. An output whose shape depends on data is declared with
shape ``None``; then ``run`` returns the output arrays instead.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, NoReturn, Sequence

import numpy as np

from .errors import ModelError, UnsupportedOpError
from .ir import Model, Operator, Quantization, Sparsity, Subgraph, Tensor
from .parallel import parallel

RunFn = Callable[[Sequence[Any], Sequence[Any]], Any]


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as prepare sees it: the model's tensor with its current shape."""

    tensor: Tensor
    shape: tuple[int, ...]
    data: np.ndarray | None = None          # constant (or constant-folded) value

    @property
    def index(self) -> int:
        """Index in the subgraph."""
        return self.tensor.index

    @property
    def name(self) -> str:
        """The tensor's name."""
        return self.tensor.name

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype."""
        return self.tensor.dtype

    @property
    def type_name(self) -> str:
        """TFLite type name, e.g. ``"INT8"``."""
        return self.tensor.type_name

    @property
    def quantization(self) -> Quantization | None:
        """Quantization parameters or None."""
        return self.tensor.quantization

    @property
    def sparsity(self) -> Sparsity | None:
        """Sparsity parameters of a compressed constant, or None."""
        return self.tensor.sparsity

    @property
    def is_constant(self) -> bool:
        """True when the value is known at prepare time."""
        return self.data is not None

    @property
    def is_variable(self) -> bool:
        """True for variable (stateful) tensors."""
        return self.tensor.is_variable

    @property
    def rank(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Prepared:
    """The result of prepare: a run function and the output shapes.

    ``output_shapes[i] is None`` marks a data-dependent output: ``run`` then
    returns a list with one array per output. ``scratch_bytes`` counts
    buffers the kernel holds for its own use (reported in memory planning).
    """

    run: RunFn
    output_shapes: list[tuple[int, ...] | None]
    scratch_bytes: int = 0
    output_dtypes: list[np.dtype] | None = None
    #: Arrays run() needs that prepare computed (for memory accounting only).
    constants: list[np.ndarray] = field(default_factory=list)
    #: Optional: absorb a following float ADD of a same-shaped tensor (core.fuse).
    #: ``fuse_add(residual, index, activation)`` returns the Prepared of this op
    #: with ``residual`` as its extra input ``index`` added to its output and the
    #: ADD's fused activation applied (as ADD clamps), or None to decline.
    fuse_add: Callable[[TensorSpec, int, str], "Prepared | None"] | None = None
    #: Optional: read the input of a zero PAD before this op instead (core.fuse).
    #: ``fuse_pad(x, ((top, bottom), (left, right)))`` returns the Prepared of
    #: this op on ``x`` (its input 0) zero-padded that much, or None to decline.
    fuse_pad: Callable[[TensorSpec, Any], "Prepared | None"] | None = None
    #: Optional: ``unbias()`` -> (this op without adding its constant per-channel
    #: bias, that bias), offered when nothing follows the bias add in the op.
    unbias: Callable[[], "tuple[Prepared, np.ndarray]"] | None = None
    #: Optional: ``fold_bias(b)`` -> this op for an input missing the per-channel
    #: bias ``b`` (a linear op adds its image to its own bias), or None.
    fold_bias: Callable[[np.ndarray], "Prepared | None"] | None = None


class Runtime:
    """Services the interpreter offers kernels that reach beyond one op
    (control flow runs other subgraphs; variable ops share state)."""

    def subgraph_runner(self, index: int, input_specs: Sequence[TensorSpec]) -> Any:
        """A callable running subgraph ``index``: list of arrays in, list out."""
        raise NotImplementedError

    @property
    def resources(self) -> dict[Any, Any]:
        """Resource variables by (container, shared_name) or id."""
        raise NotImplementedError


@dataclass
class OpContext:
    """One operator with its inputs and outputs, for a kernel's prepare."""

    op: Operator
    subgraph: Subgraph
    model: Model
    inputs: list[TensorSpec | None]
    outputs: list[TensorSpec]
    runtime: Runtime | None = None

    @property
    def options(self) -> Any:
        """The op's builtin options (snake_case fields, enums as names)."""
        return self.op.options

    @property
    def name(self) -> str:
        """The op name, e.g. ``"CONV_2D"``."""
        return self.op.op

    def input(self, i: int) -> TensorSpec:
        """Required input ``i``; a missing one is a ModelError naming the op."""
        if i >= len(self.inputs) or self.inputs[i] is None:
            raise self.invalid(f"input {i} is required but missing")
        return self.inputs[i]  # type: ignore[return-value]

    def optional_input(self, i: int) -> TensorSpec | None:
        """Input ``i`` or None when omitted."""
        return self.inputs[i] if i < len(self.inputs) else None

    def expect_counts(self, inputs: int | tuple[int, int], outputs: int = 1) -> None:
        """Check the number of inputs (exact or (min, max)) and outputs."""
        lo, hi = (inputs, inputs) if isinstance(inputs, int) else inputs
        if not lo <= len(self.inputs) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise self.invalid(f"expects {want} inputs, got {len(self.inputs)}")
        if len(self.outputs) != outputs:
            raise self.invalid(f"expects {outputs} outputs, got {len(self.outputs)}")

    def where(self) -> str:
        """``op 3 (CONV_2D v1)`` plus the subgraph when not the main one."""
        sg = f"subgraph {self.subgraph.index} " if self.subgraph.index else ""
        return sg + self.op.describe()

    def unsupported(self, what: str) -> UnsupportedOpError:
        """An UnsupportedOpError naming this op (raise it)."""
        return UnsupportedOpError(f"{self.where()}: {what}")

    def invalid(self, what: str) -> ModelError:
        """A ModelError naming this op (raise it)."""
        return ModelError(f"{self.where()}: {what}")

    def fail(self, what: str) -> NoReturn:
        """Raise an UnsupportedOpError naming this op."""
        raise self.unsupported(what)

    def done(self, run: RunFn, *shapes: tuple[int, ...] | None, scratch_bytes: int = 0,
             dtypes: list[np.dtype] | None = None) -> Prepared:
        """Shorthand for ``Prepared(run, list(shapes), scratch_bytes)``."""
        return Prepared(run, [None if s is None else tuple(int(d) for d in s) for s in shapes],
                        scratch_bytes, dtypes)


Call = Callable[[], Any]


@dataclass
class Calls:
    """One op's numpy calls, bound to its arrays: ``first`` (copies every run
    needs before the rest), then either ``whole`` or every list of ``parts``."""

    first: list[Call] = field(default_factory=list)
    whole: list[Call] = field(default_factory=list)
    parts: list[list[Call]] = field(default_factory=list)


class BoundRun:
    """A run function built from ``bind(ins, outs) -> Calls``, bound once.

    The interpreter hands a step the same arrays on every run, so the calls
    are built on the first run and only rebuilt when an array changes (a
    dynamic shape, constant folding). With two or more ``parts`` the parts
    are shared out to the thread budget (:func:`.parallel.parallel`),
    else ``whole`` runs on the caller.
    """

    def __init__(self, bind: Callable[[Sequence[Any], Sequence[Any]], Calls]) -> None:
        self._bind = bind
        self._arrays: list[Any] = []
        self._calls = Calls()

    def __call__(self, ins: Sequence[Any], outs: Sequence[Any]) -> None:
        arrays = self._arrays
        if len(arrays) != len(ins) + len(outs) or not all(
                map(operator.is_, arrays, [*ins, *outs])):
            self._calls = self._bind(ins, outs)
            self._arrays = [*ins, *outs]
        calls = self._calls
        for call in calls.first:
            call()
        if len(calls.parts) > 1:
            parallel(self._part, len(calls.parts))
        else:
            for call in calls.whole:
                call()

    def flat(self, ins: Sequence[Any], outs: Sequence[Any]) -> list[Call]:
        """Bind to these arrays now; the calls of one run, for the caller to make in
        a row (the interpreter's plan does so for its fixed arrays)."""
        calls = self._calls = self._bind(ins, outs)
        self._arrays = [*ins, *outs]
        if len(calls.parts) > 1:
            return [*calls.first, partial(parallel, self._part, len(calls.parts))]
        return [*calls.first, *calls.whole]

    def _part(self, i: int, n: int) -> None:
        for call in (self._calls.whole if n == 1 else self._calls.parts[i]):
            call()
