"""edgeplex: run TensorFlow Lite models in Python, delegating what hardware can take.

The public API::

    import edgeplex
    it = edgeplex.Interpreter(model_path="model.tflite")
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
"""
from __future__ import annotations

from edgeplex.core.builder import ModelBuilder, SubgraphBuilder, TensorRef
from edgeplex.core.errors import (ConfigError, DelegateError, EdgeplexError, InterpreterError,
                                  ModelError, UnsupportedOpError)
from edgeplex.core.interpreter import Interpreter
from edgeplex.core.ir import Model, Operator, Quantization, Subgraph, Tensor
from edgeplex.core.reader import read_model
from edgeplex.core.writer import write_model
from edgeplex.delegates.api import Delegate, DelegateKernel, Option, Unsupported
from edgeplex.delegates.hookspecs import hookimpl
from edgeplex.delegates.loading import load_delegate

__version__ = "0.1.0"

__all__ = [
    "Interpreter", "ModelBuilder", "SubgraphBuilder", "TensorRef", "read_model", "write_model",
    "Model", "Subgraph", "Tensor", "Operator", "Quantization",
    "EdgeplexError", "ModelError", "UnsupportedOpError", "DelegateError", "ConfigError",
    "InterpreterError", "__version__",
    "Delegate", "DelegateKernel", "Unsupported", "Option", "hookimpl", "load_delegate",
]
