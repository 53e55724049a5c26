"""Multi-process data-parallel training: torchrun's environment or our own spawn of N processes.

gloo on the CPU, nccl on CUDA. Rank 0 alone writes files; the others follow its decisions
(early stopping) through `broadcast`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_env() -> World | None:
    """The world torchrun describes in WORLD_SIZE / RANK / LOCAL_RANK, or None outside torchrun."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    return World(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"])), int(os.environ["WORLD_SIZE"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(world: World, cuda: bool) -> None:
    """Join the process group (no-op for a single process)."""
    if not world.distributed or dist.is_initialized():
        return
    if cuda:
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=world.rank, world_size=world.size)


def spawn(fn, nprocs: int, *args) -> None:
    """Run `fn(world, *args)` in `nprocs` fresh processes on this machine; re-raises their errors."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    torch.multiprocessing.spawn(_entry, args=(nprocs, fn, args), nprocs=nprocs, join=True)


def _entry(rank: int, nprocs: int, fn, args) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nprocs))
    try:
        fn(World(rank, rank, nprocs), *args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def broadcast(obj, world: World):
    """Rank 0's `obj` on every rank."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj, world: World) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out
