"""The stage runner: caching by config and input hashes, --force, --from/--to, resume, overrides."""

import json
import tempfile
import time
from pathlib import Path

import pytest

from edgecnn.config import ConfigError
from edgecnn.pipeline import load_pipeline, run_pipeline

PIPELINE = """
name: toy
vars: {imgsz: 32}
variants:
  fast: {second.imgsz: 16}
stages:
  - name: first
    command: train
    args: {model: lenet5, imgsz: "${vars.imgsz}"}
  - name: second
    command: train
    args: {model: "${first.model_name}", imgsz: 32}
"""


class Recorder:
    """Runs stages through a small function that writes a real artifact and counts calls."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.fail_on = fail_on
        self.scratch = Path(tempfile.mkdtemp())

    def __call__(self, command: str, cfg: dict) -> dict:
        self.calls.append((command, dict(cfg)))
        if self.fail_on and len(self.calls) == 2:
            raise KeyboardInterrupt  # the machine was switched off mid-stage
        out = Path(cfg.get("out") or self.scratch / f"call{len(self.calls)}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.txt").write_text(f"{cfg['model']} {cfg['imgsz']}")
        return {"params": 61706, "model_name": cfg["model"], "artifacts": {"table": str(out / "table.txt")}}


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(PIPELINE)
    return path


def test_runs_all_stages_and_writes_manifests(toy, tmp_path):
    rec = Recorder()
    start = time.perf_counter()
    report = run_pipeline(load_pipeline(toy), tmp_path / "runs", run_command=rec)
    elapsed = time.perf_counter() - start
    assert [c[1]["imgsz"] for c in rec.calls] == [32, 32]
    assert rec.calls[1][1]["model"] == "lenet5"  # resolved from the first stage's result
    manifest = json.loads((tmp_path / "runs/toy/first/manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["config"]["imgsz"] == 32
    assert "numpy" in manifest["versions"] and 0 <= manifest["seconds"] <= elapsed + 0.001
    assert report["artifacts"]["second.table"].endswith("second/table.txt")


def test_unchanged_stages_are_skipped_and_force_reruns(toy, tmp_path):
    run_pipeline(load_pipeline(toy), tmp_path / "runs", run_command=Recorder())
    rec = Recorder()
    report = run_pipeline(load_pipeline(toy), tmp_path / "runs", run_command=rec)
    assert rec.calls == [] and report["stages"]["first"]["status"] == "cached"
    run_pipeline(load_pipeline(toy), tmp_path / "runs", force=True, run_command=rec)
    assert len(rec.calls) == 2


def test_changed_config_or_input_reruns_only_what_depends_on_it(toy, tmp_path):
    run_pipeline(load_pipeline(toy), tmp_path / "runs", run_command=Recorder())
    rec = Recorder()
    run_pipeline(load_pipeline(toy, {"second.imgsz": 64}), tmp_path / "runs", run_command=rec)
    assert [c[1]["imgsz"] for c in rec.calls] == [64]
    (tmp_path / "runs/toy/first/table.txt").unlink()  # a missing artifact is not a cache hit
    rec = Recorder()
    run_pipeline(load_pipeline(toy, {"second.imgsz": 64}), tmp_path / "runs", run_command=rec)
    assert [c[0] for c in rec.calls] == ["train"]


def test_a_new_code_version_reruns_the_stage(toy, tmp_path, monkeypatch):
    from edgecnn.commands import load_command

    run_pipeline(load_pipeline(toy), tmp_path / "runs", run_command=Recorder())
    monkeypatch.setattr(load_command("train"), "code_version", lambda: 7, raising=False)
    rec = Recorder()
    run_pipeline(load_pipeline(toy), tmp_path / "runs", run_command=rec)
    assert len(rec.calls) == 2
    assert json.loads((tmp_path / "runs/toy/first/manifest.json").read_text())["code_version"] == 7
    rec = Recorder()
    run_pipeline(load_pipeline(toy), tmp_path / "runs", run_command=rec)
    assert rec.calls == []


def test_from_and_to(toy, tmp_path):
    with pytest.raises(ConfigError, match="has not run yet"):
        run_pipeline(load_pipeline(toy), tmp_path / "runs", start="second", run_command=Recorder())
    rec = Recorder()
    run_pipeline(load_pipeline(toy), tmp_path / "runs", stop="first", run_command=rec)
    assert len(rec.calls) == 1
    rec = Recorder()
    run_pipeline(load_pipeline(toy), tmp_path / "runs", start="second", force=True, run_command=rec)
    assert len(rec.calls) == 1 and rec.calls[0][1]["out"].endswith("second")
    with pytest.raises(ConfigError, match="did you mean 'second'"):
        run_pipeline(load_pipeline(toy), tmp_path / "runs", stop="secnd", run_command=rec)


def test_interrupted_stage_resumes_when_the_command_can(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: r\nstages:\n"
                    "  - {name: a, command: summary, args: {model: lenet5}}\n"
                    "  - {name: b, command: train, args: {model: lenet5}}\n")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_pipeline(path), tmp_path / "runs", run_command=Recorder(fail_on="b"))
    assert json.loads((tmp_path / "runs/r/b/manifest.json").read_text())["status"] == "running"
    rec = Recorder()
    run_pipeline(load_pipeline(path), tmp_path / "runs", run_command=rec)
    assert [c[1].get("resume") for c in rec.calls] == [True]  # a is cached, b resumes
    assert json.loads((tmp_path / "runs/r/b/manifest.json").read_text())["config"]["resume"] is False


def test_a_failed_stage_reruns_from_scratch(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: f\nstages:\n  - {name: b, command: train, args: {model: lenet5}}\n")

    def failing(command, cfg):
        raise RuntimeError("gate failed")

    with pytest.raises(RuntimeError):
        run_pipeline(load_pipeline(path), tmp_path / "runs", run_command=failing)
    manifest = json.loads((tmp_path / "runs/f/b/manifest.json").read_text())
    assert manifest["status"] == "failed" and "gate failed" in manifest["error"]
    rec = Recorder()
    run_pipeline(load_pipeline(path), tmp_path / "runs", run_command=rec)
    assert rec.calls[0][1]["resume"] is False


def test_overrides_variants_and_validation(toy, tmp_path):
    p = load_pipeline(toy, {"imgsz": 48}, variant="fast")
    assert [s.args["imgsz"] for s in p.stages] == [48, 48]  # bare keys reach every stage that takes them
    p = load_pipeline(toy, {"vars.imgsz": 64}, variant="fast")
    assert p.vars["imgsz"] == 64 and p.stages[1].args["imgsz"] == 16
    with pytest.raises(ConfigError, match="unknown key 'imgsize'.*did you mean 'imgsz'"):
        load_pipeline(toy, {"imgsize": 1})
    with pytest.raises(ConfigError, match="no such variant"):
        load_pipeline(toy, variant="slow")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - {name: a, command: summary, args: {modle: x}}\n")
    with pytest.raises(ConfigError, match=r"stage 'a' \(summary\): unknown key 'modle'.*did you mean 'model'"):
        load_pipeline(bad)
    bad.write_text("stages:\n  - {name: a, command: trian}\n")
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        load_pipeline(bad)


def test_reference_to_missing_artifact_is_clear(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: m\nstages:\n  - {name: a, command: summary, args: {model: lenet5}}\n"
                    "  - {name: b, command: summary, args: {model: '${a.nothing}'}}\n")
    with pytest.raises(ConfigError, match="stage 'a' has no artifact or metric 'nothing'"):
        run_pipeline(load_pipeline(path), tmp_path / "runs", run_command=Recorder())


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from edgecnn.fileio import atomic_write_text

    path = atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
