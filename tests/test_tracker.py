"""DeepSORT tracker: Kalman filter against hand math, gating, cascade, life cycle, whole scenes."""

import numpy as np
import pytest

from edgecnn.metrics.mot import score_sequence
from edgecnn.runtime.offline import track_detections
from edgecnn.runtime.mot import read_mot, write_mot
from edgecnn.runtime.reid import ReidEncoder
from edgecnn.runtime.tracker import TRACKER_KEYS, Detections, Tracker
from edgecnn.runtime.tracker.gallery import GalleryCandidates
from edgecnn.runtime.tracker.iou_matching import covered_fraction, iou_cost, iou_matrix
from edgecnn.runtime.tracker.kalman_filter import CHI2INV95, KalmanFilter, xyah_to_xyxy, xyxy_to_xyah
from edgecnn.runtime.tracker.linear_assignment import gate_cost_matrix, matching_cascade, min_cost_matching
from edgecnn.runtime.tracker.nn_matching import NearestNeighborDistanceMetric
from edgecnn.runtime.tracker.track import Track
from tracking_data import synthetic_scene, walk


def test_kalman_predict_and_update_match_hand_math():
    kf = KalmanFilter()
    z = np.array([[100.0, 200.0, 0.5, 80.0]])
    mean, cov = kf.initiate(z)
    h = 80.0
    assert np.allclose(np.diag(cov[0]), [(h / 10) ** 2, (h / 10) ** 2, 1e-4, (h / 10) ** 2,
                                         (h / 16) ** 2, (h / 16) ** 2, 1e-10, (h / 16) ** 2])
    mean[0, 4:] = [3.0, -1.0, 0.0, 0.5]
    f = np.eye(8)
    f[:4, 4:] = np.eye(4)
    q = np.diag(np.array([h / 20, h / 20, 1e-2, h / 20, h / 160, h / 160, 1e-5, h / 160]) ** 2)
    p_mean, p_cov = kf.predict(mean, cov)
    assert np.allclose(p_mean[0], f @ mean[0])
    assert np.allclose(p_cov[0], f @ cov[0] @ f.T + q)
    meas = np.array([[104.0, 198.0, 0.52, 81.0]])
    hh = np.eye(4, 8)
    hp = p_mean[0, 3]
    r = np.diag(np.array([hp / 20, hp / 20, 1e-1, hp / 20]) ** 2)
    s = hh @ p_cov[0] @ hh.T + r
    k = p_cov[0] @ hh.T @ np.linalg.inv(s)
    u_mean, u_cov = kf.update(p_mean, p_cov, meas)
    assert np.allclose(u_mean[0], p_mean[0] + k @ (meas[0] - hh @ p_mean[0]))
    assert np.allclose(u_cov[0], (np.eye(8) - k @ hh) @ p_cov[0], atol=1e-9)
    d = kf.gating_distance(p_mean, p_cov, meas)
    delta = meas[0] - p_mean[0, :4]
    assert d.shape == (1, 1) and d[0, 0] == pytest.approx(delta @ np.linalg.inv(s) @ delta)


def test_kalman_filter_is_batched():
    kf = KalmanFilter()
    z = np.array([[100.0, 200.0, 0.5, 80.0], [300.0, 100.0, 0.4, 120.0]])
    mean, cov = kf.predict(*kf.initiate(z))
    mean, cov = kf.update(mean, cov, z + 2)
    one_mean, one_cov = kf.update(*kf.predict(*kf.initiate(z[1:])), z[1:] + 2)
    assert np.allclose(mean[1], one_mean[0]) and np.allclose(cov[1], one_cov[0])


def test_chi_square_table_and_gating():
    chi2 = pytest.importorskip("scipy.stats").chi2
    for dof, value in CHI2INV95.items():
        assert value == pytest.approx(chi2.ppf(0.95, dof), abs=1e-3)
    kf = KalmanFilter()
    mean, cov = kf.predict(*kf.initiate(np.array([[100.0, 100.0, 0.5, 100.0]])))
    near, far = [102.0, 101.0, 0.5, 100.0], [160.0, 100.0, 0.5, 100.0]
    d = kf.gating_distance(mean, cov, np.array([near, far]))
    assert d[0, 0] < CHI2INV95[4] < d[0, 1]
    gated = gate_cost_matrix(np.array([[0.1, 0.1]]), d)
    assert gated[0, 0] == 0.1 and gated[0, 1] > 1


