"""The device check: one bundle on the device's CPU architecture and on this host, scored and compared.

`edgecnn check-device` installs the bundle with `install.deploy` twice, on the device side (the
arm64 root under qemu-user, or a real device over SSH) and on this host, copies the same images
and video to both, runs the bundle's own code on each (`devices/deploy/run-check.sh`:
`edgecnn.runtime.detect_images` on the images, `run.sh`, the tracking app, on the video), and compares what comes back here: the mAP
of each (`metrics.detection`, the metric of `edgecnn val`), the share of images and video frames
whose detections or tracks differ and the largest score difference (`metrics.agreement`), FPS.
"""

from __future__ import annotations

import logging
import shlex
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.deploy.bundle import read_manifest
from edgecnn.deploy.install import copy_path, deploy, script, shell_path
from edgecnn.deploy.profiles import DeviceProfile
from edgecnn.fileio import atomic_write_json, atomic_write_text

LOG = logging.getLogger(__name__)
DETECT_MODULE = "edgecnn/runtime/detect_images.py"
VIDEO_FPS = 10  # the frame rate of the video made from the images when no video is given


@dataclass
class Payload:
    """What both sides run on: `archive` unpacks to images.txt, images/ and the video."""

    archive: Path
    samples: list  # (image path, labels (n, 5) class cx cy w h normalised), in images.txt's order
    sizes: list[tuple[int, int]]  # (h, w) of each image
    video: str  # its file name in the archive
    video_note: str
    names: list[str]  # the data's classes


def build_payload(data: str, split: str, max_images: int, video: str | None, work: Path, frames: int = 0) -> Payload:
    """The val images and a video, packed into one archive in `work`. The video is the first `frames`
    (0: all) of `video`, or the images at VIDEO_FPS, written losslessly (`write_video`)."""
    import cv2

    from edgecnn.data import open_task_dataset
    from edgecnn.data.yolo import scan_split

    spec = open_task_dataset(data, "detect")
    samples = list(scan_split(spec, split, check_images=False))[:max_images]
    images = [cv2.imread(str(path), cv2.IMREAD_COLOR) for path, _ in samples]
    unreadable = [str(path) for (path, _), image in zip(samples, images) if image is None]
    if unreadable:
        raise ValueError(f"{data}: cannot read image(s) {', '.join(unreadable[:3])}")
    names = [f"images/{i:05d}{path.suffix.lower()}" for i, (path, _) in enumerate(samples)]
    work.mkdir(parents=True, exist_ok=True)
    video_path = work / "video.avi"
    if video:
        shipped = write_video(video_frames(Path(video), frames), video_path, video_fps(Path(video)))
        note = f"{Path(video).name}, its first {shipped} frames re-encoded losslessly"
    else:
        write_video(images, video_path)
        note = f"the {len(images)} {split} images as a {VIDEO_FPS} FPS video"
    archive = work / "check.tar.gz"
    with tarfile.open(archive, "w:gz", dereference=True) as tar:  # the images, not links the other side cannot follow
        for name, (path, _) in zip(names, samples):
            tar.add(path, arcname=name)
        listing = work / "images.txt"
        listing.write_text("".join(f"{name}\n" for name in names))
        tar.add(listing, arcname="images.txt")
        tar.add(video_path, arcname=video_path.name)
    return Payload(archive, samples, [image.shape[:2] for image in images], video_path.name, note, list(spec.names))


def video_frames(path: Path, frames: int) -> Iterator[np.ndarray]:
    """The first `frames` (0: all) frames of `path`, decoded here one at a time."""
    import cv2

    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    capture, count = cv2.VideoCapture(str(path)), 0
    while not frames or count < frames:
        ok, frame = capture.read()
        if not ok:
            break
        count += 1
        yield frame
    capture.release()
    if not count:
        raise ValueError(f"{path}: OpenCV decodes no frame from it")


def video_fps(path: Path) -> float:
    import cv2

    return cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) or VIDEO_FPS


