"""Delegate selection settings: ``edgeplex.toml``, keyword arguments, environment.

Precedence, highest first: ``EDGEPLEX_DELEGATES`` (the order only), the
``Interpreter`` keyword arguments (``delegates=``, ``delegate_options=``),
the config file (``config=`` or ``EDGEPLEX_CONFIG``), the defaults. Every
key is checked: unknown keys and bad values are ConfigErrors naming the
key and where it came from.

```toml
[edgeplex]
delegates = ["gpu", "cpu"]          # priority order; cpu is implied last
disable_plugins = []                # never import these entry points
require = ["acme-edgeplex>=1.2"]    # plugin distributions that must be present

[edgeplex.delegate.gpu]             # options of one delegate
precision = "fp16"

[edgeplex.partitioner]
policy = "priority"                 # or "cost"
min_nodes_per_partition = 1
max_partitions = 0                  # per delegate; 0 = no limit
exclude = { gpu = ["SOFTMAX", "node:17"] }
pin = { cpu = ["logits"] }          # op name, "node:N" or a tensor name

[edgeplex.fallback]
allow_cpu = true
on_prepare_error = "cpu"            # or "raise"
on_invoke_error = "raise"           # or "cpu"
```
"""
from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from edgeplex.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CPU = "cpu"
PREPARE_POLICIES = ("cpu", "raise")
INVOKE_POLICIES = ("raise", "cpu")
POLICIES = ("priority", "cost")


@dataclass(frozen=True)
class Settings:
    """Everything that decides which delegates run what."""

    delegates: tuple[str, ...] = ()                   # priority order, without the final cpu
    delegate_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    disable_plugins: tuple[str, ...] = ()
    require: tuple[str, ...] = ()
    policy: str = "priority"
    min_nodes_per_partition: int = 1
    max_partitions: int = 0
    exclude: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pin: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    allow_cpu: bool = True
    on_prepare_error: str = "cpu"
    on_invoke_error: str = "raise"
    source: str = "defaults"

    def names(self) -> list[str]:
        """Every delegate name the settings mention (order, options, rules)."""
        return list(dict.fromkeys([*self.delegates, *self.delegate_options, *self.exclude,
                                   *self.pin]))


