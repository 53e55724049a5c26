import math

import pytest
import torch
from torch import nn

from edgecnn.models import (
    build_model, get_entry, list_models, load_checkpoint, load_weights, read_checkpoint, save_checkpoint,
)

torch.set_num_threads(2)


def _input(name: str, batch: int = 2) -> torch.Tensor:
    entry = get_entry(name)
    channels = 1 if name == "lenet5" else 3
    hw = {"classify": (32, 32), "embed": entry.imgsz, "detect": (64, 96), "segment": (50, 70)}[entry.task]
    return torch.rand(batch, channels, *hw)


def _build_small(name: str, **kwargs) -> nn.Module:
    entry = get_entry(name)
    if entry.task != "embed":
        kwargs.setdefault("num_classes", 7)
    return build_model(name, imgsz=_input(name).shape[-2], **kwargs)


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_and_runs_with_the_contract_shapes(name):
    model = _build_small(name).eval()
    x = _input(name)
    with torch.no_grad():
        out = model(x)
    assert model.task == get_entry(name).task
    assert model.arch["name"] == name
    if model.task == "classify":
        assert out.shape == (2, 7)
    elif model.task == "embed":
        assert out.shape == (2, 128)
        torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    elif model.task == "segment":  # logits at the input size, a tensor (not torchvision's dict)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 7, 50, 70)
    else:
        boxes, scores = out
        anchors = sum((64 // s) * (96 // s) for s in model.strides)
        assert boxes.shape == (2, anchors, 4) and scores.shape == (2, anchors, 7)


def test_list_models_by_task():
    assert set(list_models("detect")) == {"yolo-n", "yolo-s", "yolo-r18", "yolo-mnv3", "yolov8n", "yolov8s", "yolo11n", "yolo11s"}
    assert list_models("embed") == ["reid"]
    assert list_models("segment") == ["deeplabv3-mnv3", "fcn-mnv3", "fcn-resnet18", "lraspp-mnv3", "lraspp-mnv3s",
                                      "lraspp-mnv3s-min", "unet-s"]
    assert {"lenet5", "vgg11", "vgg16", "resnet18", "resnet34", "mobilenet_v2", "mobilenet_v3_small",
            "mobilenet_v3_large"} <= set(list_models("classify"))


def test_detector_output_contract():
    model = build_model("yolo-n", num_classes=3).eval()
    assert model.strides == (8, 16, 32) and model.num_classes == 3
    x = torch.rand(1, 3, 128, 96)
    with torch.no_grad():
        boxes, scores = model(x)
    anchors = sum((128 // s) * (96 // s) for s in (8, 16, 32))
    assert boxes.shape == (1, anchors, 4) and scores.shape == (1, anchors, 3)
    assert scores.min() >= 0 and scores.max() <= 1
    assert boxes.min() >= 0 and boxes.max() <= 15  # DFL expectation over bins 0..reg_max-1
    # Class branches start at the 0.01 prior, box bins flat at 1.0, as YOLO initializes them.
    for cls, box in zip(model.head.cls, model.head.box):
        torch.testing.assert_close(cls[-1].bias, torch.full((3,), -math.log(99)))
        torch.testing.assert_close(box[-1].bias, torch.ones(64))
    model.train()
    boxes_t, logits, bins = model(x)
    assert logits.shape == (1, anchors, 3) and bins.shape == (1, anchors, 4, 16)
    expectation = (bins.softmax(-1) * torch.arange(16.0)).sum(-1)
    torch.testing.assert_close(boxes_t, expectation)


def test_detector_rejects_inputs_not_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model("yolo-n").eval()(torch.rand(1, 3, 100, 96))


def test_detector_sizes_match_yolov8_scale():
    def params(name):
        with torch.device("meta"):
            return sum(p.numel() for p in build_model(name).parameters())

    assert 2.5e6 < params("yolo-n") < 3.3e6  # YOLOv8n: 3.16M
    assert 10e6 < params("yolo-s") < 11.5e6  # YOLOv8s: 11.17M


def test_detector_is_channels_last_friendly():
    model = build_model("yolo-n", num_classes=2).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_lenet5_is_the_classic_at_28_and_32_px():
    for imgsz in (28, 32):
        model = build_model("lenet5", imgsz=imgsz)
        assert sum(p.numel() for p in model.parameters()) == 61_706
        assert model(torch.rand(1, 1, imgsz, imgsz)).shape == (1, 10)
    assert isinstance(build_model("lenet5")[1], nn.Tanh)
    assert isinstance(build_model("lenet5", classic=False)[2], nn.MaxPool2d)


def test_resnet_stem_follows_input_size():
    small = build_model("resnet18", imgsz=32, num_classes=10)
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, nn.Identity)
    large = build_model("resnet18", imgsz=224, num_classes=10, in_channels=1)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.in_channels == 1


def test_reid_is_small():
    model = build_model("reid")
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert get_entry("reid").imgsz == (128, 64)


def test_unknown_name_and_keyword_are_clear_errors():
    with pytest.raises(ValueError, match="did you mean 'yolo-n'"):
        build_model("yolo-nn")
    with pytest.raises(ValueError, match="does not take widht"):
        build_model("resnet18", widht=2)


def test_checkpoint_round_trip(tmp_path):
    model = build_model("mobilenet_v3_small", num_classes=4).eval()
    meta = {"names": ["a", "b", "c", "d"], "imgsz": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    path = save_checkpoint(tmp_path / "best.pt", model, meta, train_state={"epoch": 3, "rng": torch.arange(4)})
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary left behind
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == {"task": "classify", **meta} and not loaded.training
    assert loaded.arch == model.arch and loaded.task == "classify"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert read_checkpoint(path)["train_state"]["epoch"] == 3


def test_detector_checkpoint_records_strides(tmp_path):
    save_checkpoint(tmp_path / "d.pt", build_model("yolo-n", num_classes=2), {"names": ["a", "b"]})
    _, meta = load_checkpoint(tmp_path / "d.pt")
    assert meta["strides"] == [8, 16, 32] and meta["task"] == "detect"


def test_save_checkpoint_refuses_objects_that_need_unpickling(tmp_path):
    with pytest.raises(TypeError, match=r"\['meta'\]\['data'\] is a PosixPath"):
        save_checkpoint(tmp_path / "x.pt", build_model("lenet5"), {"data": tmp_path})
    assert not list(tmp_path.iterdir())


def _shrink_conv_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d, nxt: nn.Conv2d, keep: int) -> None:
    """Hand-prune output channels of conv+bn and the matching inputs of the next conv."""
    idx = torch.arange(keep)
    conv.weight = nn.Parameter(conv.weight.data[idx])
    for name in ("weight", "bias"):
        setattr(bn, name, nn.Parameter(getattr(bn, name).data[idx]))
    bn.running_mean, bn.running_var = bn.running_mean[idx], bn.running_var[idx]
    nxt.weight = nn.Parameter(nxt.weight.data[:, idx])


def test_hand_pruned_checkpoint_reloads_at_its_widths(tmp_path):
    model = build_model("resnet18", imgsz=32, num_classes=3).eval()
    block = model.layer1[0]
    _shrink_conv_pair(block.conv1, block.bn1, block.conv2, 40)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "p.pt", model, {}))
    assert loaded.layer1[0].conv1.out_channels == 40 and loaded.layer1[0].conv2.in_channels == 40
    assert loaded.layer1[0].bn1.num_features == 40
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ref)