def write_video(frames: Iterable[np.ndarray], path: Path, fps: float = VIDEO_FPS) -> int:
    """Write `frames` (streamed, resized to the first one's size) as FFV1 in AVI; how many.

    Lossless, so both sides decode the same pixels. A lossy codec would not give that: MPEG-4's
    IDCT rounds differently on arm64 and x86 (the same opencv-python decoded none of a demo mp4's
    30 frames alike), and the tracks would then differ for the decoder's sake."""
    import cv2

    writer, count = None, 0
    for frame in frames:
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h))
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {path} (FFV1)")
        writer.write(cv2.resize(frame, (w, h)) if frame.shape[:2] != (h, w) else frame)
        count += 1
    if writer is not None:
        writer.release()
    return count


def require_detect_module(bundle: Path) -> None:
    if DETECT_MODULE not in read_manifest(bundle)["files"]:
        raise ValueError(f"{bundle} has no {DETECT_MODULE} (built by an older edgecnn): rebuild it with `edgecnn bundle`")


def run_side(bundle: Path, profile: DeviceProfile, target, install_dir: str, payload: Payload, keys: dict,
             **install) -> dict:
    """Install `bundle` on `target` as deploy does (`install`: deploy's python=, venv=), run it on the
    payload there; its outputs and times."""
    tic = time.perf_counter()
    installed = deploy(bundle, profile, target, root=install_dir, **install)
    install_s = time.perf_counter() - tic
    target.copy(payload.archive, copy_path(f"{install_dir}/check.tar.gz"))
    values = {"root": shell_path(install_dir), "name": shlex.quote(installed["bundle"]), "video": payload.video,
              **{key: str(value) for key, value in keys.items()}}
    tic = time.perf_counter()
    out = target.run(script("run-check.sh", values), "running the bundle on the check's images and video")
    run_s = time.perf_counter() - tic
    sections = split_sections(out)
    return {"target": target.target, "machine": sections["machine"].strip(),
            "packages": sections["packages"].split(), "detections": read_detections(sections["detections"]),
            "detections_jsonl": sections["detections"], "frames": sections["frames"].split(),
            "app": read_app_report(sections["app"]), "tracks": sections["tracks"],
            "install_s": round(install_s, 1), "run_s": round(run_s, 1)}


def split_sections(out: str) -> dict[str, str]:
    """The run script's stdout cut at its `@@name` lines."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    expected = {"machine", "packages", "detections", "frames", "app", "tracks"}
    if not expected <= set(sections):
        raise RuntimeError(f"the device's output lacks {', '.join(sorted(expected - set(sections)))}:\n{out[-2000:]}")
    return {name: "\n".join(lines) for name, lines in sections.items()}


def read_detections(text: str) -> list:
    import json

    from edgecnn.runtime.postprocess import Detections

    rows = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [Detections(np.asarray(r["xyxy"], np.float32).reshape(-1, 4), np.asarray(r["scores"], np.float32),
                       np.asarray(r["classes"], np.int64)) for r in rows], [r["ms"] for r in rows]


def read_app_report(text: str) -> dict:
    import json

    lines = [line for line in text.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the tracking app printed no report:\n{text[-1000:]}")
    return json.loads(lines[-1])


def score(payload: Payload, detections: list, names: list[str]) -> dict:
    """mAP of one side's detections on the payload's labels (COCO, as `edgecnn val` scores)."""
    from edgecnn.metrics.detection import DetectionMetrics
    from edgecnn.runtime.boxes import cxcywh_to_xyxy

    metrics = DetectionMetrics(len(names), names)
    for (_, labels), (h, w), det in zip(payload.samples, payload.sizes, detections):
        gt = cxcywh_to_xyxy(labels[:, 1:5] * np.array([w, h, w, h], labels.dtype))
        metrics.update(det.xyxy, det.scores, det.classes, gt, labels[:, 0].astype(np.int64))
    scores = metrics.compute()
    return {"mAP50_95": scores["mAP50_95"], "mAP50": scores["mAP50"]}


def detector_names(bundle: Path, payload: Payload) -> list[str]:
    """The bundle detector's classes, which must be as many as the data's."""
    names = list(read_manifest(bundle)["models"]["detector"]["names"])
    if len(names) != len(payload.names):
        raise ValueError(f"the bundle's detector has {len(names)} classes ({', '.join(names)}) but the data has "
                         f"{len(payload.names)} ({', '.join(payload.names)})")
    return names


def compare(bundle: Path, payload: Payload, device: dict, host: dict, compare_conf: float, emulated: bool) -> dict:
    """The report: both sides' mAP, their agreement on images and video, speed, what ran where."""
    from edgecnn.metrics.agreement import agreement, track_agreement

    names = detector_names(bundle, payload)
    (dev_det, dev_ms), (host_det, host_ms) = device["detections"], host["detections"]
    if len(dev_det) != len(payload.samples) or len(host_det) != len(payload.samples):
        raise RuntimeError(f"expected {len(payload.samples)} images' detections, got {len(dev_det)} on the device "
                           f"and {len(host_det)} on this host")
    dev_map, host_map = score(payload, dev_det, names), score(payload, host_det, names)
    fps_label = "under qemu-user emulation on this host: not the device's speed" if emulated else "on the device"
    return {
        "mAP50_95": {"device": dev_map["mAP50_95"], "host": host_map["mAP50_95"],
                     "diff": dev_map["mAP50_95"] - host_map["mAP50_95"]},
        "mAP50": {"device": dev_map["mAP50"], "host": host_map["mAP50"], "diff": dev_map["mAP50"] - host_map["mAP50"]},
        "images": {**agreement(list(zip(dev_det, host_det)), conf=compare_conf), "source": "val images"},
        "video_tracks": {**track_agreement(device["tracks"], host["tracks"]), "source": payload.video_note,
                         "frames_decoded_alike": sum(a == b for a, b in zip(device["frames"], host["frames"]))},
        "fps": {"device": device["app"].get("fps"), "host": host["app"].get("fps"), "device_note": fps_label},
        "model_ms_p50": {"device": round(float(np.median(dev_ms)), 2), "host": round(float(np.median(host_ms)), 2)},
        "machine": {"device": device["machine"], "host": host["machine"]},
        "target": {"device": device["target"], "host": host["target"]},
        "packages": {"device": device["packages"], "host": host["packages"]},
        # written beside the report, so that agreement can be recomputed at another threshold
        "outputs": {f"{kind}-{side}.{ext}": result[key] for side, result in (("device", device), ("host", host))
                    for kind, ext, key in (("tracks", "txt", "tracks"), ("detections", "jsonl", "detections_jsonl"))},
    }


