"""`edgecnn data …` end to end through the real command line, with --json."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def edgecnn(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "edgecnn", "data", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def test_synth_check_calib(tmp_path):
    out = edgecnn("synth", "kind=detect", f"out={tmp_path / 'det'}", "n=12", "imgsz=128", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["images"] == 15 and result["boxes"] > 0
    data_yaml = Path(result["artifacts"]["data_yaml"])
    assert data_yaml.is_file()

    out = edgecnn("check", f"data={data_yaml}", f"out={tmp_path / 'check'}", "--json")
    assert out.returncode == 0, out.stderr
    check = json.loads(out.stdout)
    assert check["images"] == 15 and check["boxes"] == result["boxes"] and check["classes"] == 5
    summary = json.loads(Path(check["artifacts"]["summary_json"]).read_text())
    assert sum(summary["splits"]["train"]["boxes_per_class"].values()) + summary["splits"]["val"]["boxes"] == result["boxes"]
    assert Path(check["artifacts"]["summary_png"]).read_bytes()[:4] == b"\x89PNG"
    assert "person" in out.stderr and "box size" in out.stderr  # the table

    out = edgecnn("calib", f"data={data_yaml}", "n=5", f"out={tmp_path / 'calib'}", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["images"] == 5 and len(list((tmp_path / "calib" / "images").iterdir())) == 5


def test_check_reports_bad_label_without_traceback(tmp_path):
    edgecnn("synth", f"out={tmp_path / 'det'}", "n=3", "imgsz=64")
    (tmp_path / "det" / "labels" / "train" / "000001.txt").write_text("0 0.5 0.5 0.1 0.1\n9 0.5 0.5 0.1 0.1\n")
    out = edgecnn("check", f"data={tmp_path / 'det' / 'data.yaml'}", f"out={tmp_path / 'c'}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "labels/train/000001.txt:2: class id 9 is not one of 0..4" in out.stderr


def test_bad_keys_fail_before_work(tmp_path):
    out = edgecnn("synth", "kind=vidoe", f"out={tmp_path}")
    assert out.returncode == 2 and "did you mean 'video'" in out.stderr
    out = edgecnn("chek")
    assert out.returncode == 2 and "action='chek'" in out.stderr
    out = edgecnn("check")
    assert out.returncode == 2 and "needs data=" in out.stderr


def test_video_and_crops(tmp_path):
    out = edgecnn("synth", "kind=video", f"out={tmp_path / 'v'}", "n=2", "frames=12", "imgsz=160", "--json")
    assert out.returncode == 0, out.stderr
    art = json.loads(out.stdout)["artifacts"]
    assert Path(art["test_video"]).is_file() and Path(art["test_gt"]).is_file() and Path(art["train"]).is_dir()
    out = edgecnn("crops", f"source={art['root']}", f"out={tmp_path / 'reid'}", "step=1", "min_visibility=0.3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["identities"] >= 2 and result["crops"] > 0
    out = edgecnn("check", f"data={tmp_path / 'reid'}", f"out={tmp_path / 'check'}", "--json")
    assert out.returncode == 0, out.stderr
    check = json.loads(out.stdout)
    assert check["images"] == result["crops"] and check["classes"] == result["identities"]
    assert "images_per_identity_min" in out.stderr


def test_synth_reid_identities(tmp_path):
    out = edgecnn("synth", "kind=reid", f"out={tmp_path / 'reid'}", "n=10", "per_id=3", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["images"] == 30
    out = edgecnn("check", f"data={tmp_path / 'reid'}", f"out={tmp_path / 'check'}", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["classes"] == 10
