"""Functions in edgecnn/ fit on a screen: 60 lines at most, docstring and decorators included."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 60


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted((ROOT / "edgecnn").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - first + 1 > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} has {node.end_lineno - first + 1} lines")
    assert not long, "split these (ARCHITECTURE.md: functions that fit on a screen):\n" + "\n".join(long)