def test_box_conversions_and_iou():
    boxes = np.array([[10.0, 20.0, 50.0, 100.0]])
    assert np.allclose(xyah_to_xyxy(xyxy_to_xyah(boxes)), boxes)
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 2]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert np.allclose(iou_matrix(a, b), [[50 / 150, 0], [0, 0]])
    assert iou_cost(a[1:], b[:1])[0, 0] == 1.0


def test_min_cost_matching_drops_pairs_over_the_threshold():
    cost = np.array([[0.1, 0.9], [0.2, 0.95]])
    matches, rows, cols = min_cost_matching(cost, 0.5)
    assert matches.tolist() == [[0, 0]] and rows.tolist() == [1] and cols.tolist() == [1]
    matches, rows, cols = min_cost_matching(np.zeros((0, 3)), 0.5)
    assert len(matches) == 0 and cols.tolist() == [0, 1, 2]


def test_cascade_gives_recently_seen_tracks_priority():
    # Track 0 was seen 3 frames ago and fits detection 0 best; track 1 was seen last frame.
    cost = np.array([[0.05, 0.4], [0.1, 0.15]])
    matches, rows, cols = matching_cascade(cost, 0.5, np.array([3, 1]))
    assert sorted(map(tuple, matches.tolist())) == [(0, 1), (1, 0)]
    plain, _, _ = min_cost_matching(cost, 0.5)
    assert sorted(map(tuple, plain.tolist())) == [(0, 0), (1, 1)]


def test_nearest_neighbor_gallery_and_budget():
    metric = NearestNeighborDistanceMetric(0.2, budget=2)
    e = np.eye(3, dtype=np.float32)
    metric.partial_fit(np.stack([e[0], e[1], e[2]]), np.array([7, 7, 7]), [7])
    assert len(metric.samples[7]) == 2  # the oldest embedding is forgotten
    cost = metric.distance(np.stack([e[0], e[1], e[2]]), [7, 8])
    assert np.allclose(cost, [[1, 0, 0], [1, 1, 1]])
    metric.partial_fit(np.empty((0, 3)), np.empty(0, int), [])
    assert metric.samples == {}


def test_track_life_cycle():
    kf = KalmanFilter()
    mean, cov = kf.initiate(np.array([[50.0, 50.0, 0.5, 40.0]]))
    box = np.array([40.0, 30.0, 60.0, 70.0])
    track = Track(1, mean[0], cov[0], n_init=3, max_age=2, box=box)
    assert track.is_tentative
    for _ in range(2):
        track.mark_predicted(track.mean, track.cov)
        track.mark_hit(track.mean, track.cov, box + 1, 0.9)
    assert track.is_confirmed and track.hits == 3
    for missed in range(1, 4):
        track.mark_predicted(track.mean, track.cov)
        track.mark_missed()
        assert track.is_deleted == (missed > 2)
    tentative = Track(2, mean[0], cov[0], n_init=3, max_age=30, box=box)
    tentative.mark_predicted(tentative.mean, tentative.cov)
    tentative.mark_missed()
    assert tentative.is_deleted


def test_reported_width_follows_the_averaged_aspect_ratio():
    """A walker's detected width flickers (40, 60, 40, ...) at a steady height of 100: the reported
    box keeps the detection's centre and height, and its width swings less."""
    kf = KalmanFilter()
    widths = [40.0, 60.0] * 5
    boxes = [np.array([100 - w / 2, 50, 100 + w / 2, 150]) for w in widths]
    mean, cov = kf.initiate(xyxy_to_xyah(boxes[0][None]))
    steady, raw = (Track(k, mean[0], cov[0], 1, 30, boxes[0], aspect_weight=weight) for k, weight in ((1, 0.6), (2, 1.0)))
    reported = []
    for box in boxes[1:]:
        for track in (steady, raw):
            track.mark_hit(track.mean, track.cov, box, 0.9)
        assert np.allclose(raw.reported_box, box)
        x1, y1, x2, y2 = steady.reported_box
        assert (x1 + x2) / 2 == 100 and (y1, y2) == (50, 150)
        reported.append(x2 - x1)
    # The average after each hit, from 0.4: 0.4 + 0.6 * (0.6 - 0.4) = 0.52, then 0.52 + 0.6 * (0.4 - 0.52) ...
    aspect = 0.4
    for w in widths[1:]:
        aspect += 0.6 * (w / 100 - aspect)
    assert np.isclose(reported[-1], 100 * aspect)
    assert np.ptp(reported[2:]) < 0.5 * np.ptp(widths)


