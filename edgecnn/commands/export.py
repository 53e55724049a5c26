"""`edgecnn export`: checkpoint (or ONNX) → ONNX / TFLite, each artifact checked and measured.

For every artifact: parity against the source model on real images (max abs output difference),
size, latency p50/p90 and, with `data=`, mAP through the device's own pre/post-processing. int8
calibrates on the data.yaml's train split, never on the val images it is scored on. An int8
artifact that loses more than `max_map_drop` points of mAP50_95 against the fp32 reference is not
refused at once (`recover=true`): the remedies of `_remedies` are exported and scored on the same
val images, cheapest first, and the first that passes is kept (`recovered_by`; every try in
`int8_tries`); only when none passes does the gate fail, naming the closest. `compare=` scores
other artifacts of the same model (e.g. Ultralytics' .tflite files) on data= and logs the best.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgecnn.config import ConfigError, Key, Schema
from edgecnn.export.segment import DEFAULT_HEAD, SEG_HEADS

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
    Key("float_layers", 0, "int8: this many more tensors kept in float, those int8 hurts most on the calibration "
        "images (TFLite's quantization debugger)", min=0),
    Key("hard_activations", "decompose", "int8 HardSwish/HardSigmoid (MobileNetV3): as Add, Clip, Mul, which "
        "XNNPACK runs in int8 (decompose), or as TFLite's own ops, which it runs outside its graph: slower, closer "
        "to float (keep)", choices=("decompose", "keep")),
    Key("recover", True, "int8 below the gate: try more calibration images, then HardSwish/HardSigmoid kept, then "
        "the tensors int8 hurts most in float, then a short QAT, and keep the first that passes before refusing"),
    Key("recover_qat_epochs", 2, "epochs of the last int8 remedy, a QAT on data='s train split (`edgecnn qat`'s "
        "keys otherwise) when model= is a checkpoint; 0: no QAT remedy", min=0),
    Key("imgsz", None, "input size: an int or [h, w] (default: the checkpoint's)", type=(int, list)),
    Key("seg_head", DEFAULT_HEAD, "segment: what the graph outputs: argmax (class ids), full (logits at the input "
        "size), stride (logits at the model's stride, the device upsamples)", choices=SEG_HEADS),
    Key("seg_upsample", "linear", "segment, seg_head=stride: how the device upsamples: linear (the logits, then "
        "argmax) or nearest (argmax, then the class ids)", choices=("linear", "nearest")),
    Key("dynamic", False, "ONNX with free batch, height and width (format=onnx only)"),
    Key("opset", 17, "ONNX opset", min=11, max=21),
    Key("calib", None, "directory of calibration images (default: the data.yaml's train images)"),
    Key("calib_images", 64, "calibration images used for int8", min=1),
    Key("data", None, "data.yaml: parity images and the mAP of each artifact"),
    Key("reference", None, "fp32 artifact or checkpoint the int8 gate compares with (default: model)"),
    Key("max_map_drop", 1.0, "int8 gate: largest allowed drop in points of mAP50_95 (detect), mIoU (segment) "
        "or top1 (classify)", min=0.0),
    Key("compare", None, "other artifacts of the same model scored on data= next to this one, comma-separated "
        "(e.g. Ultralytics' best_int8.tflite); the log says which is better", type=(list, type(None))),
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
    if model_path.suffix.lower() == ".tflite":
        raise ConfigError(f"edgecnn export: model={model_path} is a TFLite file, which export does not convert again; "
                          "give the .pt or ONNX it came from (e.g. `edgecnn export model=best.pt format=tflite "
                          f"precision=int8 io=int8 data=my.yaml`), with compare={model_path.name} to score both")
    if cfg["format"] == "onnx" and (cfg["precision"] != "fp32" or cfg["io"] != "float"):
        raise ConfigError("edgecnn export: precision/io apply to format=tflite; an ONNX export is fp32")
    if cfg["format"] == "tflite" and cfg["dynamic"]:
        raise ConfigError("edgecnn export: dynamic=true is for format=onnx; TFLite models have a fixed input")
    if cfg["compare"] and not cfg["data"]:
        raise ConfigError("edgecnn export: compare= scores other artifacts on data=; give data= (a data.yaml)")
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
    parity_key = "parity_argmax_agreement" if source.meta["task"] == "segment" else "parity_max_abs_diff"

    def measured(name: str, path: Path) -> dict:
        backend = load_backend(path, threads=cfg["threads"])
        return {parity_key: check_parity(source, backend, parity_imgs, kind[name]), **_measure(backend, path, cfg)}

    def retry(overrides: dict, tag: str) -> tuple[Path, dict]:
        graph = _qat_onnx(cfg, overrides["qat_epochs"], out / f"qat{tag}") if "qat_epochs" in overrides else onnx_path
        path = _tflite_from(graph, {**cfg, **overrides}, out, size, tag)
        return path, measured("tflite", path)

    report = {name: measured(name, path) for name, path in artifacts.items()}
    gate = _gate(report["tflite"], cfg, source, retry, onnx_path) if cfg["precision"] == "int8" and cfg["data"] else {}
    if "recovered_by" in gate:
        artifacts["tflite"], report["tflite"] = gate.pop("artifact"), gate.pop("row")
    final = report[cfg["format"]]
    if "operating_point" in final:  # on its own (e.g. int8) scores
        store_operating_point(artifacts[cfg["format"]], final, cfg["data"], "val")
    result = {k: v for k, v in final.items() if k != parity_key}
    result.update({parity_key: final[parity_key]}, per_artifact=report,
                  artifacts={k: str(v) for k, v in artifacts.items()})
    if cfg["compare"]:
        result["compared"] = _compare(final, cfg, Path(artifacts[cfg["format"]]))
    return {**result, **gate}


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
                dynamic=cfg["dynamic"], opset=cfg["opset"], seg_head=cfg["seg_head"], seg_upsample=cfg["seg_upsample"])
    return source, onnx_path


def _qat_onnx(cfg: dict, epochs: int, out: Path) -> Path:
    """The int8 remedy of last resort: `edgecnn qat` of the checkpoint for `epochs` on data='s train
    split, as ONNX (`export model=qat.pt` would write the same)."""
    from edgecnn.compress.workflow import qat_checkpoint
    from edgecnn.train.keys import FINETUNE_KEYS, finetune_config

    keys = FINETUNE_KEYS.resolve({"data": cfg["data"], "imgsz": cfg["imgsz"]}, "edgecnn export: QAT remedy")
    result = qat_checkpoint(cfg["model"], finetune_config(keys), out, epochs=epochs, max_drop=100.0)
    return _onnx_from(Path(result["artifacts"]["model"]), cfg, out / "export")[1]


def _tflite_from(onnx_path: Path, cfg: dict, out: Path, size: tuple[int, int], tag: str = "") -> Path:
    from edgecnn.export.parity import image_paths, letterboxed_images
    from edgecnn.export.tflite import export_tflite

    # never the val images the int8 model is then scored on: a data.yaml's train split
    calib = letterboxed_images(image_paths(cfg["calib"] or cfg["data"], cfg["calib_images"], split="train"), size)
    suffix = f"_{cfg['precision']}" + (f"_{cfg['io']}" if cfg["io"] != "float" else "") + tag
    return export_tflite(onnx_path, out / f"{onnx_path.stem}{suffix}.tflite", calib,
                         precision=cfg["precision"], io=cfg["io"], quant_type=cfg["quant_type"],
                         float_ops=cfg["float_ops"], float_layers=cfg["float_layers"],
                         hard_activations=cfg["hard_activations"])


def _measure(backend, path: Path, cfg: dict) -> dict:
    from edgecnn.runtime.timing import measure_latency
    from edgecnn.evaluate import validate

    timing = measure_latency(backend, runs=cfg["runs"])
    row = {"size_mb": path.stat().st_size / 2**20, "latency_ms_p50": timing["latency_ms_p50"],
           "latency_ms_p90": timing["latency_ms_p90"], "threads": cfg["threads"]}
    if cfg["data"] and backend.meta["task"] in ("detect", "classify", "segment"):
        scores = validate(backend, cfg["data"], max_images=cfg["val_images"])
        row.update({k: v for k, v in scores.items() if k != "latency_ms_p50"})
    return row


def _headline_metric(row: dict) -> str:
    """The score the gate and `compare=` rank by: mAP50_95 (detect), mIoU (segment) or top1 (classify)."""
    return next(m for m in ("mAP50_95", "mIoU", "top1") if m in row)


def _compare(row: dict, cfg: dict, ours: Path) -> dict:
    """Score each `compare=` artifact on data= as this one was; log which route scores best. A file
    the runtime refuses (an Ultralytics int8 file that cannot detect) is reported with the reason."""
    from edgecnn.evaluate import validate
    from edgecnn.runtime.backends import load_backend

    metric = _headline_metric(row)
    scores, refused = {str(ours): row[metric]}, {}
    for other in cfg["compare"]:
        try:
            backend = load_backend(other, threads=cfg["threads"])
        except ValueError as err:
            refused[other] = str(err)
            LOG.warning("compare: %s", err)
            continue
        scores[other] = validate(backend, cfg["data"], max_images=cfg["val_images"])[metric]
    best = max(scores, key=scores.get)
    LOG.info("%s on %s: %s; best: %s", metric, cfg["data"],
             ", ".join(f"{Path(p).name} {100 * v:.2f}" for p, v in scores.items()), Path(best).name)
    return {"metric": metric, "scores": scores, "refused": refused, "best": best}


def _gate(int8_row: dict, cfg: dict, source, retry, onnx_path: Path) -> dict:
    """The int8 drop against the reference. Above `max_map_drop`, with `recover`, each remedy
    (`_remedies`, cheapest first) is exported and scored on the same val images; the first that
    passes replaces the artifact (`artifact`, `row`), and every try is recorded (`int8_tries`).
    Refused only when none passes, naming the closest."""
    from edgecnn.evaluate import validate
    from edgecnn.export.torch_backend import load_host_backend
    from edgecnn.metrics.gate import GateError, check_drop

    metric = _headline_metric(int8_row)
    reference = load_host_backend(cfg["reference"], threads=cfg["threads"]) if cfg["reference"] else source
    ref_value = validate(reference, cfg["data"], max_images=cfg["val_images"])[metric]
    record = {"reference": str(cfg["reference"] or cfg["model"]), f"reference_{metric}": ref_value}
    what = f"{cfg['model']} int8"
    try:
        return {**record, f"{metric}_drop": check_drop(metric, ref_value, int8_row[metric], cfg["max_map_drop"], what)}
    except GateError as refusal:
        if not cfg["recover"]:
            raise
        first = refusal
    tries = [{"remedy": "as asked", metric: int8_row[metric], "drop_points": 100 * (ref_value - int8_row[metric])}]
    for n, (label, overrides) in enumerate(_remedies(cfg, onnx_path), 1):
        try:
            path, row = retry(overrides, f"_remedy{n}")
        except (ValueError, RuntimeError) as err:  # a remedy this model cannot take; the next may work
            LOG.warning("int8 remedy %d (%s) failed: %s", n, label, err)
            tries.append({"remedy": label, "error": str(err)})
            continue
        tries.append({"remedy": label, metric: row[metric], "drop_points": 100 * (ref_value - row[metric]),
                      "artifact": str(path)})
        LOG.info("int8 remedy %d (%s): %s %.2f, drop %.2f points", n, label, metric, 100 * row[metric],
                 tries[-1]["drop_points"])
        if tries[-1]["drop_points"] <= cfg["max_map_drop"]:
            LOG.info("int8 recovered by %s: %s", label, path.name)
            return {**record, f"{metric}_drop": tries[-1]["drop_points"], "int8_tries": tries, "recovered_by": label,
                    "artifact": path, "row": row}
    closest = min((t for t in tries if "drop_points" in t), key=lambda t: t["drop_points"])
    summary = "; ".join(f"{t['remedy']}: " + (f"{t['drop_points']:.2f}" if "drop_points" in t else "failed") for t in tries)
    raise GateError(f"{first}; no int8 remedy passes either (drop in points: {summary}); closest: {closest['remedy']}")


def _remedies(cfg: dict, onnx_path: Path) -> list[tuple[str, dict]]:
    """(label, export keys) of the int8 remedies, cheapest first: 4x the calibration images (from
    the train split); then also HardSwish/HardSigmoid kept as TFLite's ops when the graph has them
    (CamVid LR-ASPP: 54.98 -> 56.99 mIoU, float 56.81, but 6.6 -> 23.9 ms); then the 5 and the 20
    tensors int8 hurts most kept in float (not with io=uint8, which selective quantization cannot
    give); last, from a checkpoint, a short QAT (a yolov8n Ultralytics trained on CamVid boxes:
    PTQ 16.17 and at best 16.23 mAP50-95 from the others, float 17.03; 2 QAT epochs 18.78)."""
    import onnx

    from edgecnn.export.hard_activations import HARD_OPS

    more = {"calib_images": 4 * cfg["calib_images"]}
    remedies = [(f"{more['calib_images']} calibration images", more)]
    if cfg["hard_activations"] == "decompose" and any(n.op_type in HARD_OPS for n in onnx.load(str(onnx_path)).graph.node):
        remedies.append((f"{more['calib_images']} calibration images, HardSwish/HardSigmoid kept",
                         {**more, "hard_activations": "keep"}))
    if cfg["io"] != "uint8":
        remedies += [(f"{more['calib_images']} calibration images, {n} most int8-sensitive tensors in float",
                      {**more, "float_layers": cfg["float_layers"] + n}) for n in (5, 20)]
    if cfg["recover_qat_epochs"] and Path(cfg["model"]).suffix.lower() == ".pt":
        remedies.append((f"{cfg['recover_qat_epochs']}-epoch QAT on the train split, {more['calib_images']} "
                         "calibration images", {**more, "qat_epochs": cfg["recover_qat_epochs"]}))
    return remedies
