"""``edgeplex.Interpreter``: a drop-in for ``ai_edge_litert.interpreter.Interpreter``.

``allocate_tensors()`` reads nothing new: it compiles the main subgraph into
a :class:`~edgeplex.core.plan.SubgraphPlan` (every kernel prepared, memory
planned, outputs preallocated); ``invoke()`` only runs that plan.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .errors import InterpreterError
from .ir import Model, Tensor
from .parallel import thread_budget
from .plan import DEFAULT_MEMORY_LIMIT, PlanOptions, PlanRuntime, ProfileRecord, SubgraphPlan
from .reader import read_model

if TYPE_CHECKING:
    from .signature import SignatureRunner


def _default_resolver() -> Any:
    from edgeplex.kernels import default_resolver
    return default_resolver()


def _delegation(resolver: Any, **settings: Any) -> Any:
    from edgeplex.delegates.engine import Delegation
    return Delegation.configure(resolver=resolver, **settings)


#: LiteRT constructor options accepted for drop-in compatibility; they tune
#: LiteRT's own C++ runtime and have no meaning (or effect) in edgeplex.
LITERT_ONLY_OPTIONS = frozenset({
    "experimental_op_resolver_type", "experimental_disable_delegate_clustering",
    "experimental_default_delegate_latest_features",
    "experimental_compress_quantization_zero_points",
    "experimental_disable_delegate_node_fusion", "experimental_force_delegate_node_profiling",
})


class Interpreter:
    """Runs a TFLite model; same methods and detail dicts as LiteRT's Interpreter.

    Extras: ``profile=True`` records per-op wall time (:meth:`profile_records`),
    :meth:`memory_report` gives planned vs naive activation bytes, and
    ``memory_limit`` caps what a (possibly malformed) model may allocate.
    """

    def __init__(self, model_path: str | os.PathLike | None = None,
                 model_content: bytes | None = None, *, num_threads: int | None = None,
                 delegates: Sequence[str] | None = None,
                 delegate_options: dict[str, dict[str, Any]] | None = None,
                 config: str | os.PathLike | None = None,
                 experimental_delegates: Sequence[Any] | None = None,
                 experimental_preserve_all_tensors: bool = False,
                 profile: bool = False, memory_limit: int = DEFAULT_MEMORY_LIMIT,
                 resolver: Any = None, **litert_options: Any) -> None:
        unknown = sorted(set(litert_options) - LITERT_ONLY_OPTIONS)
        if unknown:
            raise TypeError(f"Interpreter() got unexpected keyword argument(s) "
                            f"{', '.join(unknown)}")
        if (model_path is None) == (model_content is None):
            raise ValueError("pass exactly one of model_path and model_content")
        self._model: Model = read_model(model_path if model_path is not None else model_content)
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < -1):
            raise ValueError(f"num_threads must be an int >= -1, got {num_threads!r}")
        self._num_threads = num_threads if num_threads not in (None, -1, 0) else None
        self._options = PlanOptions(experimental_preserve_all_tensors, int(memory_limit))
        self._resolver = resolver if resolver is not None else _default_resolver()
        self._runtime = PlanRuntime(self._model, self._resolver, self._options)
        self._delegation = _delegation(self._resolver, delegates=delegates,
                                       delegate_options=delegate_options, config=config,
                                       experimental_delegates=experimental_delegates)
        self._input_shapes: dict[int, tuple[int, ...]] = {
            t: self._model.main.tensors[t].shape for t in self._model.main.inputs}
        self._variables: dict[int, np.ndarray] = {}
        self._plan: SubgraphPlan | None = None
        self._profile: list[ProfileRecord] | None = [] if profile else None
        self._threads = _ThreadLimit(self._num_threads)

    # -- model access ------------------------------------------------------------
    @property
    def model(self) -> Model:
        """The model's immutable IR."""
        return self._model

    def num_subgraphs(self) -> int:
        """Number of subgraphs in the model."""
        return len(self._model.subgraphs)

    # -- allocation ----------------------------------------------------------------
    def allocate_tensors(self) -> None:
        """Prepare every op for the current input shapes and allocate memory."""
        shapes = [self._input_shapes[t] for t in self._model.main.inputs]
        old, self._plan = self._plan, None
        self._plan = self._build_plan(shapes)
        if old is not None:  # keep the values of inputs whose shape did not change
            for t in self._model.main.inputs:
                if old.values[t].shape == self._plan.values[t].shape:
                    np.copyto(self._plan.values[t], old.values[t])

    def _build_plan(self, shapes: list[tuple[int, ...]]) -> SubgraphPlan:
        return SubgraphPlan(self._model, 0, self._resolver, self._runtime, shapes,
                            self._options, self._variables, delegation=self._delegation)

    def resize_tensor_input(self, input_index: int, tensor_size: Sequence[int],
                            strict: bool = False) -> None:
        """Change an input's shape; call ``allocate_tensors()`` before the next invoke."""
        t = self._input_tensor(input_index, "resize_tensor_input")
        shape = tuple(int(d) for d in np.asarray(tensor_size).reshape(-1))
        if any(d < 0 for d in shape):
            raise InterpreterError(f"resize_tensor_input: shape {list(shape)} for "
                                   f"{t.describe()} has a negative dimension")
        if strict:
            _check_strict_resize(t, shape)
        if shape != self._input_shapes[t.index]:
            self._input_shapes[t.index] = shape
            self._plan = None

    # -- tensors -------------------------------------------------------------------
    def _tensor_at(self, index: Any, subgraph: int = 0) -> Tensor:
        tensors = self._subgraph(subgraph).tensors
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise InterpreterError(f"tensor index must be an int, got {index!r}") from None
        if not 0 <= i < len(tensors):
            raise InterpreterError(f"tensor index {i} is out of range (subgraph {subgraph} "
                                   f"has {len(tensors)} tensors)")
        return tensors[i]

    def _subgraph(self, index: int) -> Any:
        if not 0 <= int(index) < len(self._model.subgraphs):
            raise InterpreterError(f"subgraph_index is out of range: {index} for the model, "
                                   f"which has {len(self._model.subgraphs)} subgraphs.")
        return self._model.subgraphs[int(index)]

    def _input_tensor(self, index: Any, what: str) -> Tensor:
        t = self._tensor_at(index)
        if t.index not in self._model.main.inputs:
            raise InterpreterError(f"{what}: {t.describe()} is not an input of the model "
                                   f"(inputs: {list(self._model.main.inputs)})")
        return t

    def _ready_plan(self, what: str) -> SubgraphPlan:
        if self._plan is None:
            raise InterpreterError(f"{what}: tensors are not allocated; call "
                                   "allocate_tensors() first (again after resize_tensor_input)")
        return self._plan

    def set_tensor(self, tensor_index: int, value: Any) -> None:
        """Copy ``value`` into an input (or variable) tensor; checks dtype and shape."""
        t = self._tensor_at(tensor_index)
        plan = self._ready_plan("set_tensor")
        if t.index not in self._model.main.inputs and not t.is_variable:
            raise InterpreterError(f"set_tensor: {t.describe()} is not an input or variable "
                                   "tensor of the model")
        array = np.asarray(value)
        target = plan.values[t.index]
        if array.dtype != t.dtype:
            raise InterpreterError(
                f"Cannot set tensor: Got value of type {array.dtype.name.upper()} but expected "
                f"type {t.type_name} for {t.describe()}")
        if array.shape != target.shape:
            raise InterpreterError(
                f"Cannot set tensor: Dimension mismatch. Got shape {list(array.shape)} but "
                f"expected {list(target.shape)} for {t.describe()}")
        np.copyto(target, array)

    def get_tensor(self, tensor_index: int, subgraph_index: int = 0) -> np.ndarray:
        """A copy of a tensor's current value."""
        return np.array(self._readable(tensor_index, subgraph_index), copy=True)

    def tensor(self, tensor_index: int) -> Callable[[], np.ndarray]:
        """A function returning a view of the tensor's buffer (no copy)."""
        self._tensor_at(tensor_index)
        return lambda: self._readable(tensor_index, 0, allow_unwritten=True)

    def _readable(self, index: int, subgraph: int, allow_unwritten: bool = False) -> np.ndarray:
        t = self._tensor_at(index, subgraph)
        if subgraph != 0:
            if t.data is None:
                raise InterpreterError(f"{t.describe()} of subgraph {subgraph} is not "
                                       "readable from outside; only constants are")
            return t.data
        plan = self._ready_plan("get_tensor")
        problem = plan.readable_error(t.index)
        is_io = t.index in self._model.main.outputs
        if problem and not (allow_unwritten and is_io and plan.values[t.index] is not None):
            raise InterpreterError(problem)
        return plan.values[t.index]

    # -- running -----------------------------------------------------------------
    def invoke(self) -> None:
        """Run the model on the current inputs."""
        plan = self._ready_plan("invoke")
        with self._threads:
            plan.run(self._profile)

    def reset_all_variables(self) -> None:
        """Reset variable tensors to their initial values.

        As in LiteRT, resource variables (VAR_HANDLE/ASSIGN_VARIABLE) keep
        their values and CALL_ONCE init subgraphs do not run again.
        """
        if self._plan is not None:
            for t in list(self._variables):
                np.copyto(self._variables[t], self._plan.initial_variable(t))

    # -- details -------------------------------------------------------------------
    def get_input_details(self) -> list[dict[str, Any]]:
        """LiteRT-style detail dicts for the model inputs."""
        return [self._details(t, 0) for t in self._model.main.inputs]

    def get_output_details(self) -> list[dict[str, Any]]:
        """LiteRT-style detail dicts for the model outputs."""
        return [self._details(t, 0) for t in self._model.main.outputs]

    def get_tensor_details(self, subgraph_index: int = 0) -> list[dict[str, Any]]:
        """Detail dicts for every tensor of a subgraph."""
        sg = self._subgraph(subgraph_index)
        return [self._details(t.index, sg.index) for t in sg.tensors]

    def _current_shape(self, t: Tensor, subgraph: int) -> tuple[int, ...]:
        if subgraph == 0 and t.index in self._input_shapes:
            return self._input_shapes[t.index]
        plan = self._plan
        if subgraph == 0 and plan is not None:
            value = plan.values[t.index]
            if value is not None:
                return tuple(np.shape(value))
            if plan.shapes[t.index] is not None:
                return plan.shapes[t.index]
        return t.shape

    def _details(self, index: int, subgraph: int) -> dict[str, Any]:
        t = self._subgraph(subgraph).tensors[index]
        return tensor_details(t, self._current_shape(t, subgraph))

    # -- signatures ------------------------------------------------------------------
    def get_signature_list(self) -> dict[str, dict[str, list[str]]]:
        """{signature key: {"inputs": [names], "outputs": [names]}}."""
        return {s.key: {"inputs": sorted(s.inputs), "outputs": sorted(s.outputs)}
                for s in self._model.signatures}

    def get_signature_runner(self, signature_key: str | None = None) -> "SignatureRunner":
        """A callable running one signature with keyword inputs."""
        from .signature import SignatureRunner
        sigs = {s.key: s for s in self._model.signatures}
        if signature_key is None:
            if len(sigs) != 1:
                raise ValueError(f"SignatureDef signature_key is None and model has "
                                 f"{len(sigs)} Signatures. None is only allowed when the "
                                 "model has 1 SignatureDef")
            signature_key = next(iter(sigs))
        if signature_key not in sigs:
            raise ValueError(f'Invalid signature_key provided: "{signature_key}".')
        return SignatureRunner(self, sigs[signature_key])

    # -- extras --------------------------------------------------------------------
    @property
    def placement(self) -> Any:
        """The placement report of the allocated plan: which delegate runs what, and why."""
        report = self._delegation.report
        if report is None or self._plan is None:
            raise InterpreterError("placement: call allocate_tensors() first")
        return report

    def enable_profiling(self, enabled: bool = True) -> None:
        """Start (or stop) recording per-op wall time on each invoke."""
        self._profile = [] if enabled else None

    def profile_records(self, clear: bool = False) -> list[dict[str, Any]]:
        """Per-op records ``{op_index, op_name, microseconds, subgraph}`` so far."""
        if self._profile is None:
            raise InterpreterError("profiling is off: pass profile=True or call "
                                   "enable_profiling()")
        records = [r.as_dict() for r in self._profile]
        if clear:
            self._profile.clear()
        return records

    def memory_report(self) -> dict[str, int]:
        """Planned vs naive activation bytes of the allocated plan."""
        return self._ready_plan("memory_report").memory_report()


