"""What a delegate plugin implements: :class:`Delegate`, :class:`DelegateKernel`,
:class:`Unsupported`, and :class:`Option` to declare its settings.

A delegate answers, node by node, whether it takes an op (``supports``),
compiles the partitions it was given (``prepare``) and runs them
(``DelegateKernel.invoke``). Everything else — asking, partitioning,
moving tensors between memory domains, falling back — is edgeplex's job.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from edgeplex.core.errors import ConfigError

HOST = "host"


class Unsupported:
    """A refusal from ``Delegate.supports``: falsy, and carries the reason.

    >>> bool(Unsupported("only float32"))
    False
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = str(reason)

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unsupported) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash(("Unsupported", self.reason))

    def __repr__(self) -> str:
        return f"Unsupported({self.reason!r})"

    def __str__(self) -> str:
        return self.reason


_MISSING = object()


@dataclass(frozen=True)
class Option:
    """One setting a delegate accepts, with its default.

    ``choices`` limits the values; ``type`` (default: the default's type)
    is checked; ``help`` is shown by ``edgeplex delegates``.
    """

    default: Any
    help: str = ""
    choices: Sequence[Any] | None = None
    type: type | tuple[type, ...] | None = None

    def check(self, delegate: str, key: str, value: Any) -> Any:
        """``value`` if acceptable, else a ConfigError naming the option."""
        where = f"[edgeplex.delegate.{delegate}] {key}"
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where} = {value!r} is not one of "
                              f"{', '.join(repr(c) for c in self.choices)}")
        want = self.type or (type(self.default) if self.default is not None else None)
        if want is float:
            want = (int, float)
        if want is not None and (not isinstance(value, want) or
                                 (isinstance(value, bool) and want in (int, (int, float)))):
            raise ConfigError(f"{where} = {value!r} has type {type(value).__name__}; "
                              f"expected {_type_name(want)}")
        return value


def _type_name(t: type | tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


class DelegateKernel:
    """A compiled partition. ``invoke`` gets values for ``partition.inputs`` in
    order and returns values for ``partition.outputs`` in order.

    For a ``"host"`` delegate the values are numpy arrays; otherwise they
    are whatever the delegate's ``from_host`` made (or its own earlier
    outputs). Input arrays are only valid during the call: copy what you keep.
    """

    def invoke(self, inputs: list) -> list:
        """Run the partition once."""
        raise NotImplementedError(f"{type(self).__name__} does not implement invoke()")

    def close(self) -> None:
        """Release device resources (called when the plan is dropped; optional)."""


class Delegate:
    """Base class of delegate plugins.

    Subclasses set ``name`` (and ``memory_domain`` when values live outside
    host memory), declare ``OPTIONS`` and override ``supports`` and
    ``prepare``. The framework constructs the delegate with the user's
    options as keyword arguments; ``self.options`` holds the validated
    values (defaults filled in).
    """

    name: ClassVar[str] = ""
    memory_domain: ClassVar[str] = HOST
    #: option name -> Option (or a plain default value)
    OPTIONS: ClassVar[Mapping[str, Any]] = {}
    #: bytes per second between host memory and this delegate's domain (cost policy)
    transfer_bytes_per_second: ClassVar[float] = 4e9

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = resolve_options(type(self), options)

    # -- availability ----------------------------------------------------------
    def is_available(self) -> bool:
        """False when the hardware or driver this delegate needs is missing."""
        return True

    def unavailable_reason(self) -> str:
        """Why ``is_available()`` is False (shown in reports and ``edgeplex delegates``)."""
        return ""

    # -- placement and compilation -----------------------------------------------
    def supports(self, node: Any) -> "bool | Unsupported":
        """Claim one node (True) or refuse it with ``Unsupported("reason")``."""
        return Unsupported(f"{self.name or type(self).__name__} does not implement supports()")

    def prepare(self, partition: Any) -> DelegateKernel:
        """Compile ``partition`` (its nodes, inputs, outputs, constants)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement prepare()")

    # -- memory domain -----------------------------------------------------------
    def to_host(self, value: Any) -> np.ndarray:
        """A numpy array holding ``value`` (only for delegates with their own domain)."""
        return value

    def from_host(self, array: np.ndarray) -> Any:
        """A value in this delegate's domain holding a copy of ``array``.

        ``array`` is a view of host memory that is reused after the call:
        copy it, do not keep a reference.
        """
        return array

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def declared_options(factory: Any) -> dict[str, Option]:
    """The options a delegate class or factory accepts, with defaults.

    From ``OPTIONS`` when declared, else from the keyword parameters of the
    factory (or the class's ``__init__``).
    """
    table = getattr(factory, "OPTIONS", None)
    if table:
        return {k: v if isinstance(v, Option) else Option(v) for k, v in table.items()}
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: Option(None if p.default is p.empty else p.default)
            for p in params if p.name != "self"
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def resolve_options(factory: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given``; unknown keys and bad values are ConfigErrors."""
    name = getattr(factory, "name", "") or getattr(factory, "__name__", "?")
    table = declared_options(factory)
    unknown = sorted(set(given) - set(table))
    if unknown:
        valid = ", ".join(sorted(table)) or "none"
        raise ConfigError(f"[edgeplex.delegate.{name}] unknown option(s) "
                          f"{', '.join(repr(k) for k in unknown)}; valid options: {valid}")
    values = {k: copy.deepcopy(o.default) for k, o in table.items()}   # never share defaults
    for key, value in given.items():
        values[key] = table[key].check(name, key, value)
    return values


def is_delegate(obj: Any) -> bool:
    """True for objects that implement the delegate protocol."""
    return all(callable(getattr(obj, m, None)) for m in ("supports", "prepare")) and \
        isinstance(getattr(obj, "name", None), str) and bool(obj.name)


def factory_name(factory: Callable[..., Any]) -> str:
    """The delegate name a class or factory declares (its ``name`` attribute)."""
    name = getattr(factory, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{factory!r} has no 'name' attribute (a non-empty str)")
    return name
