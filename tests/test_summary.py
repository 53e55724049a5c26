import json

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from edgecnn.cli import main
from edgecnn.models import build_model, save_checkpoint
from edgecnn.models.summary import summarize


def _tiny() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10),
    )


def test_tiny_net_by_hand():
    s = summarize(_tiny(), (3, 4, 4))
    conv, relu, dw, flat, fc = s["layers"]
    assert conv["macs"] == 8 * 4 * 4 * 3 * 9 and conv["params"] == 3 * 8 * 9 + 8
    assert dw["macs"] == 8 * 4 * 4 * 9 and dw["params"] == 8 * 9 + 8  # groups divide the work
    assert fc["macs"] == 10 * 128 and fc["params"] == 128 * 10 + 10
    assert relu["macs"] == 0 and flat["output_shape"] == [1, 128]
    assert conv["activation_bytes"] == 8 * 16 * 4
    assert s["params"] == 224 + 80 + 1290 and s["macs"] == 3456 + 1152 + 1280
    # int8: weights 1 byte each + an int32 bias per output channel.
    assert s["weight_mb_int8"] * 2**20 == pytest.approx((216 + 32) + (72 + 32) + (1280 + 40))
    # Peak: while the depthwise conv runs, its input and output (512 B each) are alive; the
    # in-place ReLU and the Flatten view add nothing.
    assert s["peak_activation_mb"] * 2**20 == 1024


def test_peak_counts_tensors_held_by_a_skip_connection():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = (nn.Conv2d(4, 4, 1) for _ in range(3))

        def forward(self, x):
            y = self.a(x)
            return y + self.c(self.b(y))

    # While c runs: y (held for the add), b's output and c's output: 3 x 4x8x8 fp32.
    assert summarize(Skip(), (4, 8, 8))["peak_activation_mb"] * 2**20 == 3 * 4 * 64 * 4


@pytest.mark.parametrize("name, weights", [
    ("vgg16", tvm.VGG16_Weights.IMAGENET1K_V1),
    ("vgg11", tvm.VGG11_Weights.IMAGENET1K_V1),
    ("resnet18", tvm.ResNet18_Weights.IMAGENET1K_V1),
    ("resnet34", tvm.ResNet34_Weights.IMAGENET1K_V1),
    ("mobilenet_v2", tvm.MobileNet_V2_Weights.IMAGENET1K_V1),
    ("mobilenet_v3_small", tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1),
    ("mobilenet_v3_large", tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1),
])
def test_canon_matches_torchvision_published_figures(name, weights):
    with torch.device("meta"):  # shapes only: VGG-16 at 224 costs no compute
        s = summarize(build_model(name), (3, 224, 224))
    assert s["params"] == weights.meta["num_params"]
    assert round(s["gmacs"], 3) == pytest.approx(weights.meta["_ops"], abs=0.002)


def test_vgg16_course_numbers():
    with torch.device("meta"):
        s = summarize(build_model("vgg16", imgsz=224), (3, 224, 224))
    assert s["params"] == 138_357_544
    assert s["macs"] == 15_470_264_320
    assert s["weight_mb_fp32"] == pytest.approx(138_357_544 * 4 / 2**20)
    assert s["peak_activation_mb"] == pytest.approx(2 * 64 * 224 * 224 * 4 / 2**20)  # conv1_1 + conv1_2 outputs


def test_detector_macs_scale_with_area():
    with torch.device("meta"):
        model = build_model("yolo-n")
        s320, s640 = summarize(model, (3, 320, 320)), summarize(model, (3, 640, 640))
    assert s640["macs"] == pytest.approx(4 * s320["macs"], rel=1e-3)
    assert s640["gmacs"] < 4.5 and s640["params"] < 3.2e6  # YOLOv8n scale: 3.16M, 4.4 GMACs


def test_cli_json(capsys):
    assert main(["summary", "model=vgg16", "imgsz=224", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 138_357_544 and round(out["gmacs"], 2) == 15.47
    assert {"macs", "weight_mb_fp32", "weight_mb_int8", "peak_activation_mb"} <= set(out)
    assert out["layers"][0]["name"] == "features.0" and out["layers"][0]["output_shape"] == [1, 64, 224, 224]


def test_cli_table_for_a_checkpoint(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "best.pt", build_model("yolo-n", num_classes=2), {"imgsz": 320})
    assert main(["summary", str(path)]) == 0
    text = capsys.readouterr().out
    assert "head.cls.0.2" in text and "1x2x40x40" in text  # the class conv at stride 8 of 320 px
    assert "input 3x320x320" in text and "GMACs" in text


def test_cli_errors(tmp_path, capsys):
    assert main(["summary", "model=vgg61"]) == 1
    assert "did you mean 'vgg16'" in capsys.readouterr().err
    assert main(["summary", str(tmp_path / "gone.pt")]) == 1
    assert "gone.pt" in capsys.readouterr().err
    assert main(["summary"]) == 2
    assert "model= is required" in capsys.readouterr().err
