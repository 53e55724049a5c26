"""The device check: output agreement on arrays, the 'cannot emulate' path, and (slow) the whole
check of a tiny bundle in the cached arm64 root under qemu-user against this host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgecnn.deploy import emulation
from edgecnn.deploy.check import read_detections, split_sections
from edgecnn.metrics.agreement import agreement, frame_differs, track_agreement
from edgecnn.runtime.postprocess import Detections

ROOT = Path(__file__).resolve().parents[1]


def dets(rows) -> Detections:
    """Detections from rows of (x1, y1, x2, y2, score, class)."""
    a = np.asarray(rows, np.float64).reshape(-1, 6)
    return Detections(a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int64))


def test_identical_outputs_agree_fully():
    a = dets([[10, 10, 50, 60, 0.9, 0], [100, 20, 140, 90, 0.4, 1], [0, 0, 5, 5, 0.01, 1]])
    report = agreement([(a, a), (dets([]), dets([]))])
    assert report["frames"] == 2 and report["frames_differ"] == 0 and report["share_differ"] == 0
    assert report["max_score_diff"] == 0 and report["max_box_shift_px"] == 0


def test_score_crossing_the_threshold_makes_a_frame_differ():
    host = dets([[10, 10, 50, 60, 0.26, 0], [100, 20, 140, 90, 0.8, 1]])
    device = dets([[10, 10, 50, 60, 0.24, 0], [100, 20, 140, 90, 0.81, 1]])
    assert frame_differs(device, host, conf=0.25)
    assert not frame_differs(device, host, conf=0.3)
    report = agreement([(device, host), (host, host)], conf=0.25)
    assert report["frames_differ"] == 1 and report["share_differ"] == 0.5
    assert report["max_score_diff"] == pytest.approx(0.02, abs=1e-6)


def test_small_box_shifts_agree_but_are_measured_and_classes_must_match():
    host = dets([[10, 10, 50, 60, 0.9, 0]])
    shifted = dets([[10.5, 10, 50, 60.75, 0.9, 0]])
    assert not frame_differs(shifted, host, conf=0.25)
    assert agreement([(shifted, host)])["max_box_shift_px"] == pytest.approx(0.75)
    assert frame_differs(dets([[10, 10, 50, 60, 0.9, 1]]), host, conf=0.25)  # another class
    assert frame_differs(dets([[30, 10, 70, 60, 0.9, 0]]), host, conf=0.25)  # IoU 1/3: another box
    flat = dets([[10, 0, 50, 0, 0.6, 0]])  # no area (clipped at the top edge): equal to itself all the same
    assert not frame_differs(flat, flat, conf=0.25)


def test_low_score_tail_is_left_out_of_the_score_difference():
    host = dets([[10, 10, 50, 60, 0.9, 0], [200, 200, 220, 220, 0.05, 1]])
    device = dets([[10, 10, 50, 60, 0.9, 0], [200, 200, 220, 220, 0.15, 1]])
    report = agreement([(device, host)], conf=0.25)
    assert report["frames_differ"] == 0 and report["max_score_diff"] == 0


def test_tracks_compare_by_id_frame_by_frame():
    host = "1,1,10,10,40,50,0.9,-1,-1,-1\n1,2,100,20,40,70,0.8,-1,-1,-1\n2,1,12,10,40,50,0.9,-1,-1,-1\n"
    swapped = "1,1,10,10,40,50,0.9,-1,-1,-1\n1,2,100,20,40,70,0.8,-1,-1,-1\n2,2,12,10,40,50,0.9,-1,-1,-1\n"
    assert track_agreement(host, host)["frames_differ"] == 0
    report = track_agreement(swapped, host)
    assert report["frames"] == 2 and report["frames_differ"] == 1
    with pytest.raises(ValueError, match="MOT line 1"):
        track_agreement("1,2,3\n", host)


def test_device_output_is_cut_into_sections_and_read():
    row = {"image": "images/00000.jpg", "xyxy": [[1, 2, 3, 4]], "scores": [0.5], "classes": [1], "ms": 3.5}
    out = f"free_mb=9\n@@machine\naarch64 Python 3.11.2\n@@packages\nnumpy==1.26.4\n@@detections\n{json.dumps(row)}\n" \
          "@@frames\nab12\n@@app\n{\"fps\": 3.0}\n@@tracks\n"
    sections = split_sections(out)
    assert sections["machine"] == "aarch64 Python 3.11.2" and sections["tracks"] == ""
    (det,), ms = read_detections(sections["detections"])
    assert det.xyxy.tolist() == [[1, 2, 3, 4]] and det.classes.tolist() == [1] and ms == [3.5]
    with pytest.raises(RuntimeError, match="lacks app, frames, tracks"):
        split_sections("@@machine\nx\n@@packages\n@@detections\n")


def test_a_root_is_ready_only_when_complete(tmp_path):
    assert not emulation.root_ready(tmp_path)
    (tmp_path / emulation.STAMP).write_text("debootstrap …\n")
    assert emulation.root_ready(tmp_path)


def test_cannot_emulate_says_what_is_missing_and_exits_3():
    """Without root privileges (run as `nobody` when the tests run as root) the command names what
    it lacks, exits with code 3 and leaves no traceback."""
    work = Path(tempfile.mkdtemp(prefix="edgecnn-noroot-"))  # not under pytest's 0700 base: `nobody` works here
    try:
        work.chmod(0o777)
        command = [sys.executable, "-m", "edgecnn", "check-device", "device=rpi5", f"data={work}/data.yaml",
                   f"root={work}/root", f"out={work}/out"]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root and no setpriv (util-linux) to drop privileges")
            drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(work)}
            probe = subprocess.run([*drop, sys.executable, "-c", "import edgecnn.cli"], capture_output=True, env=env,
                                   cwd=work, timeout=60)
            if probe.returncode != 0:
                pytest.skip(f"user nobody cannot run this checkout's Python ({sys.executable}, {ROOT})")
            command = [*drop, *command]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(work)}
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work, timeout=120)
        assert result.returncode == 3, result.stderr
        assert "skipped" in result.stdout and "root privileges" in result.stdout
        assert "Traceback" not in result.stderr and not (work / "out").exists()
        as_json = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, cwd=work, timeout=120)
        assert as_json.returncode == 3
        report = json.loads(as_json.stdout)  # the whole of stdout: one object
        assert report["status"] == "skipped" and any("root privileges" in need for need in report["missing"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_jetson_profiles_are_refused_in_the_bookworm_root(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgecnn", "check-device", "device=jetson-orin-nano",
                             f"data={tmp_path}/d.yaml"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "python3.10" in result.stderr and "host=" in result.stderr


@pytest.mark.heavy
@pytest.mark.slow
def test_check_of_a_tiny_bundle_in_the_arm64_root(tmp_path):
    """The whole check in the cached root: the bundle installs from PyPI there, runs, and agrees with this host."""
    missing = emulation.missing(emulation.DEFAULT_ROOT)
    if missing:
        pytest.skip("cannot emulate arm64 here: " + "; ".join(missing))
    if not emulation.root_ready(emulation.DEFAULT_ROOT) and not os.environ.get("EDGECNN_BUILD_ROOT"):
        pytest.skip(f"no cached arm64 root at {emulation.DEFAULT_ROOT} (building it takes minutes: run "
                    "`edgecnn check-device` once, or set EDGECNN_BUILD_ROOT=1)")
    from edgecnn.commands import check_device
    from edgecnn.deploy.bundle import build_bundle
    from edgecnn.deploy.profiles import load_profile
    from runtime_models import exported_models, synthetic_video

    models = exported_models()
    bundle = build_bundle(load_profile("rpi5"), [models["det_tflite"]], [models["reid_tflite"]], tmp_path / "dist")
    data = two_class_data(tmp_path / "data")
    video = synthetic_video(tmp_path / "video.mp4", frames=12)
    cfg = check_device.KEYS.resolve({"device": "rpi5", "bundle": str(bundle), "data": str(data), "video": str(video),
                                     "max_images": 4, "frames": 12, "out": str(tmp_path / "out")})
    report = check_device.run(cfg)
    assert report["status"] == "ok" and report["root_reused"]
    assert report["machine"]["device"].startswith("aarch64 Python 3.11")
    assert report["machine"]["host"].startswith("x86_64") or report["machine"]["host"].startswith("aarch64")
    assert report["images"]["frames"] == 4 and report["video_tracks"]["source"].startswith("video.mp4, its first 12")
    assert report["video_tracks"]["frames_decoded_alike"] == 12  # lossless: both sides decode the same pixels
    assert abs(report["mAP50_95"]["diff"]) < 0.05 and report["images"]["max_score_diff"] < 0.1
    assert "emulation" in report["fps"]["device_note"] and report["fps"]["device"] > 0
    assert {p.split("==")[0].lower() for p in report["packages"]["device"]} >= {"numpy", "ai-edge-litert"}
    assert json.loads(Path(report["artifacts"]["report"]).read_text())["bundle"] == report["bundle"]
    assert len(Path(report["artifacts"]["detections-device.jsonl"]).read_text().splitlines()) == 4


@pytest.mark.slow
def test_check_over_ssh_of_a_machine_against_itself(tmp_path):
    """The SSH route (`host=`): a bundle on this machine reached through a real sshd and on this
    machine directly give the same outputs: nothing differs, the mAPs are equal."""
    from device_venv import base_python, device_venv
    from edgecnn.deploy.check import build_payload, compare, run_side
    from edgecnn.deploy.bundle import build_bundle
    from edgecnn.deploy.profiles import load_profile
    from runtime_models import exported_models, synthetic_video
    from sshd import private_sshd

    models = exported_models()
    profile = load_profile("rpi5")
    bundle = build_bundle(profile, [models["det_tflite"]], [models["reid_tflite"]], tmp_path / "dist")
    payload = build_payload(str(two_class_data(tmp_path / "data")), "val", 4,
                            str(synthetic_video(tmp_path / "video.mp4", frames=10)), tmp_path / "payload")
    keys = {"conf": 0.001, "iou": 0.6, "max_det": 300, "frames": 10}
    install = {"python": base_python(), "venv": str(device_venv("rpi5"))}  # the cached venv: no pip here
    (tmp_path / "ssh").mkdir()
    with private_sshd(tmp_path / "ssh") as remote:
        device = run_side(bundle, profile, remote, str(tmp_path / "device"), payload, keys, **install)
    host = run_side(bundle, profile, emulation.host_target(tmp_path / "home"), str(tmp_path / "host"), payload,
                    keys, **install)
    report = compare(bundle, payload, device, host, 0.25, emulated=False)
    assert report["target"]["device"].endswith("@127.0.0.1:" + str(remote.port))
    assert report["images"]["frames"] == 4 and report["images"]["frames_differ"] == 0
    assert report["images"]["max_score_diff"] == 0 and report["mAP50_95"]["diff"] == 0
    assert report["video_tracks"]["frames_differ"] == 0 and report["video_tracks"]["frames_decoded_alike"] == 10
    assert report["fps"]["device_note"] == "on the device"


def test_payload_holds_linked_images_and_a_lossless_video(tmp_path):
    """Images that are links (a dataset linked into place) travel as files, and the video arrives
    as frames that decode to exactly the pixels of the source's decoded frames."""
    import tarfile

    import cv2

    from edgecnn.deploy.check import build_payload
    from runtime_models import synthetic_video

    data = two_class_data(tmp_path / "data")
    val = data.parent / "images" / "val"
    for image in sorted(val.glob("*.png")):
        stored = tmp_path / "store" / image.name
        stored.parent.mkdir(exist_ok=True)
        image.rename(stored)
        image.symlink_to(stored.resolve())
    video = synthetic_video(tmp_path / "video.mp4", frames=6)
    payload = build_payload(str(data), "val", 3, str(video), tmp_path / "payload", frames=4)
    with tarfile.open(payload.archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
        images = [m for m in tar.getmembers() if m.name.startswith("images/")]
    assert len(images) == 3 and all(m.isfile() for m in images)
    source, shipped = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(tmp_path / "unpacked" / payload.video))
    for _ in range(4):
        assert np.array_equal(source.read()[1], shipped.read()[1])
    assert not shipped.read()[0]  # only the frames the app runs
    assert payload.video_note == "video.mp4, its first 4 frames re-encoded losslessly"


def two_class_data(out: Path) -> Path:
    """A YOLO data.yaml with the tiny detector's two classes: frames of coloured squares, boxed."""
    import cv2

    from runtime_models import synthetic_video

    out.mkdir(parents=True)
    video = synthetic_video(out / "frames.mp4", frames=8)
    capture = cv2.VideoCapture(str(video))
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
    for i in range(8):
        ok, frame = capture.read()
        assert ok
        h, w = frame.shape[:2]
        boxes = [(0, 10 + 5 * i, 40, 60 + 5 * i, 120), (1, w - 70 - 4 * i, 120, w - 20 - 4 * i, 200)]
        cv2.imwrite(str(out / "images" / "val" / f"{i}.png"), frame)
        (out / "labels" / "val" / f"{i}.txt").write_text("".join(
            f"{c} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}\n" for c, x1, y1, x2, y2 in boxes))
    cv2.imwrite(str(out / "images" / "train" / "0.png"), frame)
    (out / "labels" / "train" / "0.txt").write_text("")
    capture.release()
    (out / "data.yaml").write_text(f"path: {out}\ntrain: images/train\nval: images/val\nnames: [person, car]\n")
    return out / "data.yaml"
