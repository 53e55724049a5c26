"""HOTA: hand-computed fixtures, TrackEval's reference values on the TUD files, and TrackEval itself
where it is importable. Its PyPI releases (1.0.0 to 1.3.0) require numpy >= 2.3 on Python 3.11, so it
is not in the dev lock, but its code runs on numpy 1.26: `pip download --no-deps trackeval==1.3.0`,
unzip the wheel and put it on PYTHONPATH to run `test_matches_trackeval`."""

from pathlib import Path

import numpy as np
import pytest
from tracking_data import synthetic_sequence

from edgecnn.metrics.hota import ALPHAS, HOTA_METRICS, HOTACounts, score_files, score_sequence
from edgecnn.runtime.mot import write_mot

MOT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot-reference"

# TrackEval 1.3.0 (MotChallenge2DBox, BENCHMARK=MOT15, HOTA) on ../shared/data/mot-reference.
REFERENCE = {
    "TUD-Campus": (0.391397, 0.418047, 0.369121, 0.441577, 0.714083, 0.383225, 0.754050, 0.770052, 0.549351,
                   0.702803),
    "TUD-Stadtmitte": (0.397849, 0.392268, 0.408841, 0.413131, 0.637622, 0.449219, 0.631203, 0.737521, 0.629305,
                       0.633085),
    "both": (0.399957, 0.397683, 0.412450, 0.419871, 0.655103, 0.450665, 0.692211, 0.732480, 0.611329, 0.649058),
}


def boxes(track: list[tuple[int, int, float, float, float, float]]) -> np.ndarray:
    """MOT rows from (frame, id, left, top, width, height)."""
    return np.array([[*row, 1, -1, -1, -1] for row in track], float).reshape(-1, 10)


def two_walkers(frames: int = 10) -> np.ndarray:
    return boxes([(f, o, 100 * o + f, 50, 20, 40) for f in range(1, frames + 1) for o in (1, 2)])


def test_perfect_tracking_scores_one():
    gt = two_walkers()
    assert score_sequence(gt, gt).metrics() == dict.fromkeys(HOTA_METRICS, 1.0)


def test_broken_identity_halves_assa_and_swap_leaves_a_third():
    gt = two_walkers()
    broken, swapped = gt.copy(), gt.copy()
    late = gt[:, 0] > 5
    broken[late, 1] += 10  # new ids halfway: a pair shares 5 boxes of 10 + 5 - 5
    swapped[late, 1] = 3 - gt[late, 1]  # ids exchanged halfway: a pair shares 5 boxes of 10 + 10 - 5
    half, third = score_sequence(gt, broken).metrics(), score_sequence(gt, swapped).metrics()
    assert half["DetA"] == third["DetA"] == 1.0
    assert half["AssA"] == pytest.approx(0.5) and half["HOTA"] == pytest.approx(np.sqrt(0.5))
    assert half["AssRe"] == pytest.approx(0.5) and half["AssPr"] == pytest.approx(1.0)
    assert third["AssA"] == pytest.approx(1 / 3) and third["AssRe"] == third["AssPr"] == pytest.approx(0.5)


def test_localisation_threshold_counts_alphas():
    """IoU 0.625 on every frame is a true positive at the 12 alphas 0.05..0.60 and a miss plus a
    false positive above; where nothing matches TrackEval reports LocA 1."""
    gt = boxes([(f, 1, 0, 0, 10, 10) for f in range(1, 6)])
    hyp = boxes([(f, 7, 0, 0, 10, 16) for f in range(1, 6)])
    m = score_sequence(gt, hyp).metrics()
    assert m["DetA"] == pytest.approx(12 / 19) and m["AssA"] == pytest.approx(12 / 19)
    assert m["HOTA"] == pytest.approx(12 / 19) and m["HOTA(0)"] == 1.0
    assert m["LocA"] == pytest.approx((12 * 0.625 + 7) / 19) and m["LocA(0)"] == pytest.approx(0.625)


def test_sequences_combine_by_true_positives_not_by_average():
    gt = boxes([(f, 1, 0, 0, 10, 10) for f in range(1, 11)])
    broken = gt.copy()
    broken[gt[:, 0] > 5, 1] = 2
    perfect, half = score_sequence(gt, gt), score_sequence(gt, broken)
    both = (perfect + half).metrics()
    assert both["AssA"] == pytest.approx(0.75) and both["HOTA"] == pytest.approx(np.sqrt(0.75))
    assert (half + perfect).metrics() == pytest.approx(both)


