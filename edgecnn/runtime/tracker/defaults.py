"""Which thresholds a tracking run uses: the user's, else the detector's own operating point
(`meta["operating_point"]`, measured on its validation data at export or by `edgecnn val
save_operating_point=true`, see edgecnn.metrics.operating_point), else DETECTOR_FALLBACK for a
detector that carries none (an Ultralytics ONNX as exported, an older artifact). TRACKER_KEYS'
defaults were chosen on MOT15's public detections, whose scores all lie above 0.5: `detections=`
mode keeps those; on a YOLO's sigmoid scores they start too few tracks."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Mapping

from edgecnn.config import Schema
from edgecnn.runtime.tracker.tracker import TRACKER_KEYS

LOG = logging.getLogger("edgecnn.tracker")
# The keys whose right value depends on the detector's score scale and recall.
FROM_DETECTOR = ("track_conf", "low_conf", "n_init")
# A YOLO-style detector without a measured operating point: Ultralytics' ByteTrack thresholds
# (new and high 0.25, low 0.1) and deep_sort's n_init. On the held-back synthetic videos with our
# int8 yolo-n stripped of its operating point: IDF1 / MOTA 77.0 / 72.1 (final) and 65.2 / 44.1
# (epoch 5), against 74.3 / 64.3 and 53.6 / 36.6 with the MOT15 defaults and 79.3 / 70.9 and
# 68.0 / 47.2 with its own operating point.
DETECTOR_FALLBACK = {"track_conf": 0.25, "low_conf": 0.1, "n_init": 3}


def detector_dependent(schema: Schema = TRACKER_KEYS) -> Schema:
    """`schema` with the FROM_DETECTOR keys defaulting to None ("from the model"): `resolve` fills them."""
    keys = []
    for name, key in schema.keys.items():
        if name in FROM_DETECTOR:
            key = replace(key, default=None, type=key.types[0],
                          help=f"{key.help} (default: the model's operating point, else {DETECTOR_FALLBACK[name]})")
        keys.append(key)
    return Schema(*keys)


def resolve(cfg: Mapping[str, Any], meta: Mapping[str, Any] | None = None, model: str = "the model") -> dict[str, Any]:
    """`cfg` with every FROM_DETECTOR key that is None taken from `meta`'s operating point, else
    DETECTOR_FALLBACK when `meta` is a detector's, else TRACKER_KEYS' defaults (no detector:
    public detections), and `conf` (the detector's floor, if None) set to the resolved `low_conf`, so
    the detector keeps every box the tracker can use. Logs each value and where it came from."""
    cfg, point = dict(cfg), dict((meta or {}).get("operating_point") or {})
    origin = {}
    for key in FROM_DETECTOR:
        if cfg.get(key) is not None:
            origin[key] = "set"
        elif key in point:
            cfg[key], origin[key] = TRACKER_KEYS.keys[key].check(point[key], f"{model} operating_point"), "model"
        elif meta is not None:
            cfg[key], origin[key] = DETECTOR_FALLBACK[key], "fallback"
        else:
            cfg[key], origin[key] = TRACKER_KEYS.keys[key].default, "built-in"
    if "conf" in cfg and cfg["conf"] is None:
        cfg["conf"], origin["conf"] = cfg["low_conf"], "= low_conf"
    where = {"set": "set by you", "model": f"{model}'s operating point", "fallback": "YOLO fallback",
             "built-in": "built-in (MOT15)"}
    note = ""
    if "model" in origin.values() and "measured_on" in point:
        note = f"; measured on {point['measured_on']}"
    elif "fallback" in origin.values():
        note = (f"; {model} carries no operating point: `edgecnn val model=… data=… save_operating_point=true` "
                "measures one")
    LOG.info("tracker thresholds: %s%s", ", ".join(f"{k}={cfg[k]} ({where.get(o, o)})" for k, o in origin.items()), note)
    return cfg
