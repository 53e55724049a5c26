"""`edgecnn export`: checkpoint (or ONNX) → ONNX / TFLite, each artifact checked and measured.

For every artifact: parity against the source model on real images (max abs output difference),
size, latency p50/p90 and, with `data=`, mAP through the device's own pre/post-processing. An
int8 artifact that loses more than `max_map_drop` points of mAP50_95 against the fp32 reference
fails the gate.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgecnn.config import ConfigError, Key, Schema

HELP = "export a checkpoint to ONNX or TFLite (fp32, fp16, int8)"
POSITIONAL = ("model",)
LOG = logging.getLogger(__name__)

KEYS = Schema(
    Key("model", None, "a .pt checkpoint, an .onnx from `export` or `qat` (Q/DQ), or an Ultralytics detection .onnx",
        required=True),
    Key("format", "onnx", "artifact format", choices=("onnx", "tflite")),
    Key("precision", "fp32", "TFLite precision", choices=("fp32", "fp16", "int8")),
    Key("io", "float", "int8 model input/output type", choices=("float", "int8", "uint8")),
    Key("quant_type", "per-channel", "int8 weight quantization", choices=("per-channel", "per-tensor")),
    Key("float_ops", "auto", "TFLite ops kept in float in an int8 model, comma-separated (BATCH_MATMUL); "
        "auto: attention's BATCH_MATMUL when the model has attention (YOLO11), none otherwise; none: all int8",
        type=(str, list, type(None))),
    Key("imgsz", None, "input size (default: the checkpoint's imgsz)", type=int, min=32),
    Key("dynamic", False, "ONNX with free batch, height and width (format=onnx only)"),
    Key("opset", 17, "ONNX opset", min=11, max=21),
    Key("calib", None, "directory of calibration images (default: the data.yaml's val images)"),
    Key("calib_images", 64, "calibration images used for int8", min=1),
    Key("data", None, "data.yaml: parity images and the mAP of each artifact"),
    Key("reference", None, "fp32 artifact or checkpoint the int8 gate compares with (default: model)"),
    Key("max_map_drop", 1.0, "int8 gate: largest allowed mAP50_95 drop in points", min=0.0),
    Key("parity_images", 8, "real images for the parity check", min=1),
    Key("val_images", None, "score mAP on the first N val images only", type=int, min=1),
    Key("threads", 2, "CPU threads for the latency measurement", min=1),
    Key("runs", 30, "timed runs for the latency measurement", min=1),
    Key("out", "runs/export", "output directory"),
)


def run(cfg: dict) -> dict:
    from edgecnn.export.parity import check_parity, image_paths, letterboxed_images
    from edgecnn.export.metadata import store_operating_point
    from edgecnn.runtime.backends import load_backend

    model_path = Path(cfg["model"])
    if not model_path.is_file():
        raise FileNotFoundError(f"model not found: {model_path}")
    if cfg["format"] == "onnx" and (cfg["precision"] != "fp32" or cfg["io"] != "float"):
        raise ConfigError("edgecnn export: precision/io apply to format=tflite; an ONNX export is fp32")
    if cfg["format"] == "tflite" and cfg["dynamic"]:
        raise ConfigError("edgecnn export: dynamic=true is for format=onnx; TFLite models have a fixed input")
    images_from = cfg["data"] or cfg["calib"]
    if not images_from:
        raise ConfigError("edgecnn export: give data= (a data.yaml) or calib= (an image directory, e.g. a set from "
                          "`edgecnn data calib` under calibration/) for the parity check and calibration")
    out = Path(cfg["out"])
    source, onnx_path = _onnx_from(model_path, cfg, out)
    size = source.input_size
    parity_imgs = letterboxed_images(image_paths(images_from, cfg["parity_images"]), size)

    artifacts = {"onnx": onnx_path}
    if cfg["format"] == "tflite":
        artifacts["tflite"] = _tflite_from(onnx_path, cfg, out, size)
    kind = {"onnx": "onnx", "tflite": cfg["precision"]}
    report = {}
    for name, path in artifacts.items():
        backend = load_backend(path, threads=cfg["threads"])
        report[name] = {"parity_max_abs_diff": check_parity(source, backend, parity_imgs, kind[name]),
                        **_measure(backend, path, cfg)}
        if name == cfg["format"] and "operating_point" in report[name]:  # on its own (e.g. int8) scores
            store_operating_point(path, report[name], cfg["data"], "val")
    final = report[cfg["format"]]
    result = {k: v for k, v in final.items() if k != "parity_max_abs_diff"}
    result.update(parity_max_abs_diff=final["parity_max_abs_diff"], per_artifact=report,
                  artifacts={k: str(v) for k, v in artifacts.items()})
    if cfg["precision"] == "int8" and cfg["data"]:
        result.update(_gate(final, cfg, source))
    return result


def _onnx_from(model_path: Path, cfg: dict, out: Path):
    """(the reference backend, the ONNX path): export a checkpoint, or take an ONNX as it is."""
    from edgecnn.export.onnx import export_onnx
    from edgecnn.export.torch_backend import TorchBackend
    from edgecnn.models.contract import Exportable
    from edgecnn.runtime.backends import load_backend

    if model_path.suffix.lower() == ".onnx":
        from edgecnn.export.ultralytics_onnx import (
            import_ultralytics_onnx,
            is_ultralytics_onnx,
        )

        if is_ultralytics_onnx(model_path):  # cut to our outputs; format=onnx writes just that
            return import_ultralytics_onnx(model_path, out / model_path.name, threads=cfg["threads"])
        if cfg["format"] == "onnx":
            raise ConfigError("edgecnn export: model= is already an ONNX file; use format=tflite")
        return load_backend(model_path, threads=cfg["threads"]), model_path
    source = TorchBackend.from_checkpoint(model_path, imgsz=cfg["imgsz"], threads=cfg["threads"])
    onnx_path = out / f"{model_path.stem}.onnx"
    # a model may have an equivalent form that converts better (YOLOv8/11: `YoloV8Net.for_export`)
    graph_model = source.model.for_export() if isinstance(source.model, Exportable) else source.model
    export_onnx(graph_model, source.meta, onnx_path, imgsz=list(source.input_size),
                dynamic=cfg["dynamic"], opset=cfg["opset"])
    return source, onnx_path


def _tflite_from(onnx_path: Path, cfg: dict, out: Path, size: tuple[int, int]) -> Path:
    from edgecnn.export.parity import image_paths, letterboxed_images
    from edgecnn.export.tflite import export_tflite

    calib = letterboxed_images(image_paths(cfg["calib"] or cfg["data"], cfg["calib_images"]), size)
    suffix = f"_{cfg['precision']}" + (f"_{cfg['io']}" if cfg["io"] != "float" else "")
    return export_tflite(onnx_path, out / f"{onnx_path.stem}{suffix}.tflite", calib,
                         precision=cfg["precision"], io=cfg["io"], quant_type=cfg["quant_type"],
                         float_ops=cfg["float_ops"])


def _measure(backend, path: Path, cfg: dict) -> dict:
    from edgecnn.runtime.timing import measure_latency
    from edgecnn.evaluate import validate

    timing = measure_latency(backend, runs=cfg["runs"])
    row = {"size_mb": path.stat().st_size / 2**20, "latency_ms_p50": timing["latency_ms_p50"],
           "latency_ms_p90": timing["latency_ms_p90"], "threads": cfg["threads"]}
    if cfg["data"] and backend.meta["task"] in ("detect", "classify"):
        scores = validate(backend, cfg["data"], max_images=cfg["val_images"])
        row.update({k: v for k, v in scores.items() if k != "latency_ms_p50"})
    return row


def _gate(int8_row: dict, cfg: dict, source) -> dict:
    from edgecnn.evaluate import validate
    from edgecnn.export.torch_backend import load_host_backend
    from edgecnn.metrics.gate import check_drop

    metric = "mAP50_95" if "mAP50_95" in int8_row else "top1"
    reference = load_host_backend(cfg["reference"], threads=cfg["threads"]) if cfg["reference"] else source
    ref_value = validate(reference, cfg["data"], max_images=cfg["val_images"])[metric]
    drop = check_drop(metric, ref_value, int8_row[metric], cfg["max_map_drop"], f"{cfg['model']} int8")
    return {"reference": str(cfg["reference"] or cfg["model"]), f"reference_{metric}": ref_value, f"{metric}_drop": drop}
