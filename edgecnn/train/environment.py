"""Where and how a run executes: the device, mixed precision, CPU threads beside the loader
workers, the loader workers themselves, and the random state a resumed run restores."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from edgecnn.config import ConfigError
from edgecnn.data.loaders import default_workers
from edgecnn.train import distributed

__all__ = ["amp_dtype", "cpu_threads", "default_workers", "rng_state", "seed_everything", "select_device", "set_rng_state"]


def select_device(name: str, world: distributed.World | None = None) -> torch.device:
    """auto | cpu | cuda | cuda:N; under DDP on CUDA, each process takes its local rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name}: CUDA is not available on this machine (use device=cpu)")
        if name == "cuda" and world is not None and world.distributed:
            name = f"cuda:{world.local_rank}"
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(f"device={name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif name != "cpu":
        raise ConfigError(f"device={name!r}: use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


@contextlib.contextmanager
def cpu_threads(device: torch.device, workers: int, processes: int = 1):
    """On the CPU, run torch on the cores the loader workers and the other processes leave free.

    More OpenMP threads than free cores make every small op wait for a busy core: LeNet-5 trained
    at 40-170 images/s with 2 threads beside 1 loader worker on 2 cores, and at ~1000 with 1.
    Never raises the thread count the caller set; restores it afterwards."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) // max(processes, 1) - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
