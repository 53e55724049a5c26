"""How fast the built-in synthetic datasets generate (one process; set OMP_NUM_THREADS=1 for one core).

    python benchmarks/data_synth.py [--small]

Prints images (frames) per second of wall and CPU time for each kind at its demo size and writes
runs/benchmarks/data_synth.json. On a shared machine wall time is noisy; CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from edgecnn.data.synth import synth_classify, synth_detect, synth_reid, synth_video
from edgecnn.fileio import atomic_write_json


def measure(name: str, make, count: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"synth-{name}-"))
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        make(out)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out)
    return {"kind": name, "images": count, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "images_per_s_cpu": round(count / cpu, 1), "megabytes": round(size / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quarter of the demo sizes")
    args = parser.parse_args()
    k = 4 if args.small else 1
    n, frames = 800 // k, 240 // k
    rows = [
        measure("detect 320", lambda out: synth_detect(out, n=n, imgsz=320), n + n // 4),
        measure("video 640x480", lambda out: synth_video(out, sequences=4, frames=frames), 4 * frames),
        measure("classify 32", lambda out: synth_classify(out, n=2000 // k, imgsz=32), 2000 // k + 500 // k),
        measure("reid crops", lambda out: synth_reid(out, n=300 // k, per_id=16), 300 // k * 16),
    ]
    print(f"{'kind':<15}{'images':>8}{'wall s':>9}{'cpu s':>9}{'img/s cpu':>11}{'MB':>7}")
    for r in rows:
        print(f"{r['kind']:<15}{r['images']:>8}{r['wall_s']:>9}{r['cpu_s']:>9}{r['images_per_s_cpu']:>11}{r['megabytes']:>7}")
    path = atomic_write_json(Path("runs/benchmarks/data_synth.json"), {"rows": rows, "time": time.time()})
    print(json.dumps({"written": str(path)}))


if __name__ == "__main__":
    main()