def tensor_details(t: Tensor, shape: Sequence[int]) -> dict[str, Any]:
    """The detail dict LiteRT gives for one tensor."""
    q = t.quantization
    scales = q.scale.astype(np.float32) if q is not None else np.zeros(0, np.float32)
    zps = q.zero_point.astype(np.int32) if q is not None else np.zeros(0, np.int32)
    per_tensor = (float(scales[0]), int(zps[0])) if q is not None and scales.size == 1 \
        else (0.0, 0)
    return {
        "name": t.name,
        "index": t.index,
        "shape": np.array(shape, dtype=np.int32),
        "shape_signature": np.array(t.signature if t.shape_signature is not None else shape,
                                    dtype=np.int32),
        "dtype": t.dtype.type,
        "quantization": per_tensor,
        "quantization_parameters": {"scales": scales, "zero_points": zps,
                                    "quantized_dimension": q.axis if q is not None else 0,
                                    "block_size": 0},
        "sparsity_parameters": _sparsity_details(t),
    }


def _sparsity_details(t: Tensor) -> dict[str, Any]:
    s = t.sparsity
    if s is None:
        return {}
    dims = []
    for d in s.dim_metadata:
        if d.format == "DENSE":
            dims.append({"format": 0, "dense_size": d.dense_size})
        else:
            dims.append({"format": 1, "array_segments": d.array_segments.astype(np.int32),
                         "array_indices": d.array_indices.astype(np.int32)})
    return {"traversal_order": np.array(s.traversal_order, np.int32),
            "block_map": np.array(s.block_map, np.int32), "dim_metadata": dims}


