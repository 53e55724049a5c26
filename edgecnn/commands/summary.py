"""`edgecnn summary model=<name|checkpoint.pt> imgsz=N`: per-layer shapes, parameters, memory, MACs."""

from __future__ import annotations

from pathlib import Path

from edgecnn.config import ConfigError, Key, Schema

HELP = "per-layer table of output shapes, parameters, activation memory and MACs, with totals"
POSITIONAL = ("model",)
KEYS = Schema(
    Key("model", None, "a registered model name (e.g. yolo-n, vgg16) or a checkpoint path", type=str, required=True),
    Key("imgsz", None, "input size: N or [h, w] (default: the checkpoint's, or the model's usual size)", type=(int, list)),
    Key("num_classes", None, "number of classes, for a model name", type=int, min=1),
    Key("in_channels", None, "input channels, for a model name", type=int, min=1),
)


def _input_hw(imgsz, fallback) -> tuple[int, int]:
    from edgecnn.runtime.preprocess import input_hw

    try:
        return input_hw(fallback if imgsz is None else imgsz)
    except ValueError as err:
        raise ConfigError(f"edgecnn summary: {err}") from None


def _load(cfg: dict):
    """The model on the meta device (shapes only, no compute), its input (h, w) and its label."""
    import torch
    from torch.nn.modules.conv import _ConvNd

    from edgecnn.models import build_model, get_entry, list_models, load_checkpoint

    spec = cfg["model"]
    if spec in list_models():
        hw = _input_hw(cfg["imgsz"], get_entry(spec).imgsz)
        kwargs = {k: cfg[k] for k in ("num_classes", "in_channels") if cfg[k] is not None}
        if not get_entry(spec).accepts("num_classes"):
            kwargs.pop("num_classes", None)
        with torch.device("meta"):
            model = build_model(spec, imgsz=hw[0], **kwargs)
    elif Path(spec).suffix in (".pt", ".pth") or Path(spec).exists():
        if cfg["num_classes"] is not None or cfg["in_channels"] is not None:
            raise ConfigError("edgecnn summary: num_classes and in_channels apply to model names; a checkpoint has its own")
        model, meta = load_checkpoint(spec)
        model.to("meta")
        hw = _input_hw(cfg["imgsz"], meta.get("imgsz") or get_entry(model.arch["name"]).imgsz)
    else:
        get_entry(spec)  # raises the unknown-model error with the closest names
    channels = next(m.in_channels for m in model.modules() if isinstance(m, _ConvNd))
    return model, (channels, *hw)


def run(cfg: dict) -> dict:
    from edgecnn.models.summary import summarize

    model, shape = _load(cfg)
    result = summarize(model, shape)
    return {"model": model.arch["name"], "task": model.task, "input_shape": list(shape), **result}


def print_human(result: dict) -> None:
    """The per-layer table, then the totals."""
    head = ("layer", "type", "output shape", "params", "act KiB", "MMACs")
    rows = [
        (r["name"], r["type"], "x".join(map(str, r["output_shape"])) if r["output_shape"] and isinstance(r["output_shape"][0], int)
         else " ".join("x".join(map(str, s)) for s in r["output_shape"]),
         f"{r['params']:,}", f"{r['activation_bytes'] / 1024:,.1f}", f"{r['macs'] / 1e6:,.2f}")
        for r in result["layers"]
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    for i, row in enumerate([head, *rows]):
        print("  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    c, h, w = result["input_shape"]
    print(f"\n{result['model']} ({result['task']}), input {c}x{h}x{w}")
    print(f"parameters          {result['params']:,}")
    print(f"weights fp32 / int8 {result['weight_mb_fp32']:.2f} MB / {result['weight_mb_int8']:.2f} MB")
    print(f"peak activations    {result['peak_activation_mb']:.2f} MB fp32, {result['peak_activation_mb_int8']:.2f} MB int8 (per image)")
    print(f"compute             {result['macs'] / 1e6:,.1f} MMACs = {result['gmacs']:.3f} GMACs ({2 * result['gmacs']:.3f} GFLOPs)")
    print(f"note: {result['not_counted']}")
