import json
import subprocess
import sys

import pytest

from edgecnn.cli import main
from edgecnn.commands import COMMANDS, load_command


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_with_its_own_first_help_line():
    out = run_cli("--help")
    assert out.returncode == 0
    assert set(COMMANDS) >= {"data", "train", "export", "track", "mot-eval"}
    for name in COMMANDS:
        first_line = load_command(name).HELP.splitlines()[0]
        assert f"  {name} " in out.stdout and first_line in out.stdout, name
    assert "data crops" in out.stdout and "data mot" in out.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_documents_its_keys(name, capsys):
    module = load_command(name)
    assert module.HELP and len(module.KEYS.keys) > 0
    assert main([name, "--help"]) == 0
    text = capsys.readouterr().out
    for key in module.KEYS.keys:
        assert f"{key}=" in text


def test_unknown_command_suggests():
    out = run_cli("trian")
    assert out.returncode == 2 and "did you mean 'train'" in out.stderr


def test_unknown_key_fails_before_work_starts(tmp_path):
    out = run_cli("pipeline", str(tmp_path / "none.yaml"), "--frm", "x")
    assert out.returncode == 2 and "unknown option '--frm'" in out.stderr and "from" in out.stderr


def test_json_prints_exactly_one_object_on_stdout(tmp_path):
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text("name: p\nstages:\n  - {name: s, command: summary, args: {model: lenet5, imgsz: 32}}\n")
    out = run_cli("pipeline", str(yaml_path), f"runs={tmp_path / 'runs'}", "--json")
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert obj["stages"]["s"]["status"] == "ran"
    assert "[1/1] s" in out.stderr
