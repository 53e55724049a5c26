"""`edgecnn val`: score a checkpoint, ONNX or TFLite model on a dataset (`edgecnn.evaluate`)."""

from __future__ import annotations

from pathlib import Path

from edgecnn.config import ConfigError, Key, Schema

HELP = "validate a checkpoint, ONNX or TFLite model on a dataset"
POSITIONAL = ("model",)

KEYS = Schema(
    Key("model", None, "a .pt checkpoint, .onnx or .tflite", required=True),
    Key("data", None, "data.yaml (detect, segment) or an ImageFolder directory (classify)", required=True),
    Key("imgsz", None, "input size for a .pt checkpoint, an int or [h, w] (an export's size is fixed)", type=(int, list)),
    Key("conf", 0.001, "detection confidence threshold", min=0.0, max=1.0),
    Key("iou", 0.6, "NMS IoU threshold", min=0.0, max=1.0),
    Key("max_det", 300, "detections kept per image", min=1),
    Key("split", "val", "dataset split to score"),
    Key("batch", 8, "images per backend call (TFLite models take one at a time)", min=1),
    Key("threads", None, "CPU threads of the backend", type=int, min=1),
    Key("max_images", None, "score only the first N images", type=int, min=1),
    Key("out", None, "segment: directory for segmentation_samples.png (image | ground truth | prediction)"),
    Key("samples", 4, "segment: images in segmentation_samples.png", min=1),
    Key("save_operating_point", False, "detect: write the measured operating point (the tracker's thresholds for "
        "this detector) into the .onnx/.tflite, where `edgecnn track` reads it"),
)


def run(cfg: dict) -> dict:
    from edgecnn.evaluate import validate
    from edgecnn.export.torch_backend import load_host_backend

    if cfg["save_operating_point"] and Path(cfg["model"]).suffix.lower() not in (".onnx", ".tflite"):
        raise ConfigError("edgecnn val: save_operating_point=true writes into an exported .onnx or .tflite, "
                          f"not {cfg['model']}")
    backend = load_host_backend(cfg["model"], threads=cfg["threads"], imgsz=cfg["imgsz"])
    result = validate(backend, cfg["data"], conf=cfg["conf"], iou=cfg["iou"], max_det=cfg["max_det"],
                      split=cfg["split"], batch=cfg["batch"], max_images=cfg["max_images"])
    if cfg["save_operating_point"]:
        from edgecnn.export.metadata import store_operating_point

        store_operating_point(cfg["model"], result, cfg["data"], cfg["split"])
    if cfg["out"] and backend.meta["task"] == "segment":
        from edgecnn.evaluate import segmentation_samples

        png = segmentation_samples(backend, cfg["data"], Path(cfg["out"]) / "segmentation_samples.png",
                                   cfg["split"], cfg["samples"])
        result["artifacts"] = {"samples": str(png)}
    return {"model": str(cfg["model"]), "format": backend.kind, **result}
