"""The `prune` and `qat` stages: load a checkpoint, compress, fine-tune with the normal training
loop, measure, gate on the accuracy drop, write the artifacts and a report (JSON + PNG).

- `prune` writes `pruned.pt`, an ordinary checkpoint (extra entry `prune`: before/after/config)
  that `load_checkpoint` loads without torch-pruning.
- `qat` writes `qat.pt`, an ordinary checkpoint whose `state_dict` holds the deployed weights (BN
  folded into the convs, every weight on its int8 grid), so `load_checkpoint` gives a float model
  that re-quantizes to the same integers; its extra entry `quantization` (NNCF's config as JSON
  text and the quantizers' tensors) rebuilds the QAT model with `compress.qat.restore_quantized`.
  `qat.onnx` carries QuantizeLinear/DequantizeLinear (symmetric per-channel weights, per-tensor
  activations).
- Both fail with `GateError` when the task metric (`train.keys.FITNESS`) falls more than
  `max_drop` points below the parent's; the report is written first, the model is not.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgecnn.fileio import atomic_write_json
from edgecnn.metrics.gate import check_drop

if TYPE_CHECKING:
    from torch import nn

# Torch is imported where it is used: `edgecnn prune --help` reads the defaults from these signatures.
LOG = logging.getLogger("edgecnn")


def score(model: nn.Module, train_cfg: dict, meta: dict) -> float:
    """The task's validation metric (mAP50_95, top1, mAP, mIoU) of a torch model, as a fraction."""
    from edgecnn.train.keys import FITNESS
    from edgecnn.train.trainer import evaluate

    value = float(evaluate(model, train_cfg["data"], train_cfg, meta)[FITNESS[model.task]])
    model.cpu()  # evaluate() moves it to the training device
    return value


def fine_tune(model: nn.Module, train_cfg: dict, epochs: int, out: Path, meta: dict, save: bool = True) -> dict:
    """Train `model` in place for `epochs` with the normal loop; it ends on the CPU with the best
    (EMA) weights."""
    from edgecnn.train.trainer import Trainer

    trainer = Trainer(model.train(), {**train_cfg, "epochs": epochs}, out, meta, save=save)
    summary = trainer.fit()
    if trainer.model is not model:  # the EMA copy holds the best weights
        model.load_state_dict(trainer.model.state_dict())
    model.cpu()  # pruning, profiling and export work on the CPU (the trainer may have used a GPU)
    return summary


def loss_gradients(model: nn.Module, train_cfg: dict, meta: dict) -> Callable[[nn.Module], None]:
    """A function that backpropagates the training loss of the next training batch (Taylor)."""
    import torch

    from edgecnn.train.tasks import read_split, to_input
    from edgecnn.train.trainer import prepare_task, train_loader

    split = read_split(model.task, train_cfg["data"], "train")
    meta = dict(meta)  # prepare_task fills it in; the checkpoint's stays as it was
    task, _ = prepare_task(model, train_cfg, meta, split, torch.device("cpu"))
    loader = train_loader(task, split, train_cfg, train_cfg["batch"], 0, mosaic=False)
    batches = iter(())

    def backward(net: nn.Module) -> None:
        nonlocal batches
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        loss = task.loss(net.train(), batch, lambda x: to_input(x, "cpu", meta["mean"], meta["std"], False))
        (loss[0] if isinstance(loss, tuple) else loss).backward()

    return backward


def gate(metric: str, parent: float, child: float, max_drop: float, what: str, report: dict, path: Path) -> None:
    """Record the gate's outcome in the report, write it, then raise GateError if it failed."""
    drop = (parent - child) * 100.0
    report["gate"] = {"metric": metric, "parent": parent, "child": child, "drop_points": round(drop, 3),
                      "max_drop": max_drop, "passed": drop <= max_drop}
    atomic_write_json(path, report)
    check_drop(metric, parent, child, max_drop, what)


