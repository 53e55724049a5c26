"""Ultralytics detection ONNX exports through edgecnn: the runtime reads them as they are, the
export cuts them into our contract, `val` scores them; other tasks and layouts are refused.

Real components: Ultralytics 8.4.190 (a test dependency) builds yolov8n / yolo11n from its YAML
(nothing downloads) and exports them itself; ONNX Runtime, onnx2tf and LiteRT run the rest.
Untrained weights score everything alike, so BatchNorm statistics are spread and the class bias
class logits scaled up (as `runtime_models.spread_statistics` does for ours).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from ultralytics_env import NAMES, build, import_ultralytics

ultralytics = import_ultralytics()

from edgecnn.runtime.backends import load_backend  # noqa: E402 (after the Ultralytics environment above)
from edgecnn.runtime.detector import Detector  # noqa: E402

IMGSZ = 160
IOU = 0.7  # Ultralytics' predict default, which its nms=True export bakes in (with conf 0.25)


def export(model, folder: Path, name: str, **kwargs) -> Path:
    with contextlib.chdir(folder):  # Ultralytics writes next to the YAML's name in the working directory
        produced = model.export(format="onnx", imgsz=kwargs.pop("imgsz", IMGSZ), verbose=False, **kwargs)
        return Path(shutil.move(produced, folder / f"{name}.onnx"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{name: (Ultralytics model, its ONNX export)} for the layouts we accept."""
    folder = tmp_path_factory.mktemp("ultralytics")
    v8, v11 = build("yolov8n", folder), build("yolo11n", folder)
    return {
        "v8": (v8, export(v8, folder, "v8")),
        "v8_nms": (v8, export(v8, folder, "v8_nms", nms=True)),
        "v8_dynamic": (v8, export(v8, folder, "v8_dynamic", dynamic=True)),
        "v11": (v11, export(v11, folder, "v11")),
        "v8_64": (v8, export(v8, folder, "v8_64", imgsz=64, nms=True)),
    }


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """uint8 RGB (N, 160, 160, 3): coco128 images cropped square and resized to the input (no
    padding, whose flat grey gives equal scores), else seeded shapes on noise."""
    import cv2

    coco = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco128" / "images" / "train2017"
    paths = sorted(coco.glob("*.jpg"))[:6]
    if paths:
        out = []
        for path in paths:
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            h, w = image.shape[:2]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            out.append(cv2.resize(image[top : top + side, left : left + side], (IMGSZ, IMGSZ), interpolation=cv2.INTER_AREA))
        return np.stack(out)
    rng = np.random.default_rng(0)
    out = rng.integers(0, 255, (6, IMGSZ, IMGSZ, 3), dtype=np.uint8)
    for img in out:
        for _ in range(4):
            x, y = rng.integers(0, IMGSZ - 40, 2)
            cv2.rectangle(img, (int(x), int(y)), (int(x) + 40, int(y) + 30), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    return out


@pytest.fixture(scope="module")
def conf(models, images) -> float:
    """A threshold in the widest gap among the top 5 % of anchor scores: untrained weights give
    plateaus of equal scores, where two correct NMS implementations may keep different boxes."""
    best = load_backend(models["v8"][1]).predict(images)["scores"].max(-1).ravel()
    top = np.sort(best)[::-1][: best.size // 20]
    gap = int(np.argmax(top[:-1] - top[1:]))
    assert top[gap] - top[gap + 1] > 1e-3
    return float(top[gap] + top[gap + 1]) / 2


def ultralytics_ltrb(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ultralytics' own raw outputs (PyTorch, eval) decoded to our contract: ltrb in stride units, scores."""
    import torch

    net = model.model.eval()
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    with torch.no_grad():
        raw = net(x)[0]  # (B, 4 + nc, A): xywh pixels, sigmoid scores
    head = net.model[-1]
    centres = (head.anchors * head.strides).T.numpy()  # (A, 2) pixels
    strides = head.strides.reshape(-1).numpy()
    xy, wh = raw[:, :2].numpy().transpose(0, 2, 1), raw[:, 2:4].numpy().transpose(0, 2, 1)
    ltrb = np.concatenate([centres - (xy - wh / 2), (xy + wh / 2) - centres], axis=-1) / strides[:, None]
    return ltrb, raw[:, 4:].numpy().transpose(0, 2, 1)


@pytest.mark.parametrize("name", ["v8", "v8_dynamic", "v11"])
def test_backend_reads_ultralytics_onnx_as_ultralytics_computes_it(models, images, name):
    model, onnx_path = models[name]
    backend = load_backend(onnx_path)
    assert backend.meta["names"] == NAMES and backend.input_size == (IMGSZ, IMGSZ)
    assert backend.meta["strides"] == [8, 16, 32] and backend.meta["mean"] == [0.0] * 3
    out = backend.predict(images)
    ltrb, scores = ultralytics_ltrb(model, images)
    assert out["boxes"].shape == ltrb.shape == (len(images), 525, 4)
    np.testing.assert_allclose(out["boxes"], ltrb, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["scores"], scores, rtol=1e-4, atol=1e-5)
    assert (scores.max(-1) > 0.25).sum() > 10 and scores.std() > 0.01  # the comparison covers detections


@pytest.mark.parametrize("name", ["v8", "v8_nms", "v8_dynamic", "v11"])
def test_cut_graph_gives_the_uncut_graphs_outputs(models, images, tmp_path, name):
    import onnx

    from edgecnn.export.ultralytics_onnx import import_ultralytics_onnx

    _, onnx_path = models[name]
    reference, cut_path = import_ultralytics_onnx(onnx_path, tmp_path / "cut.onnx")
    cut = onnx.load(str(cut_path))
    assert [o.name for o in cut.graph.output] == ["boxes", "scores"]
    assert [d.dim_value for d in cut.graph.input[0].type.tensor_type.shape.dim] == [1, 3, IMGSZ, IMGSZ]
    assert not any(n.op_type == "NonMaxSuppression" for n in cut.graph.node)
    backend = load_backend(cut_path)
    assert backend.meta["source"] == "ultralytics" and backend.meta["names"] == NAMES
    ours, ref = backend.predict(images), reference.predict(images)
    for key in ("boxes", "scores"):
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-5, atol=1e-5)
    if name != "v8_nms":  # the NMS export's raw tensor is no output; its reference is cut out of it
        original = load_backend(onnx_path).predict(images)
        np.testing.assert_allclose(ours["boxes"], original["boxes"], rtol=1e-5, atol=1e-5)


def test_detections_equal_ultralytics_predictions(models, images, conf):
    """Our detector (the path of `val` and `track`) on the plain and the nms=True export gives the
    boxes Ultralytics' own predict gives on the same ONNX file and images."""
    from ultralytics import YOLO

    bgr = list(np.ascontiguousarray(images[..., ::-1]))
    theirs = YOLO(str(models["v8"][1]), task="detect").predict(bgr, imgsz=IMGSZ, conf=conf, iou=IOU, device="cpu", verbose=False)
    assert sum(len(r.boxes) for r in theirs) >= len(images)
    for name in ("v8", "v8_nms"):
        ours = Detector(load_backend(models[name][1]), conf=conf, iou=IOU).detect_batch(bgr)
        for mine, result in zip(ours, theirs):
            order, mine_order = by_position(result.boxes.xyxy.numpy()), by_position(mine.xyxy)
            np.testing.assert_allclose(mine.xyxy[mine_order], result.boxes.xyxy.numpy()[order], atol=1e-3)
            np.testing.assert_allclose(mine.scores[mine_order], result.boxes.conf.numpy()[order], atol=1e-5)
            np.testing.assert_array_equal(mine.classes[mine_order], result.boxes.cls.numpy()[order].astype(int))


def by_position(xyxy: np.ndarray) -> np.ndarray:
    """Detections in the order of their rounded corners: a set comparison (equal scores may come in any order)."""
    corners = np.round(xyxy, 1)
    return np.lexsort(corners.T[::-1])


def yolo_dataset(folder: Path, images: np.ndarray, onnx_path: Path, conf: float) -> Path:
    """A YOLO dataset of `images` labelled with Ultralytics' predictions."""
    import cv2
    from ultralytics import YOLO

    for split in ("images/val", "labels/val"):
        (folder / split).mkdir(parents=True, exist_ok=True)
    bgr = list(np.ascontiguousarray(images[..., ::-1]))
    results = YOLO(str(onnx_path), task="detect").predict(bgr, imgsz=IMGSZ, conf=conf, iou=IOU, device="cpu", verbose=False)
    for i, (image, result) in enumerate(zip(bgr, results)):
        cv2.imwrite(str(folder / "images/val" / f"{i}.png"), image)
        rows = [f"{int(c)} {x:.7f} {y:.7f} {w:.7f} {h:.7f}" for c, (x, y, w, h) in
                zip(result.boxes.cls.tolist(), result.boxes.xywhn.tolist())]
        (folder / "labels/val" / f"{i}.txt").write_text("\n".join(rows))
    (folder / "data.yaml").write_text(f"path: {folder}\ntrain: images/val\nval: images/val\nnames: {NAMES}\n")
    return folder / "data.yaml"


def test_val_scores_ultralytics_predictions_as_ground_truth_perfectly(models, images, conf, tmp_path):
    from edgecnn.commands import val

    data = yolo_dataset(tmp_path, images, models["v8"][1], conf)
    for name in ("v8", "v8_nms"):
        result = val.run(val.KEYS.resolve({"model": str(models[name][1]), "data": str(data), "conf": conf, "iou": IOU}))
        assert result["mAP50_95"] > 0.99 and result["images"] == len(images), (name, result)


@pytest.mark.heavy
@pytest.mark.slow
def test_int8_tflite_from_an_ultralytics_onnx(models, images, tmp_path):
    from edgecnn.commands import export
    from edgecnn.runtime.backends import TFLiteBackend

    calib = tmp_path / "calib"
    calib.mkdir()
    import cv2

    for i, image in enumerate(images):
        cv2.imwrite(str(calib / f"{i}.png"), image[..., ::-1])
    cfg = export.KEYS.resolve({"model": str(models["v8_64"][1]), "format": "tflite", "precision": "int8", "io": "int8",
                               "calib": str(calib), "calib_images": 6, "parity_images": 4, "runs": 2, "out": str(tmp_path / "out")})
    result = export.run(cfg)
    backend = load_backend(result["artifacts"]["tflite"])
    assert isinstance(backend, TFLiteBackend) and backend.input["dtype"] == np.int8
    assert backend.meta["source"] == "ultralytics" and backend.meta["names"] == NAMES
    assert backend.meta["strides"] == [8, 16, 32] and backend.meta["input_size"] == [64, 64]
    scales = {name: d["quantization"][0] for name, d in backend.outputs.items()}
    assert scales["scores"] <= 1 / 255 + 1e-6 and abs(scales["boxes"] - scales["scores"]) > 1e-5  # one scale each
    small = np.stack([cv2.resize(i, (64, 64)) for i in images])
    out, ref = backend.predict(small), load_backend(result["artifacts"]["onnx"]).predict(small)
    assert out["boxes"].shape == ref["boxes"].shape == (len(small), 84, 4)
    assert np.abs(out["scores"] - ref["scores"]).max() < 0.1


def test_refuses_other_tasks_layouts_and_files(tmp_path):
    import onnx

    seg = export(build("yolov8n-seg", tmp_path, nc=2), tmp_path, "seg")
    cls = export(build("yolov8n-cls", tmp_path, nc=2), tmp_path, "cls", imgsz=64)
    with pytest.raises(ValueError, match=r"seg\.onnx: an Ultralytics 'segment' model .*detection models"):
        load_backend(seg)
    with pytest.raises(ValueError, match=r"cls\.onnx: an Ultralytics 'classify' model"):
        load_backend(cls)
    for task in ("pose", "obb"):
        model = onnx.load(str(seg))
        next(p for p in model.metadata_props if p.key == "task").value = task
        onnx.save(model, str(tmp_path / f"{task}.onnx"))
        with pytest.raises(ValueError, match=rf"an Ultralytics '{task}' model"):
            load_backend(tmp_path / f"{task}.onnx")
    model = onnx.load(str(seg))
    next(p for p in model.metadata_props if p.key == "task").value = "detect"
    onnx.save(model, str(tmp_path / "two_outputs.onnx"))
    with pytest.raises(ValueError, match=r"two_outputs\.onnx: an Ultralytics ONNX with 2 outputs \(output0 \[1, 38, 525\]"):
        load_backend(tmp_path / "two_outputs.onnx")
    detect = export(build("yolov8n", tmp_path), tmp_path, "det")
    model = onnx.load(str(detect))
    next(p for p in model.metadata_props if p.key == "names").value = "{0: 'a', 1: 'b', 2: 'c'}"
    onnx.save(model, str(tmp_path / "three_names.onnx"))
    with pytest.raises(ValueError, match=r"three_names\.onnx: an Ultralytics detect ONNX whose output is \[1, 6, 525\]; "
                                         r"edgecnn reads one output \[B, 4\+nc, N\] = \[B, 7, N\]"):
        load_backend(tmp_path / "three_names.onnx")
    model = onnx.load(str(detect))  # as a half=True export: float16 images in
    image = model.graph.input[0]
    for node in model.graph.node:
        node.input[:] = ["images_fp32" if name == image.name else name for name in node.input]
    model.graph.node.insert(0, onnx.helper.make_node("Cast", [image.name], ["images_fp32"], to=onnx.TensorProto.FLOAT))
    image.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    onnx.save(model, str(tmp_path / "half.onnx"))
    with pytest.raises(ValueError, match=r"half\.onnx: an Ultralytics ONNX with tensor\(float16\) input"):
        load_backend(tmp_path / "half.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ValueError, match=r"text\.onnx: not a readable ONNX model"):
        load_backend(tmp_path / "text.onnx")
    from edgecnn.export.ultralytics_onnx import is_ultralytics_onnx

    assert not is_ultralytics_onnx(tmp_path / "text.onnx") and is_ultralytics_onnx(detect)


@pytest.mark.parametrize("name", ["v8_nms", "v8_dynamic"])
def test_track_runs_an_ultralytics_onnx(models, tmp_path, name):
    import json

    from runtime_models import synthetic_video

    from edgecnn.runtime.app import run

    video = synthetic_video(tmp_path / "clip.mp4", frames=12)
    report = run({"model": str(models[name][1]), "source": str(video), "jsonl": str(tmp_path / "tracks.jsonl"),
                  "conf": 0.3, "track_conf": 0.3, "low_conf": 0.25, "n_init": 1, "max_det": 50})
    lines = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    assert report["frames"] == len(lines) == 12 and report["tracks"] > 0
    assert {t["name"] for line in lines for t in line["tracks"]} <= set(NAMES)
