"""The device benchmark: `python -m edgecnn.runtime.bench config=config.json source=video.mp4`.

Measures the models alone (median and p90 of `runs` single calls after warm-up), then the whole
app on `source` for `max_frames` frames (FPS, p50 per stage, capture-to-output latency), and
records peak memory (RSS), CPU temperature before and after where /sys/class/thermal has it,
and what the device is. Writes one JSON report (`out`) and logs a summary.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any


from edgecnn.config import Key, Schema
from edgecnn.fileio import atomic_write_json
from edgecnn.runtime.app import APP_KEYS, app_main, load_config, run as run_app
from edgecnn.runtime.timing import measure_latency, memory_mb

LOG = logging.getLogger("edgecnn.bench")
BENCH_KEYS = Schema(
    APP_KEYS,
    Key("runs", 50, "timed single calls per model, after warm-up", min=1),
    Key("warmup", 5, "untimed calls per model first", min=0),
    Key("out", "bench.json", "JSON report to write"),
)
DEFAULT_FRAMES = 300  # a camera never ends: measure this many frames unless max_frames says otherwise


def model_latency(path: str, threads: int | None, providers: list | None, runs: int, warmup: int) -> dict[str, Any]:
    """Latency of one model alone (batch 1)."""
    from edgecnn.runtime.backends import load_backend

    backend = load_backend(path, threads=threads, providers=providers)
    timing = measure_latency(backend, runs=runs, warmup=warmup)
    return {"file": Path(path).name, "kind": backend.kind, "input_size": list(backend.input_size),
            "precision": backend.meta.get("precision"),
            **{key: round(timing[f"latency_ms_{key}"], 3) for key in ("p50", "p90", "mean")}}


def cpu_temperature_c() -> float | None:
    """The hottest CPU thermal zone (Pi: cpu-thermal, Jetson: CPU-therm, x86: x86_pkg_temp), if readable."""
    temps = []
    for zone in Path("/sys/class/thermal").glob("thermal_zone*"):
        try:
            kind = (zone / "type").read_text().strip().lower()
            if "cpu" in kind or "x86_pkg" in kind or "soc" in kind:
                temps.append(int((zone / "temp").read_text()) / 1000)
        except (OSError, ValueError):
            continue
    return max(temps) if temps else None


def device_info() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "system": platform.platform(),
                            "python": platform.python_version(), "cpu_count": os.cpu_count()}
    for key, path in (("model", "/proc/device-tree/model"), ("jetson", "/etc/nv_tegra_release")):
        try:
            info[key] = Path(path).read_text().strip("\x00\n ").splitlines()[0]
        except (OSError, IndexError):
            pass
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    info["packages"] = package_versions()
    return info


def package_versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("numpy", "opencv-python-headless", "opencv-python", "scipy", "ai-edge-litert", "tflite-runtime",
                 "onnxruntime", "onnxruntime-gpu"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    temp_before = cpu_temperature_c()
    models = {"detector": model_latency(cfg["model"], cfg["threads"], cfg["providers"], cfg["runs"], cfg["warmup"])}
    if cfg["reid"]:
        models["reid"] = model_latency(cfg["reid"], cfg["threads"], cfg["providers"], cfg["runs"], cfg["warmup"])
    app_cfg = {k: v for k, v in cfg.items() if k in APP_KEYS and k != "config"}
    app_cfg["max_frames"] = cfg["max_frames"] or DEFAULT_FRAMES
    app = run_app(app_cfg)
    report = {
        "device": device_info(),
        "model_latency_ms": models,
        "app": {k: v for k, v in app.items() if k != "artifacts"},
        "memory": memory_mb(),
        "temperature_c": {"before": temp_before, "after": cpu_temperature_c()},
        "config": {k: cfg[k] for k in ("model", "reid", "source", "threads", "conf", "iou")},
    }
    atomic_write_json(cfg["out"], report)
    det = models["detector"]
    LOG.info("detector %s: p50 %.2f ms (%s %s); app %.1f FPS, capture-to-output p50 %s ms; peak RSS %s MB; CPU %s °C",
             det["file"], det["p50"], det["kind"], det["precision"], app["fps"], app["latency_ms_p50"],
             report["memory"]["rss_peak_mb"], report["temperature_c"]["after"])
    LOG.info("report written to %s", cfg["out"])
    return report


def main(argv: list[str] | None = None) -> int:
    where = "edgecnn.runtime.bench"

    def run_bench(overrides: dict[str, Any]) -> dict:
        own = {k: overrides.pop(k) for k in ("runs", "warmup", "out") if k in overrides}
        return run(BENCH_KEYS.resolve({**load_config(overrides, where), **own}, where))

    return app_main(argv, where, BENCH_KEYS, run_bench)


if __name__ == "__main__":
    sys.exit(main())
