"""Semantic segmentation on the host: the dataset format (masks and YOLO-seg polygons) and its bad
input, the metrics against scikit-learn, the models, the synthetic generator, augmentation, and a
tiny train → val → prune → QAT run through the commands."""

import json

import cv2
import numpy as np
import pytest
import torch

from edgecnn.cli import main
from edgecnn.data import dataset_format, open_task_dataset
from edgecnn.data.segment import (letterbox_mask, median_frequency_weights, read_mask, scan_segment_split,
                                  write_segment_yaml)
from edgecnn.data.synth import synth_segment
from edgecnn.metrics.segmentation import SegmentationMetrics, confusion_matrix, score_segmentation
from edgecnn.models import build_model, save_checkpoint

def make_dataset(root, masks: dict, names=("a", "b", "c"), ignore_index=255, size=(20, 30), polygons: dict = ()):
    """images/train/<stem>.jpg with masks/train/<stem>.png (or labels/train/<stem>.txt polygons)."""
    for sub in ("images/train", "masks/train", "labels/train", "images/val"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for stem in [*masks, *dict(polygons)]:
        cv2.imwrite(str(root / "images/train" / f"{stem}.jpg"), np.full((*size, 3), 90, np.uint8))
    for stem, mask in masks.items():
        cv2.imwrite(str(root / "masks/train" / f"{stem}.png"), mask)
    for stem, text in dict(polygons).items():
        (root / "labels/train" / f"{stem}.txt").write_text(text)
    cv2.imwrite(str(root / "images/val/v.jpg"), np.zeros((*size, 3), np.uint8))
    (root / "masks/val").mkdir(exist_ok=True)
    cv2.imwrite(str(root / "masks/val/v.png"), np.zeros(size, np.uint8))
    return write_segment_yaml(root / "data.yaml", list(names), "images/train", "images/val", ignore_index=ignore_index)


# ----------------------------------------------------------------------------- data
def test_masks_and_polygons_are_read(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:20] = 2
    mask[0, :] = 7  # the yaml's ignore index
    data = make_dataset(tmp_path, {"m": mask}, ignore_index=7,
                        polygons={"p": "1 0.0 0.0 0.5 0.0 0.5 0.5 0.0 0.5\n\n2 0.5 0.5 1.0 0.5 1.0 1.0\n"})
    assert dataset_format(data) == "segment"
    spec = open_task_dataset(data, "segment")
    assert spec.ignore_index == 7 and spec.background == 7 and spec.names == ("a", "b", "c")
    pairs = {p.stem: s for p, s in scan_segment_split(spec, "train")}
    assert pairs["m"].suffix == ".png" and pairs["p"].suffix == ".txt"
    assert np.array_equal(read_mask(pairs["m"], tmp_path / "images/train/m.jpg", spec), mask)
    poly = read_mask(pairs["p"], tmp_path / "images/train/p.jpg", spec)
    assert poly.shape == (20, 30)
    assert (poly[:10, :15] == 1).all() and poly[19, 29] == 2 and poly[19, 0] == 7  # uncovered → background = ignore
    with pytest.raises(ValueError, match="task needs a YOLO data.yaml"):
        open_task_dataset(data, "detect")


@pytest.mark.parametrize("case, match", [
    ("size", r"m\.png: the mask is 31x20 but its image .*m\.jpg is 30x20"),
    ("class", r"m\.png: class index 3 is not one of 0\.\.2"),
    ("missing", r"m\.jpg: no mask \(.*masks/train/m\.png\) and no polygon labels"),
    ("rgb", r"m\.png: a mask must be one channel of class indices, found a RGB image"),
    ("polygon_class", r"p\.txt:1: class id 5 is not one of 0\.\.2"),
    ("polygon_short", r"p\.txt:1: expected 'class x1 y1 x2 y2 x3 y3 \.\.\.'"),
])
def test_bad_input_names_the_file(tmp_path, case, match):
    mask = np.zeros((20, 30), np.uint8)
    polygons = {}
    if case == "size":
        mask = np.zeros((20, 31), np.uint8)
    elif case == "class":
        mask[3, 3] = 3
    elif case == "polygon_class":
        polygons = {"p": "5 0 0 1 0 1 1\n"}
    elif case == "polygon_short":
        polygons = {"p": "1 0 0 1 0\n"}
    data = make_dataset(tmp_path, {"m": mask}, polygons=polygons)
    if case == "missing":
        (tmp_path / "masks/train/m.png").unlink()
    if case == "rgb":
        cv2.imwrite(str(tmp_path / "masks/train/m.png"), np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ValueError, match=match):
        scan_segment_split(open_task_dataset(data, "segment"), "train")


def test_yaml_keys_are_checked(tmp_path):
    data = make_dataset(tmp_path, {"m": np.zeros((20, 30), np.uint8)}, ignore_index=1)
    with pytest.raises(ValueError, match="ignore_index 1 is one of the 3 class ids"):
        open_task_dataset(data, "segment")


def test_letterbox_mask_keeps_class_ids():
    mask = np.arange(12, dtype=np.uint8).reshape(3, 4)
    boxed = letterbox_mask(mask, (8, 8), fill=255)
    assert boxed.shape == (8, 8) and set(np.unique(boxed)) <= set(range(12)) | {255}
    assert (boxed[:1] == 255).all() and (boxed[-1:] == 255).all()  # 3x4 → 6x8 centred: one pad row each side
    assert np.array_equal(boxed[1:7:2, ::2], mask)


def test_median_frequency_weights():
    assert np.allclose(median_frequency_weights(np.array([100, 10, 0, 50])), [0.5, 5.0, 0.0, 1.0])


def test_synthetic_segmentation_set(tmp_path):
    info = synth_segment(tmp_path, n=4, val=2, imgsz=64)
    spec = open_task_dataset(tmp_path / "data.yaml", "segment")
    assert spec.names[0] == "background" and len(spec.names) == 6 and spec.ignore_index == 255
    pairs = scan_segment_split(spec, "train")
    assert len(pairs) == 4
    objects = sum(v for k, v in info["splits"]["train"]["pixels_per_class"].items() if k != "background")
    assert objects > 0
    again = tmp_path / "again"
    synth_segment(again, n=4, val=2, imgsz=64)
    for _, source in pairs:  # the same bytes from the same seed
        assert source.read_bytes() == (again / "masks/train" / source.name).read_bytes()


def test_joint_augmentation_moves_mask_with_image():
    from edgecnn.data.augment import AugmentConfig, SegmentationAugment
    from edgecnn.data.loaders import seeded

    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    mask = torch.zeros(40, 60, dtype=torch.int64)
    image[:, 10:20, 5:25] = 200
    mask[10:20, 5:25] = 1
    augment = SegmentationAugment(AugmentConfig(scale=0.5, translate=0.0, fliplr=0.5, hsv_h=0, hsv_s=0, hsv_v=0,
                                                mosaic=0), (32, 48), ignore_index=9)
    for seed in range(6):
        with seeded(seed):
            out_image, out_mask = augment(image, mask)
        assert out_image.shape == (3, 32, 48) and out_mask.shape == (32, 48) and out_mask.dtype == torch.int64
        assert set(out_mask.unique().tolist()) <= {0, 1, 9}  # nearest sampling, ignore where nothing was
        bright = out_image[0] > 150  # the image is resampled bilinear, the mask nearest: edges may differ by a pixel
        assert bright[out_mask == 1].float().mean() > 0.75 and bright[out_mask == 0].float().mean() < 0.05


# ----------------------------------------------------------------------------- metrics
def test_metrics_match_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    num_classes, ignore = 5, 255
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore)
    truths, preds = [], []
    for _ in range(4):
        target = rng.integers(0, num_classes, (16, 24))
        target[rng.random((16, 24)) < 0.2] = ignore
        target[target == 4] = 3  # class 4 never in the ground truth
        pred = np.where(rng.random((16, 24)) < 0.6, target % num_classes, rng.integers(0, num_classes - 1, (16, 24)))
        metrics.update(pred, target)
        truths.append(target.reshape(-1))
        preds.append(pred.reshape(-1))
    truth, pred = np.concatenate(truths), np.concatenate(preds)
    keep = truth != ignore
    reference = sklearn_metrics.confusion_matrix(truth[keep], pred[keep], labels=list(range(num_classes)))
    assert np.array_equal(metrics.confusion, reference)
    out = metrics.compute()
    iou = sklearn_metrics.jaccard_score(truth[keep], pred[keep], labels=[0, 1, 2, 3], average=None)
    assert [out["iou"][str(c)] for c in range(4)] == pytest.approx(iou)
    assert out["iou"]["4"] is None  # neither in the truth nor predicted: left out of the mean
    assert out["mIoU"] == pytest.approx(iou.mean())
    assert out["pixel_acc"] == pytest.approx(sklearn_metrics.accuracy_score(truth[keep], pred[keep]))


