"""CPU kernels, one module per op family, each op registered next to its code.

:func:`default_resolver` imports every kernel module listed in
``KERNEL_MODULES`` (explicitly, no scanning) and returns the resolver the
interpreter uses.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from .registry import OpResolver, Registration, builtin_registrations, register

#: Kernel modules, one per op family.
KERNEL_MODULES: tuple[str, ...] = (
    "elementwise",
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
