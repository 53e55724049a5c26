"""The training loop shared by detectors, classifiers and embedders.

`Trainer(model, cfg, out_dir, meta).fit()` trains any torch model on the data in `cfg["data"]`
with the keys of `TRAIN_KEYS`: device and AMP, DDP over `devices` processes (or torchrun),
optimizer groups, warmup and schedule, gradient clipping, EMA, early stopping, `last.pt` /
`best.pt` with the full train state so a resumed run continues exactly, results.csv/json and
plots. `prune` and `qat` reuse it to fine-tune their models; `evaluate` gives the validation
metric of a model for the accuracy gates.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from edgecnn.config import ConfigError
from edgecnn.models.contract import Freezable
from edgecnn.models.registry import get_entry
from edgecnn.fileio import atomic_write_json, atomic_write_text
from edgecnn.runtime.preprocess import input_hw
from edgecnn.train import distributed
from edgecnn.train.environment import (amp_dtype, cpu_threads, default_workers, rng_state, seed_everything, select_device,
                                       set_rng_state)
from edgecnn.train.keys import FINETUNE_KEYS, FITNESS, TRAIN_KEYS
from edgecnn.train.optim import build_optimizer, build_scheduler
from edgecnn.train.tasks import Task, make_task, read_split, to_input

LOG = logging.getLogger("edgecnn")

def frozen_parameters(model: nn.Module, freeze) -> list[str]:
    """Names of the parameters `freeze` selects: 'backbone' (the model's backbone, or everything
    but its last layer when it has none) or N (the first N top-level modules)."""
    if freeze is None:
        return []
    names = [n for n, _ in model.named_parameters()]
    if isinstance(model, Freezable):  # models of one indexed layer list (YOLOv8/11) say what they mean
        prefixes = tuple(model.freeze_prefixes(freeze))
        return [n for n in names if n.startswith(prefixes)]
    if freeze == "backbone":
        if hasattr(model, "backbone"):
            return [f"backbone.{n}" for n, _ in model.backbone.named_parameters()]
        last = [m for m in model.modules() if list(m.parameters(recurse=False))][-1]
        keep = {id(p) for p in last.parameters()}
        return [n for n, p in model.named_parameters() if id(p) not in keep]
    try:
        count = int(freeze)
    except ValueError:
        raise ConfigError(f"freeze={freeze!r}: use 'backbone' or a number of top-level modules") from None
    children = [name for name, _ in model.named_children()][:count]
    return [n for n in names if n.split(".")[0] in children]


class Trainer:
    """Train `model` on `cfg["data"]`, writing into `out_dir`.

    `cfg` holds TRAIN_KEYS (missing ones take their defaults). `meta` is the checkpoint metadata
    (names, imgsz, mean, std ... filled in from the data and model when absent). `pretrained`
    names the parameters loaded from `weights` (they get `finetune_lr_scale`). `resume_state` is
    the `train_state` of a `last.pt` to continue from. `save=False` writes no checkpoints (for
    wrapped models that `save_checkpoint` cannot rebuild); `callbacks` are called as
    `fn(trainer, epoch, row)` after every epoch on rank 0.

    After `fit()`, `self.model` holds the best weights (the EMA's when `ema` is on).
    """

    def __init__(self, model: nn.Module, cfg: dict, out_dir, meta: dict | None = None, pretrained=(),
                 resume_state: dict | None = None, save: bool = True, callbacks=()):
        unknown = [k for k in cfg if k not in TRAIN_KEYS and k not in ("model", "out", "resume")]
        if unknown:
            raise ConfigError(f"Trainer: unknown key(s) {', '.join(unknown)}{TRAIN_KEYS.suggest(unknown[0])}")
        self.cfg = {**TRAIN_KEYS.defaults(), **cfg}
        FINETUNE_KEYS.check_required(self.cfg, "Trainer")
        self.model, self.out = model, Path(out_dir)
        self.task_name = getattr(model, "task", None)
        if self.task_name not in FITNESS:
            raise ValueError(f"the model has task {self.task_name!r}; expected one of {', '.join(FITNESS)}")
        self.meta = dict(meta or {})
        self.pretrained, self.resume_state, self.save, self.callbacks = set(pretrained), resume_state, save, callbacks

    # ------------------------------------------------------------------ entry
    def fit(self) -> dict:
        world = distributed.from_env()
        if world is None and self.cfg["devices"] > 1:
            distributed.spawn(_fit_in_process, self.cfg["devices"], self)
            return self._after_spawn()
        return self._fit(world or distributed.World())

    def _after_spawn(self) -> dict:
        summary = _read_json(self.out / "results.json")["summary"]
        best = self.out / "best.pt"
        if best.is_file():
            from edgecnn.models import read_checkpoint

            self.model.load_state_dict(read_checkpoint(best)["state_dict"])
        return summary

    # ------------------------------------------------------------------ setup
    def _fit(self, world: distributed.World) -> dict:
        cfg = self.cfg
        device = select_device(cfg["device"], world)
        distributed.init(world, device.type == "cuda")
        self.world, self.device = world, device
        seed_everything(cfg["seed"])
        train_split = read_split(self.task_name, cfg["data"], "train")
        val_split = read_split(self.task_name, cfg["data"], "val")
        names = self.meta.get("names")
        if names and tuple(train_split.names) != tuple(names):
            raise ValueError(f"{cfg['data']}: classes {list(train_split.names)} differ from the model's {list(names)}")
        self.task, self.workers = task, workers = prepare_task(self.model, cfg, self.meta, train_split, device)
        model = self.model
        if cfg["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        self.train_split, self.val_split = train_split, val_split
        per_rank_batch = max(cfg["batch"] // world.size, 1)
        self.per_rank_batch = per_rank_batch
        self.train_loader = self._train_loader(mosaic=True)
        self.val_loader = task.loader(task.val_dataset(val_split), per_rank_batch * 2, workers, False, cfg["seed"]) if world.main else None

        # Parameters the model itself holds fixed (e.g. the detector's DFL expectation weights)
        # stay fixed; `freeze` only adds to them.
        self.fixed = {name for name, p in model.named_parameters() if not p.requires_grad}
        self.frozen = set(frozen_parameters(model, cfg["freeze"]))
        for name, p in model.named_parameters():
            p.requires_grad_(name not in self.frozen and name not in self.fixed)
        params = nn.ModuleDict({"model": model, **{f"extra{i}": m for i, m in enumerate(task.extra_modules())}})
        scaled = {f"model.{n}" for n in self.pretrained}
        self.optimizer = build_optimizer(params, cfg["optimizer"], cfg["lr0"], cfg["momentum"], cfg["weight_decay"],
                                         cfg["nesterov"], scaled, cfg["finetune_lr_scale"])
        self.scheduler = build_scheduler(self.optimizer, cfg["scheduler"], cfg["epochs"], len(self.train_loader),
                                         cfg["warmup_epochs"], cfg["lrf"], cfg["step_size"], cfg["gamma"])
        from edgecnn.train.ema import ModelEMA

        self.ema = ModelEMA(model, cfg["ema_decay"]) if cfg["ema"] else None
        self.amp = amp_dtype(cfg["amp"], device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.history: list[dict] = []
        self.best_fitness, self.best_epoch, self.best_metrics, self.best_state = -1.0, -1, {}, None
        self.start_epoch, self.train_seconds, self.train_images = 0, 0.0, 0
        if self.resume_state:
            self._load_train_state(self.resume_state)
        with cpu_threads(device, workers, int(os.environ.get("LOCAL_WORLD_SIZE", world.size))):
            return self._loop(model)

    def _train_loader(self, mosaic: bool):
        return train_loader(self.task, self.train_split, self.cfg, self.per_rank_batch, self.workers, mosaic, self.world)

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.world.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    # ------------------------------------------------------------------ loop
    def _loop(self, model: nn.Module) -> dict:
        cfg, world = self.cfg, self.world
        ddp_model = self._wrap(model)
        mosaic_off_at = cfg["epochs"] - cfg["close_mosaic"]
        patience_left = cfg["patience"]
        if self.start_epoch >= mosaic_off_at and self.task_name == "detect":
            self.train_loader = self._train_loader(mosaic=False)
        epoch = self.start_epoch
        for epoch in range(self.start_epoch, cfg["epochs"]):
            if epoch == mosaic_off_at and epoch > self.start_epoch and self.task_name == "detect":
                LOG.info("closing mosaic for the last %d epochs", cfg["close_mosaic"])
                self.train_loader = self._train_loader(mosaic=False)
            if cfg["unfreeze_epoch"] is not None and epoch >= cfg["unfreeze_epoch"] and self.frozen:
                LOG.info("epoch %d: unfreezing %d parameters", epoch, len(self.frozen))
                self.frozen = set()
                for name, p in model.named_parameters():
                    p.requires_grad_(name not in self.fixed)
                ddp_model = self._wrap(model)
            losses = self._train_epoch(ddp_model, model, epoch)
            row = self._end_epoch(model, epoch, losses) if world.main else None
            improved = distributed.broadcast(self.best_epoch == epoch if world.main else None, world)
            patience_left = cfg["patience"] if improved else patience_left - 1
            if world.main:
                self._save_last(model, epoch)
                for callback in self.callbacks:
                    callback(self, epoch, row)
            if cfg["patience"] and patience_left <= 0 and epoch + 1 < cfg["epochs"]:
                LOG.info("early stop: no better %s for %d epochs (best %.4f at epoch %d)",
                         self.task.fitness, cfg["patience"], self.best_fitness, self.best_epoch)
                break
        checksums = distributed.gather(_weights_checksum(model), world)
        return self._finish(model, epoch, checksums)

    def _train_epoch(self, ddp_model, model, epoch: int) -> dict:
        from tqdm import tqdm

        ddp_model.train()
        for name, module in model.named_modules():  # frozen layers keep their BN statistics
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and self.frozen and f"{name}.weight" in self.frozen:
                module.eval()
        for extra in self.task.extra_modules():
            extra.train()
        sampler = getattr(self.train_loader, "sampler", None)
        for s in (sampler, getattr(self.train_loader, "batch_sampler", None)):
            if hasattr(s, "set_epoch"):
                s.set_epoch(epoch)
        totals: dict[str, float] = {}
        steps = 0
        start = time.perf_counter()
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{self.cfg['epochs']}", file=sys.stderr,
                   disable=not self.world.main, leave=False, dynamic_ncols=True)
        to_device = self._to_device
        autocast = torch.autocast("cuda", dtype=self.amp) if self.amp else contextlib.nullcontext()
        for batch in bar:
            with autocast:
                loss, parts = self.task.loss(ddp_model, batch, to_device)
            self._step(loss, model)
            steps += 1
            self.train_images += len(batch[0]) * self.world.size
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            bar.set_postfix({k: f"{v / steps:.3f}" for k, v in totals.items()})
        self.train_seconds += time.perf_counter() - start
        return {k: v / max(steps, 1) for k, v in totals.items()}

    def _to_device(self, images):
        return to_input(images, self.device, self.meta["mean"], self.meta["std"], self.cfg["channels_last"])

    def _step(self, loss: torch.Tensor, model: nn.Module) -> None:
        if not torch.isfinite(loss):
            raise RuntimeError(f"the training loss is {float(loss)}; lower lr0 or check the data")
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        extras = [p for m in self.task.extra_modules() for p in m.parameters() if p.grad is not None]
        if self.world.distributed and extras:  # DDP syncs the model's gradients, not the loss head's
            for p in extras:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world.size
        if self.cfg["clip_grad"]:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.cfg["clip_grad"])
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema:
            self.ema.update(model)

    def eval_model(self, model: nn.Module) -> nn.Module:
        return self.ema.module if self.ema else model

    def _validate(self, model: nn.Module) -> dict:
        net = self.eval_model(model)
        was_training = net.training
        net.eval()
        autocast = torch.autocast("cuda", dtype=self.amp) if self.amp else contextlib.nullcontext()
        with autocast:
            metrics = self.task.evaluate(net, self.val_loader, self._to_device)
        net.train(was_training)
        return metrics

    def _end_epoch(self, model: nn.Module, epoch: int, losses: dict) -> dict:
        metrics = self._validate(model)
        fitness = float(metrics[self.task.fitness])
        row = {"epoch": epoch, "time_s": round(self.train_seconds, 3), "lr": self.optimizer.param_groups[0]["lr"]}
        row.update({f"train/{k}": v for k, v in losses.items()})
        row.update({f"val/{k}": float(v) for k, v in metrics.items() if isinstance(v, float)})
        row["fitness"] = fitness
        self.history.append(row)
        if fitness > self.best_fitness:
            self.best_fitness, self.best_epoch, self.best_metrics = fitness, epoch, metrics
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.eval_model(model).state_dict().items()}
            if self.save:
                from edgecnn.models import save_checkpoint

                save_checkpoint(self.out / "best.pt", self.eval_model(model), self.meta, epoch=epoch,
                                metrics=_scalars(metrics))
        self._write_results(model, final=False)
        LOG.info("epoch %d/%d  %s  %s=%.4f (best %.4f)", epoch + 1, self.cfg["epochs"],
                 " ".join(f"{k}={v:.3f}" for k, v in losses.items()), self.task.fitness, fitness, self.best_fitness)
        return row

    # ------------------------------------------------------------------ state
    def train_state(self, model: nn.Module, epoch: int) -> dict:
        return {
            "epoch": epoch,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "extra": [m.state_dict() for m in self.task.extra_modules()],
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "best_fitness": self.best_fitness,
            "best_epoch": self.best_epoch,
            "best_metrics": _scalars(self.best_metrics),
            "history": self.history,
            "train_seconds": self.train_seconds,
            "train_images": self.train_images,
            "rng": rng_state(),
            "cfg": self.cfg,
            "pretrained": sorted(self.pretrained),
        }

    def _save_last(self, model: nn.Module, epoch: int) -> None:
        if self.save:
            from edgecnn.models import save_checkpoint

            save_checkpoint(self.out / "last.pt", self.eval_model(model), self.meta, epoch=epoch,
                            train_state=self.train_state(model, epoch))

    def _load_train_state(self, state: dict) -> None:
        model = self.model
        model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        for module, sd in zip(self.task.extra_modules(), state.get("extra", [])):
            module.load_state_dict(sd)
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"]) + 1
        self.best_fitness, self.best_epoch = float(state["best_fitness"]), int(state["best_epoch"])
        self.best_metrics = dict(state.get("best_metrics") or {})
        self.history = list(state["history"])
        self.train_seconds, self.train_images = float(state["train_seconds"]), int(state["train_images"])
        set_rng_state(state["rng"])
        LOG.info("resuming at epoch %d (best %.4f at epoch %d)", self.start_epoch + 1, self.best_fitness, self.best_epoch)

    # ------------------------------------------------------------------ results
    def _summary(self) -> dict:
        out = {**_scalars(self.best_metrics), "fitness": self.task.fitness, "best_epoch": self.best_epoch, "epochs": len(self.history),
               "train_time_s": round(self.train_seconds, 2),
               "train_images_per_s": round(self.train_images / max(self.train_seconds, 1e-9), 2)}
        if self.save:
            out["artifacts"] = {"best": str(self.out / "best.pt"), "last": str(self.out / "last.pt"),
                                "results": str(self.out / "results.json")}
        return out

    def _write_results(self, model: nn.Module, final: bool, checksums=None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        keys = list(dict.fromkeys(k for row in self.history for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(self.out / "results.csv", buffer.getvalue())
        record = {"summary": self._summary(), "history": self.history, "cfg": self.cfg, "meta": self.meta,
                  "best_metrics": self.best_metrics, "finished": final}
        if checksums is not None:
            record["rank_weight_checksums"] = checksums
        atomic_write_json(self.out / "results.json", record)
        if final and self.cfg["plots"]:
            self._plot(model)

    def _plot(self, model: nn.Module) -> None:
        from edgecnn.train import plots

        plots.plot_curves(self.history, self.out)
        if "curves" in self.best_metrics:
            plots.plot_pr_curves(self.best_metrics["curves"], self.out)
        if "confusion" in self.best_metrics:
            plots.plot_confusion(self.best_metrics["confusion"], list(self.meta["names"]), self.out)
        plots.plot_first_layer_filters(self.eval_model(model), self.out)

    def _finish(self, model: nn.Module, epoch: int, checksums: list) -> dict:
        if len(set(checksums)) > 1:
            raise RuntimeError(f"data-parallel ranks ended with different weights: checksums {checksums}")
        if self.world.main:
            self._write_results(model, final=True, checksums=checksums)
        if self.best_state is not None:
            self.eval_model(model).load_state_dict(self.best_state)
        self.model = self.eval_model(model)
        # every rank returns rank 0's figures (under torchrun each process prints the result)
        return distributed.broadcast(self._summary() if self.world.main else None, self.world)


def _fit_in_process(world: distributed.World, trainer: Trainer) -> None:
    trainer._fit(world)


def _weights_checksum(model: nn.Module) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _scalars(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _read_json(path: Path) -> dict:
    import json

    if not path.is_file():
        raise RuntimeError(f"training processes ended without writing {path}")
    return json.loads(path.read_text())


def prepare_task(model: nn.Module, cfg: dict, meta: dict, split, device: torch.device) -> tuple[Task, int]:
    """What training, evaluation and Taylor pruning share: fill `meta` where absent (names from
    `split`, imgsz from `resolve_imgsz`, mean and std from the model's registry record, the task), put the model and the
    task's extra modules on `device`; the task and the number of loader workers."""
    names = tuple(meta.get("names") or split.names)
    imgsz = resolve_imgsz(model, cfg, meta)
    meta.update(names=list(names), imgsz=imgsz)
    if "mean" not in meta or "std" not in meta:  # a checkpoint's own normalization wins over its model's record
        record = get_entry(model.arch["name"]).config
        meta.setdefault("mean", list(record.mean))
        meta.setdefault("std", list(record.std))
    meta.setdefault("task", model.task)
    model.to(device)
    task = make_task(model.task, cfg, imgsz, names, model)
    for extra in task.extra_modules():
        extra.to(device)
    return task, cfg["workers"] if cfg["workers"] is not None else default_workers()


def train_loader(task: Task, split, cfg: dict, batch: int, workers: int, mosaic: bool, world=None):
    """The shuffled training batches of `split` (P x K identity batches for the embedder, whose
    triplet loss needs them), seeded by `cfg["seed"]`."""
    dataset = task.train_dataset(split, mosaic=mosaic)
    sampler = task.pk_sampler(dataset, cfg["batch"], cfg["seed"], world) if task.name == "embed" else None
    return task.loader(dataset, batch, workers, True, cfg["seed"], world, sampler)


def resolve_imgsz(model: nn.Module, cfg: dict, meta: dict) -> int | list[int]:
    """The input size of a run: the `imgsz` key, else the checkpoint's, else the model's usual size."""
    return _meta_imgsz(cfg["imgsz"] or meta.get("imgsz") or _default_imgsz(model))


def _meta_imgsz(imgsz) -> int | list[int]:
    """`imgsz` as the checkpoint records it: N (or [N]) as N, [h, w] as [h, w]."""
    h, w = input_hw(imgsz)
    return [h, w] if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 else h


def _default_imgsz(model: nn.Module):
    arch = getattr(model, "arch", None)
    if arch:
        from edgecnn.models import get_entry

        h, w = get_entry(arch["name"]).imgsz
        return h if h == w else [h, w]
    raise ConfigError("train: set imgsz (the model does not come from the registry)")


def evaluate(model: nn.Module, data: str, cfg: dict | None = None, meta: dict | None = None) -> dict:
    """The validation metrics of a torch model on the `val` split of `data` (no training).

    The model's `task` picks the metric: mAP50_95 (detect), top1 (classify), mAP (embed), mIoU (segment);
    `meta` (mean, std, imgsz, names) defaults to ImageNet normalization and the model's size.
    """
    cfg = {**TRAIN_KEYS.defaults(), **(cfg or {}), "data": data}
    meta = dict(meta or {})
    task_name = getattr(model, "task", None)
    if task_name not in FITNESS:
        raise ValueError(f"the model has task {task_name!r}; expected one of {', '.join(FITNESS)}")
    device = select_device(cfg["device"])
    split = read_split(task_name, data, "val")
    was_training = model.training
    model.eval()
    task, workers = prepare_task(model, cfg, meta, split, device)
    loader = task.loader(task.val_dataset(split), cfg["batch"], workers, False, cfg["seed"])
    try:
        with cpu_threads(device, workers):
            metrics = task.evaluate(model, loader, lambda x: to_input(x, device, meta["mean"], meta["std"], False))
    finally:
        model.train(was_training)
    metrics["fitness"] = task.fitness
    return metrics
