"""How fast a backend runs and how much memory this process holds.

numpy + stdlib, shipped in the bundle: `edgecnn bench`, `edgecnn export`, the bundle's choice
between candidate artifacts, the compression reports and the device benchmark all measure with
this code, so their figures compare.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgecnn.runtime.backends import Backend


def memory_mb() -> dict[str, float | None]:
    """Current and peak resident memory of this process in MB (Linux /proc; elsewhere the peak
    from getrusage, None where neither is there)."""
    values: dict[str, float | None] = {"rss_mb": None, "rss_peak_mb": None}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values["rss_mb" if key == "VmRSS" else "rss_peak_mb"] = round(int(rest.split()[0]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        try:
            import resource

            values["rss_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        except ImportError:  # Windows
            pass
    return values


def measure_latency(backend: Backend, runs: int = 50, warmup: int = 5, batch: int = 1, seed: int = 0) -> dict:
    """Median/p90/min/mean milliseconds per `predict` call of `batch` letterboxed uint8 images
    (seeded noise), after `warmup` untimed calls; FPS and the process's RSS MB."""
    h, w = backend.input_size
    images = np.random.default_rng(seed).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    for _ in range(warmup):
        backend.predict(images)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        backend.predict(images)
        times[i] = time.perf_counter() - start
    p50 = float(np.median(times) * 1e3)
    return {
        "latency_ms_p50": p50,
        "latency_ms_p90": float(np.percentile(times, 90) * 1e3),
        "latency_ms_min": float(times.min() * 1e3),
        "latency_ms_mean": float(times.mean() * 1e3),
        "fps": batch * 1e3 / p50,
        "rss_mb": memory_mb()["rss_mb"],
        "runs": runs,
        "batch": batch,
    }
