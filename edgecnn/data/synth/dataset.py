"""What the synthetic generators share: their version, the labelling rule, per-image random
generators, and the writer that makes a dataset appear in `out` only when it is complete.

Every image draws from its own generator seeded by (seed, split, index), so a dataset is the same
bytes on every run and any image can be regenerated alone. A finished dataset records its config
in `synth.json`; asking for the same config again reuses it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from edgecnn.fileio import atomic_write_json

LOG = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # the data command's code version: raise it when a generator's output changes
MIN_VISIBILITY = 0.3  # objects less visible than this are left out of detection images and ignored in gt.txt
MIN_BOX_PX = 3
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def progress(iterable, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit="img", leave=False, mininterval=1.0)


def build_dataset(out: str | os.PathLike, config: dict, fill: Callable[[Path], dict], force: bool = False) -> dict:
    """Run `fill(tmp_dir)` inside `out` and move what it made into `out` only when it completes.

    An `out` made with the same config is reused unless `force`. Other files in `out` (a
    pipeline's manifest) stay; entries of the same name that no synthetic dataset made are never
    overwritten. `synth.json`, written last, marks a finished dataset.
    """
    out = Path(out)
    record = out / "synth.json"
    previous = json.loads(record.read_text()) if record.is_file() else None
    if previous and previous.get("config") == config and not force:
        LOG.info("synthetic %s data with the same config already in %s", config["kind"], out)
        return previous
    tmp = out / ".synth-partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    info = {"config": config, **fill(tmp), "seconds": round(time.perf_counter() - start, 2)}
    entries = sorted(p.name for p in tmp.iterdir())
    ours = set(previous.get("entries", [])) if previous else set()
    clash = [name for name in entries if (out / name).exists() and name not in ours]
    if clash:
        shutil.rmtree(tmp)
        raise ValueError(f"{out / clash[0]}: exists and was not made by 'edgecnn data synth'; choose another out=")
    record.unlink(missing_ok=True)
    for name in ours - set(entries):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in entries:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        (tmp / name).rename(target)
    tmp.rmdir()
    info["entries"] = entries
    atomic_write_json(record, info)
    return info


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_IDS[split], index])
