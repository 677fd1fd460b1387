"""The delegate plugin contract, discovery, configuration and built-in delegates.

Plugin authors need :class:`Delegate`, :class:`DelegateKernel`,
:class:`Unsupported`, :class:`Option` and :data:`hookimpl` (all also
exported by ``edgeplex``); see docs/writing-a-delegate.md. Discovery
(:mod:`.discovery`), settings (:mod:`.config`) and the interpreter glue
(:mod:`.engine`) are imported only when needed.
"""
from __future__ import annotations

from .api import HOST, Delegate, DelegateKernel, Option, Unsupported, declared_options
from .hookspecs import hookimpl, hookspec
from .info import NodeInfo, PartitionInfo, TensorInfo
from .loading import load_delegate

__all__ = ["Delegate", "DelegateKernel", "Unsupported", "Option", "hookimpl", "hookspec",
           "load_delegate", "NodeInfo", "TensorInfo", "PartitionInfo", "HOST",
           "declared_options"]