def test_keys_and_from_config():
    tracker = Tracker.from_config({"max_age": 5, "n_init": 2, "source": "ignored"})
    assert tracker.max_age == 5 and tracker.n_init == 2
    defaults = Tracker()
    for name, value in TRACKER_KEYS.defaults().items():
        attr = getattr(defaults, name, None)
        if attr is not None:
            assert attr == value, name
    with pytest.raises(ValueError, match="n_init"):
        Tracker.from_config({"n_init": 0})


def test_new_tracks_wait_for_n_init_and_ids_are_stable():
    tracker = Tracker(n_init=3)
    tracker.update(Detections.of(np.empty((0, 4))))  # the first frame confirms at once; start after it
    path = walk((100, 100), (2, 0), 10)
    outputs = [tracker.update(Detections.of(path[f:f + 1], np.array([0.9]))) for f in range(10)]
    assert [len(o) for o in outputs[:3]] == [0, 0, 1]
    assert {int(o.ids[0]) for o in outputs[2:]} == {1}
    assert np.allclose(outputs[-1].boxes[0], path[-1], atol=1.0)


def test_weak_detections_only_continue_tracks_and_classes_do_not_mix():
    tracker = Tracker(n_init=1, track_conf=0.6, low_conf=0.1)
    box = np.array([[100.0, 100, 140, 200]])
    assert len(tracker.update(Detections.of(box, np.array([0.3])))) == 0  # too weak to start a track
    assert len(tracker.update(Detections.of(box, np.array([0.9]), np.array([0])))) == 1
    out = tracker.update(Detections.of(box + 2, np.array([0.3]), np.array([0])))
    assert len(out) == 1 and out.ids.tolist() == [1] and out.classes.tolist() == [0]
    assert out.scores.tolist() == [0.3]  # the matched detection's confidence
    other = tracker.update(Detections.of(box + 4, np.array([0.9]), np.array([1])))
    assert other.ids.tolist() == [2] and other.classes.tolist() == [1]  # a new track, not the class-0 one


def test_identity_kept_through_a_crossing_with_appearance():
    frames = 40
    a, b = walk((100, 100), (6, 0), frames), walk((334, 104), (-6, 0), frames)
    looks = np.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.2]], np.float32)
    rng = np.random.default_rng(0)
    tracker = Tracker(n_init=2, max_age=10)
    owner = {}
    for f in range(frames):
        boxes = np.stack([a[f], b[f]])
        features = looks + rng.normal(0, 0.05, looks.shape).astype(np.float32)
        if 18 <= f <= 21:  # the two overlap: only the one in front is detected
            boxes, features = boxes[:1], features[:1]
        out = tracker.update(Detections.of(boxes, np.full(len(boxes), 0.9)), features=features)
        for box, track_id in zip(out.boxes, out.ids):
            who = int(np.argmin(np.abs(np.array([a[f, 0], b[f, 0]]) - box[0])))
            owner.setdefault(int(track_id), set()).add(who)
    assert len(owner) == 2 and all(len(who) == 1 for who in owner.values())


def test_boxes_without_area_are_dropped_and_covered_crops_kept_out_of_the_gallery():
    boxes = np.array([[0, 0, 10, 10], [60, 20, 60, 80], [5, 0, 15, 10], [100, 100, 110, 120]], float)
    dets = Detections.of(boxes, np.array([0.9, 0.8, 0.7, 0.6]))
    assert dets.has_area().tolist() == [True, False, True, True] and dets.classes.tolist() == [-1] * 4
    kept = dets.select(dets.has_area())
    assert kept.scores.tolist() == [0.9, 0.7, 0.6]
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    gallery = GalleryCandidates(kept.xyxy, features, max_crop_overlap=0.1)
    assert gallery.clean.tolist() == [False, False, True]  # the first two cover half of each other
    assert gallery.feature(0) is None and gallery.feature(2).tolist() == [4, 5]
    assert not GalleryCandidates(kept.xyxy, None).clean.any()  # without embeddings nothing is matched by appearance
    with pytest.raises(ValueError, match="3 features for 4 boxes"):
        Tracker().update(dets, features=features)


