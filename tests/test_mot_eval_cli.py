"""`edgecnn mot-eval` on files and on sequence directories, with --json."""

import json

import numpy as np
import pytest

from edgecnn.cli import main
from edgecnn.metrics import hota
from edgecnn.metrics.mot import score_files
from edgecnn.runtime.mot import write_mot


def make_sequences(root, names=("SEQ-A", "SEQ-B")):
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        gt = np.array([[f, o, 50 * o + 2 * f, 100, 40, 90, 1, -1, -1, -1]
                       for f in range(1, 31) for o in range(1, 4 + k)], float)
        hyp = gt.copy()
        hyp[:, 2:4] += rng.normal(0, 3, (len(hyp), 2))
        hyp = hyp[rng.random(len(hyp)) > 0.1]
        hyp[(hyp[:, 0] > 20) & (hyp[:, 1] == 1), 1] = 9  # one identity switch
        write_mot(root / "gt" / name / "gt" / "gt.txt", gt)
        write_mot(root / "res" / f"{name}.txt", hyp)
    return root / "gt", root / "res"


def run_json(capsys, *args):
    assert main(["mot-eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_directories_give_per_sequence_and_overall_rows(tmp_path, capsys):
    gt, res = make_sequences(tmp_path)
    result = run_json(capsys, f"gt={gt}", f"res={res}")
    assert set(result["sequences"]) == {"SEQ-A", "SEQ-B"}
    a = score_files(gt / "SEQ-A/gt/gt.txt", res / "SEQ-A.txt")
    b = score_files(gt / "SEQ-B/gt/gt.txt", res / "SEQ-B.txt")
    assert {k: result["sequences"]["SEQ-A"][k] for k in a.metrics()} == pytest.approx(a.metrics())
    assert result["MOTA"] == pytest.approx((a + b).metrics()["MOTA"])
    assert result["IDs"] == a.switches + b.switches >= 2
    assert result["GT"] == 3 + 4


def test_hota_per_sequence_and_combined_as_trackeval(tmp_path, capsys):
    gt, res = make_sequences(tmp_path)
    result = run_json(capsys, f"gt={gt}", f"res={res}")
    a = hota.score_files(gt / "SEQ-A/gt/gt.txt", res / "SEQ-A.txt")
    b = hota.score_files(gt / "SEQ-B/gt/gt.txt", res / "SEQ-B.txt")
    assert {k: result["sequences"]["SEQ-B"][k] for k in hota.HOTA_METRICS} == pytest.approx(b.metrics())
    assert {k: result[k] for k in hota.HOTA_METRICS} == pytest.approx((a + b).metrics())
    assert 0.5 < result["HOTA"] < 1 and result["AssA"] < 1  # the identity switch costs association
    strict = run_json(capsys, f"gt={gt}", f"res={res}", "iou=0.9")
    assert strict["HOTA"] == result["HOTA"] and strict["MOTA"] < result["MOTA"]  # HOTA spans all thresholds


def test_single_files_positional_and_iou(tmp_path, capsys):
    gt, res = make_sequences(tmp_path, ("ONE",))
    loose = run_json(capsys, str(gt / "ONE/gt/gt.txt"), str(res / "ONE.txt"), "iou=0.3")
    strict = run_json(capsys, f"gt={gt / 'ONE/gt/gt.txt'}", f"res={res / 'ONE.txt'}", "iou=0.9")
    assert list(loose["sequences"]) == ["ONE"]
    assert loose["Recall"] > strict["Recall"]


def test_human_table_and_errors(tmp_path, capsys):
    gt, res = make_sequences(tmp_path)
    assert main(["mot-eval", f"gt={gt}", f"res={res}"]) == 0
    out = capsys.readouterr().out
    assert "OVERALL" in out and "SEQ-B" in out and "IDF1" in out and "HOTA" in out and "AssA" in out
    (res / "SEQ-B.txt").unlink()
    assert main(["mot-eval", f"gt={gt}", f"res={res}"]) == 1
    assert "SEQ-B.txt" in capsys.readouterr().err
    assert main(["mot-eval", f"gt={gt}", f"res={res}", "iou=2"]) == 2