@pytest.mark.parametrize("name", ["yolo-n", "mobilenet_v2", "reid"])
def test_torch_pruned_checkpoint_reloads_without_the_pruner(tmp_path, name):
    tp = pytest.importorskip("torch_pruning")
    model = _build_small(name).eval()
    x = _input(name, batch=1)
    ignored = model.output_layers() if hasattr(model, "output_layers") else [m for m in model.modules() if isinstance(m, nn.Linear)][-1:]
    before = sum(p.numel() for p in model.parameters())
    tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.4,
                         ignored_layers=ignored).step()
    assert sum(p.numel() for p in model.parameters()) < 0.8 * before
    with torch.no_grad():
        ref = model(x)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "pruned.pt", model, {}))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        out = loaded(x)
    for a, b in zip(ref if isinstance(ref, tuple) else (ref,), out if isinstance(out, tuple) else (out,)):
        torch.testing.assert_close(a, b)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint at all" * 10)
    with pytest.raises(ValueError, match="garbage.pt is not a readable edgecnn checkpoint"):
        load_checkpoint(garbage)
    plain = tmp_path / "state.pt"
    torch.save(build_model("lenet5").state_dict(), plain)
    with pytest.raises(ValueError, match="state.pt is not an edgecnn checkpoint: expected format"):
        load_checkpoint(plain)


def test_onnx_file_is_not_a_checkpoint(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ValueError, match="model.onnx is not a readable edgecnn checkpoint"):
        load_checkpoint(path)


def test_load_weights_keeps_a_head_of_another_size(tmp_path):
    source = build_model("mobilenet_v3_small")  # 1000 classes, like torchvision's ImageNet file
    torch.save(source.state_dict(), tmp_path / "imagenet.pth")
    target = build_model("mobilenet_v3_small", num_classes=5)
    fresh_head = target.classifier[3].weight.detach().clone()
    report = load_weights(target, tmp_path / "imagenet.pth")
    assert report["skipped"] == ["classifier.3.weight (shape (1000, 1024) vs (5, 1024))",
                                 "classifier.3.bias (shape (1000,) vs (5,))"]
    torch.testing.assert_close(target.features[0][0].weight, source.features[0][0].weight)
    torch.testing.assert_close(target.classifier[3].weight, fresh_head)


def test_load_weights_puts_torchvision_features_into_a_detector_backbone(tmp_path):
    import torchvision

    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    detector = build_model("yolo-r18", num_classes=2)
    report = load_weights(detector, tmp_path / "resnet18.pth")
    assert report["skipped"] == ["fc.weight (no such layer)", "fc.bias (no such layer)"]
    torch.testing.assert_close(detector.backbone.body.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert all(k.startswith(("neck.", "head.")) for k in report["missing"])


def test_load_weights_rejects_unrelated_weights(tmp_path):
    torch.save(build_model("lenet5").state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(ValueError, match="lenet.pth: no tensor matches"):
        load_weights(build_model("reid"), tmp_path / "lenet.pth")
