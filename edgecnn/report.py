"""The pipeline report: `runs/<pipeline>/report.md` and `report.html` from the stage manifests.

Stages report figures in their results; the report does not recompute anything. Conventions it
reads: metrics at the top level of a stage result; `rows` (a list of dicts, one per artifact or
variant, e.g. format, size_mb, mAP50_95, latency_ms_p50) for tables; artifacts ending in `.png`
are shown; an `.mp4` artifact gives a strip of annotated frames.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any

from edgecnn.fileio import atomic_path, atomic_write_text
from edgecnn.plots import figure, save_figure

LOG = logging.getLogger("edgecnn")
ACCURACY_KEYS = ("mAP50_95", "top1", "rank1")
LATENCY_KEYS = ("latency_ms_p50",)


def load_manifests(run_root: Path, stage_names: list[str]) -> dict[str, dict[str, Any]]:
    manifests = {}
    for name in stage_names:
        path = run_root / name / "manifest.json"
        if path.is_file():
            manifests[name] = json.loads(path.read_text())
    return manifests


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return ""
    return str(value)


def stage_rows(manifests: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, m in manifests.items():
        result = m.get("result", {})
        figures = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in list(figures.items())[:6])
        rows.append({"stage": name, "command": m.get("command", ""), "status": m.get("status", ""),
                     "seconds": m.get("seconds", ""), "figures": shown})
    return rows


ARTIFACT_FIGURES = ("format", "precision", "params", "macs", "size_mb", "mAP50_95", "mAP50", "top1", "rank1",
                    "latency_ms_p50", "latency_ms_p90", "fps", "parity_max_abs_diff", "IDF1", "MOTA", "IDs")


def artifact_rows(manifests: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per artifact: the `rows` a stage reported, or the stage itself when it measured one."""
    rows = []
    for name, m in manifests.items():
        result = m.get("result", {})
        if result.get("rows"):
            rows += [{"stage": name, **row} for row in result["rows"] if isinstance(row, dict)]
        elif any(k in result for k in ("latency_ms_p50", "size_mb", "IDF1")):
            rows.append({"stage": name, "name": name, **{k: result[k] for k in ARTIFACT_FIGURES if k in result}})
    return rows


def accuracy_latency_plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    points = []
    for row in rows:
        acc = next((row[k] for k in ACCURACY_KEYS if isinstance(row.get(k), (int, float))), None)
        lat = next((row[k] for k in LATENCY_KEYS if isinstance(row.get(k), (int, float))), None)
        if acc is not None and lat is not None:
            label = row.get("name") or row.get("artifact") or row.get("format") or row["stage"]
            points.append((float(lat), float(acc), str(label)))
    if not points:
        return None
    fig, ax = figure(figsize=(6.4, 4.2), dpi=110)
    for lat, acc, label in points:
        ax.scatter(lat, acc * 100 if acc <= 1 else acc, s=48)
        ax.annotate(label, (lat, acc * 100 if acc <= 1 else acc), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("latency p50 (ms, this CPU)")
    ax.set_ylabel("accuracy (mAP@0.5:0.95 or top-1, %)")
    ax.set_title("accuracy vs latency across artifacts")
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi="figure")


def frame_strip(video: Path, path: Path, count: int = 4, width: int = 1280) -> Path | None:
    """A row of `count` frames evenly spaced through an annotated video."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(str(video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for index in np.linspace(0, max(total - 1, 0), count).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        if ok:
            frames.append(frame)
    cap.release()
    if not frames:
        return None
    tile_w = width // len(frames)
    tiles = [cv2.resize(f, (tile_w, round(f.shape[0] * tile_w / f.shape[1]))) for f in frames]
    strip = np.concatenate(tiles, axis=1)
    ok, png = cv2.imencode(".png", strip)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png.tobytes())
    return path


def collect_images(manifests: dict[str, dict[str, Any]], run_root: Path) -> list[tuple[str, Path]]:
    """Every PNG a stage wrote in its directory (curves, PR, confusion, plots) and a strip of
    frames from each tracking or segmentation stage's annotated video."""
    images = []
    for name, m in manifests.items():
        stage_dir = run_root / name
        images += [(f"{name}: {png.stem.replace('_', ' ')}", png) for png in sorted(stage_dir.glob("*.png"))]
        if m.get("command") not in ("track", "segment"):
            continue
        for value in m.get("result", {}).get("artifacts", {}).values():
            path = Path(str(value))
            if path.suffix in (".mp4", ".avi") and path.is_file():
                strip = frame_strip(path, run_root / f"frames_{name}.png")
                if strip:
                    images.append((f"{name}: annotated frames ({path.name})", strip))
    return images