def load_settings(config: str | os.PathLike | Mapping[str, Any] | None = None, *,
                  delegates: Sequence[str] | None = None,
                  delegate_options: Mapping[str, Mapping[str, Any]] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from a config (path or parsed mapping), keyword arguments and environment."""
    env = os.environ if environ is None else environ
    if config is None and env.get("EDGEPLEX_CONFIG"):
        config = env["EDGEPLEX_CONFIG"]
    settings = Settings() if config is None else parse_config(*_read(config))
    if delegates is not None:
        if isinstance(delegates, str):
            raise ConfigError(f"delegates= must be a list of names, not the string "
                              f"{delegates!r} (write [{delegates!r}])")
        settings = replace(settings, delegates=_order(list(delegates), "delegates="))
    if delegate_options is not None:
        settings = replace(settings, delegate_options=_merged_options(
            settings.delegate_options, delegate_options))
    if env.get("EDGEPLEX_DELEGATES", "").strip():
        order = [s.strip() for s in env["EDGEPLEX_DELEGATES"].split(",") if s.strip()]
        settings = replace(settings, delegates=_order(order, "EDGEPLEX_DELEGATES"))
    return settings


def _read(config: str | os.PathLike | Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    if isinstance(config, Mapping):
        return config, "config"
    path = Path(config)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e.strerror or e}") from None
    try:
        return tomllib.loads(text), str(path)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _merged_options(base: Mapping[str, Mapping[str, Any]],
                    extra: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = {k: dict(v) for k, v in base.items()}
    for name, options in extra.items():
        if not isinstance(options, Mapping):
            raise ConfigError(f"delegate_options[{name!r}] must be a dict of options, got "
                              f"{type(options).__name__}")
        merged.setdefault(name, {}).update(options)
    return merged


# -- the TOML schema ---------------------------------------------------------------
def parse_config(data: Mapping[str, Any], source: str = "config") -> Settings:
    """Validate a parsed config document; every problem names its key."""
    _keys(data, {"edgeplex"}, source, "")
    top = _table(data.get("edgeplex", {}), source, "[edgeplex]")
    _keys(top, {"delegates", "disable_plugins", "require", "delegate", "partitioner",
                "fallback"}, source, "[edgeplex]")
    where = f"{source}: [edgeplex]"
    kw: dict[str, Any] = {"source": source}
    if "delegates" in top:
        kw["delegates"] = _order(_strings(top["delegates"], f"{where} delegates"),
                                 f"{where} delegates")
    for key in ("disable_plugins", "require"):
        if key in top:
            kw[key] = tuple(_strings(top[key], f"{where} {key}"))
    options = _table(top.get("delegate", {}), source, "[edgeplex.delegate]")
    kw["delegate_options"] = {name: dict(_table(v, source, f"[edgeplex.delegate.{name}]"))
                              for name, v in options.items()}
    kw.update(_partitioner(_table(top.get("partitioner", {}), source,
                                  "[edgeplex.partitioner]"), source))
    kw.update(_fallback(_table(top.get("fallback", {}), source, "[edgeplex.fallback]"), source))
    return Settings(**kw)


def _partitioner(t: Mapping[str, Any], source: str) -> dict[str, Any]:
    section = "[edgeplex.partitioner]"
    _keys(t, {"policy", "min_nodes_per_partition", "max_partitions", "exclude", "pin"},
          source, section)
    where = f"{source}: {section}"
    out: dict[str, Any] = {}
    if "policy" in t:
        out["policy"] = _choice(t["policy"], POLICIES, f"{where} policy")
    if "min_nodes_per_partition" in t:
        out["min_nodes_per_partition"] = _int(t["min_nodes_per_partition"], 1,
                                              f"{where} min_nodes_per_partition")
    if "max_partitions" in t:
        out["max_partitions"] = _int(t["max_partitions"], 0, f"{where} max_partitions")
    for key in ("exclude", "pin"):
        if key in t:
            rules = _table(t[key], source, f"{section} {key}")
            out[key] = {name: tuple(_strings(v, f"{where} {key}.{name}"))
                        for name, v in rules.items()}
    return out


def _fallback(t: Mapping[str, Any], source: str) -> dict[str, Any]:
    section = "[edgeplex.fallback]"
    _keys(t, {"allow_cpu", "on_prepare_error", "on_invoke_error"}, source, section)
    where = f"{source}: {section}"
    out: dict[str, Any] = {}
    if "allow_cpu" in t:
        if not isinstance(t["allow_cpu"], bool):
            raise ConfigError(f"{where} allow_cpu = {t['allow_cpu']!r} must be true or false")
        out["allow_cpu"] = t["allow_cpu"]
    if "on_prepare_error" in t:
        out["on_prepare_error"] = _choice(t["on_prepare_error"], PREPARE_POLICIES,
                                          f"{where} on_prepare_error")
    if "on_invoke_error" in t:
        out["on_invoke_error"] = _choice(t["on_invoke_error"], INVOKE_POLICIES,
                                         f"{where} on_invoke_error")
    return out


# -- value checks -------------------------------------------------------------------
def _keys(t: Mapping[str, Any], valid: set[str], source: str, section: str) -> None:
    for key in t:
        if key not in valid:
            near = difflib.get_close_matches(str(key), sorted(valid), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{source}: {section + ' ' if section else ''}unknown key "
                              f"{key!r}{hint}; valid keys: {', '.join(sorted(valid))}")


def _table(value: Any, source: str, section: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {section} must be a table, got {value!r}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} = {value!r} must be a list of non-empty strings")
    return list(value)


def _choice(value: Any, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise ConfigError(f"{where} = {value!r} must be one of "
                          f"{', '.join(repr(c) for c in choices)}")
    return value


def _int(value: Any, minimum: int, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where} = {value!r} must be an integer >= {minimum}")
    return value


def _order(names: list[str], where: str) -> tuple[str, ...]:
    """A priority list without its trailing ``cpu``; cpu elsewhere or repeats are errors."""
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: delegate names must be non-empty strings, got {name!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{where}: {', '.join(repeated)} listed more than once")
    if CPU in names[:-1]:
        raise ConfigError(f"{where}: 'cpu' must come last (it takes every op it can, so no "
                          "delegate after it would get any); to keep nodes on the CPU use "
                          "[edgeplex.partitioner] pin = {cpu = [...]}")
    return tuple(n for n in names if n != CPU)


# -- require = ["dist>=1.2"] -----------------------------------------------------------
_OPS: dict[str, Callable[[tuple, tuple], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
}


def check_requirements(require: Sequence[str], source: str = "config",
                       version_of: Callable[[str], str | None] | None = None) -> None:
    """ConfigError naming every requirement that is missing or the wrong version."""
    version_of = version_of or _installed_version
    problems = []
    for spec in require:
        name, clauses = _parse_requirement(spec, source)
        have = version_of(name)
        if have is None:
            problems.append(f"{spec!r}: {name} is not installed")
            continue
        bad = [f"{op}{v}" for op, v in clauses if not _satisfies(have, op, v)]
        if bad:
            problems.append(f"{spec!r}: {name} {have} is installed, need {','.join(bad)}")
    if problems:
        raise ConfigError(f"{source}: [edgeplex] require is not met: " + "; ".join(problems))


def _installed_version(name: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _parse_requirement(spec: str, source: str) -> tuple[str, list[tuple[str, str]]]:
    text = spec.replace(" ", "")
    cut = next((i for i, c in enumerate(text) if c in "<>=!~"), len(text))
    name, rest = text[:cut], text[cut:]
    clauses = []
    for part in filter(None, rest.split(",")):
        op = next((o for o in ("~=", ">=", "<=", "==", "!=", ">", "<") if part.startswith(o)),
                  None)
        if op is None or not _VERSION.match(part[len(op):]):
            raise ConfigError(f"{source}: [edgeplex] require: cannot read {spec!r} (write "
                              "'distribution>=1.2' or a plain distribution name)")
        clauses.append((op, part[len(op):]))
    if not name:
        raise ConfigError(f"{source}: [edgeplex] require: {spec!r} names no distribution")
    return name, clauses


_VERSION = re.compile(r"^[0-9][0-9A-Za-z.*+!-]*$")


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts)


def _satisfies(have: str, op: str, want: str) -> bool:
    """Compare release numbers (pre-release tags are ignored)."""
    a, b = _release(have), _release(want)
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    if op == "~=":
        prefix = _release(want)[:-1]
        return a >= b and a[:len(prefix)] == prefix
    return _OPS[op](a, b)
