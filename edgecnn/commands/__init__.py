"""The commands: one module per `edgecnn <command>`, each with `HELP`, `KEYS` and `run(cfg)`.

A module in this package is a command (`mot_eval.py` → `edgecnn mot-eval`); its `HELP`'s first
line is its line in `edgecnn --help`. The command line and the pipeline's stage runner both look
commands up here. Listing the commands reads the modules' source without importing them, so
`edgecnn --help` imports no heavy library.
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
    """The first line of command `name`'s HELP, read from its source (no import)."""
    path = Path(__file__).with_name(f"{name.replace('-', '_')}.py")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets):
            return ast.literal_eval(node.value).splitlines()[0]
    raise ValueError(f"{path}: a command module needs HELP = '<one line>'")
