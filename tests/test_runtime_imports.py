"""Import rules: ARCHITECTURE.md's layers hold, and the device runtime imports with torch and TensorFlow absent."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK_HEAVY = """
import sys

class _Block:
    BLOCKED = ("torch", "torchvision", "tensorflow", "tf_keras", "keras", "onnx2tf", "nncf")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"{name} is blocked: the device runtime must not import it")
        return None

sys.meta_path.insert(0, _Block())
"""

IMPORT_ALL = """
import importlib, pkgutil, json, sys
import numpy as np
import edgecnn.runtime as runtime
names = [m.name for m in pkgutil.walk_packages(runtime.__path__, "edgecnn.runtime.")]
for name in names:
    importlib.import_module(name)
from edgecnn.runtime.postprocess import postprocess, make_anchors
from edgecnn.runtime.backends import tflite_interpreter_class
n = len(make_anchors((64, 64), (8, 16, 32))[0])
dets = postprocess(np.full((1, n, 4), 0.5, np.float32), np.full((1, n, 2), 0.9, np.float32), (64, 64), (8, 16, 32))
interpreter = tflite_interpreter_class().__module__
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensorflow", "torchvision"))
print(json.dumps({"modules": names, "detections": len(dets[0]), "interpreter": interpreter, "heavy": heavy}))
"""


def test_runtime_imports_without_torch_or_tensorflow(tmp_path):
    import json

    (tmp_path / "sitecustomize.py").write_text(BLOCK_HEAVY)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True, timeout=60)
    assert "is blocked" in check.stderr  # the blocker works
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(IMPORT_ALL)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"edgecnn.runtime.backends", "edgecnn.runtime.postprocess", "edgecnn.runtime.detector"} <= set(report["modules"])
    assert report["detections"] > 0 and report["heavy"] == []
    assert report["interpreter"].startswith(("ai_edge_litert", "tflite_runtime"))


# The import rules of ARCHITECTURE.md, read from its table and checked on every import statement
# (module level or inside a function) under edgecnn/.
UPWARD = {("commands", "pipeline")}  # the `pipeline` command runs the stage runner (inside run)


def _architecture_table() -> dict[str, list[str]]:
    """package → the packages it may import, in the table's order (bottom up)."""
    rows: dict[str, list[str]] = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0] != "`package`":
            rows[cells[0].strip("`")] = [n.strip(" `") for n in cells[2].split(",") if n.strip()]
    return rows


def _unit(module: str) -> str:
    """The table row of an edgecnn module: its sub-package, or the top-level module itself."""
    parts = module.split(".")
    if len(parts) > 1 and ((ROOT / "edgecnn" / parts[1]).is_dir() or (ROOT / "edgecnn" / f"{parts[1]}.py").is_file()):
        return parts[1]
    return "__init__"  # edgecnn itself, or a name defined in edgecnn/__init__.py


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, including imports inside functions."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            if module == "edgecnn":  # `from edgecnn import __version__` or a sub-package
                found += [(node.lineno, f"edgecnn.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def _sources() -> list[Path]:
    return sorted((ROOT / "edgecnn").rglob("*.py"))


def test_architecture_table_is_layered():
    rows = _architecture_table()
    order = list(rows)
    assert {"runtime", "commands", "pipeline", "cli", "config", "fileio"} <= set(order)
    on_disk = {p.stem if p.parent.name == "edgecnn" else p.relative_to(ROOT / "edgecnn").parts[0] for p in _sources()}
    assert on_disk == set(order), "ARCHITECTURE.md must have one row per package and top-level module"
    for name, allowed in rows.items():
        for other in allowed:
            assert other in rows, f"ARCHITECTURE.md: {name} may import {other}, which has no row"
            assert order.index(other) < order.index(name) or (name, other) in UPWARD, \
                f"ARCHITECTURE.md: {name} may import {other}, a package below it in the flow"


def test_imports_follow_architecture():
    rows = _architecture_table()
    wrong = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        own = _unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, module in _imports(path):
            if module.split(".")[0] == "edgecnn":
                other = _unit(module)
                if other != own and other not in rows[own]:
                    wrong.append(f"{rel}:{line}: {own} imports {module}; ARCHITECTURE.md lets {own} import "
                                 f"{', '.join(rows[own]) or 'nothing from edgecnn'}")
    assert not wrong, "\n".join(wrong)


def test_runtime_imports_no_host_library():
    from edgecnn.deploy.bundle import DEVICE_IMPORTS

    allowed = set(sys.stdlib_module_names) | DEVICE_IMPORTS | {"edgecnn"}
    wrong = []
    for path in sorted((ROOT / "edgecnn" / "runtime").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top not in allowed:
                wrong.append(f"{rel}:{line}: imports {module}, which is not device-side")
    assert not wrong, "\n".join(wrong)