def test_covered_fraction_is_the_largest_share_another_box_hides():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 120], [100, 100, 104, 104]], float)
    # The small box inside the tall one is wholly covered; the tall one loses 16 of its 200.
    assert np.allclose(covered_fraction(boxes), [0.5, 0.5, 16 / 200, 1.0])
    assert covered_fraction(np.empty((0, 4))).shape == (0,)


def test_appearance_finds_a_person_who_waited_unseen_where_motion_cannot():
    """Someone walks, stops where nothing detects them for 12 frames, then shows up where they
    stopped: the Kalman prediction walked on, so only appearance can bring the identity back."""
    looks = {"walker": np.array([1.0, 0.0, 0.1], np.float32), "other": np.array([0.0, 1.0, 0.1], np.float32)}
    x = np.concatenate([100 + 6 * np.arange(15), np.full(25, 100 + 6 * 15.0)])
    visible = (np.arange(40) < 15) | (np.arange(40) >= 27)

    def run(with_appearance):
        tracker, ids = Tracker(n_init=2, max_age=20), set()
        for f in range(40):
            boxes = [[500, 50, 530, 130]]  # someone else, standing, always seen
            feats = [looks["other"]]
            if visible[f]:
                boxes.insert(0, [x[f], 100, x[f] + 30, 180])
                feats.insert(0, looks["walker"])
            out = tracker.update(Detections.of(np.array(boxes, float), np.full(len(boxes), 0.9)),
                                 features=np.array(feats) if with_appearance else None)
            ids |= set(out.ids[out.boxes[:, 0] < 400].tolist())
        return ids

    assert len(run(with_appearance=True)) == 1
    assert len(run(with_appearance=False)) == 2


def test_a_look_alike_is_left_to_motion():
    """Twins walk side by side, B a third in front of A, so only one of them ever has a clean
    crop: A's while B goes undetected (frames 20-21), then B's while A does (frame 22). B's clean
    crop looks like A's gallery and B's track has none: appearance must not hand it to A."""
    look_a, look_b = np.array([1.0, 0.0, 0.1], np.float32), np.array([1.0, 0.15, 0.1], np.float32)
    tracker, owner = Tracker(n_init=2, max_age=10), {}
    for f in range(30):
        x = 100 + 4 * f
        people = [(who, box, look) for who, box, look in (("a", [x, 100, x + 30, 180], look_a),
                                                          ("b", [x + 20, 100, x + 50, 180], look_b))
                  if not (who == "b" and f in (20, 21) or who == "a" and f == 22)]
        boxes = np.array([box for _, box, _ in people], float)
        out = tracker.update(Detections.of(boxes, np.full(len(boxes), 0.9)),
                             features=np.stack([look for *_, look in people]))
        for reported, track_id in zip(out.boxes, out.ids):
            who = next(w for w, box, _ in people if np.allclose(box, reported))
            owner.setdefault(who, set()).add(int(track_id))
    assert owner == {"a": {1}, "b": {2}}


def test_a_crop_another_box_covers_is_neither_matched_nor_remembered_by_appearance():
    tracker = Tracker(n_init=1)
    look_a, look_b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    tracker.update(Detections.of(np.array([[0, 0, 40, 100], [200, 0, 240, 100]], float), np.array([0.9, 0.9])),
                   features=np.stack([look_a, look_b]))
    # B walks in front of A: A's crop is mostly B, so its embedding looks like B.
    out = tracker.update(Detections.of(np.array([[0, 0, 40, 100], [20, 0, 60, 100]], float), np.array([0.9, 0.9])),
                         features=np.stack([look_b, look_b]))
    ids = {tuple(box[:2]): int(track_id) for box, track_id in zip(out.boxes, out.ids)}
    assert ids[(0.0, 0.0)] == 1  # A kept by motion, not handed to B's track by appearance
    gallery = tracker.metric.samples[1]
    assert np.allclose(gallery, look_a[None])  # and its gallery holds no picture of B


def test_motion_only_tracking_of_a_synthetic_scene(tmp_path):
    gt, det = synthetic_scene()
    write_mot(tmp_path / "det.txt", det)
    result = track_detections(tmp_path / "det.txt", tmp_path / "res.txt")
    assert result["frames"] == int(det[:, 0].max()) and result["artifacts"]["results"] == str(tmp_path / "res.txt")
    metrics = score_sequence(gt, read_mot(tmp_path / "res.txt")).metrics()
    assert metrics["MOTA"] > 0.8 and metrics["IDF1"] > 0.85, metrics
    assert metrics["IDs"] <= 3 and metrics["FP"] < 0.05 * len(gt)


