"""Command keys: declaration, `key=value` parsing and validation before any work starts.

Stdlib only: the device runtime validates its keys with the same code.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import sys
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping


class ConfigError(ValueError):
    """A key, value or file that the user must fix; the message names it."""


_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict", type(None): "none"}


@dataclass(frozen=True)
class Key:
    """One setting of a command: its default, meaning and what values are allowed.

    `type` defaults to the type of `default`; a tuple allows several (e.g. `(int, str)` for a
    source that is a webcam index or a path). A default of None makes the key optional;
    `required=True` makes a key without a value (None, "" or []) an error when the schema resolves.
    """

    name: str
    default: Any
    help: str
    type: type | tuple[type, ...] | None = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    required: bool = False

    @property
    def types(self) -> tuple[type, ...]:
        if self.type is not None:
            return self.type if isinstance(self.type, tuple) else (self.type,)
        if self.default is None:
            return (str,)
        return (type(self.default),)

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        parts = [" or ".join(_TYPE_NAMES.get(t, t.__name__) for t in self.types)]
        if self.min is not None:
            parts.append(f">= {self.min}")
        if self.max is not None:
            parts.append(f"<= {self.max}")
        return " ".join(parts)

    def check(self, value: Any, where: str) -> Any:
        """Return `value` converted to this key's type, or raise ConfigError naming the key."""
        if value is None and self.default is None:
            return None
        value = self._coerce(value, where)
        if self.choices and value not in self.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: {self.name}={value!r} is not allowed; use {self.allowed()}{hint}")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and ((self.min is not None and value < self.min) or (self.max is not None and value > self.max)):
            raise ConfigError(f"{where}: {self.name}={value!r} is out of range; allowed: {self.allowed()}")
        return value

    def _coerce(self, value: Any, where: str) -> Any:
        types = self.types
        if isinstance(value, bool):
            if bool in types:
                return value
        elif isinstance(value, types):
            return value
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if str in types and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if list in types and isinstance(value, (tuple, str)):
            return list(value) if isinstance(value, tuple) else split_list(value)
        raise ConfigError(
            f"{where}: {self.name}={value!r} has the wrong type ({type(value).__name__}); allowed: {self.allowed()}"
        )


def split_list(text: str) -> list[str]:
    """'a,b', or '[a, b]' as a shell passes an unquoted list (not a Python literal): ['a', 'b']."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [item for item in (v.strip().strip("'\"").strip() for v in text.split(",")) if item]


class Schema:
    """The keys of one command, in the order they are shown in `--help`."""

    def __init__(self, *keys: Key | Schema):
        self.keys: dict[str, Key] = {}
        for item in keys:
            for key in item.keys.values() if isinstance(item, Schema) else (item,):
                self.keys[key.name] = key

    def __contains__(self, name: str) -> bool:
        return name in self.keys

    def defaults(self) -> dict[str, Any]:
        return {k.name: k.default for k in self.keys.values()}

    def resolve(self, overrides: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
        """Defaults updated with `overrides`, every value checked; unknown keys are errors."""
        cfg = self.defaults()
        for name, value in overrides.items():
            if name not in self.keys:
                raise ConfigError(f"{where}: unknown key '{name}'{self.suggest(name)}")
            cfg[name] = self.keys[name].check(value, where)
        self.check_required(cfg, where)
        return cfg

    def check_required(self, cfg: Mapping[str, Any], where: str = "config") -> None:
        """Raise ConfigError naming the first required key that `cfg` leaves without a value."""
        for key in self.keys.values():
            value = cfg.get(key.name)
            if key.required and (value is None or value == "" or value == []):
                raise ConfigError(f"{where}: {key.name}= is required: {key.help}")

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.keys), n=1, cutoff=0.5)
        if close:
            return f"; did you mean '{close[0]}'?"
        return "; valid keys: " + ", ".join(self.keys)

    def help_rows(self) -> list[tuple[str, str, str]]:
        return [(k.name, "(required)" if k.required else repr(k.default), f"{k.help} [{k.allowed()}]")
                for k in self.keys.values()]


def signature_keys(func: Callable, *keys: Key, names: Mapping[str, str] | None = None) -> Schema:
    """`keys` with their defaults taken from `func`'s signature, so each default is written once,
    where the code that uses it is. Write `...` as each Key's default; every Key must name a
    parameter of `func` that has a default (`names` maps a key to a parameter of another name)."""
    params = inspect.signature(func).parameters
    filled = []
    for key in keys:
        param = params.get((names or {}).get(key.name, key.name))
        if param is None or param.default is inspect.Parameter.empty or key.default is not ...:
            raise TypeError(f"Key '{key.name}': expected default ... and a parameter of {func.__qualname__} "
                            "with a default")
        filled.append(replace(key, default=param.default))
    return Schema(*filled)


def parse_value(text: str) -> Any:
    """'30' → 30, '0.5' → 0.5, 'true' → True, 'none' → None, '[1,2]' → [1, 2], else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null", ""):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parse_overrides(args: Iterable[str], where: str = "command line") -> dict[str, Any]:
    """Parse `key=value` words; a word without '=' is an error naming it."""
    out: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"{where}: expected key=value, got '{arg}'")
        out[key.strip()] = parse_value(value)
    return out


def run_reporting_errors(where: str, work: Callable[[], Any]) -> tuple[int, Any]:
    """Run `work` for a command line: (exit code, result).

    A mistake the user must fix is one line on stderr, `<where>: error: …`, without a traceback
    (EDGECNN_DEBUG=1 shows it): exit code 2 for bad keys or values, 1 for bad files or a failed gate.
    """
    try:
        return 0, work()
    except ConfigError as err:
        print(f"{where}: error: {err}", file=sys.stderr)
        return 2, None
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        if os.environ.get("EDGECNN_DEBUG"):
            raise
        print(f"{where}: error: {err}", file=sys.stderr)
        return 1, None
