"""Ultralytics (a test dependency, AGPL, never imported by edgecnn) imported the one way the tests
need it: it reads its settings at import, so first offline, no auto-install, quiet, and its
settings file in a temporary folder (never the user's)."""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import tempfile
from pathlib import Path

import numpy as np
import pytest

NAMES = ["person", "car"]
# Ultralytics 8.4.190's TFLite files of one `export(format="saved_model", quantize=8)` (`_int8`: dynamic range)
TFLITE_FILES = ("float32", "float16", "int8", "integer_quant", "full_integer_quant")


def import_ultralytics():
    """The `ultralytics` module, or the calling test module skipped when it is not installed."""
    os.environ.update(YOLO_OFFLINE="true", YOLO_AUTOINSTALL="false", YOLO_VERBOSE="false")
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
    return pytest.importorskip("ultralytics", reason="ultralytics (the dev extra, a test dependency) is not installed")


def build(arch: str, folder: Path, nc: int = len(NAMES)):
    """An Ultralytics model from its own YAML with `nc` classes, statistics spread (seeded): untrained
    weights score everything alike, so BatchNorm statistics are spread and the class logits scaled up."""
    import torch
    import yaml
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    torch.manual_seed(0)
    cfg = dict(yaml_model_load(f"{arch}.yaml"), nc=nc)
    cfg_path = folder / f"{arch}.yaml"  # the file name carries the scale (n)
    cfg_path.write_text(yaml.safe_dump(cfg))
    model = YOLO(str(cfg_path))
    net = model.model
    if nc == len(NAMES):
        net.names = dict(enumerate(NAMES))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.2, 2.0)
        head = net.model[-1]
        for branch in getattr(head, "cv3", []):  # class scores that differ across anchors
            branch[-1].weight.mul_(20.0)
            branch[-1].bias.fill_(math.log(0.05 / 0.95))
        for branch in getattr(head, "cv2", []):  # boxes about one stride wide: NMS has no close calls
            branch[-1].weight.mul_(0.1)
            branch[-1].bias.view(4, -1).copy_(torch.tensor([8.0, 8.0] + [0.0] * (head.reg_max - 2)))
    return model


def write_predicted_labels(model, images: list[Path], labels: Path, imgsz: int, conf: float, max_det: int = 300) -> None:
    """YOLO label files in `labels/`: the PyTorch model's own predictions above `conf` (ground truth
    that makes an untrained model's float mAP high, so that decodings can be told apart); boxes
    under 1 % of the image wide or high (clipped at its border) are left out."""
    labels.mkdir(parents=True, exist_ok=True)
    for path in images:
        boxes = model.predict(str(path), imgsz=imgsz, conf=conf, max_det=max_det, device="cpu", verbose=False)[0].boxes
        rows = [f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, (x, y, w, h) in zip(boxes.cls.tolist(), boxes.xywhn.tolist())
                if min(w, h) > 0.01]
        (labels / f"{path.stem}.txt").write_text("\n".join(rows))


def export_tflite_files(model, folder: Path, data: Path, imgsz: int, normalized: bool) -> dict[str, Path]:
    """Ultralytics' TFLite files of `model` (`format="saved_model"`, `quantize=8`, calibrated on
    `data`'s images): {suffix: path}; `normalized`: with the box normalization its Edge TPU route
    (tf_wrapper) gives Detect heads, which older Ultralytics gave every TFLite export. onnx2tf's
    sample file is put where it looks for it (Ultralytics would download it); its patch of onnx2tf
    inside site-packages is refused, as on a read-only install (the shared environment stays as it is)."""
    from ultralytics.nn.modules import Detect
    from ultralytics.utils.export.tensorflow import _tf_decode_boxes

    from edgecnn.export.tflite import ONNX2TF_SAMPLE

    write_text = pathlib.Path.write_text

    def read_only_site_packages(self, *args, **kwargs):
        if "site-packages" in self.parts:
            raise OSError(f"{self}: site-packages is read-only here")
        return write_text(self, *args, **kwargs)

    work = folder / ("normalized" if normalized else "pixels")
    work.mkdir()
    np.save(work / ONNX2TF_SAMPLE, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    with pytest.MonkeyPatch.context() as patch, contextlib.chdir(work):
        patch.setattr(pathlib.Path, "write_text", read_only_site_packages)
        if normalized:  # what Ultralytics' Edge TPU route (tf_wrapper) does to every Detect head
            patch.setattr(Detect, "_get_decode_boxes", _tf_decode_boxes)
        exported = Path(model.export(format="saved_model", imgsz=imgsz, quantize=8, data=str(data), device="cpu",
                                     verbose=False))
    return {name: next((work / exported).glob(f"*_{name}.tflite")) for name in TFLITE_FILES}


def independent_score(path: Path, normalized: bool, data: Path, max_images: int | None = None) -> dict:
    """mAP of a .tflite decoded as Ultralytics documents it, not through edgecnn's runtime: its
    LetterBox, the raw output (dequantized; xywh times the input size when normalized), its NMS
    and scale_boxes; scored by edgecnn's metric on `data`'s val split."""
    import cv2
    import torch
    from ai_edge_litert.interpreter import Interpreter
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import nms, ops

    from edgecnn.data.yolo import load_data_yaml, scan_split
    from edgecnn.metrics.detection import DetectionMetrics
    from edgecnn.runtime.boxes import cxcywh_to_xyxy

    spec = load_data_yaml(data)
    names = spec.names
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    image_in, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    h_in, w_in = (int(v) for v in image_in["shape"][1:3])  # onnx2tf's NHWC input
    metrics = DetectionMetrics(len(names), names)
    for image_path, labels in list(scan_split(spec, "val", check_images=False))[:max_images]:
        bgr = cv2.imread(str(image_path))
        x = LetterBox((h_in, w_in), auto=False)(image=bgr)[..., ::-1][None].astype(np.float32) / 255.0
        if image_in["dtype"] == np.int8:
            scale, zero = image_in["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(image_in["index"], x)
        interpreter.invoke()
        raw = interpreter.get_tensor(output["index"]).astype(np.float32)
        if output["dtype"] == np.int8:
            scale, zero = output["quantization"]
            raw = (raw - zero) * scale
        if normalized:
            raw[:, [0, 2]] *= w_in
            raw[:, [1, 3]] *= h_in
        det = nms.non_max_suppression(torch.from_numpy(raw), conf_thres=0.001, iou_thres=0.6, max_det=300)[0]
        det[:, :4] = ops.scale_boxes((h_in, w_in), det[:, :4], bgr.shape[:2])
        h, w = bgr.shape[:2]
        gt = cxcywh_to_xyxy(labels[:, 1:5] * np.array([w, h, w, h]))
        metrics.update(det[:, :4].numpy(), det[:, 4].numpy(), det[:, 5].numpy().astype(np.int64), gt,
                       labels[:, 0].astype(np.int64))
    return metrics.compute()
