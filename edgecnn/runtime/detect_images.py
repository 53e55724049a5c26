"""Detections of image files as JSON lines: `python -m edgecnn.runtime.detect_images config=config.json images=list.txt`.

What a device answers for a fixed set of images, so that the same bundle's outputs on two machines
(a Raspberry Pi or its emulation, and the host) can be scored and compared on the host
(`edgecnn check-device`). One line per image, in the list's order: its path as listed, its
detections in image pixels (`xyxy`, `scores`, `classes`) and the model's milliseconds.
Thresholds default to validation's (conf 0.001, iou 0.6, 300 detections), so mAP can be computed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from edgecnn.config import Key, Schema, parse_overrides, run_reporting_errors

LOG = logging.getLogger("edgecnn.detect_images")
KEYS = Schema(
    Key("config", None, "a bundle's config.json (gives the model, threads and providers)"),
    Key("model", None, "detector artifact (default: the config's)"),
    Key("images", None, "text file of image paths, one a line, relative to the file", required=True),
    Key("out", "-", "JSON lines to write ('-': stdout)"),
    Key("conf", 0.001, "lowest score kept", min=0.0, max=1.0),
    Key("iou", 0.6, "NMS IoU threshold", min=0.0, max=1.0),
    Key("max_det", 300, "most detections per image", min=1),
    Key("threads", None, "interpreter threads (default: the config's)", type=int, min=1),
)


def read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"image list not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def detect_images(cfg: dict, write) -> int:
    """Run the detector on every listed image, calling `write(line)` per image; the number of images."""
    import cv2

    from edgecnn.runtime.app import load_config
    from edgecnn.runtime.backends import load_backend
    from edgecnn.runtime.detector import Detector

    app = load_config({k: cfg[k] for k in ("config", "model") if cfg[k]}, "edgecnn.runtime.detect_images")
    backend = load_backend(app["model"], threads=cfg["threads"] or app["threads"], providers=app["providers"])
    detector = Detector(backend, conf=cfg["conf"], iou=cfg["iou"], max_det=cfg["max_det"])
    listing = Path(cfg["images"])
    names = read_list(listing)
    for name in names:
        frame = cv2.imread(str(listing.parent / name), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"{listing}: cannot read image {name}")
        tic = time.perf_counter()
        det = detector.detect(frame)
        ms = (time.perf_counter() - tic) * 1e3
        write(json.dumps({"image": name, "xyxy": det.xyxy.astype(float).round(3).tolist(), "scores": det.scores.tolist(),
                          "classes": det.classes.tolist(), "ms": round(ms, 3)}) + "\n")
    return len(names)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    where = "edgecnn.runtime.detect_images"

    def work() -> int:
        cfg = KEYS.resolve(parse_overrides(argv, where), where)
        if not cfg["config"] and not cfg["model"]:
            raise ValueError(f"{where}: give config=<bundle config.json> or model=<artifact>")
        if cfg["out"] == "-":
            return detect_images(cfg, sys.stdout.write)
        from edgecnn.fileio import atomic_write_text

        lines: list[str] = []
        count = detect_images(cfg, lines.append)
        atomic_write_text(cfg["out"], "".join(lines))
        return count

    code, count = run_reporting_errors(where, work)
    if not code:
        LOG.info("%d images", count)
    return code


if __name__ == "__main__":
    sys.exit(main())
