"""Figures for the reports and plots edgecnn writes: matplotlib without a display, PNGs saved atomically."""

from __future__ import annotations

import os
from pathlib import Path

from edgecnn.fileio import atomic_path


def figure(*args, **kwargs):
    """`plt.subplots(*args, **kwargs)` on the Agg backend: (fig, axes), no window, no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path: str | os.PathLike, dpi: float | str = 100, rect=None) -> Path:
    """Lay `fig` out tightly (within `rect`, figure fractions), write it to `path` as a PNG
    (atomically) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=rect)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)