def prune_checkpoint(path: str | Path, train_cfg: dict, out: Path, target_macs: float = 0.5, steps: int = 3,
                     criterion: str = "l2", global_pruning: bool = True, round_to: int = 8,
                     max_layer_ratio: float = 0.8, ft_epochs: int = 5, max_drop: float = 1.0,
                     latency: bool = True) -> dict[str, Any]:
    """Prune the checkpoint at `path` to `target_macs` of its MACs (the fraction kept) in `steps`
    prune → fine-tune rounds; write `pruned.pt`, `prune.json`, `prune.png` under `out`."""
    from edgecnn.compress.measure import example_input, model_profile
    from edgecnn.compress.prune import ChannelPruner, count_macs_params, step_goals
    from edgecnn.models import load_checkpoint, save_checkpoint
    from edgecnn.train.keys import FITNESS
    from edgecnn.train.trainer import resolve_imgsz

    model, meta = load_checkpoint(path)
    imgsz = resolve_imgsz(model, train_cfg, meta)
    metric = FITNESS[model.task]
    example = example_input(model, imgsz)

    def profile(tag: str) -> dict:
        onnx = out / "latency" / f"{tag}.onnx" if latency else None
        if not latency:
            macs, params = count_macs_params(model, example)
            return {"params": params, "macs": macs}
        return model_profile(model, meta, imgsz, onnx)

    before = {metric: score(model, train_cfg, meta), **profile("parent")}
    LOG.info("parent: %s=%.4f, %.3g MACs, %.3g params", metric, before[metric], before["macs"], before["params"])
    grads = loss_gradients(model, train_cfg, meta) if criterion == "taylor" else None
    pruner = ChannelPruner(model, example, criterion, global_pruning, round_to if round_to > 1 else None,
                           max_layer_ratio, grads)
    rounds = []
    for step, goal in enumerate(step_goals(before["macs"], target_macs, steps), 1):
        macs = pruner.prune_to(goal)
        row = {"step": step, "macs": macs, "macs_kept": macs / before["macs"],
               "params": count_macs_params(model, example)[1], f"{metric}_pruned": score(model, train_cfg, meta)}
        LOG.info("round %d/%d: %.1f%% of the MACs left, %s=%.4f before fine-tuning",
                 step, steps, 100 * row["macs_kept"], metric, row[f"{metric}_pruned"])
        if ft_epochs:
            row[metric] = float(fine_tune(model, train_cfg, ft_epochs, out / f"step{step}", meta)[metric])
        else:
            row[metric] = row[f"{metric}_pruned"]
        rounds.append(row)
    model.eval()
    after = {metric: rounds[-1][metric], **profile("pruned")}
    report = {"stage": "prune", "metric": metric, "parent": str(path), "before": before, "after": after,
              "rounds": rounds, "config": {"target_macs": target_macs, "steps": steps, "criterion": criterion,
                                           "global": global_pruning, "round_to": round_to,
                                           "max_layer_ratio": max_layer_ratio, "ft_epochs": ft_epochs}}
    plot_rounds(report, out / "prune.png")
    gate(metric, before[metric], after[metric], max_drop, f"the pruned {path}", report, out / "prune.json")
    save_checkpoint(out / "pruned.pt", model, meta, prune={k: report[k] for k in ("before", "after", "config")})
    artifacts = {"model": str(out / "pruned.pt"), "report": str(out / "prune.json"), "plot": str(out / "prune.png")}
    if latency:
        artifacts["onnx"] = str(out / "latency" / "pruned.onnx")
    return {metric: after[metric], f"{metric}_parent": before[metric], "macs": after["macs"],
            "macs_kept": after["macs"] / before["macs"], "params": after["params"],
            **{k: after[k] for k in ("weights_mb", "latency_torch_ms", "latency_onnx_ms") if k in after},
            "artifacts": artifacts}