def summary(report: dict) -> str:
    """A few lines a person reads: mAP on both, agreement, speed, time."""
    m, img, trk, fps = report["mAP50_95"], report["images"], report["video_tracks"], report["fps"]
    seconds = report["seconds"]
    return "\n".join([
        f"device check of {report['bundle']} ({report['device']}): {report['target']['device']}",
        f"  machines: device {report['machine']['device']}, host {report['machine']['host']}",
        f"  mAP50-95 on {img['frames']} images: device {m['device']:.4f}, host {m['host']:.4f} "
        f"(diff {m['diff']:+.4f})",
        f"  images whose detections (score >= {img['conf']}) differ: {img['frames_differ']}/{img['frames']} "
        f"({100 * (img['share_differ'] or 0):.0f} %); largest score difference {img['max_score_diff']:.4f}, "
        f"largest box shift {img['max_box_shift_px']:.2f} px",
        f"  video frames whose tracks differ: {trk['frames_differ']}/{trk['frames']} ({trk['source']}; "
        f"{trk['frames_decoded_alike']} frames decoded to the same pixels on both)",
        f"  tracking FPS: device {fps['device']} ({fps['device_note']}), host {fps['host']}",
        f"  took {seconds['total']:.0f} s (root {'reused' if report['root_reused'] else 'built'}: "
        f"{seconds['root_build']:.0f} s; device install {seconds['device_install']:.0f} s, "
        f"run {seconds['device_run']:.0f} s; host install {seconds['host_install']:.0f} s, "
        f"run {seconds['host_run']:.0f} s)",
    ])


def write_report(report: dict, out: Path) -> dict:
    """`report.json`, `summary.txt` and each side's outputs (`detections-device.jsonl`, `tracks-device.txt`
    in MOTChallenge format, and the host's) in `out`; the report with their paths under `artifacts`."""
    report = dict(report)
    outputs = report.pop("outputs")
    for name, text in outputs.items():
        atomic_write_text(out / name, text + "\n" if text else "")
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "summary.txt", summary(report) + "\n")
    return {**report, "artifacts": {"report": str(out / "report.json"), "summary": str(out / "summary.txt"),
                                    **{name: str(out / name) for name in outputs}}}