def _check_strict_resize(t: Tensor, shape: tuple[int, ...]) -> None:
    sig = t.signature
    if len(sig) != len(shape):
        raise InterpreterError(f"resize_tensor_input(strict=True): {t.describe()} has rank "
                               f"{len(sig)}, got shape {list(shape)}")
    for i, (want, got) in enumerate(zip(sig, shape)):
        if want != -1 and want != got:
            raise InterpreterError(
                f"resize_tensor_input(strict=True): dimension {i} of {t.describe()} is "
                f"fixed at {want} (shape_signature {list(sig)}); only -1 dimensions may change")


@lru_cache(maxsize=1)
def _blas_libraries() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries loaded (numpy's), found once."""
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController().select(user_api="blas").lib_controllers


class _ThreadLimit:
    """During invoke: kernels may use ``num_threads`` threads (:mod:`.parallel`;
    None: every CPU), and BLAS runs single-threaded inside them (threadpoolctl).

    Kernels split large matrix products across the budget themselves. OpenBLAS's
    own threads busy-wait for each other: when another process holds a core, a
    2-thread GEMM that takes 0.1 ms alone stalls ~8 ms on this 2-core machine,
    every call; a kernel's parts instead go to whichever thread is free.
    """

    def __init__(self, n: int | None) -> None:
        self.n = n
        self._blas: list[Any] | None = None
        self._saved: list[int] = []
        self._budget: Any = None

    def __enter__(self) -> None:
        self._budget = thread_budget(self.n)
        self._budget.__enter__()
        if self._blas is None:
            self._blas = _blas_libraries()
        # the libraries' own setters: ~5 us, where threadpoolctl's limit() takes ~45
        self._saved = [lib.get_num_threads() for lib in self._blas]
        for lib, n in zip(self._blas, self._saved):
            if n != 1:
                lib.set_num_threads(1)

    def __exit__(self, *exc: Any) -> None:
        self._budget.__exit__(None, None, None)
        for lib, n in zip(self._blas or (), self._saved):
            if n != 1:
                lib.set_num_threads(n)
