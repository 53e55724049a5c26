"""MOTChallenge text files: det.txt, gt.txt and tracker results.

One row per box: frame, id, left, top, width, height, conf, x, y, z (frames count from 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgecnn.fileio import atomic_write_text
from edgecnn.runtime.boxes import xyxy_to_tlwh

if TYPE_CHECKING:
    from edgecnn.runtime.tracker import Tracks

COLUMNS = ("frame", "id", "left", "top", "width", "height", "conf", "x", "y", "z")


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """(N, 10) MOT rows of a list of (n_i, 10) blocks; an empty list gives (0, 10)."""
    return np.concatenate(rows) if rows else np.empty((0, len(COLUMNS)))


def read_mot(path: str | os.PathLike, min_confidence: float | None = None) -> np.ndarray:
    """Read a MOTChallenge file into an (N, 10) float64 array, padding short rows with -1.

    `min_confidence` drops rows below it (the devkit drops ground truth with conf 0 using 1).
    A malformed line is a ValueError naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MOT file not found: {path}")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.replace(";", ",").replace(" ", ",").split(",")
        parts = [p for p in parts if p != ""]
        if len(parts) < 6 or len(parts) > 10:
            raise ValueError(f"{path}:{lineno}: expected 6 to 10 comma-separated values, got {len(parts)}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: not a number in '{line}'") from None
        rows.append(values + [-1.0] * (10 - len(values)))
    data = np.asarray(rows, dtype=np.float64).reshape(-1, 10)
    if min_confidence is not None:
        data = data[data[:, 6] >= min_confidence]
    return data


def result_rows(frame: int, tracks: "Tracks") -> np.ndarray:
    """(N, 10) result rows of one frame's tracks: frame, id, tlwh, detection confidence, -1, -1, -1."""
    n = len(tracks)
    return np.column_stack([np.full(n, frame), tracks.ids, xyxy_to_tlwh(tracks.boxes.astype(np.float64)),
                            tracks.scores, -np.ones((n, 3))]).reshape(n, 10)


def format_mot(rows: np.ndarray) -> str:
    """MOTChallenge text for an (N, >=6) array; frame and id as integers, boxes with 2 decimals."""
    lines = []
    for r in np.asarray(rows, dtype=np.float64).reshape(len(rows), -1 if len(rows) else 10):
        r = np.concatenate([r, [-1.0] * (10 - len(r))]) if len(r) < 10 else r[:10]
        lines.append(
            f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.4g},"
            f"{r[7]:.4g},{r[8]:.4g},{r[9]:.4g}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def write_mot(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write rows atomically, sorted by frame then id."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, np.shape(rows)[-1] if len(rows) else 10)
    if len(rows):
        rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    return atomic_write_text(path, format_mot(rows))
