"""Ultralytics detection .tflite files through edgecnn as its exporter writes them: `val` scores each
as an independent decoding does (the interpreter's raw output, Ultralytics' own letterbox, NMS and
box scaling), `track`, `bench` and `bundle` run one, and a file that cannot work is named as such.

Real components: Ultralytics 8.4.190 (a test dependency) builds a yolov8n from its YAML (nothing
downloads) and exports it itself (`format="saved_model"`, `quantize=8`: onnx2tf writes `_float32`,
`_float16`, `_int8` (dynamic range), `_integer_quant` and `_full_integer_quant`), twice: as 8.4.190
writes them (boxes in pixels) and with the box normalization its Edge TPU route (and older
Ultralytics' TFLite export) applies. LiteRT runs them. Two exports take a few minutes: slow.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ultralytics_env import (
    NAMES,
    TFLITE_FILES,
    build,
    export_tflite_files,
    import_ultralytics,
    independent_score,
    write_predicted_labels,
)

ultralytics = import_ultralytics()

from edgecnn.runtime.backends import load_backend  # noqa: E402 (after the Ultralytics environment above)

pytestmark = [pytest.mark.slow, pytest.mark.heavy]
IMGSZ = 96
LABEL_CONF = 0.3  # ground truth: the PyTorch model's own predictions above this
COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco128" / "images" / "train2017"


def source_images(folder: Path) -> list[Path]:
    """Real photographs (coco128, any size: val letterboxes them), else seeded shapes on noise."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(COCO.glob("*.jpg"))[:8]
    if paths:
        return [Path(shutil.copy(p, folder / p.name)) for p in paths]
    rng = np.random.default_rng(0)
    out = []
    for i in range(8):
        img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        for _ in range(4):
            x, y = rng.integers(0, 110, 2)
            cv2.rectangle(img, (int(x), int(y)), (int(x) + 40, int(y) + 30), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        cv2.imwrite(str(folder / f"{i}.png"), img)
        out.append(folder / f"{i}.png")
    return out


def label_with(model, folder: Path, images: list[Path]) -> Path:
    """A YOLO data.yaml whose val labels are the PyTorch model's predictions (train: the same images,
    for Ultralytics' int8 calibration)."""
    write_predicted_labels(model, images, folder / "labels", IMGSZ, LABEL_CONF)
    (folder / "data.yaml").write_text(f"path: {folder}\ntrain: images\nval: images\nnames: {NAMES}\n")
    return folder / "data.yaml"


def build_exports(folder: Path) -> dict:
    """The model, its labelled data, its Ultralytics ONNX and both routes' TFLite files, in `folder`."""
    model = build("yolov8n", folder)
    images = source_images(folder / "data" / "images")
    data = label_with(model, folder / "data", images)
    with contextlib.chdir(folder):
        onnx = Path(model.export(format="onnx", imgsz=IMGSZ, verbose=False)).resolve()
    return {"data": data, "images": images, "onnx": onnx,
            "pixels": export_tflite_files(model, folder, data, IMGSZ, normalized=False),
            "normalized": export_tflite_files(model, folder, data, IMGSZ, normalized=True)}


@pytest.fixture(scope="session")
def exports(request, tmp_path_factory) -> dict:
    """`build_exports` once: kept in pytest's cache folder (the exports take minutes), keyed by the
    Ultralytics version and the code that makes them; a fresh folder without the cache plugin."""
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return build_exports(tmp_path_factory.mktemp("ultralytics-tflite"))
    key = hashlib.sha256((Path(__file__).parent / "ultralytics_env.py").read_bytes() + inspect.getsource(build_exports).encode()
                         + f"{IMGSZ} {LABEL_CONF}".encode()).hexdigest()[:12]
    folder = Path(cache.mkdir(f"ultralytics-tflite-{ultralytics.__version__}-{key}"))
    index = folder / "exports.json"
    if not index.is_file():
        for child in folder.iterdir():  # an interrupted build
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        built = build_exports(folder)
        index.write_text(json.dumps(built, default=lambda v: str(v.relative_to(folder))))
    found = json.loads(index.read_text())

    def absolute(value):
        return {k: absolute(v) for k, v in value.items()} if isinstance(value, dict) else \
            [folder / v for v in value] if isinstance(value, list) else folder / value
    return absolute(found)


ACCEPTED = [("pixels", "float32"), ("pixels", "float16"), ("pixels", "int8")] + [("normalized", f) for f in TFLITE_FILES]


@pytest.mark.parametrize("route, name", ACCEPTED)
def test_val_scores_each_file_as_an_independent_decoding(exports, route, name):
    from edgecnn.commands import val

    path = exports[route][name]
    backend = load_backend(path)
    assert backend.meta["names"] == NAMES and backend.input_size == (IMGSZ, IMGSZ)
    assert backend.meta["strides"] == [8, 16, 32] and backend.meta["source"] == "ultralytics"
    assert backend.meta["ultralytics_layout"] == ("xywh normalized" if route == "normalized" else "xywh")
    ours = val.run(val.KEYS.resolve({"model": str(path), "data": str(exports["data"])}))
    reference = independent_score(path, route == "normalized", exports["data"])
    print(f"{route} {name}: edgecnn val {100 * ours['mAP50_95']:.2f}, independent {100 * reference['mAP50_95']:.2f}")
    assert ours["images"] == len(exports["images"])
    assert abs(ours["mAP50_95"] - reference["mAP50_95"]) <= 0.003  # 0.3 points
    # The labels are the float model's own boxes, less the ones clipped to no width at the image border
    # (the model still outputs those, at high scores: 76 % on coco128's photographs, more on shapes);
    # a wrong decoding (units, layout, letterbox) scores near zero.
    if name == "float32":
        assert ours["mAP50_95"] > 0.7


@pytest.mark.parametrize("name", ["integer_quant", "full_integer_quant"])
def test_one_int8_scale_for_pixel_boxes_and_scores_is_named_with_the_fix(exports, name):
    path = exports["pixels"][name]
    with pytest.raises(ValueError, match=rf"{name}\.tflite: an Ultralytics int8 TFLite whose boxes \(in pixels\) and class "
                                         r"scores share one int8 scale .*edgecnn export model=best\.pt format=tflite "
                                         r"precision=int8 io=int8"):
        load_backend(path)


def test_track_bench_and_bundle_run_a_full_integer_file(exports, tmp_path):
    from runtime_models import synthetic_video

    from edgecnn.commands import bench
    from edgecnn.deploy.bundle import build_bundle
    from edgecnn.deploy.profiles import load_profile
    from edgecnn.runtime.app import run

    path = exports["normalized"]["full_integer_quant"]
    video = synthetic_video(tmp_path / "clip.mp4", frames=10)
    report = run({"model": str(path), "source": str(video), "jsonl": str(tmp_path / "tracks.jsonl"),
                  "conf": 0.2, "track_conf": 0.2, "low_conf": 0.1, "n_init": 1})
    lines = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    assert report["frames"] == len(lines) == 10
    assert {t["name"] for line in lines for t in line["tracks"]} <= set(NAMES)
    timing = bench.run(bench.KEYS.resolve({"model": str(path), "threads": 1, "runs": 3, "warmup": 1}))
    assert timing["per_threads"][0]["format"] == "tflite" and timing["latency_ms_p50"] > 0
    bundle = build_bundle(load_profile("rpi5"), [path], None, tmp_path / "bundle")
    assert bundle.is_file()


def test_export_scores_the_users_files_next_to_its_own(exports, tmp_path, caplog):
    """`export compare=`: their files scored on data= next to ours, the best named in the log, a
    file that cannot work reported with the reason instead of stopping the export."""
    from edgecnn.commands import export

    theirs = [exports["normalized"]["int8"], exports["pixels"]["full_integer_quant"]]
    cfg = export.KEYS.resolve({"model": str(exports["onnx"]), "format": "onnx", "data": str(exports["data"]),
                               "compare": ",".join(map(str, theirs)), "runs": 2, "out": str(tmp_path)})
    with caplog.at_level("INFO", logger="edgecnn.commands.export"):
        compared = export.run(cfg)["compared"]
    assert set(compared["scores"]) == {str(tmp_path / exports["onnx"].name), str(theirs[0])}
    assert compared["scores"][str(theirs[0])] > 0.5 and compared["best"] in compared["scores"]
    assert "share one int8 scale" in compared["refused"][str(theirs[1])]
    assert f"best: {Path(compared['best']).name}" in caplog.text


def test_other_metadata_and_layouts_are_refused(exports, tmp_path):
    """A task other than detect, and a file whose metadata does not match its output, name what was found."""
    import zipfile

    source = exports["pixels"]["float32"]
    with zipfile.ZipFile(source) as archive:  # the zip Ultralytics appends: cut off, rewritten
        meta = json.loads(archive.read("metadata.json"))
        flatbuffer = source.read_bytes()[: min(info.header_offset for info in archive.infolist())]
    for case, change in {"segment": {"task": "segment", "head": "Segment"},
                         "three_names": {"names": {"0": "a", "1": "b", "2": "c"}},
                         "imgsz": {"imgsz": [128, 128]}}.items():
        path = tmp_path / f"{case}.tflite"
        path.write_bytes(flatbuffer)
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("metadata.json", json.dumps({**meta, **change}))
        expected = {"segment": r"segment\.tflite: an Ultralytics 'segment' model \(Segment head\); edgecnn imports detection",
                    "three_names": r"three_names\.tflite: an Ultralytics detect TFLite whose output is \[1, 6, 189\]; "
                                   r"edgecnn reads one output \[B, 4\+nc, N\] = \[B, 7, N\]",
                    "imgsz": r"imgsz\.tflite: output \[1, 6, 189\]: no halving strides up to 32 give 189 anchors"}[case]
        with pytest.raises(ValueError, match=expected):
            load_backend(path)
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(flatbuffer)
    with pytest.raises(ValueError, match=r"bare\.tflite: no 'edgecnn' metadata entry nor Ultralytics metadata"):
        load_backend(bare)