def test_misses_false_alarms_and_empty_inputs():
    gt = two_walkers()
    one_track = gt[gt[:, 1] == 1]
    alarms = np.concatenate([gt, boxes([(f, 9, 400, 300, 20, 40) for f in range(1, 11)])])
    assert score_sequence(gt, one_track).metrics()["DetA"] == pytest.approx(0.5)
    assert score_sequence(gt, alarms).metrics()["DetA"] == pytest.approx(20 / 30)
    assert score_sequence(gt, alarms).metrics()["AssA"] == 1.0
    nothing = score_sequence(gt, np.empty((0, 10)))
    assert nothing.fn.tolist() == [len(gt)] * len(ALPHAS) and nothing.metrics()["HOTA"] == 0.0
    assert score_sequence(np.empty((0, 10)), gt).metrics()["HOTA"] == 0.0
    assert HOTACounts().metrics()["HOTA"] == 0.0


def test_confidence_zero_ground_truth_is_dropped(tmp_path):
    gt, hyp = synthetic_sequence(3)
    ignored = boxes([(f, 77, 300, 300, 40, 90) for f in (4, 5)])
    ignored[:, 6] = 0
    write_mot(tmp_path / "clean.txt", gt)
    write_mot(tmp_path / "gt.txt", np.concatenate([gt, ignored]))
    write_mot(tmp_path / "res.txt", hyp)
    assert score_files(tmp_path / "gt.txt", tmp_path / "res.txt").metrics() == \
        score_files(tmp_path / "clean.txt", tmp_path / "res.txt").metrics()


def test_trackeval_reference_values(shared_data):
    ref, total = shared_data / "mot-reference", HOTACounts()
    for seq in ("TUD-Campus", "TUD-Stadtmitte"):
        counts = score_files(ref / seq / "gt.txt", ref / seq / "test.txt")
        assert counts.metrics() == pytest.approx(dict(zip(HOTA_METRICS, REFERENCE[seq])), abs=1e-6)
        total = total + counts
    assert total.metrics() == pytest.approx(dict(zip(HOTA_METRICS, REFERENCE["both"])), abs=1e-6)


def trackeval_hota(root, files: dict) -> dict:
    """TrackEval's HOTA summary per sequence and 'COMBINED_SEQ' for {name: (gt file, results file)}."""
    trackeval = pytest.importorskip("trackeval")
    for name, (gt_file, res_file) in files.items():
        (root / "gt" / name / "gt").mkdir(parents=True)
        (root / "gt" / name / "gt" / "gt.txt").write_text(gt_file.read_text())
        (root / "trackers" / "t" / "data").mkdir(parents=True, exist_ok=True)
        (root / "trackers" / "t" / "data" / f"{name}.txt").write_text(res_file.read_text())
    lengths = {name: int(max(np.loadtxt(f, delimiter=",", ndmin=2)[:, 0].max() for f in pair))
               for name, pair in files.items()}
    quiet = dict.fromkeys(("PRINT_RESULTS", "PRINT_CONFIG", "TIME_PROGRESS", "OUTPUT_SUMMARY", "OUTPUT_DETAILED", "PLOT_CURVES"), False)
    dataset = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"), "BENCHMARK": "MOT15",
        "SKIP_SPLIT_FOL": True, "SEQ_INFO": lengths, "TRACKERS_TO_EVAL": ["t"], "PRINT_CONFIG": False})
    results, _ = trackeval.Evaluator({**quiet, "LOG_ON_ERROR": None}).evaluate([dataset], [trackeval.metrics.HOTA()])
    # Scores per alpha are averaged over alpha, as TrackEval's summary does.
    return {seq: {name: float(np.mean(res["pedestrian"]["HOTA"][name])) for name in HOTA_METRICS}
            for seq, res in results["MotChallenge2DBox"]["t"].items()}


def test_matches_trackeval(tmp_path):
    files, total = {}, HOTACounts()
    for seed in range(3):
        gt, hyp = synthetic_sequence(seed)
        gt[::17, 6] = 0
        hyp = hyp[hyp[:, 0] <= gt[:, 0].max()]  # TrackEval refuses results past the sequence's end
        files[f"seq{seed}"] = (tmp_path / f"seq{seed}_gt.txt", tmp_path / f"seq{seed}.txt")
        write_mot(files[f"seq{seed}"][0], gt)
        write_mot(files[f"seq{seed}"][1], hyp)
    if MOT_REFERENCE.is_dir():  # the real files too, when they are here
        files.update({seq: (MOT_REFERENCE / seq / "gt.txt", MOT_REFERENCE / seq / "test.txt")
                      for seq in ("TUD-Campus", "TUD-Stadtmitte")})
    expected = trackeval_hota(tmp_path / "trackeval", files)
    for name, (gt_file, res_file) in files.items():
        ours = score_files(gt_file, res_file)
        assert ours.metrics() == pytest.approx(expected[name], abs=1e-6), name
        total = total + ours
    assert total.metrics() == pytest.approx(expected["COMBINED_SEQ"], abs=1e-6)