def test_metrics_edge_cases():
    with pytest.raises(ValueError, match="ground-truth class 6 is not one of 0..2"):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), 6), 3)
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    perfect = score_segmentation(lambda image: image[..., 0].astype(np.int64),
                                 [(np.full((4, 4, 3), c, np.uint8), np.full((4, 4), c)) for c in (0, 1)], ["x", "y"])
    assert perfect["mIoU"] == 1.0 and perfect["pixel_acc"] == 1.0 and perfect["latency_ms_p50"] >= 0


# ----------------------------------------------------------------------------- models
def test_segmenters_keep_running_statistics_current():
    """(tests/test_models.py checks every model's output shape.) Running statistics that follow the
    weights in short from-scratch runs: torchvision's MobileNetV3 uses momentum 0.01."""
    for name in ("lraspp-mnv3s", "fcn-mnv3", "unet-s"):
        model = build_model(name, num_classes=4)
        assert model.task == "segment" and model.arch == {"name": name, "kwargs": {"num_classes": 4}}
        assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}


def test_minimalistic_backbone_has_only_relu_and_3x3_kernels():
    """lraspp-mnv3s-min: MobileNetV3-Small's widths without Hardswish, Hardsigmoid, squeeze-and-excite
    or 5x5 kernels, the ops whose int8 form XNNPACK runs slowly or requantizes."""
    from torchvision.ops import SqueezeExcitation

    small, minimal = build_model("lraspp-mnv3s", num_classes=11), build_model("lraspp-mnv3s-min", num_classes=11)
    kinds = {type(m) for m in minimal.modules()}
    assert not kinds & {torch.nn.Hardswish, torch.nn.Hardsigmoid, SqueezeExcitation}
    assert {m.kernel_size for m in minimal.modules() if isinstance(m, torch.nn.Conv2d)} == {(1, 1), (3, 3)}

    def depthwise_widths(model):
        return [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise_widths(minimal) == depthwise_widths(small)
    assert minimal.eval()(torch.zeros(1, 3, 64, 96)).shape == (1, 11, 64, 96)


def test_auxiliary_head_only_in_training():
    model = build_model("deeplabv3-mnv3", num_classes=3, aux_loss=True)
    logits, aux = model.train()(torch.zeros(2, 3, 64, 64))
    assert logits.shape == aux.shape == (2, 3, 64, 64)
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_backbone_from_a_classification_checkpoint(tmp_path):
    from edgecnn.models.segment import load_backbone

    classifier = build_model("mobilenet_v3_small", num_classes=7)
    save_checkpoint(tmp_path / "cls.pt", classifier, {"task": "classify", "names": list("abcdefg")})
    model = build_model("lraspp-mnv3s", num_classes=3)
    report = load_backbone(model, tmp_path / "cls.pt")
    assert len(report["loaded"]) > 100 and not report["missing"]
    assert torch.equal(model.state_dict()["backbone.0.0.weight"], classifier.state_dict()["features.0.0.weight"])
    with pytest.raises(ValueError, match="no tensor matches the backbone"):
        load_backbone(build_model("unet-s", num_classes=3), tmp_path / "cls.pt")


# ----------------------------------------------------------------------------- commands
@pytest.fixture(scope="module")
def tiny_seg(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    synth_segment(root, n=8, val=3, imgsz=64)
    return root / "data.yaml"


def run(command, args, capsys):
    code = main([command, *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    return json.loads(captured.out.strip().splitlines()[-1])  # NNCF prints its progress bars to stdout


@pytest.mark.slow
def test_train_val_prune_qat_through_the_commands(tiny_seg, tmp_path, capsys):
    keys = [f"data={tiny_seg}", "imgsz=[48,64]", "batch=4", "workers=0", "plots=false"]
    train = run("train", ["model=lraspp-mnv3s", "epochs=1", "crop=[32,48]", "class_weights=auto",
                          f"out={tmp_path / 'train'}", *keys], capsys)
    assert train["fitness"] == "mIoU" and 0 <= train["mIoU"] <= 1 and "iou" not in train
    results = json.loads((tmp_path / "train/results.json").read_text())
    assert set(results["best_metrics"]["iou"]) == {"background", "person", "car", "sign", "ball", "box"}
    best = tmp_path / "train/best.pt"
    val = run("val", [str(best), f"data={tiny_seg}"], capsys)
    assert val["format"] == "torch" and val["images"] == 3
    assert val["mIoU"] == pytest.approx(train["mIoU"], abs=1e-6)  # 64x48 frames letterbox to exactly imgsz
    pruned = run("prune", [f"model={best}", "target_macs=0.6", "steps=1", "ft_epochs=1", "latency=false",
                           "max_map_drop=100", f"out={tmp_path / 'prune'}", *keys], capsys)
    assert pruned["macs_kept"] <= 0.6
    qat = run("qat", [f"model={tmp_path / 'prune/pruned.pt'}", "epochs=1", "subset_size=4", "max_map_drop=100",
                      f"out={tmp_path / 'qat'}", *keys], capsys)
    assert 0 <= qat["mIoU"] <= 1 and (tmp_path / "qat/qat.onnx").stat().st_size > 10_000


def test_data_check_summarizes_pixels(tiny_seg, tmp_path, capsys):
    result = run("data", ["check", f"data={tiny_seg}", f"out={tmp_path}"], capsys)
    assert result["images"] == 11 and result["classes"] == 6
    summary = json.loads((tmp_path / "summary.json").read_text())
    train = summary["splits"]["train"]
    assert summary["task"] == "segment" and train["images"] == 8 and train["polygon_labels"] == 0
    assert sum(train["pixels_pct_per_class"].values()) == pytest.approx(100, abs=0.01)
    assert train["images_per_class"]["background"] == 8


def test_train_setup_takes_backbone_weights(tiny_seg, tmp_path):
    from edgecnn.config import ConfigError
    from edgecnn.train.setup import prepare_model

    save_checkpoint(tmp_path / "cls.pt", build_model("mobilenet_v3_small", num_classes=3),
                    {"task": "classify", "names": ["a", "b", "c"]})
    model, meta, pretrained = prepare_model("lraspp-mnv3s", str(tiny_seg), backbone_weights=str(tmp_path / "cls.pt"))
    assert meta["names"][0] == "background" and model.output_layers()[0].out_channels == 6
    assert pretrained and all(name.startswith("backbone.") for name in pretrained)
    with pytest.raises(ConfigError, match="backbone_weights= starts a segmentation model's backbone"):
        prepare_model("lraspp-mnv3s", str(tiny_seg), weights=str(tmp_path / "cls.pt"),
                      backbone_weights=str(tmp_path / "cls.pt"))
