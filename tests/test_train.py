"""The training loop end to end on small synthetic data: command, artifacts, exact resume,
weights and freezing, early stopping, the embedder, and `evaluate`."""

import json
import shutil

import pytest
import torch

from edgecnn.cli import main
from edgecnn.config import ConfigError
from edgecnn.data.synth import synth_classify, synth_detect
from edgecnn.models import build_model, load_checkpoint, read_checkpoint
from edgecnn.train.setup import prepare_model
from edgecnn.train.environment import cpu_threads
from edgecnn.train.trainer import Trainer, evaluate

FAST = {"workers": 0, "plots": False, "warmup_epochs": 0.0}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    synth_classify(root, n=120, val=40, imgsz=32, seed=0)
    return root


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    synth_detect(root, n=8, val=4, imgsz=128, seed=0)
    return root / "data.yaml"


def run_cli(args, capsys):
    code = main(["train", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return json.loads(captured.out)


def test_classifier_through_the_command(digits, tmp_path, capsys):
    out = tmp_path / "run"
    result = run_cli([f"data={digits}", "model=lenet5", "epochs=2", "batch=16", "workers=0", "lr0=0.01",
                      f"out={out}"], capsys)
    assert set(result["artifacts"]) == {"best", "last", "results"}
    assert 0 <= result["top1"] <= 1 and result["top5"] >= result["top1"] and result["epochs"] == 2
    assert result["train_images_per_s"] > 0
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and "val/top1" in rows[0] and "train/cls" in rows[0]
    for png in ("losses.png", "metrics.png", "confusion_matrix.png", "filters.png"):
        assert (out / png).stat().st_size > 1000, png
    model, meta = load_checkpoint(out / "best.pt")
    assert meta["task"] == "classify" and meta["names"] == [str(d) for d in range(10)] and meta["imgsz"] == 32
    assert "train_state" not in read_checkpoint(out / "best.pt")
    assert evaluate(model, str(digits), {"workers": 0}, meta)["top1"] == pytest.approx(result["top1"])


def test_bad_keys_are_reported(digits, capsys, tmp_path):
    assert main(["train", "epoch=3"]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
    assert main(["train", "data=x", "optimizer=adamx"]) == 2
    assert main(["train", f"data={digits}", "model=lenet5", "weights=/nonexistent/w.pt"]) == 1
    assert "/nonexistent/w.pt" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown key"):
        Trainer(build_model("lenet5", num_classes=10), {"data": "x", "lr": 1}, tmp_path)


class Interrupt(Exception):
    pass


def stop_after_first_epoch(trainer, epoch, row):
    if epoch == 0:
        raise Interrupt


def test_resume_continues_exactly(boxes, tmp_path, capsys):
    """2 epochs in one go == 1 epoch, interrupted, then resumed: identical weights, EMA and optimizer."""
    cfg = {"data": str(boxes), "imgsz": 64, "epochs": 2, "batch": 4, "close_mosaic": 1, "mosaic": 1.0, **FAST,
           "workers": 1}
    whole, meta, _ = prepare_model("yolo-n", str(boxes))
    Trainer(whole, cfg, tmp_path / "whole", meta).fit()
    part, meta, _ = prepare_model("yolo-n", str(boxes))
    with pytest.raises(Interrupt):
        Trainer(part, cfg, tmp_path / "part", meta, callbacks=[stop_after_first_epoch]).fit()
    assert read_checkpoint(tmp_path / "part" / "last.pt")["train_state"]["epoch"] == 0
    result = run_cli([f"out={tmp_path / 'part'}", "resume=true"], capsys)
    assert result["epochs"] == 2
    a = read_checkpoint(tmp_path / "whole" / "last.pt")
    b = read_checkpoint(tmp_path / "part" / "last.pt")
    for key in ("state_dict",):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    for k, v in a["train_state"]["model"].items():
        assert torch.equal(v, b["train_state"]["model"][k]), k
    sa, sb = a["train_state"]["optimizer"]["state"], b["train_state"]["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    assert a["train_state"]["history"][1]["fitness"] == b["train_state"]["history"][1]["fitness"]
    assert b["meta"]["task"] == "detect" and b["meta"]["strides"] == [8, 16, 32]


def test_detector_weights_new_classes_freeze_and_unfreeze(boxes, tmp_path):
    model, meta, _ = prepare_model("yolo-n", str(boxes))
    Trainer(model, {"data": str(boxes), "imgsz": 64, "epochs": 1, "batch": 4, **FAST}, tmp_path / "a", meta).fit()
    # a 2-class copy of the data: only the class layers are re-initialized from the 5-class checkpoint
    two = tmp_path / "two"
    shutil.copytree(boxes.parent, two)
    (two / "data.yaml").write_text((two / "data.yaml").read_text().split("nc:")[0] + "nc: 2\nnames: [a, b]\n")
    for label in (two / "labels").rglob("*.txt"):
        label.write_text("".join(f"{int(line.split()[0]) % 2} {line.split(' ', 1)[1]}" for line in label.read_text().splitlines(True)))
    model, meta, loaded = prepare_model("yolo-n", str(two / "data.yaml"), str(tmp_path / "a" / "best.pt"))
    source = read_checkpoint(tmp_path / "a" / "best.pt")["state_dict"]
    params = dict(model.named_parameters())
    not_loaded = set(params) - loaded
    assert not_loaded and all(name.startswith("head.cls.") and name.split(".")[3] == "2" for name in not_loaded)
    assert all(torch.equal(params[name], source[name]) for name in loaded)
    snapshots = []
    record = lambda trainer, epoch, row: snapshots.append(  # noqa: E731
        {n: p.detach().clone() for n, p in trainer.model.named_parameters()})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = {"data": str(two / "data.yaml"), "imgsz": 64, "epochs": 2, "batch": 4, **FAST, "freeze": "backbone",
           "unfreeze_epoch": 1, "ema": False, "finetune_lr_scale": 0.1, "optimizer": "sgd", "lr0": 0.01}
    Trainer(model, cfg, tmp_path / "b", meta, pretrained=loaded, callbacks=[record]).fit()
    backbone = [n for n in before if n.startswith("backbone.")]
    head = [n for n in before if n.startswith("head.") and params[n].requires_grad]
    assert all(torch.equal(snapshots[0][n], before[n]) for n in backbone)
    assert any(not torch.equal(snapshots[0][n], before[n]) for n in head)
    assert any(not torch.equal(snapshots[1][n], before[n]) for n in backbone)


def test_early_stopping_and_optimizers(digits, tmp_path):
    model, meta, _ = prepare_model("lenet5", str(digits))
    cfg = {"data": str(digits), "epochs": 6, "batch": 32, "patience": 2, "lr0": 0.0, "optimizer": "rmsprop", **FAST}
    result = Trainer(model, cfg, tmp_path / "stop", meta).fit()
    assert result["epochs"] == 3 and result["best_epoch"] == 0


def test_embedder_with_triplet_and_arcface(digits, tmp_path):
    model, meta, _ = prepare_model("reid", str(digits))
    cfg = {"data": str(digits), "imgsz": [32, 32], "epochs": 1, "batch": 16, "k": 4, "arcface": True, **FAST}
    result = Trainer(model, cfg, tmp_path / "embed", meta).fit()
    assert 0 < result["rank1"] <= 1 and 0 < result["mAP"] <= 1
    ckpt = read_checkpoint(tmp_path / "embed" / "last.pt")
    assert ckpt["meta"]["task"] == "embed" and ckpt["meta"]["imgsz"] == [32, 32]
    assert len(ckpt["train_state"]["extra"]) == 1  # the ArcFace head resumes too


def test_embedder_val_on_video_crops_skips_near_duplicates(tmp_path):
    """Crops from `edgecnn data crops` are named by frame: a crop's neighbours within 30 frames
    leave its gallery, so an identity seen only over 3 frames has no query left."""
    import cv2
    import numpy as np

    from edgecnn.data.crops import RECORD

    rng = np.random.default_rng(0)
    for ident, frames in {"seq_0001": (1, 4, 91), "seq_0002": (1, 4, 91), "seq_0003": (1, 4)}.items():
        folder = tmp_path / "val" / ident
        folder.mkdir(parents=True)
        for frame in frames:
            cv2.imwrite(str(folder / f"{frame:06d}.jpg"), rng.integers(0, 255, (64, 32, 3), dtype=np.uint8))
    model = build_model("reid")
    assert evaluate(model, str(tmp_path), {"batch": 4, "workers": 0})["queries"] == 8
    (tmp_path / RECORD).write_text("{}")
    assert evaluate(model, str(tmp_path), {"batch": 4, "workers": 0})["queries"] == 6


def test_torchvision_state_dict_weights_and_freeze_n(digits, tmp_path):
    import torchvision

    source = torchvision.models.mobilenet_v3_small(weights=None, num_classes=1000)
    path = tmp_path / "mobilenet_v3_small_imagenet_like.pth"
    torch.save(source.state_dict(), path)
    model, meta, loaded = prepare_model("mobilenet_v3_small", str(digits), str(path), imgsz=32)
    params = dict(model.named_parameters())
    assert "classifier.3.weight" not in loaded and "features.12.0.weight" in loaded
    assert torch.equal(params["features.12.0.weight"], source.state_dict()["features.12.0.weight"])
    before = {n: p.detach().clone() for n, p in params.items()}
    cfg = {"data": str(digits), "imgsz": 32, "epochs": 1, "batch": 32, "freeze": 1, **FAST}
    Trainer(model, cfg, tmp_path / "frozen", meta, pretrained=loaded).fit()
    for name, p in before.items():
        changed = not torch.equal(p, dict(model.named_parameters())[name])
        assert changed != name.startswith("features."), name


def test_parameters_the_model_holds_fixed_stay_fixed(boxes, tmp_path):
    """The detector's DFL expectation weights (0..15) must not be trained or decayed."""
    model, meta, _ = prepare_model("yolo-n", str(boxes))
    before = model.head.dfl.weight.detach().clone()
    Trainer(model, {"data": str(boxes), "imgsz": 64, "epochs": 1, "batch": 4, **FAST, "weight_decay": 0.5},
            tmp_path / "a", meta).fit()
    assert torch.equal(model.head.dfl.weight.detach().cpu(), before)


def test_cpu_threads_leaves_the_loader_workers_their_cores():
    import os

    before = torch.get_num_threads()
    with cpu_threads(torch.device("cpu"), workers=os.cpu_count()):
        assert torch.get_num_threads() == 1
    with cpu_threads(torch.device("cpu"), workers=0):
        assert torch.get_num_threads() == min(before, os.cpu_count())
    assert torch.get_num_threads() == before
