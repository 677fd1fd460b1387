"""Plugin discovery: entry points in the group ``edgeplex.delegates``.

:func:`make_plugin_manager` is the factory (nothing happens at import
time): it adds the hookspecs, imports each entry point *on its own* (one
that fails is recorded as broken and the rest still load), registers the
built-in delegates through the very same entry points, and calls
``check_pending()`` so a misspelled hook is an error for that plugin.

Environment:

- ``EDGEPLEX_LOAD_PLUGINS=a,b`` imports only those entry points;
- ``EDGEPLEX_DISABLE_PLUGINS=a,b`` never imports those;
- ``EDGEPLEX_STRICT_PLUGINS=1`` turns a broken plugin into a DelegateError;
- ``EDGEPLEX_TRACE_PLUGINS=1`` traces hook calls (and delegate calls) on stderr.

The built-in ``cpu`` entry point is always loaded: it is the fallback.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping, Sequence

import pluggy

from edgeplex.core.errors import ConfigError, DelegateError

from . import hookspecs
from .api import factory_name, resolve_options

GROUP = "edgeplex.delegates"
CPU = "cpu"
_CPU_MODULE = "edgeplex.delegates.cpu.plugin"
_OWN_DISTRIBUTION = "edgeplex"

log = logging.getLogger("edgeplex.delegates")


@dataclass
class PluginRecord:
    """One entry point: where it comes from and what became of it.

    ``status`` is "loaded", "broken" (import, registration or hook failed),
    "disabled" (``disable_plugins``) or "not selected"
    (``EDGEPLEX_LOAD_PLUGINS``).
    """

    name: str
    value: str
    distribution: str | None = None
    version: str | None = None
    status: str = "loaded"
    error: str = ""
    delegates: list[str] = field(default_factory=list)
    builtin: bool = False
    note: str = ""


@dataclass(frozen=True)
class DelegateEntry:
    """A delegate name and the factory that makes it."""

    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class LoadSettings:
    """Which entry points to import and how strictly."""

    only: frozenset[str] | None = None
    disabled: frozenset[str] = frozenset()
    strict: bool = False
    trace: bool = False

    @classmethod
    def from_env(cls, disable: Iterable[str] = (), environ: Mapping[str, str] | None = None
                 ) -> "LoadSettings":
        """Settings from the environment plus config ``disable_plugins``."""
        env = os.environ if environ is None else environ
        only = _names(env.get("EDGEPLEX_LOAD_PLUGINS", ""))
        disabled = set(_names(env.get("EDGEPLEX_DISABLE_PLUGINS", ""))) | set(disable)
        if CPU in disabled:
            raise ConfigError("disable_plugins: the built-in 'cpu' delegate cannot be disabled "
                              "(it is the fallback); use [edgeplex.fallback] allow_cpu = false "
                              "to forbid ops on the CPU")
        return cls(frozenset(only) if only else None, frozenset(disabled),
                   _flag(env.get("EDGEPLEX_STRICT_PLUGINS")),
                   _flag(env.get("EDGEPLEX_TRACE_PLUGINS")))


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class PluginRegistry:
    """The loaded plugins and the delegates they provide."""

    def __init__(self, pm: pluggy.PluginManager, settings: LoadSettings) -> None:
        self.pm, self.settings = pm, settings
        self.plugins: dict[str, PluginRecord] = {}
        self.delegates: dict[str, DelegateEntry] = {}
        self.conflicts: dict[str, list[str]] = {}

    @property
    def broken(self) -> list[PluginRecord]:
        """Entry points that failed to load."""
        return [p for p in self.plugins.values() if p.status == "broken"]

    def entry(self, name: str) -> DelegateEntry:
        """The delegate called ``name``, or a ConfigError saying what exists."""
        if name in self.conflicts:
            raise ConfigError(f"delegate {name!r} is provided by several plugins "
                              f"({', '.join(sorted(self.conflicts[name]))}); disable all but "
                              "one with disable_plugins")
        if name not in self.delegates:
            raise ConfigError(self._unknown_message(name))
        return self.delegates[name]

    def _unknown_message(self, name: str) -> str:
        known = ", ".join(sorted(self.delegates)) or "none"
        msg = f"unknown delegate {name!r}; available delegates: {known}"
        skipped = [p.name for p in self.plugins.values() if p.status != "loaded"]
        if skipped:
            msg += ("; plugins not loaded: " + ", ".join(
                f"{p.name} ({p.status}{': ' + p.error if p.error else ''})"
                for p in self.plugins.values() if p.status != "loaded"))
        return msg

    def create(self, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """An instance of delegate ``name`` built with ``options``."""
        return instantiate(self.entry(name).factory, options or {})


def instantiate(factory: Callable[..., Any], options: Mapping[str, Any]) -> Any:
    """Call a delegate factory with validated options.

    Unknown options and bad values are ConfigErrors (naming the option);
    a ValueError or TypeError from the delegate's own checks becomes one
    too. Any other failure propagates (the caller decides what it means).
    """
    name = factory_name(factory)
    values = resolve_options(factory, options)
    given = {k: values[k] for k in options}
    try:
        return factory(**given)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"[edgeplex.delegate.{name}] options {given!r} rejected by the "
                          f"delegate: {type(e).__name__}: {e}") from e


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points()
    selected = eps.select(group=GROUP) if hasattr(eps, "select") else eps.get(GROUP, [])
    seen, unique = set(), []
    for ep in selected:                     # the same dist can appear twice on sys.path
        key = (ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return unique


def _dist_of(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def make_plugin_manager(settings: LoadSettings | None = None, *, cpu_only: bool = False,
                        entry_points: Sequence[Any] | None = None) -> PluginRegistry:
    """Build the plugin manager and load the delegate plugins (see module doc).

    ``cpu_only`` loads just the built-in CPU entry point (what an
    interpreter that asks for no other delegate needs); ``entry_points``
    replaces the installed ones (tests).
    """
    settings = settings or LoadSettings.from_env()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if settings.trace:
        pm.trace.root.setwriter(lambda text: sys.stderr.write(f"edgeplex trace: {text}"))
        pm.enable_tracing()
    registry = PluginRegistry(pm, settings)
    eps = list(_entry_points() if entry_points is None else entry_points)
    if not any(ep.name == CPU and ep.value == _CPU_MODULE for ep in eps):
        eps.insert(0, metadata.EntryPoint(CPU, _CPU_MODULE, GROUP))
    eps.sort(key=lambda ep: (ep.value != _CPU_MODULE, ep.name))   # the built-in CPU first
    for ep in eps:
        record = _record(ep)
        registry.plugins[ep.name] = record
        if record.builtin and ep.name == CPU and record.distribution is None:
            record.note = ("entry point not installed (reinstall edgeplex: pip install -e .); "
                           "registered directly")
        if not _selected(record, settings, cpu_only):
            continue
        _load(registry, ep, record)
    return registry


def _record(ep: Any) -> PluginRecord:
    dist, version = _dist_of(ep)
    builtin = (dist == _OWN_DISTRIBUTION) or (ep.name == CPU and ep.value == _CPU_MODULE)
    return PluginRecord(ep.name, ep.value, dist, version, builtin=builtin)


def _selected(record: PluginRecord, settings: LoadSettings, cpu_only: bool) -> bool:
    if record.name == CPU and record.builtin:
        return True
    if cpu_only:
        record.status = "not selected"
        return False
    if record.name in settings.disabled:
        record.status = "disabled"
        return False
    if settings.only is not None and record.name not in settings.only:
        record.status = "not selected"
        record.note = "EDGEPLEX_LOAD_PLUGINS does not name it"
        return False
    return True


def _load(registry: PluginRegistry, ep: Any, record: PluginRecord) -> None:
    """Import, register and call one plugin; failures mark it broken."""
    pm = registry.pm
    try:
        module = ep.load()
        pm.register(module, name=ep.name)
    except Exception as e:                          # isolation: any failure is this plugin's
        return _broken(registry, record, f"import failed: {type(e).__name__}: {e}", e)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        pm.unregister(name=ep.name)
        return _broken(registry, record, f"invalid hook: {e}", e)
    try:
        others = [p for name, p in pm.list_name_plugin() if name != ep.name]
        produced = pm.subset_hook_caller("edgeplex_delegates", remove_plugins=others)()
        factories = _factories(produced)
    except Exception as e:
        pm.unregister(name=ep.name)
        return _broken(registry, record, f"edgeplex_delegates() failed: {type(e).__name__}: {e}",
                       e)
    for factory in factories:
        _add(registry, record, factory)


def _factories(produced: list[Any]) -> list[Any]:
    factories = []
    for result in produced:
        if not isinstance(result, (list, tuple)):
            raise TypeError(f"edgeplex_delegates() must return a list, got {type(result).__name__}")
        for factory in result:
            if not callable(factory):
                raise TypeError(f"{factory!r} is not a delegate class or factory")
            factory_name(factory)
            factories.append(factory)
    return factories


def _add(registry: PluginRegistry, record: PluginRecord, factory: Any) -> None:
    name = factory_name(factory)
    existing = registry.delegates.get(name)
    if existing is not None:
        owners = registry.conflicts.setdefault(name, [existing.plugin])
        owners.append(record.name)
        if name == CPU and registry.plugins[existing.plugin].builtin:
            registry.conflicts.pop(name)        # the built-in CPU cannot be replaced
            record.error = "provides 'cpu', which is the built-in delegate; ignored"
            log.warning("plugin %r: %s", record.name, record.error)
        return
    registry.delegates[name] = DelegateEntry(name, factory, record.name, record.distribution,
                                             record.version)
    record.delegates.append(name)


def _broken(registry: PluginRegistry, record: PluginRecord, message: str, exc: Exception) -> None:
    record.status, record.error = "broken", message
    where = f"{record.distribution} {record.version}" if record.distribution else record.value
    if registry.settings.strict or (record.builtin and record.name == CPU):
        raise DelegateError(f"delegate plugin {record.name!r} ({where}) is broken: {message}"
                            + ("" if record.builtin else
                               " (EDGEPLEX_STRICT_PLUGINS=1 makes this an error)")) from exc
    log.warning("delegate plugin %r (%s) is broken and was skipped: %s", record.name, where,
                message)


_cache: dict[tuple[LoadSettings, bool], PluginRegistry] = {}
_lock = threading.Lock()


def registry(settings: LoadSettings | None = None, *, cpu_only: bool = False) -> PluginRegistry:
    """The process-wide registry for these settings (plugins load once)."""
    settings = settings or LoadSettings.from_env()
    key = (settings, cpu_only)
    with _lock:
        if key not in _cache:
            _cache[key] = make_plugin_manager(settings, cpu_only=cpu_only)
        return _cache[key]


def clear_cache() -> None:
    """Forget loaded registries (after installing a plugin, and in tests)."""
    with _lock:
        _cache.clear()
    importlib.invalidate_caches()
