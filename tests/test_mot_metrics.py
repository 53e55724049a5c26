"""MOT metrics: the README's py-motmetrics reference values, and agreement with motmetrics itself."""

from pathlib import Path

import numpy as np
import pytest

from edgecnn.metrics.mot import METRICS, MOTCounts, score_files, score_sequence, sequence_name
from edgecnn.runtime.mot import write_mot
from tracking_data import synthetic_sequence

# /work/shared/data/README.md, mot-reference (py-motmetrics, IoU >= 0.5).
REFERENCE = {
    "TUD-Campus": (0.557659, 0.729730, 0.451253, 0.582173, 0.941441, 8, 1, 6, 1, 13, 150, 7, 7, 0.526462, 0.277201),
    "TUD-Stadtmitte": (0.644619, 0.819760, 0.531142, 0.608997, 0.939920, 10, 5, 4, 1, 45, 452, 7, 6, 0.564014,
                       0.345904),
    "both": (0.624296, 0.799176, 0.512211, 0.602640, 0.940268, 18, 6, 10, 2, 58, 602, 14, 13, 0.555116, 0.330177),
}
MM_NAMES = dict(IDF1="idf1", IDP="idp", IDR="idr", Recall="recall", Precision="precision", GT="num_unique_objects",
                MT="mostly_tracked", PT="partially_tracked", ML="mostly_lost", FP="num_false_positives",
                FN="num_misses", IDs="num_switches", FM="num_fragmentations", MOTA="mota", MOTP="motp")


def assert_metrics(got: dict, expected: dict, tol: float) -> None:
    for name in METRICS:
        assert got[name] == pytest.approx(expected[name], abs=tol), name


def test_reference_values(shared_data):
    ref = shared_data / "mot-reference"
    total = MOTCounts()
    for seq in ("TUD-Campus", "TUD-Stadtmitte"):
        counts = score_files(ref / seq / "gt.txt", ref / seq / "test.txt")
        assert_metrics(counts.metrics(), dict(zip(METRICS, REFERENCE[seq])), 1e-6)
        total = total + counts
    assert_metrics(total.metrics(), dict(zip(METRICS, REFERENCE["both"])), 1e-6)


def motmetrics_scores(gt_file: Path, res_files: dict[str, Path]):
    mm = pytest.importorskip("motmetrics")
    accs, names = [], []
    for name, res_file in res_files.items():
        gt = mm.io.loadtxt(str(gt_file[name]), fmt="mot15-2D", min_confidence=1)
        ts = mm.io.loadtxt(str(res_file), fmt="mot15-2D")
        accs.append(mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5))
        names.append(name)
    mh = mm.metrics.create()
    summary = mh.compute_many(accs, metrics=list(MM_NAMES.values()), names=names, generate_overall=True)
    return {row: {ours: float(summary.loc[row, theirs]) for ours, theirs in MM_NAMES.items()} for row in summary.index}


def test_matches_motmetrics_on_synthetic_sequences(tmp_path):
    gt_files, res_files, total = {}, {}, MOTCounts()
    for seed in range(3):
        gt, hyp = synthetic_sequence(seed)
        gt[::17, 6] = 0  # ignored boxes: must be dropped, not scored
        name = f"seq{seed}"
        gt_files[name], res_files[name] = tmp_path / f"{name}_gt.txt", tmp_path / f"{name}.txt"
        write_mot(gt_files[name], gt)
        write_mot(res_files[name], hyp)
        ours = score_files(gt_files[name], res_files[name])
        total = total + ours
        expected = motmetrics_scores(gt_files, {name: res_files[name]})[name]
        assert ours.switches > 0 and ours.fragmentations > 0 and ours.false_positives > 0
        assert_metrics(ours.metrics(), expected, 1e-9)
    assert_metrics(total.metrics(), motmetrics_scores(gt_files, res_files)["OVERALL"], 1e-9)


def test_confidence_zero_ground_truth_is_dropped(tmp_path):
    gt, hyp = synthetic_sequence(7)
    ignored = np.array([[5, 77, 100, 100, 50, 100, 0, -1, -1, -1], [6, 77, 100, 100, 50, 100, 0, -1, -1, -1]])
    write_mot(tmp_path / "clean.txt", gt)
    write_mot(tmp_path / "gt.txt", np.concatenate([gt, ignored]))
    write_mot(tmp_path / "res.txt", hyp)
    kept = score_files(tmp_path / "clean.txt", tmp_path / "res.txt")
    assert kept.unique_objects == 6
    assert score_files(tmp_path / "gt.txt", tmp_path / "res.txt") == kept


def test_perfect_tracking_and_empty_results():
    gt, _ = synthetic_sequence(1)
    perfect = score_sequence(gt, gt).metrics()
    assert perfect["MOTA"] == 1.0 and perfect["IDF1"] == 1.0 and perfect["MOTP"] == 0.0 and perfect["IDs"] == 0
    nothing = score_sequence(gt, np.empty((0, 10))).metrics()
    assert nothing["FN"] == len(gt) and nothing["MOTA"] == 0.0 and nothing["ML"] == nothing["GT"]


def test_malformed_file_names_file_and_line(tmp_path):
    bad = tmp_path / "res.txt"
    bad.write_text("1,1,10,10,20,40,1,-1,-1,-1\n2,1,abc,10,20,40,1,-1,-1,-1\n")
    good = tmp_path / "gt.txt"
    good.write_text("1,1,10,10,20,40,1,-1,-1,-1\n")
    with pytest.raises(ValueError, match=r"res\.txt:2"):
        score_files(good, bad)


def test_duplicate_id_in_a_frame_is_an_error(tmp_path):
    dup = tmp_path / "res.txt"
    dup.write_text("1,1,10,10,20,40,1\n1,1,50,10,20,40,1\n")
    with pytest.raises(ValueError, match="frame 1 has id 1"):
        score_files(dup, dup)


def test_sequence_name():
    assert sequence_name("data/TUD-Campus/gt/gt.txt") == "TUD-Campus"
    assert sequence_name("ref/TUD-Campus/gt.txt") == "TUD-Campus"
    assert sequence_name("res/KITTI-13.txt") == "KITTI-13"