def plot_rounds(report: dict, path: Path) -> Path:
    """The metric against the MACs kept: the parent, each round before and after fine-tuning."""
    from edgecnn.plots import figure, save_figure

    metric = report["metric"]
    fig, ax = figure(figsize=(6, 4))
    kept = [1.0] + [r["macs_kept"] for r in report["rounds"]]
    ax.plot(kept, [report["before"][metric]] + [r[metric] for r in report["rounds"]], "o-", label="fine-tuned")
    ax.plot(kept[1:], [r[f"{metric}_pruned"] for r in report["rounds"]], "x--", label="just pruned")
    ax.set_xlabel("MACs kept (fraction of the parent)")
    ax.set_ylabel(metric)
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("prune → fine-tune rounds")
    return save_figure(fig, path)


def qat_checkpoint(path: str | Path, train_cfg: dict, out: Path, calib: str | None = None, epochs: int = 3,
                   lr_scale: float = 0.1, subset_size: int = 300, max_drop: float = 0.5) -> dict[str, Any]:
    """Int8 QAT of the checkpoint at `path`: fold BN, place and calibrate NNCF quantizers on
    `calib` images (default: the training images), fine-tune at `lr_scale` × lr0, gate against
    the float parent; write `qat.pt` (deployed weights + quantizers) and `qat.onnx` (Q/DQ)."""
    from edgecnn.compress.measure import example_input
    from edgecnn.compress.qat import (calibration_tensors, deployed_state_dict, export_qdq_onnx, fold_batchnorm,
                                      quantization_state, quantize)
    from edgecnn.models import load_checkpoint, save_checkpoint
    from edgecnn.train.keys import FITNESS
    from edgecnn.train.trainer import resolve_imgsz

    model, meta = load_checkpoint(path)
    imgsz = resolve_imgsz(model, train_cfg, meta)
    metric = FITNESS[model.task]
    example = example_input(model, imgsz)
    float_score = score(model, train_cfg, meta)
    folded = fold_batchnorm(model, example)
    LOG.info("float parent: %s=%.4f; folded %d BatchNorms into their convs", metric, float_score, folded)
    qmodel = quantize(model, calibration_tensors(calibration_files(calib, model.task, train_cfg["data"], subset_size),
                                                 imgsz, meta["mean"], meta["std"]), subset_size)
    ptq_score = score(qmodel, train_cfg, meta)
    LOG.info("calibrated int8 (PTQ): %s=%.4f", metric, ptq_score)
    qat_score = ptq_score
    if epochs:
        ft_cfg = {**train_cfg, "lr0": train_cfg["lr0"] * lr_scale, "warmup_epochs": 0.0}
        # save=False: the trainer's checkpoints could not rebuild a model with quantizers
        qat_score = float(fine_tune(qmodel, ft_cfg, epochs, out / "train", meta, save=False)[metric])
    qmodel.eval()
    model.load_state_dict(deployed_state_dict(qmodel, example))
    report = {"stage": "qat", "metric": metric, "parent": str(path), "float": float_score, "ptq": ptq_score,
              "qat": qat_score, "folded_batchnorms": folded,
              "config": {"epochs": epochs, "lr_scale": lr_scale, "subset_size": subset_size, "calib": calib,
                         "scheme": "int8: symmetric per-channel weights, per-tensor activations"}}
    gate(metric, float_score, qat_score, max_drop, f"int8 QAT of {path}", report, out / "qat.json")
    save_checkpoint(out / "qat.pt", model, meta, quantization=quantization_state(qmodel))
    export_qdq_onnx(qmodel, meta, out / "qat.onnx", imgsz)
    return {metric: qat_score, f"{metric}_float": float_score, f"{metric}_ptq": ptq_score,
            "artifacts": {"model": str(out / "qat.pt"), "onnx": str(out / "qat.onnx"), "report": str(out / "qat.json")}}


def calibration_files(calib: str | None, task: str, data: str, limit: int) -> list[Path]:
    """The calibration images: a calibration set or image folder, else training images spread
    evenly over the split (ImageFolder lists them class by class)."""
    from edgecnn.data.calib import calibration_images
    from edgecnn.train.tasks import read_split

    if calib:
        return calibration_images(calib)[:limit]
    images = read_split(task, data, "train").images
    images = images[:: max(1, len(images) // limit)][:limit]
    return [item[0] if isinstance(item, tuple) else item for item in images]