def headline_cells(headline: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, value) pairs; fractions in 0..1 named like accuracies are shown as percentages."""
    cells = []
    for item in headline:
        value = item.get("value")
        if isinstance(value, float) and item.get("percent"):
            text = f"{value * 100:.1f}%"
        elif isinstance(value, (int, float)) and abs(value) >= 100:
            text = f"{value:,.0f}"
        elif isinstance(value, float):
            text = f"{value:.3g}"
        else:
            text = "–" if value is None else str(value)
        cells.append((str(item.get("label", "")), text + (f" {item['unit']}" if item.get("unit") else "")))
    return cells


def _table_md(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_none_\n"
    cols = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], (dict, list))))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _table_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cols = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], (dict, list))))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem;font-size:0.9rem}
th,td{border:1px solid #ccc;padding:0.3rem 0.6rem;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.5rem;vertical-align:top}
figure img{max-width:560px;border:1px solid #ddd}figure.wide img{max-width:1150px}
figcaption{font-size:0.85rem;color:#555}
.headline{display:flex;flex-wrap:wrap;gap:0.8rem;margin:1rem 0 1.5rem}
.cell{border:1px solid #ddd;border-radius:6px;padding:0.6rem 0.9rem;min-width:9rem;background:#fafafa}
.cell b{display:block;font-size:1.5rem}.cell span{font-size:0.8rem;color:#555}"""


def write_report(run_root: str | Path, pipeline_name: str, stage_names: list[str],
                 headline: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Write report.md and report.html (images inlined, so the page stands alone).

    `headline` is a list of {label, value, unit?, percent?}: the figures shown first."""
    run_root = Path(run_root)
    manifests = load_manifests(run_root, stage_names)
    stages, artifacts = stage_rows(manifests), artifact_rows(manifests)
    plot = accuracy_latency_plot(artifacts, run_root / "accuracy_vs_latency.png")
    images = ([("accuracy vs latency", plot)] if plot else []) + collect_images(manifests, run_root)
    total = sum(float(m.get("seconds", 0)) for m in manifests.values())
    title = f"edgecnn report: {pipeline_name}"
    intro = f"{len(manifests)} stages, {total / 60:.1f} minutes of stage time."
    cells = headline_cells(headline or [])

    md = [f"# {title}\n", intro + "\n"]
    if cells:
        md += ["| " + " | ".join(c[0] for c in cells) + " |", "|" + "---|" * len(cells),
               "| " + " | ".join(c[1] for c in cells) + " |\n"]
    md += ["## Stages\n", _table_md(stages), "## Artifacts\n", _table_md(artifacts)]
    md += [f"![{cap}]({p.relative_to(run_root) if p.is_relative_to(run_root) else p})\n" for cap, p in images]
    atomic_write_text(run_root / "report.md", "\n".join(md))

    figures = []
    for caption, path in images:
        data = base64.b64encode(path.read_bytes()).decode()
        cls = ' class="wide"' if "frames" in caption else ""
        figures.append(f'<figure{cls}><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    boxes = "".join(f"<div class='cell'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>" for k, v in cells)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"
            f"<div class='headline'>{boxes}</div>"
            f"<h2>Stages</h2>{_table_html(stages)}<h2>Artifacts</h2>{_table_html(artifacts)}"
            f"<h2>Figures</h2>{''.join(figures)}</body></html>")
    atomic_write_text(run_root / "report.html", page)
    LOG.info("report: %s", run_root / "report.html")
    return {"report_md": str(run_root / "report.md"), "report_html": str(run_root / "report.html")}
