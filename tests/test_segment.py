"""Segmentation from export to the device app: a tiny seg model exported to ONNX and int8 TFLite
(int8 I/O) through `edgecnn export`, its parity, and the segmentation app on a real mp4 file:
JSON lines of class areas and zone shares, the overlaid video, the wrong-task errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.config import ConfigError
from edgecnn.export.onnx import export_onnx
from edgecnn.runtime.backends import load_backend
from edgecnn.runtime.seg_app import STAGES, run
from edgecnn.runtime.segmenter import Segmenter
from export_tiny import COLOUR_META, ColourSegmenter, SEG_HW, SEG_META, tiny_segmenter

FRAME_WH = (128, 96)


def colour_frame(index: int = 0) -> np.ndarray:
    """BGR: red left half, blue right half, a green square moving along the bottom."""
    w, h = FRAME_WH
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2] = (0, 0, 230)
    frame[:, w // 2 :] = (230, 0, 0)
    x = 8 * (index % 8)
    frame[h - 32 : h - 16, x : x + 16] = (0, 230, 0)
    return frame


@pytest.fixture(scope="module")
def colour_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), colour_frame(i))
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "colours.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, FRAME_WH)
    for i in range(12):
        writer.write(colour_frame(i))
    writer.release()
    return path


def colour_mask(index: int = 0) -> np.ndarray:
    """The classes of `colour_frame(index)`: 0 red, 1 green, 2 blue."""
    frame = colour_frame(index)
    return np.argmax(frame[..., ::-1], axis=-1).astype(np.uint8)


@pytest.fixture(scope="module")
def colour_dataset(tmp_path_factory):
    """A `task: segment` data.yaml of colour frames and their masks."""
    from edgecnn.data.segment import write_segment_yaml

    root = tmp_path_factory.mktemp("colours")
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), colour_frame(i))
            cv2.imwrite(str(root / "masks" / split / f"{i}.png"), colour_mask(i))
    return write_segment_yaml(root / "data.yaml", COLOUR_META["names"], "images/train", "images/val")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, colour_images):
    """The colour model as ONNX (the default head: class ids) and as int8 TFLite with int8 I/O, by `edgecnn export`."""
    from edgecnn.commands.export import KEYS, run as export

    out = tmp_path_factory.mktemp("export")
    onnx_path = export_onnx(ColourSegmenter(), COLOUR_META, out / "colours.onnx", imgsz=COLOUR_META["imgsz"])
    report = export(KEYS.resolve({"model": str(onnx_path), "format": "tflite", "precision": "int8", "io": "int8",
                                  "calib": str(colour_images), "runs": 3, "out": str(out)}))
    return {"onnx": onnx_path, "tflite": Path(report["artifacts"]["tflite"]), "report": report}


def test_export_records_the_head_and_passes_parity(artifacts):
    meta = load_backend(artifacts["tflite"]).meta
    assert meta["task"] == "segment" and meta["seg_head"] == "argmax" and meta["seg_output"] == "classes"
    assert meta["seg_stride"] == 1 and meta["precision"] == "int8" and meta["io"] == "int8"
    assert meta["names"] == COLOUR_META["names"] and meta["input_size"] == [96, 128]
    assert artifacts["report"]["parity_argmax_agreement"]["argmax_agreement"] > 0.97


@pytest.mark.parametrize("head", ["full", "stride", "argmax"])
def test_every_head_gives_the_float_models_classes(tmp_path, head):
    model = tiny_segmenter()
    onnx_path = export_onnx(model, SEG_META, tmp_path / f"{head}.onnx", imgsz=list(SEG_HW), seg_head=head)
    from edgecnn.export.torch_backend import TorchBackend

    rng = np.random.default_rng(0)
    frames = [cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), SEG_HW[::-1]) for _ in range(4)]
    expected = Segmenter(TorchBackend(model, SEG_META)).segment_batch(frames)
    got = Segmenter(load_backend(onnx_path), upsample="linear").segment_batch(frames)
    assert np.mean([(a == b).mean() for a, b in zip(expected, got)]) > 0.999
    shape = load_backend(onnx_path).predict(np.zeros((1, *SEG_HW, 3), np.uint8))["segmentation"].shape
    assert shape == {"full": (1, *SEG_HW, 3), "stride": (1, 6, 8, 3), "argmax": (1, *SEG_HW)}[head]


def test_segmenter_finds_the_colours(artifacts):
    for path in (artifacts["onnx"], artifacts["tflite"]):
        classes = Segmenter(load_backend(path)).segment(colour_frame())
        assert classes.shape == FRAME_WH[::-1]
        assert (classes[:50, :60] == 0).mean() > 0.98 and (classes[:50, 68:] == 2).mean() > 0.98


def test_app_writes_areas_zones_and_video(artifacts, video, tmp_path):
    zones = tmp_path / "zones.yaml"
    zones.write_text("zones:\n  - name: left\n    points: [[0.0, 0.0], [0.45, 0.0], [0.45, 0.5], [0.0, 0.5]]\n"
                     "  - name: right\n    points: [[0.6, 0.0], [1.0, 0.0], [1.0, 0.5], [0.6, 0.5]]\n"
                     "    classes: [blue]\n")
    jsonl, save = tmp_path / "areas.jsonl", tmp_path / "overlay.mp4"
    report = run({"model": str(artifacts["tflite"]), "source": str(video), "zones": str(zones),
                  "jsonl": str(jsonl), "save": str(save), "threads": 1, "serve": "127.0.0.1:0"})
    assert report["frames"] == 12 and report["fps"] > 0
    assert all(report[f"{stage}_ms_p50"] >= 0 for stage in STAGES) and report["inference_ms_p50"] > 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(12))
    for line in lines:
        assert sum(line["areas"].values()) == pytest.approx(1.0, abs=1e-3)
        assert line["areas"]["red"] == pytest.approx(line["areas"]["blue"], abs=0.06)
        assert 0.01 < line["areas"]["green"] < 0.04  # the 16x16 square of a 128x96 frame: 2 %
        assert line["zones"]["left"]["red"] > 0.95 and sum(line["zones"]["left"].values()) == pytest.approx(1, abs=1e-3)
        assert list(line["zones"]["right"]) == ["blue"] and line["zones"]["right"]["blue"] > 0.95
    capture = cv2.VideoCapture(str(save))
    ok, first = capture.read()
    assert ok and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and first.shape[1::-1] == FRAME_WH
    capture.release()
    assert report["artifacts"] == {"save": str(save), "jsonl": str(jsonl)}


def test_wrong_task_artifacts_are_clear_errors(artifacts, video, tmp_path):
    from edgecnn.runtime.app import run as track
    from export_tiny import IMGSZ, META, tiny_detector

    with pytest.raises(ConfigError, match=r"colours_int8_int8\.tflite: a segment model; the tracking app needs a detector"):
        track({"model": str(artifacts["tflite"]), "source": str(video)})
    detector = export_onnx(tiny_detector(), META, tmp_path / "det.onnx", imgsz=IMGSZ)
    with pytest.raises(ConfigError, match=rf"{detector.name}: a detect model; the segmentation app needs a segment"):
        run({"model": str(detector), "source": str(video)})
    lines = tmp_path / "lines.yaml"
    lines.write_text("lines:\n  - name: door\n    points: [[0.5, 0.0], [0.5, 1.0]]\n")
    with pytest.raises(ConfigError, match="reports zones, not lines"):
        run({"model": str(artifacts["onnx"]), "source": str(video), "zones": str(lines)})


def test_bundle_ships_the_segmenter_and_runs_its_app(artifacts, video, tmp_path):
    import os
    import subprocess
    import sys
    import tarfile

    from edgecnn.deploy.bundle import build_bundle, read_manifest
    from edgecnn.deploy.profiles import load_profile

    bundle = build_bundle(load_profile("rpi5"), None, None, tmp_path, segmenter=[artifacts["tflite"]])
    manifest = read_manifest(bundle)
    assert manifest["app"] == "edgecnn.runtime.seg_app"
    assert manifest["models"] == {"segmenter": {"file": "models/colours_int8_int8.tflite", "format": "tflite",
                                                "precision": "int8", "task": "segment", "input_size": [96, 128],
                                                "names": ["red", "green", "blue"]}}
    with tarfile.open(bundle, "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    run_sh = tmp_path / bundle.name.removesuffix(".tar.gz") / "run.sh"
    jsonl = tmp_path / "areas.jsonl"
    env = {**os.environ, "EDGECNN_PYTHON": sys.executable}
    done = subprocess.run([str(run_sh), f"source={video}", f"jsonl={jsonl}", "max_frames=5", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames"] == 5
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 5 and all(sum(line["areas"].values()) == pytest.approx(1, abs=1e-3) for line in lines)
    with pytest.raises(ConfigError, match="a bundle runs one app"):
        build_bundle(load_profile("rpi5"), [artifacts["tflite"]], None, tmp_path, segmenter=[artifacts["tflite"]])


def test_val_scores_every_artifact_with_the_device_path(artifacts, colour_dataset, tmp_path):
    from edgecnn.commands.val import KEYS, run as val
    from edgecnn.evaluate import validate

    for path in (artifacts["onnx"], artifacts["tflite"]):
        scores = validate(load_backend(path), colour_dataset)
        assert scores["images"] == 4 and scores["mIoU"] > 0.9 and scores["pixel_acc"] > 0.97
        assert set(scores["iou"]) == {"red", "green", "blue"} and scores["iou"]["red"] > 0.97
    result = val(KEYS.resolve({"model": str(artifacts["tflite"]), "data": str(colour_dataset), "out": str(tmp_path)}))
    strip = cv2.imread(result["artifacts"]["samples"])
    assert result["mIoU"] > 0.9 and strip is not None and strip.shape[0] > 200


def test_nearest_upsampling_repeats_the_argmax_at_the_stride(tmp_path):
    onnx_path = export_onnx(tiny_segmenter(), SEG_META, tmp_path / "stride.onnx", imgsz=list(SEG_HW), seg_head="stride",
                            seg_upsample="nearest")
    backend = load_backend(onnx_path)
    assert backend.meta["seg_upsample"] == "nearest"
    image = cv2.resize(np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8), SEG_HW[::-1])
    logits = backend.predict(image)["segmentation"][0]
    expected = logits.argmax(-1).repeat(8, axis=0).repeat(8, axis=1)
    assert (Segmenter(backend).input_classes(logits) == expected).all()
    linear = Segmenter(backend, upsample="linear").input_classes(logits)
    assert 0.5 < (linear == expected).mean() < 1.0  # bilinear logits move the boundaries
