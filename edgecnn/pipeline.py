"""The staged pipeline: a YAML list of stages, each a command, cached by config and input hashes.

```yaml
name: demo
vars: {imgsz: 320}
variants:                     # `variant=fast` applies these overrides
  fast: {train.epochs: 2}
stages:
  - name: data
    command: data
    args: {action: synth, kind: detect}
  - name: train
    command: train
    args: {data: "${data.data_yaml}", imgsz: "${vars.imgsz}"}
```

`${stage.key}` is an artifact (or metric) of an earlier stage, `${vars.key}` a pipeline variable;
`vars.note`, when set (e.g. by a variant), is a line under the report's title.
Every stage writes to `<runs>/<pipeline>/<stage>/` and a `manifest.json` there: the resolved
config, the hashes of its inputs, its metrics, artifacts, timings and library versions. A stage
whose config and inputs are unchanged is skipped; one that was interrupted resumes. A command
whose output changes with its code for the same config (the synthetic data generators) has a
`code_version()`, recorded with the stage and compared like the config (Dagster's code_version).
"""

from __future__ import annotations

import copy
import difflib
import logging
import platform
import re
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import yaml

from edgecnn import __version__
from edgecnn.commands import COMMANDS, load_command
from edgecnn.config import ConfigError
from edgecnn.fileio import atomic_write_json, sha256_tree

LOG = logging.getLogger("edgecnn")
REF = re.compile(r"\$\{([A-Za-z0-9_\-]+)\.([A-Za-z0-9_\-]+)\}")
TRACKED_LIBRARIES = ("numpy", "torch", "torchvision", "nncf", "torch-pruning", "onnx", "onnxruntime",
                     "tensorflow", "onnx2tf", "ai-edge-litert", "opencv-python-headless")
MANIFEST = "manifest.json"


@dataclass
class Stage:
    name: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pipeline:
    name: str
    path: Path
    stages: list[Stage]
    vars: dict[str, Any] = field(default_factory=dict)
    report: bool = False
    headline: list[dict[str, Any]] = field(default_factory=list)

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def index(self, name: str, option: str) -> int:
        names = self.stage_names()
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; stages: {', '.join(names)}"
            raise ConfigError(f"{self.path}: {option}={name}: no such stage{hint}")
        return names.index(name)


