"""`edgecnn bench`: latency (median, p90), FPS and memory of a model for each thread count."""

from __future__ import annotations

from edgecnn.config import ConfigError, Key, Schema

HELP = "measure latency, throughput and memory of a model"
POSITIONAL = ("model",)

KEYS = Schema(
    Key("model", None, "a .pt checkpoint, .onnx or .tflite", required=True),
    Key("threads", [1, 2], "CPU thread counts to measure, e.g. threads=1,2", type=(list, int)),
    Key("imgsz", None, "input size for a .pt checkpoint (an export's size is fixed)", type=int, min=32),
    Key("runs", 50, "timed runs per setting", min=1),
    Key("warmup", 5, "untimed runs first", min=0),
    Key("batch", 1, "images per call", min=1),
)


def run(cfg: dict) -> dict:
    from edgecnn.runtime.timing import measure_latency
    from edgecnn.export.torch_backend import load_host_backend

    threads = cfg["threads"] if isinstance(cfg["threads"], list) else [cfg["threads"]]
    try:
        threads = [int(t) for t in threads]
    except (TypeError, ValueError):
        raise ConfigError(f"edgecnn bench: threads={cfg['threads']!r} must be integers, e.g. threads=1,2") from None
    rows = []
    for n in threads:
        backend = load_host_backend(cfg["model"], threads=n, imgsz=cfg["imgsz"])
        timing = measure_latency(backend, runs=cfg["runs"], warmup=cfg["warmup"], batch=cfg["batch"])
        rows.append({"threads": n, "format": backend.kind, "input_size": list(backend.input_size), **timing})
    best = min(rows, key=lambda r: r["latency_ms_p50"])
    return {"model": str(cfg["model"]), "latency_ms_p50": best["latency_ms_p50"], "latency_ms_p90": best["latency_ms_p90"],
            "fps": best["fps"], "best_threads": best["threads"], "per_threads": rows}
