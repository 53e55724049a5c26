"""The commands: one module per `edgecnn <command>`, each with `HELP`, `KEYS` and `run(cfg)`.

A module in this package is a command (`mot_eval.py` → `edgecnn mot-eval`); its `HELP`'s first
line is its line in `edgecnn --help`. The command line and the pipeline's stage runner both look
commands up here. Listing the commands reads the modules' source without importing them, so
`edgecnn --help` imports no heavy library.

A command module has:
- `HELP`: a line (more lines for `edgecnn <command> --help` may follow);
- `KEYS`: a `config.Schema` of `Key`s (default, help, type, choices, range, `required`); a key
  whose default a function already states takes it from there (`config.signature_keys`);
- optionally `POSITIONAL` (key names bare words fill, in order), `EXTRA_OVERRIDES` (unknown
  `key=value` words go to an `overrides` key) and `code_version()` (the pipeline reruns the stage
  when it changes, for commands whose output changes with their code for the same config);
- `run(cfg) -> dict`: metrics under their usual names (`mAP50_95`, `top1`, `latency_ms_p50`,
  `IDF1`, …) and `artifacts: {name: path}`. A command that writes files has a key `out` (the
  pipeline sets it to `runs/<pipeline>/<stage>`); one that can continue an interrupted run has
  `resume`. Top-level imports stay light (no torch, TensorFlow): import inside `run`.
Errors the user must fix raise `ConfigError` (keys, values), `FileNotFoundError` (naming the path),
`ValueError` (file content, naming file and line) or `metrics.gate.GateError`; the command line
prints them without a traceback. Logs and progress go to stderr; with `--json` stdout carries
one JSON object and nothing else (`cli.py`).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

COMMANDS = tuple(sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def load_command(name: str) -> ModuleType:
    """The module of command `name` (`mot-eval` → `edgecnn.commands.mot_eval`)."""
    return importlib.import_module(f"edgecnn.commands.{name.replace('-', '_')}")


def command_summary(name: str) -> str:
    """The first line of command `name`'s HELP, read from its source without importing it (only
    the `HELP = ...` statement is parsed: `edgecnn --help` reads every command)."""
    path = Path(__file__).with_name(f"{name.replace('-', '_')}.py")
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("HELP = ")), len(lines))
    for end in range(start + 1, min(start + 10, len(lines)) + 1):
        try:
            statement = ast.parse("\n".join(lines[start:end])).body[0]
        except SyntaxError:  # the string goes on in the next line
            continue
        return ast.literal_eval(statement.value).splitlines()[0]
    raise ValueError(f"{path}: a command module needs HELP = '<one line>'")
