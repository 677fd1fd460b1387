"""CPU kernels, one module per op family, each op registered next to its code.

:func:`default_resolver` imports every kernel module listed in
``KERNEL_MODULES`` (explicitly, no scanning) and returns the resolver the
interpreter uses.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from .registry import OpResolver, Registration, builtin_registrations, register

#: Kernel modules, one per op family (a line per group keeps merges clean).
KERNEL_MODULES: tuple[str, ...] = (
    # arithmetic, activations, comparisons and logic
    "elementwise", "activations", "logic",

    # convolution, linear algebra, pooling
    "conv", "pooling",

    # shapes and data movement
    "movement", "sparse", "concat_split", "slicing", "padding", "creation", "cast",

    # gathers, resizing, reductions, normalization, selection
    "gather", "resize", "reduce", "normalization", "selection",

    # recurrent layers, control flow, variables
    "sequence", "control_flow", "variables",

    # quantize / dequantize
    "quantize",

    # integer convolution and linear algebra, hybrid (dynamic-range) kernels
    "qconv", "hybrid", "qsequence",

    # integer elementwise, activations and the rest
    "qelementwise", "qactivations", "qreduce",
)


def load_all() -> None:
    """Import every kernel module so its registrations run."""
    for name in KERNEL_MODULES:
        importlib.import_module(f"{__name__}.{name}")


@lru_cache(maxsize=1)
def default_resolver() -> OpResolver:
    """The resolver holding every built-in kernel (built once)."""
    return OpResolver(builtin_registrations())


def selective_resolver(ops: set[str]) -> OpResolver:
    """A resolver with only the kernels for ``ops`` (what a model needs)."""
    return OpResolver(r for r in builtin_registrations() if r.op in ops)


__all__ = ["OpResolver", "Registration", "register", "default_resolver", "selective_resolver",
           "load_all", "KERNEL_MODULES"]
