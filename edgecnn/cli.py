"""The `edgecnn` command: one entry point, subcommands, `key=value` overrides, `--json`.

Each subcommand is a module in `edgecnn.commands` (listed there in `COMMANDS`), with `HELP`
(its first line is the command's line in `edgecnn --help`), `KEYS` (a Schema), optionally `POSITIONAL` (key names filled by bare words, in
order) and `run(cfg) -> dict`.
`run` returns its metrics under their usual names plus an `artifacts` mapping of paths. Command
modules import heavy libraries inside `run`, so `edgecnn --help` stays fast. A result with
`status: skipped` (the machine lacks what the command needs; it says what) exits with `SKIPPED`.

With `--json`, stdout carries exactly one JSON object: while the command runs, everything written
to stdout (NNCF's progress bars and `INFO:nncf:` lines, onnx2tf and TensorFlow prints, tqdm/rich,
C libraries writing to file descriptor 1) goes to stderr instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from types import ModuleType
from typing import Any

from edgecnn import __version__
from edgecnn.commands import COMMANDS, command_summary, load_command
from edgecnn.config import ConfigError, parse_value, run_reporting_errors
from edgecnn.fileio import stdout_to_stderr

LOG = logging.getLogger("edgecnn")
SKIPPED = 3  # exit code of a command that could not run here and did nothing (e.g. check-device without emulation)


def parse_command_args(module: ModuleType, args: list[str], where: str) -> dict[str, Any]:
    """Bare words fill POSITIONAL keys, `--key [value]` and `key=value` set keys."""
    schema = module.KEYS
    positional = list(getattr(module, "POSITIONAL", ()))
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name = arg[2:].replace("-", "_")
            if name not in schema:
                raise ConfigError(f"{where}: unknown option '{arg}'{schema.suggest(name)}")
            if bool in schema.keys[name].types:
                overrides[name] = True
            else:
                if i + 1 >= len(args):
                    raise ConfigError(f"{where}: option '{arg}' needs a value")
                i += 1
                overrides[name] = parse_value(args[i])
        elif "=" in arg:
            key, _, value = arg.partition("=")
            if key not in schema and getattr(module, "EXTRA_OVERRIDES", False):
                overrides.setdefault("overrides", {})[key] = parse_value(value)
            else:
                overrides[key] = parse_value(value)
        elif positional:
            overrides[positional.pop(0)] = parse_value(arg)
        else:
            raise ConfigError(f"{where}: unexpected argument '{arg}' (expected key=value)")
        i += 1
    return overrides


def print_help() -> None:
    width = max(map(len, COMMANDS))
    lines = [f"edgecnn {__version__}: CNNs from training to a camera on an edge device", "",
             "usage: edgecnn <command> [key=value ...] [--json]", "", "commands:"]
    lines += [f"  {name:<{width}}  {command_summary(name)}" for name in COMMANDS]
    lines += ["", "`edgecnn <command> --help` lists a command's keys with their defaults and meaning."]
    print("\n".join(lines))


def print_command_help(name: str, module: ModuleType) -> None:
    positional = " ".join(f"[{p}]" for p in getattr(module, "POSITIONAL", ()))
    print(f"usage: edgecnn {name} {positional} [key=value ...] [--json]".replace("  ", " "))
    print(f"\n{module.HELP}\n\nkeys:")
    rows = module.KEYS.help_rows()
    width = max((len(r[0]) + len(r[1]) for r in rows), default=0) + 3
    for key, default, text in rows:
        print(f"  {key + '=' + default:<{width}} {text}")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in value.items() if not isinstance(v, (dict, list)))
    if isinstance(value, list):
        return f"[{len(value)} rows]"
    return str(value)


def print_result(result: dict[str, Any]) -> None:
    """The human view of a result: one line per metric, a line per entry of nested tables."""
    width = max(map(len, result), default=0)
    for key, value in result.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            print(f"{key}:")
            inner = max(map(len, value))
            for name, row in value.items():
                print(f"  {name:<{inner}}  {_short(row)}")
        elif isinstance(value, dict):
            print(f"{key}:")
            inner = max(map(len, value), default=0)
            for name, item in value.items():
                print(f"  {name:<{inner}}  {_short(item)}")
        else:
            print(f"{key:<{width}}  {_short(value)}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    as_json = "--json" in argv
    argv = [a for a in argv if a != "--json"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print_help()
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        print(f"edgecnn: unknown command '{name}'{hint} (see edgecnn --help)", file=sys.stderr)
        return 2
    module = load_command(name)
    if "-h" in args or "--help" in args:
        print_command_help(name, module)
        return 0
    where = f"edgecnn {name}"
    with stdout_to_stderr() if as_json else contextlib.nullcontext():
        code, result = run_reporting_errors(
            where, lambda: module.run(module.KEYS.resolve(parse_command_args(module, args, where), where)) or {})
    if code:
        return code
    if as_json:
        print(json.dumps(result, default=str))
    else:  # a command may have its own human view (e.g. summary's per-layer table)
        getattr(module, "print_human", print_result)(result)
    return SKIPPED if result.get("status") == "skipped" else 0
