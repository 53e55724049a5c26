"""AlexNet and GoogLeNet go through the classifier chain on tiny inputs: train (GoogLeNet with its
auxiliary losses), prune, int8 QAT, full-int8 TFLite with parity against the float model."""

from __future__ import annotations

import json

import pytest
import torch

from compress_data import train_cfg, write_quadrant_dataset
from edgecnn.models import build_model, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    return write_quadrant_dataset(tmp_path_factory.mktemp("quad"), train=32, val=16)


def run(command: str, **args) -> dict:
    from edgecnn.commands import load_command

    module = load_command(command)
    return module.run(module.KEYS.resolve(args, f"edgecnn {command}"))


def test_googlenet_returns_auxiliary_logits_in_train_mode_only():
    model = build_model("googlenet", imgsz=32, num_classes=4)
    x = torch.rand(2, 3, 32, 32)
    logits, aux2, aux1 = model.train()(x)
    assert logits.shape == aux2.shape == aux1.shape == (2, 4)
    assert model.eval()(x).shape == (2, 4)
    model.make_prunable()
    assert model.train()(x).shape == (2, 4) and model.arch["kwargs"]["aux_logits"] is False
    assert not any(name.startswith("aux") for name in model.state_dict())


def test_auxiliary_losses_count_in_training(quadrants):
    from edgecnn.train.tasks import AUX_WEIGHT, ClassifyTask

    task = ClassifyTask({"label_smoothing": 0.0}, 32, ("q0", "q1", "q2", "q3"))
    model = build_model("googlenet", imgsz=32, num_classes=4).train()
    images, labels = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    loss, parts = task.loss(model, (images, labels, None), lambda x: x.float() / 255)
    assert set(parts) == {"cls", "aux"}
    torch.testing.assert_close(loss.detach(), parts["cls"] + AUX_WEIGHT * parts["aux"])


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "googlenet"])
def test_canon_classifier_trains_prunes_quantizes_and_exports_int8(name, quadrants, tmp_path):
    common = train_cfg(quadrants, batch=16)
    trained = run("train", model=name, imgsz=32, epochs=1, out=str(tmp_path / "train"), **common)
    assert 0.0 <= trained["top1"] <= 1.0
    pruned = run("prune", model=trained["artifacts"]["best"], target_macs=0.6, steps=1, ft_epochs=1,
                 max_map_drop=100.0, latency=False, out=str(tmp_path / "prune"), **common)
    assert pruned["macs_kept"] <= 0.61
    model, meta = load_checkpoint(pruned["artifacts"]["model"])
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 4)
    assert getattr(model, "aux1", None) is None  # GoogLeNet's auxiliary heads stay behind at pruning
    quantized = run("qat", model=pruned["artifacts"]["model"], epochs=1, subset_size=16, max_map_drop=100.0,
                    out=str(tmp_path / "qat"), **common)
    exported = run("export", model=quantized["artifacts"]["model"], format="tflite", precision="int8",
                   data=str(quadrants), calib_images=16, max_map_drop=100.0, runs=2, out=str(tmp_path / "export"))
    assert exported["parity_max_abs_diff"]["logits"] < 1.0  # checked against TOLERANCE inside the export too
    report = json.loads((tmp_path / "qat" / "qat.json").read_text())
    assert report["config"]["epochs"] == 1 and 0.0 <= exported["top1"] <= 1.0