def test_track_detections_rejects_unknown_keys_and_reid_without_images(tmp_path):
    write_mot(tmp_path / "det.txt", np.array([[1, -1, 10, 10, 20, 40, 0.9, -1, -1, -1]]))
    with pytest.raises(ValueError, match="max_agee"):
        track_detections(tmp_path / "det.txt", tmp_path / "res.txt", max_agee=3)
    with pytest.raises(ValueError, match="images"):
        track_detections(tmp_path / "det.txt", tmp_path / "res.txt", reid="model.onnx")


class MeanColorEmbedder:
    """A stand-in embedder with the backend interface: the crop's mean colour, L2-normalized."""

    input_size = (64, 32)

    def __init__(self):
        self.calls = []

    def predict(self, images):
        self.calls.append(images.shape)
        mean = images.reshape(len(images), -1, 3).mean(axis=1) + 1.0
        return {"embedding": (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)}


def test_reid_encoder_crops_in_rgb_with_one_batched_call():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[20:120, 10:60] = (255, 0, 0)  # blue in BGR
    frame[50:150, 200:250] = (0, 0, 255)  # red in BGR
    backend = MeanColorEmbedder()
    out = ReidEncoder(backend).encode(frame, np.array([[10, 20, 60, 120], [200, 50, 250, 150], [290, 190, 400, 300]]))
    assert backend.calls == [(3, 64, 32, 3)]
    assert out.shape == (3, 3) and np.allclose(np.linalg.norm(out, axis=1), 1)
    # RGB order: blue is channel 2, red channel 0; the crop outside the frame is black.
    assert out[0, 2] > 0.99 and out[1, 0] > 0.99 and np.allclose(out[2], 1 / np.sqrt(3))
    assert ReidEncoder(backend).encode(frame, np.empty((0, 4))).shape == (0, 128)


def export_reid_onnx(path):
    """The project's ReID embedder (seeded, untrained) exported to ONNX by the project's exporter."""
    torch = pytest.importorskip("torch")
    from edgecnn.export.onnx import export_onnx
    from edgecnn.models import build_model

    torch.manual_seed(0)
    meta = {"task": "embed", "names": [], "imgsz": 128, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    export_onnx(build_model("reid"), meta, path, imgsz=[128, 64])
    return path


def test_track_detections_with_a_real_reid_model(tmp_path):
    import cv2

    reid = export_reid_onnx(tmp_path / "reid.onnx")
    rng = np.random.default_rng(0)
    images = tmp_path / "img1"
    images.mkdir()
    a, b = walk((20, 40), (6, 0), 12, size=(30, 80)), walk((250, 60), (-6, 0), 12, size=(30, 80))
    rows = []
    for f in range(12):
        frame = rng.integers(0, 60, (200, 320, 3), dtype=np.uint8)
        for box, colour in ((a[f], (0, 0, 255)), (b[f], (255, 0, 0))):
            x1, y1, x2, y2 = box.astype(int)
            frame[y1:y2, x1:x2] = colour
            rows.append([f + 1, -1, x1, y1, x2 - x1, y2 - y1, 0.9, -1, -1, -1])
        cv2.imwrite(str(images / f"{f + 1:06d}.jpg"), frame)
    write_mot(tmp_path / "det.txt", np.array(rows, float))
    result = track_detections(tmp_path / "det.txt", tmp_path / "res.txt", images=images, reid=reid, n_init=2)
    assert result["reid_ms_per_frame"] > 0 and result["frames"] == 12 and result["tracks"] == 2
    assert len(read_mot(tmp_path / "res.txt")) == 2 * 12


def test_boxes_without_area_are_ignored_not_fatal():
    from edgecnn.runtime.tracker import Tracker

    tracker = Tracker(n_init=1)
    boxes = np.array([[10, 10, 50, 90], [60, 20, 60, 80], [5, 5, 30, 5]], dtype=float)  # zero width, zero height
    for _ in range(3):
        out = tracker.update(Detections.of(boxes, np.array([0.9, 0.9, 0.9])), features=np.eye(3, 8))
    assert len(out) == 1 and out.boxes.tolist() == [[10, 10, 50, 90]]
