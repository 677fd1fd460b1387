"""The delegate commands of the ``edgeplex`` command line.

    edgeplex delegates [--json]
    edgeplex inspect MODEL --delegates a,b [--config FILE] [--placement-json FILE]

``delegates`` lists every discovered plugin: its distribution and version,
the delegates it provides (available or not and why, memory domain,
options with defaults), its hooks, and the plugins that failed to load with
their errors. ``inspect --delegates/--config`` adds the placement report.
:func:`add_commands` plugs both into the parser of :mod:`edgeplex.cli`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable


def add_commands(sub: Any) -> None:
    """Add ``delegates`` and extend ``inspect`` on the CLI's subparsers."""
    p = sub.add_parser("delegates", help="list delegate plugins, their options and status")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_delegates)
    inspect = sub.choices.get("inspect")
    if inspect is not None:
        add_placement_arguments(inspect)
        inspect.set_defaults(func=with_placement(inspect.get_default("func")))


def add_placement_arguments(p: argparse.ArgumentParser) -> None:
    """``--delegates``, ``--config``, ``--placement-json`` on a model command."""
    p.add_argument("--delegates", default=None, metavar="A,B",
                   help="delegate priority order (cpu is implied last); prints the placement")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="an edgeplex.toml selecting delegates; prints the placement")
    p.add_argument("--placement-json", default=None, metavar="FILE",
                   help="write the placement report as JSON to FILE")


def with_placement(inspect: Callable[[argparse.Namespace], int] | None
                   ) -> Callable[[argparse.Namespace], int]:
    """``inspect`` followed by the placement report when delegates are asked for."""
    def run(args: argparse.Namespace) -> int:
        code = inspect(args) if inspect is not None else 0
        if code == 0 and (args.delegates or args.config or args.placement_json):
            code = cmd_placement(args)
        return code
    return run


def cmd_placement(args: argparse.Namespace) -> int:
    """Allocate the model with the chosen delegates and print (or write) the placement."""
    from edgeplex.cli import model_source
    from edgeplex.core.interpreter import Interpreter
    path = model_source(args.model)
    kw: dict[str, Any] = {}
    if args.delegates:
        kw["delegates"] = [d.strip() for d in args.delegates.split(",") if d.strip()]
    if args.config:
        kw["config"] = args.config
    it = Interpreter(model_path=str(path), **kw)
    it.allocate_tensors()
    report = it.placement
    print()
    print(report)
    if args.placement_json:
        Path(args.placement_json).write_text(report.to_json() + "\n")
        print(f"\nplacement written to {args.placement_json}")
    return 0


# -- edgeplex delegates --------------------------------------------------------------
def cmd_delegates(args: argparse.Namespace) -> int:
    """List every discovered delegate plugin."""
    listing = plugin_listing()
    if args.json:
        print(json.dumps(listing, indent=2, sort_keys=True))
    else:
        print(format_listing(listing))
    return 0


def plugin_listing() -> dict[str, Any]:
    """Plugins, their delegates (instantiated with defaults to ask availability), hooks."""
    from edgeplex.delegates import discovery
    registry = discovery.registry(discovery.LoadSettings.from_env())
    plugins = []
    for record in registry.plugins.values():
        plugin = registry.pm.get_plugin(record.name)
        hooks = sorted(c.name for c in registry.pm.get_hookcallers(plugin) or []) \
            if plugin is not None else []
        plugins.append({
            "entry_point": record.name, "module": record.value,
            "distribution": record.distribution, "version": record.version,
            "status": record.status, "error": record.error, "note": record.note,
            "builtin": record.builtin, "hooks": hooks,
            "delegates": [_delegate_info(registry, name) for name in record.delegates],
        })
    return {"group": discovery.GROUP, "plugins": plugins,
            "conflicts": {k: sorted(v) for k, v in registry.conflicts.items()}}


def _delegate_info(registry: Any, name: str) -> dict[str, Any]:
    from edgeplex.delegates.api import declared_options
    from edgeplex.delegates.discovery import instantiate
    factory = registry.delegates[name].factory
    options = {k: {"default": _plain(o.default), "help": o.help,
                   "choices": None if o.choices is None else [_plain(c) for c in o.choices]}
               for k, o in declared_options(factory).items()}
    info = {"name": name, "memory_domain": getattr(factory, "memory_domain", "host"),
            "options": options, "available": False, "reason": ""}
    try:
        delegate = instantiate(factory, {})
        info["available"] = bool(delegate.is_available())
        if not info["available"]:
            info["reason"] = str(delegate.unavailable_reason())
    except Exception as e:                       # list it anyway, with why it cannot be used
        info["reason"] = f"failed to initialise: {type(e).__name__}: {e}"
    return info


def _plain(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def format_listing(listing: dict[str, Any]) -> str:
    """The listing as text."""
    lines = [f"delegate plugins (entry point group {listing['group']}):"]
    for p in listing["plugins"]:
        dist = f"{p['distribution']} {p['version']}" if p["distribution"] else "not installed"
        tag = ", built-in" if p["builtin"] else ""
        lines.append(f"\n{p['entry_point']}  ({dist}{tag})  {p['module']}  [{p['status']}]")
        if p["note"]:
            lines.append(f"  note: {p['note']}")
        if p["error"]:
            lines.append(f"  error: {p['error']}")
        if p["hooks"]:
            lines.append(f"  hooks: {', '.join(p['hooks'])}")
        for d in p["delegates"]:
            state = "available" if d["available"] else f"UNAVAILABLE: {d['reason']}"
            lines.append(f"  delegate {d['name']!r}: {state}; memory domain {d['memory_domain']}")
            if not d["options"]:
                lines.append("    options: none")
            for key, o in d["options"].items():
                extra = f"  (one of {', '.join(map(repr, o['choices']))})" if o["choices"] else ""
                lines.append(f"    {key} = {o['default']!r}  {o['help']}{extra}".rstrip())
    broken = [p for p in listing["plugins"] if p["status"] == "broken"]
    if broken:
        lines.append("\nbroken plugins (not loaded; EDGEPLEX_STRICT_PLUGINS=1 makes this an "
                     "error):")
        lines += [f"  {p['entry_point']}: {p['error']}" for p in broken]
    for name, owners in listing["conflicts"].items():
        lines.append(f"\nconflict: delegate {name!r} is provided by {', '.join(owners)}")
    return "\n".join(lines)


__all__ = ["add_commands", "cmd_delegates", "cmd_placement", "plugin_listing", "format_listing"]