def load_pipeline(path: str | Path, overrides: dict[str, Any] | None = None, variant: str | None = None) -> Pipeline:
    """Read and validate a pipeline YAML; apply a variant and `key=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pipeline file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), list):
        raise ConfigError(f"{path}: a pipeline needs a 'stages' list")
    allowed = ("name", "description", "vars", "variants", "stages", "report", "headline")
    unknown = set(doc) - set(allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {', '.join(allowed)}")
    stages = [_parse_stage(path, i, raw) for i, raw in enumerate(doc["stages"])]
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: stage names must be unique, got {names}")
    pipeline = Pipeline(doc.get("name", path.stem), path, stages, dict(doc.get("vars") or {}),
                        bool(doc.get("report")), list(doc.get("headline") or []))
    variants = doc.get("variants") or {}
    if variant:
        if variant not in variants:
            raise ConfigError(f"{path}: variant={variant}: no such variant; defined: {', '.join(variants) or 'none'}")
        apply_overrides(pipeline, variants[variant], f"{path}: variant '{variant}'")
    apply_overrides(pipeline, overrides or {}, "command line")
    for stage in pipeline.stages:
        _check_stage_keys(pipeline, stage)
    return pipeline


def _parse_stage(path: Path, i: int, raw: Any) -> Stage:
    if not isinstance(raw, dict) or "name" not in raw or "command" not in raw:
        raise ConfigError(f"{path}: stages[{i}] needs 'name' and 'command'")
    unknown = set(raw) - {"name", "command", "args"}
    if unknown:
        raise ConfigError(f"{path}: stage '{raw['name']}': unknown key(s) {sorted(unknown)}; allowed: name, command, args")
    if raw["command"] not in COMMANDS or raw["command"] == "pipeline":
        close = difflib.get_close_matches(str(raw["command"]), list(COMMANDS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{path}: stage '{raw['name']}': unknown command '{raw['command']}'{hint}")
    return Stage(str(raw["name"]), raw["command"], dict(raw.get("args") or {}))


def apply_overrides(pipeline: Pipeline, overrides: dict[str, Any], where: str) -> None:
    """`stage.key=value` sets one stage's key, `vars.key=value` a variable, `key=value` every
    stage whose command has that key."""
    for dotted, value in overrides.items():
        target, _, key = dotted.rpartition(".")
        if target == "vars":
            pipeline.vars[key] = value
        elif target:
            stage = pipeline.stages[pipeline.index(target, dotted)]
            stage.args[key] = value
        else:
            hits = [s for s in pipeline.stages if key in load_command(s.command).KEYS]
            if not hits:
                all_keys = {k for s in pipeline.stages for k in load_command(s.command).KEYS.keys}
                close = difflib.get_close_matches(key, sorted(all_keys), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"{where}: unknown key '{key}': no stage of {pipeline.path} takes it{hint}")
            for stage in hits:
                stage.args[key] = value


def _check_stage_keys(pipeline: Pipeline, stage: Stage) -> None:
    schema = load_command(stage.command).KEYS
    for key in stage.args:
        if key not in schema:
            raise ConfigError(f"{pipeline.path}: stage '{stage.name}' ({stage.command}): unknown key '{key}'{schema.suggest(key)}")


def resolve_refs(value: Any, results: dict[str, dict[str, Any]], variables: dict[str, Any], where: str) -> Any:
    """Replace `${stage.key}` / `${vars.key}` in strings, lists and dicts."""
    if isinstance(value, dict):
        return {k: resolve_refs(v, results, variables, where) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, results, variables, where) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(match: re.Match) -> Any:
        scope, key = match.groups()
        if scope == "vars":
            if key not in variables:
                raise ConfigError(f"{where}: ${{vars.{key}}} is not defined")
            return variables[key]
        if scope not in results:
            raise ConfigError(f"{where}: ${{{scope}.{key}}} refers to stage '{scope}', which has not run before it")
        found = {**results[scope], **results[scope].get("artifacts", {})}
        if key not in found:
            raise ConfigError(f"{where}: stage '{scope}' has no artifact or metric '{key}'; it has {sorted(found)}")
        return found[key]

    whole = REF.fullmatch(value)
    if whole:
        return lookup(whole)
    return REF.sub(lambda m: str(lookup(m)), value)


def input_hashes(cfg: dict[str, Any]) -> dict[str, str]:
    """Content hashes of every existing file or directory that the config names."""
    hashes = {}
    for key, value in sorted(cfg.items()):
        if key == "out" or not isinstance(value, str) or not value or len(value) > 4096:
            continue
        path = Path(value)
        if path.exists():
            hashes[key] = sha256_tree(path)
    return hashes


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "edgecnn": __version__}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    import json

    path = stage_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        LOG.warning("%s is not valid JSON; the stage will run again", path)
        return None


def is_cached(manifest: dict[str, Any] | None, cfg: dict[str, Any], inputs: dict[str, str], code: Any = None) -> bool:
    if not manifest or manifest.get("status") != "done" or manifest.get("code_version") != code:
        return False
    if manifest.get("config") != _jsonable(cfg) or manifest.get("inputs") != inputs:
        return False
    return all(Path(p).exists() for p in manifest.get("result", {}).get("artifacts", {}).values())


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=str))


def _summary(result: dict[str, Any]) -> str:
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
             for k, v in result.items() if k != "artifacts" and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(parts[:4])


def run_pipeline(
    pipeline: Pipeline,
    runs: str | Path = "runs",
    start: str | None = None,
    stop: str | None = None,
    force: bool = False,
    run_command: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run the stages from `start` to `stop` (inclusive); earlier stages must have run before."""
    run_command = run_command or (lambda command, cfg: load_command(command).run(cfg) or {})
    root = Path(runs) / pipeline.name
    first = pipeline.index(start, "from") if start else 0
    last = pipeline.index(stop, "to") if stop else len(pipeline.stages) - 1
    results: dict[str, dict[str, Any]] = {}
    outcome: dict[str, Any] = {"pipeline": pipeline.name, "stages": {}, "artifacts": {}}
    t_start = time.perf_counter()
    for i, stage in enumerate(pipeline.stages[: last + 1]):
        stage_dir = root / stage.name
        manifest = read_manifest(stage_dir)
        where = f"{pipeline.path}: stage '{stage.name}'"
        if i < first:
            if not manifest or manifest.get("status") != "done":
                raise ConfigError(f"{where} has not run yet; run the pipeline without --from first")
            results[stage.name] = manifest["result"]
            continue
        module = load_command(stage.command)
        args = resolve_refs(copy.deepcopy(stage.args), results, pipeline.vars, where)
        if "out" in module.KEYS and "out" not in args:
            args["out"] = str(stage_dir)
        cfg = module.KEYS.resolve(args, where)
        inputs = input_hashes(cfg)
        code = module.code_version() if hasattr(module, "code_version") else None
        prefix = f"[{i + 1}/{last + 1}] {stage.name}"
        if not force and is_cached(manifest, cfg, inputs, code):
            LOG.info("%s: unchanged, skipped (%s)", prefix, stage_dir / MANIFEST)
            results[stage.name] = manifest["result"]
            outcome["stages"][stage.name] = {"status": "cached", **_metrics(manifest["result"])}
            continue
        fingerprint = _jsonable(cfg)
        interrupted = manifest is not None and manifest.get("status") == "running" and manifest.get("config") == fingerprint
        if interrupted and not force and "resume" in module.KEYS:
            cfg["resume"] = True
            LOG.info("%s: resuming the interrupted run", prefix)
        LOG.info("%s: %s …", prefix, stage.command)
        record = {"stage": stage.name, "command": stage.command, "status": "running", "config": fingerprint,
                  "code_version": code, "inputs": inputs, "versions": library_versions(), "started": time.time()}
        result, seconds = _run_stage(run_command, stage.command, cfg, record, stage_dir / MANIFEST)
        LOG.info("%s: done in %.1fs%s", prefix, seconds, f" ({_summary(result)})" if _summary(result) else "")
        results[stage.name] = result
        outcome["stages"][stage.name] = {"status": "ran", "seconds": round(seconds, 3), **_metrics(result)}
    for name, result in results.items():
        for key, path in result.get("artifacts", {}).items():
            outcome["artifacts"][f"{name}.{key}"] = path
    outcome["seconds"] = round(time.perf_counter() - t_start, 3)
    if pipeline.report:
        outcome["artifacts"].update(_write_report(pipeline, root, results, last))
    return outcome


