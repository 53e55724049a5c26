"""The pipeline report renders its tables and images, in a real headless Chromium."""

import json

import cv2
import numpy as np
import pytest

from browser import find_chromium, screenshot
from edgecnn.report import write_report


def make_run(root):
    video = root / "track" / "annotated.mp4"
    video.parent.mkdir(parents=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(12):
        frame = np.zeros((120, 160, 3), np.uint8)
        cv2.rectangle(frame, (10 + 5 * i, 30), (50 + 5 * i, 90), (0, 255, 0), 2)
        writer.write(frame)
    writer.release()
    curve = root / "train" / "curves.png"
    curve.parent.mkdir(parents=True)
    cv2.imwrite(str(curve), np.full((60, 90, 3), 200, np.uint8))
    manifests = {
        "train": {"command": "train", "status": "done", "seconds": 61.5,
                  "result": {"mAP50_95": 0.61, "artifacts": {"curves": str(curve)}}},
        "tflite": {"command": "export", "status": "done", "seconds": 20.0,
                   "result": {"rows": [{"name": "fp32", "size_mb": 4.1, "mAP50_95": 0.61, "latency_ms_p50": 30.0},
                                       {"name": "int8", "size_mb": 1.2, "mAP50_95": 0.605, "latency_ms_p50": 12.0}],
                              "artifacts": {}}},
        "track": {"command": "track", "status": "done", "seconds": 5.0,
                  "result": {"IDF1": 0.8, "MOTA": 0.7, "artifacts": {"video": str(video)}}},
    }
    for name, manifest in manifests.items():
        (root / name).mkdir(exist_ok=True)
        (root / name / "manifest.json").write_text(json.dumps(manifest))
    return list(manifests)


def test_report_has_tables_plot_and_frame_strip(tmp_path):
    stages = make_run(tmp_path)
    out = write_report(tmp_path, "demo", stages)
    md = (tmp_path / "report.md").read_text()
    assert "| train | train | done |" in md and "| tflite | int8 | 1.2 | 0.605 | 12 |" in md
    page = (tmp_path / "report.html").read_text()
    assert page.count("<table>") == 2 and page.count("data:image/png;base64,") == 3
    strip = cv2.imread(str(tmp_path / "frames_track.png"))
    assert strip.shape[1] == 1280 and strip[..., 1].max() == 255  # the green boxes are in it
    assert out["report_html"].endswith("report.html")
    assert "quick look" not in md


def test_report_says_what_the_run_leaves_out(tmp_path):
    write_report(tmp_path, "demo", make_run(tmp_path), note="A quick look: 2 classes, no ReID training.")
    for page in ("report.md", "report.html"):
        assert "minutes of stage time. A quick look: 2 classes, no ReID training." in (tmp_path / page).read_text()


def test_report_renders_in_headless_chromium(tmp_path):
    browser = find_chromium()
    if not browser:
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    write_report(tmp_path, "demo", make_run(tmp_path))
    image = screenshot(browser, (tmp_path / "report.html").as_uri(), tmp_path / "shot.png", tmp_path / "profile",
                       (1280, 1600))
    assert image is not None and image.shape[:2] == (1600, 1280)
    # A page whose images failed would be text on white; the plot and the frame strip add dark areas.
    dark = (image.mean(axis=2) < 60).mean()
    assert dark > 0.02, f"only {dark:.3%} dark pixels: the images did not render"
