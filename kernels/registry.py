"""The kernel registry and the resolver that maps an op to its kernel.

A kernel is a *prepare* function registered next to its code:

    @register("ADD", versions=(1, 5), types=FLOAT_TYPES)
    def prepare_add(ctx: OpContext) -> Prepared: ...

``types`` are TFLite type names matched against the op's *type key* — by
default the type of its first input. ``when`` narrows a registration further
(for example hybrid kernels: float input, int8 weights); registrations with
``when`` are tried before those without. Registering the same op, version
and type twice is an error unless the later one says ``replace=True`` (how a
faster kernel replaces the reference one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from edgeplex.core.errors import UnsupportedOpError
from edgeplex.core.kernel_api import OpContext, Prepared

PrepareFn = Callable[[OpContext], Prepared]
TypeKeyFn = Callable[[OpContext], str]

FLOAT_TYPES = frozenset({"FLOAT32"})
INT_TYPES = frozenset({"INT32", "INT64"})
QUANT_TYPES = frozenset({"INT8", "UINT8", "INT16"})


def first_input_type(ctx: OpContext) -> str:
    """The default type key: the first present input's type (else output 0)."""
    spec = next((t for t in ctx.inputs if t is not None), None)
    return (spec or ctx.outputs[0]).type_name


@dataclass(frozen=True)
class Registration:
    """One kernel for an op over a version range and a set of types."""

    op: str
    prepare: PrepareFn
    versions: tuple[int, int]
    types: frozenset[str]
    type_key: TypeKeyFn = first_input_type
    when: Callable[[OpContext], bool] | None = None
    name: str = ""

    def accepts_version(self, version: int) -> bool:
        """True if ``version`` is within this kernel's range."""
        return self.versions[0] <= version <= self.versions[1]


class OpResolver:
    """Maps (op name, version, types) to a registered kernel."""

    def __init__(self, registrations: Iterable[Registration] = ()) -> None:
        self._by_op: dict[str, list[Registration]] = {}
        for r in registrations:
            self.add(r)

    def add(self, reg: Registration, replace: bool = False) -> None:
        """Add a kernel; overlapping an existing one needs ``replace=True``."""
        existing = self._by_op.setdefault(reg.op, [])
        clash = [r for r in existing if _overlaps(r, reg)]
        if clash and not replace:
            raise ValueError(f"duplicate kernel registration for {reg.op} "
                             f"versions {reg.versions} types {sorted(reg.types)}: "
                             f"{clash[0].name} is already registered")
        for r in clash:
            existing.remove(r)
        existing.append(reg)
        existing.sort(key=lambda r: r.when is None)

    def ops(self) -> list[str]:
        """Every op name with at least one kernel."""
        return sorted(self._by_op)

    def registrations(self, op: str | None = None) -> Iterator[Registration]:
        """All registrations, or those of one op."""
        for name in ([op] if op else self.ops()):
            yield from self._by_op.get(name, [])

    def find(self, ctx: OpContext) -> Registration:
        """The kernel for this op, or UnsupportedOpError saying why none fits."""
        candidates = self._by_op.get(ctx.op.op)
        if not candidates:
            raise ctx.unsupported("no CPU kernel implements this op")
        in_range = [r for r in candidates if r.accepts_version(ctx.op.version)]
        if not in_range:
            top = max(r.versions[1] for r in candidates)
            raise ctx.unsupported(f"op version {ctx.op.version} is not supported "
                                  f"(kernels implement versions up to {top})")
        for r in in_range:
            if r.type_key(ctx) in r.types and (r.when is None or r.when(ctx)):
                return r
        types = sorted(set().union(*(r.types for r in in_range)))
        raise ctx.unsupported(f"type {in_range[0].type_key(ctx)} is not supported "
                              f"(kernels take {', '.join(types)})")

    def prepare(self, ctx: OpContext) -> Prepared:
        """Find the kernel and run its prepare half."""
        return self.find(ctx).prepare(ctx)

    def supports(self, ctx: OpContext) -> str | None:
        """None if some kernel takes this op, else the reason none does."""
        try:
            self.find(ctx)
        except UnsupportedOpError as e:
            return str(e)
        return None


def _overlaps(a: Registration, b: Registration) -> bool:
    return (a.versions[0] <= b.versions[1] and b.versions[0] <= a.versions[1]
            and bool(a.types & b.types) and a.when is None and b.when is None)


_BUILTIN: list[Registration] = []


def register(op: str | Iterable[str], *, versions: tuple[int, int] = (1, 1),
             types: Iterable[str] = FLOAT_TYPES, type_key: TypeKeyFn = first_input_type,
             when: Callable[[OpContext], bool] | None = None
             ) -> Callable[[PrepareFn], PrepareFn]:
    """Decorator registering a prepare function as a built-in kernel."""
    ops = [op] if isinstance(op, str) else list(op)

    def deco(fn: PrepareFn) -> PrepareFn:
        for name in ops:
            reg = Registration(name, fn, versions, frozenset(types), type_key, when,
                               f"{fn.__module__}.{fn.__qualname__}")
            if any(_overlaps(r, reg) for r in _BUILTIN if r.op == name):
                raise ValueError(f"duplicate kernel registration for {name} "
                                 f"versions {versions} types {sorted(reg.types)} "
                                 f"({reg.name})")
            _BUILTIN.append(reg)
        return fn
    return deco


def builtin_registrations() -> list[Registration]:
    """Every kernel registered by the modules in edgeplex.kernels."""
    from . import load_all
    load_all()
    return list(_BUILTIN)