def _run_stage(run_command: Callable[[str, dict[str, Any]], dict[str, Any]], command: str, cfg: dict[str, Any],
               record: dict[str, Any], manifest: Path) -> tuple[dict[str, Any], float]:
    """Run one stage with its `manifest` saying "running" until it is "done" or "failed"; (result, seconds)."""
    atomic_write_json(manifest, record)
    t0 = time.perf_counter()
    try:
        result = _jsonable(run_command(command, cfg))
    except Exception as err:
        # A failure (a gate, bad data) reruns from scratch; only a killed run resumes.
        record.update(status="failed", error=f"{type(err).__name__}: {err}", seconds=round(time.perf_counter() - t0, 3))
        atomic_write_json(manifest, record)
        raise
    seconds = time.perf_counter() - t0
    record.update(status="done", result=result, seconds=round(seconds, 3), finished=time.time())
    atomic_write_json(manifest, record)
    return result, seconds


def _write_report(pipeline: Pipeline, root: Path, results: dict[str, dict[str, Any]], last: int) -> dict[str, str]:
    from edgecnn.report import write_report

    headline = [{**item, "value": _headline_value(item.get("value"), results, pipeline.vars)}
                for item in pipeline.headline]
    return write_report(root, pipeline.name, pipeline.stage_names()[: last + 1], headline, note=pipeline.vars.get("note"))


def _headline_value(ref: Any, results: dict[str, dict[str, Any]], variables: dict[str, Any]) -> Any:
    """A headline figure; one whose stage did not run (yet) shows as missing, not as an error."""
    try:
        return resolve_refs(ref, results, variables, "headline")
    except ConfigError:
        return None


def _metrics(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "artifacts"}
