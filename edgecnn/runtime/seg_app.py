"""The on-device segmentation app: camera → segmentation model → class map → overlay, areas, zones.

`python -m edgecnn.runtime.seg_app model=seg.tflite source=0 save=out.mp4 jsonl=areas.jsonl
zones=floor.yaml serve=127.0.0.1:8080` (`edgecnn segment` on the host; a bundle's run.sh for a
segmentation model). Each frame gives each class's share of the frame and of each zone of the
counts file (`runtime.counting`'s `zones:` entries; `classes:` there limits the classes reported).
Sources, sinks, the live view, the config file and the stage timing are the tracking app's.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from edgecnn.config import ConfigError, Key, Schema
from edgecnn.runtime.app import APP_KEYS, StageTimes, TimedBackend, app_main, load_config, open_each
from edgecnn.runtime.segmenter import UPSAMPLING, Segmenter, area_fractions, check_segmenter, overlay, palette

LOG = logging.getLogger("edgecnn.seg_app")
STAGES = ("capture", "pre", "inference", "post", "areas")
SHARED_KEYS = ("config", "model", "source", "save", "jsonl", "show", "threads", "providers", "max_frames", "live",
               "reconnect_timeout", "log_every", "serve", "token_file", "serve_fps", "serve_quality")
SEG_KEYS = Schema(
    *(APP_KEYS.keys[name] for name in SHARED_KEYS),
    Key("zones", None, "YAML of zones (zones: entries with name, points, classes): each class's share of each zone"),
    Key("upsample", None, "logits at the model's stride: linear or nearest (default: the model's seg_upsample)",
        choices=UPSAMPLING),
    Key("alpha", 0.45, "opacity of the class colours over the frame", min=0.0, max=1.0),
)


@dataclass
class SegmentResult:
    """One frame's class map (H, W) and its figures: class name → share of the frame, zone → shares."""

    classes: np.ndarray
    areas: dict[str, float]
    zones: dict[str, dict[str, float]]


class Zones:
    """The zones of a counts file as pixel masks of the frame size (made once per size)."""

    def __init__(self, path: str, names: list[str]):
        from edgecnn.runtime.counting import load_regions

        regions = load_regions([path], names)
        lines = [r.name for r in regions if r.kind == "line"]
        if lines:
            raise ConfigError(f"zones={path}: the segmentation app reports zones, not lines ({', '.join(lines)})")
        self.regions, self.names, self._masks, self._size = regions, names, [], None

    def masks(self, size: tuple[int, int]) -> list[np.ndarray]:
        if size != self._size:
            self._masks, self._size = [], size
            for region in self.regions:
                region.fit(*size)
                mask = np.zeros(size[::-1], np.uint8)
                cv2.fillPoly(mask, [np.round(region.pixels).astype(np.int32)], 1)
                self._masks.append(mask.astype(bool))
        return self._masks

    def shares(self, classes: np.ndarray) -> dict[str, dict[str, float]]:
        out = {}
        for region, mask in zip(self.regions, self.masks(classes.shape[1::-1])):
            shares = area_fractions(classes, len(self.names), mask)
            wanted = region.classes if region.classes is not None else range(len(self.names))
            out[region.name] = {self.names[c]: round(float(shares[c]), 4) for c in wanted}
        return out


class SegmentationPipeline:
    """Segmenter (+ zones) on one frame at a time, timing every stage into `times`."""

    def __init__(self, cfg: Mapping[str, Any]):
        from edgecnn.runtime.backends import load_backend

        providers = [tuple(p) if isinstance(p, list) else p for p in cfg["providers"]] if cfg["providers"] else None
        backend = load_backend(cfg["model"], threads=cfg["threads"], providers=providers)
        try:
            check_segmenter(backend, f"model={cfg['model']}")
        except ValueError as err:
            hint = " (run a detector with `edgecnn track`)" if backend.meta["task"] == "detect" else ""
            raise ConfigError(f"{err}{hint}") from None
        self.timed = TimedBackend(backend)
        self.segmenter = Segmenter(self.timed, upsample=cfg["upsample"])
        self.names = self.segmenter.names
        self.zones = Zones(cfg["zones"], self.names) if cfg["zones"] else None
        self.times = StageTimes(STAGES)

    def process(self, frame) -> SegmentResult:
        times, timed = self.times, self.timed
        picked = time.monotonic()
        classes = self.segmenter.segment(frame.image)
        done = time.monotonic()
        times.add_model_call(frame.timestamp, picked, timed, done)
        shares = area_fractions(classes, len(self.names))
        result = SegmentResult(classes, {n: round(float(s), 4) for n, s in zip(self.names, shares)},
                               self.zones.shares(classes) if self.zones else {})
        times.add("areas", time.monotonic() - done)
        return result


class SegmentAnnotator:
    """The frame under its class colours, a legend of the largest classes, zones and FPS."""

    def __init__(self, names: list[str], zones: Zones | None, alpha: float):
        self.names, self.zones, self.alpha = names, zones, alpha
        self.colors = palette(len(names))

    def draw(self, image: np.ndarray, result: SegmentResult, fps: float | None, latency_ms: float | None) -> np.ndarray:
        from edgecnn.runtime.sinks import Annotator

        out = overlay(image, result.classes, self.colors, self.alpha)
        top = sorted(result.areas.items(), key=lambda item: -item[1])[:5]
        for i, (name, share) in enumerate(top):
            color = tuple(int(c) for c in self.colors[self.names.index(name)])
            Annotator._label(out, f"{name} {share:.0%}", (4, 48 + 22 * i), color)
        if self.zones is not None:
            for region in self.zones.regions:
                points = np.round(region.pixels).astype(np.int32)
                cv2.polylines(out, [points], True, (255, 255, 255), 2, cv2.LINE_AA)
                name, share = max(result.zones[region.name].items(), key=lambda item: item[1], default=("", 0.0))
                x, y = points.mean(axis=0)
                Annotator._label(out, f"{region.name}: {name} {share:.0%}", (int(x), int(y)), (60, 60, 60))
        if fps is not None:
            latency = f"  {latency_ms:.0f} ms" if latency_ms is not None else ""
            Annotator._label(out, f"{fps:.1f} FPS{latency}", (4, 24), (40, 40, 40))
        return out


