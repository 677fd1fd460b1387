"""Signature runners: call a model's named entry point with keyword inputs."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InterpreterError
from .ir import SignatureDef

if TYPE_CHECKING:
    from .interpreter import Interpreter


class SignatureRunner:
    """``runner(x=array, ...) -> {output name: array}``, as LiteRT's SignatureRunner."""

    def __init__(self, interpreter: "Interpreter", signature: SignatureDef) -> None:
        self._interpreter = interpreter
        self._signature = signature
        self._subgraph = interpreter.model.subgraphs[signature.subgraph_index]

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        """Run with every signature input given by name; returns outputs by name."""
        sig = self._signature
        missing = sorted(set(sig.inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(sig.inputs))
        if missing or unknown:
            raise InterpreterError(f"signature {sig.key!r}: missing inputs {missing}, unknown "
                                   f"inputs {unknown}; expected {sorted(sig.inputs)}")
        arrays = {name: np.asarray(v) for name, v in inputs.items()}
        if sig.subgraph_index == 0:
            return self._run_main(arrays)
        return self._run_other(arrays)

    def _run_main(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        it, sig = self._interpreter, self._signature
        for name, a in arrays.items():
            it.resize_tensor_input(sig.inputs[name], a.shape)
        if it._plan is None:
            it.allocate_tensors()
        for name, a in arrays.items():
            it.set_tensor(sig.inputs[name], a)
        it.invoke()
        return {name: it.get_tensor(t) for name, t in sig.outputs.items()}

    def _run_other(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sg = self._subgraph
        by_index = {self._signature.inputs[n]: a for n, a in arrays.items()}
        ordered = []
        for t in sg.inputs:
            want = sg.tensors[t]
            a = by_index[t]
            if a.dtype != want.dtype:
                raise InterpreterError(f"signature {self._signature.key!r}: input "
                                       f"{want.describe()} expects {want.type_name}, got "
                                       f"{a.dtype}")
            ordered.append(a)
        runner = self._interpreter._runtime.subgraph_runner(sg.index)
        outs = dict(zip(sg.outputs, runner(ordered)))
        return {name: np.array(outs[t]) for name, t in self._signature.outputs.items()}

    def get_input_details(self) -> dict[str, dict[str, Any]]:
        """Detail dicts of the signature inputs, by name."""
        return self._details(self._signature.inputs)

    def get_output_details(self) -> dict[str, dict[str, Any]]:
        """Detail dicts of the signature outputs, by name."""
        return self._details(self._signature.outputs)

    def _details(self, mapping: Any) -> dict[str, dict[str, Any]]:
        it = self._interpreter
        return {name: it._details(t, self._signature.subgraph_index)
                for name, t in mapping.items()}
