"""Latency, throughput and memory of any backend (torch, ONNX Runtime, TFLite) on one input size.

numpy + stdlib, so the device bundle measures itself with the same code as the host.
"""

from __future__ import annotations

import time

import numpy as np

from edgecnn.runtime.backends import Backend


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; else peak RSS from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_latency(backend: Backend, runs: int = 50, warmup: int = 5, batch: int = 1, seed: int = 0) -> dict:
    """Median/p90 milliseconds per `predict` call of `batch` letterboxed uint8 images, FPS, RSS MB."""
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
        "fps": batch * 1e3 / p50,
        "rss_mb": rss_mb(),
        "runs": runs,
        "batch": batch,
    }