def open_sinks(cfg: Mapping[str, Any], names: list[str], fps: float) -> list:
    from edgecnn.runtime.sinks import SegmentJsonlSink, VideoSink, WindowSink

    return open_each([(cfg["show"], WindowSink), (cfg["save"], lambda: VideoSink(cfg["save"], fps)),
                      (cfg["jsonl"], lambda: SegmentJsonlSink(cfg["jsonl"], names))])


def run(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Segment `cfg["source"]` until it ends, `max_frames`, q in the window, Ctrl-C or SIGTERM."""
    from edgecnn.runtime.sources import open_source

    cfg = load_config(cfg, "segment", SEG_KEYS)
    pipeline = SegmentationPipeline(cfg)
    live_view = contextlib.nullcontext()
    if cfg["serve"]:
        from edgecnn.runtime.web import open_live_view

        live_view = open_live_view(cfg)
    annotator, times = SegmentAnnotator(pipeline.names, pipeline.zones, cfg["alpha"]), pipeline.times
    frames, fps, latency, areas = 0, None, None, np.zeros(len(pipeline.names))
    error: BaseException | None = None
    with live_view as view, \
            open_source(cfg["source"], live=cfg["live"], reconnect_timeout=cfg["reconnect_timeout"]) as source:
        sinks = open_sinks(cfg, pipeline.names, source.fps or 30.0)
        annotate = any(s.annotates for s in sinks)
        LOG.info("segmenting %s with %s", source.name, Path(cfg["model"]).name)
        start = last_log = done_at = time.monotonic()
        try:
            for frame in source:
                times.add("wait", time.monotonic() - done_at)
                result = pipeline.process(frame)
                areas += list(result.areas.values())
                wanted = annotate or (view is not None and view.wants_frame())
                annotated = annotator.draw(frame.image, result, fps, latency) if wanted else None
                for sink in sinks:
                    sink.write(frame, result, annotated)
                if view is not None:
                    view.publish(annotated, frame.captured_at,
                                 functools.partial(live_figures, times, frames, fps, latency, result, source, cfg))
                done_at = time.monotonic()
                times.add("capture_to_output", done_at - frame.timestamp)
                frames, latency = frames + 1, 1000 * (done_at - frame.timestamp)
                fps = frames / max(done_at - start, 1e-9)
                if cfg["log_every"] and done_at - last_log >= cfg["log_every"]:
                    last_log = done_at
                    LOG.info("%d frames  %.1f FPS  latency %.0f ms", frames, fps, latency)
                if (cfg["max_frames"] and frames >= cfg["max_frames"]) or any(getattr(s, "stopped", False) for s in sinks):
                    break
        except KeyboardInterrupt:
            LOG.info("stopped after %d frames", frames)
        except BaseException as err:
            error = err
            raise
        finally:
            for sink in sinks:
                sink.close(error)
        elapsed = time.monotonic() - start
    return final_report(frames, elapsed, times, source, dict(zip(pipeline.names, areas / max(frames, 1))), cfg)


def final_report(frames: int, elapsed: float, times: StageTimes, source, mean_areas: dict[str, float],
                 cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The run's figures (logged too): FPS, latency, each stage's p50, each class's mean share."""
    report = {
        "frames": frames, "fps": round(frames / elapsed, 2) if frames else 0.0,
        "latency_ms_p50": times.ms("capture_to_output"), "latency_ms_p95": times.ms("capture_to_output", 95),
        **{f"{stage}_ms_p50": times.ms(stage) for stage in STAGES if times.samples[stage]},
        "wait_ms_p50": times.ms("wait"), "dropped": source.dropped, "reconnects": source.reconnects,
        "mean_areas": {name: round(float(share), 4) for name, share in mean_areas.items()},
        "artifacts": {k: str(cfg[k]) for k in ("save", "jsonl") if cfg[k] and cfg[k] != "-"},
    }
    LOG.info("%d frames at %.1f FPS; capture-to-output p50 %s ms; stage p50 (ms): %s", frames, report["fps"],
             report["latency_ms_p50"], "  ".join(f"{s} {report[f'{s}_ms_p50']:.1f}" for s in STAGES
                                                 if report.get(f"{s}_ms_p50") is not None))
    return report


def live_figures(times: StageTimes, frames: int, fps: float | None, latency: float | None, result: SegmentResult,
                 source, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What the live view shows: the run's figures so far, stage latencies over the last 100 frames."""
    recent = {s: times.recent_ms(s) for s in STAGES if times.samples[s]}
    return {"frames": frames, "fps": round(fps, 2) if fps else None, "latency_ms": latency and round(latency, 1),
            "stages_ms": recent, "dropped": source.dropped, "source": source.name, "model": Path(cfg["model"]).name,
            "areas": result.areas, "zones": result.zones}


def main(argv: list[str] | None = None) -> int:
    return app_main(argv, "edgecnn.runtime.seg_app", SEG_KEYS, run)


if __name__ == "__main__":
    sys.exit(main())
