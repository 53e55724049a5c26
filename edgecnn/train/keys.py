"""The keys of a training run (stdlib only, so `edgecnn train --help` and the `prune`/`qat`
commands that compose them stay light)."""

from __future__ import annotations

from dataclasses import replace

from edgecnn.config import Key, Schema

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULERS = ("cosine", "linear", "step", "constant")
# The validation metric per task. Embedders are picked by mAP: rank-1 saturates on a small val set
# (an embedder trained one epoch already scored 0.99 and was kept as best, with every crop at
# cosine distance < 0.001 from every other).
FITNESS = {"detect": "mAP50_95", "classify": "top1", "embed": "mAP", "segment": "mIoU"}
AUGMENT_KEYS = ("degrees", "translate", "scale", "shear", "fliplr", "hsv_h", "hsv_s", "hsv_v", "channel_shift", "mosaic")

_AUGMENT_HELP = {
    "degrees": "rotation range in degrees", "translate": "shift as a fraction of the size",
    "scale": "zoom range (+/- fraction)", "shear": "shear range in degrees", "fliplr": "horizontal flip probability",
    "hsv_h": "hue jitter", "hsv_s": "saturation jitter", "hsv_v": "brightness jitter",
    "channel_shift": "per-channel intensity shift (fraction of 255)", "mosaic": "probability of a 4-image mosaic (detect)",
}

TRAIN_KEYS = Schema(
    Key("data", None, "dataset: a YOLO data.yaml (detect; with task: segment, segment) or an ImageFolder root "
        "with train/ and val/ (classify, embed)"),
    Key("imgsz", None, "input size: an int (square) or [h, w]; default: the model's usual size", type=(int, list)),
    Key("epochs", 30, "training epochs", min=1),
    Key("batch", 16, "images per optimizer step over all devices", min=1),
    Key("device", "auto", "auto (cuda when there is one), cpu, cuda or cuda:N"),
    Key("devices", 1, "data-parallel processes (DDP: gloo on CPU, nccl on CUDA); torchrun sets its own", min=1),
    Key("workers", None, "data-loading processes per device (default: one per spare core, at most 8)", type=int, min=0),
    Key("amp", "auto", "mixed precision on CUDA (auto: bf16 where supported, else fp16); the CPU trains in fp32",
        choices=("auto", "bf16", "fp16", "off")),
    Key("channels_last", True, "channels-last memory format (faster convolutions on CUDA)"),
    Key("optimizer", "adamw", "optimizer", choices=OPTIMIZERS),
    Key("lr0", 0.002, "initial learning rate", min=0),
    Key("lrf", 0.01, "final learning rate as a fraction of lr0", min=0, max=1),
    Key("momentum", 0.937, "SGD/RMSProp momentum, Adam beta1", min=0, max=1),
    Key("nesterov", True, "Nesterov momentum (SGD)"),
    Key("weight_decay", 0.0005, "weight decay on conv/linear weights (never on norm layers or biases)", min=0),
    Key("warmup_epochs", 1.0, "linear learning-rate warmup, in epochs", min=0),
    Key("scheduler", "cosine", "learning-rate schedule after warmup", choices=SCHEDULERS),
    Key("step_size", 10, "step schedule: epochs between decays", min=1),
    Key("gamma", 0.1, "step schedule: decay factor", min=0, max=1),
    Key("clip_grad", 10.0, "clip the gradient norm to this; 0 turns clipping off", min=0),
    Key("ema", True, "keep an exponential moving average of the weights; validate and save it"),
    Key("ema_decay", 0.9999, "EMA decay (ramped up over the first few thousand steps)", min=0, max=1),
    Key("patience", 50, "stop after this many epochs without a better validation metric (0: never)", min=0),
    Key("seed", 0, "random seed (weights init, data order, augmentation)"),
    Key("weights", None, "start from these weights: an edgecnn checkpoint or a torchvision state_dict file"),
    Key("freeze", None, "freeze 'backbone' or the first N top-level modules", type=(str, int)),
    Key("unfreeze_epoch", None, "unfreeze everything from this epoch (0-based)", type=int, min=0),
    Key("finetune_lr_scale", 1.0, "learning-rate factor for the layers loaded from `weights`", min=0),
    *(Key(k, None, f"{_AUGMENT_HELP[k]} (default: the task's)", type=float, min=0) for k in AUGMENT_KEYS),
    Key("close_mosaic", 10, "turn mosaic off for the last N epochs (detect)", min=0),
    Key("box_loss", "ciou", "detect: IoU-family box loss", choices=("ciou", "giou")),
    Key("cls_loss", "bce", "detect: class loss, binary cross-entropy or varifocal", choices=("bce", "vfl")),
    Key("label_smoothing", 0.0, "classify: label smoothing", min=0, max=1),
    Key("k", 4, "embed: samples per identity in a P x K batch", min=2),
    Key("margin", 0.3, "embed: triplet margin", min=0),
    Key("arcface", False, "embed: add an ArcFace classification head to the triplet loss"),
    Key("crop", None, "segment: train on random crops of this size, an int or [h, w], cut from the image "
        "letterboxed to imgsz and scale-jittered (default: imgsz)", type=(int, list)),
    Key("class_weights", None, "segment: cross-entropy class weights, 'auto' (median frequency of the train "
        "masks) or one weight per class", type=(str, list)),
    Key("aux_weight", 0.4, "segment: weight of an auxiliary head's loss (models built with aux_loss=true)", min=0),
    Key("backbone_weights", None, "segment: start the backbone from this classification checkpoint "
        "(tensors matched by name and shape)"),
    Key("val_conf", 0.001, "detect: confidence threshold for validation", min=0, max=1),
    Key("val_iou", 0.6, "detect: NMS IoU for validation", min=0, max=1),
    Key("plots", True, "write PNG plots next to results.json"),
)




# A fine-tuning stage (prune, qat) trains with the normal loop and keys, but has its own epochs
# and starts from the checkpoint it is given. It always needs data; `train` needs it unless it
# resumes (last.pt holds the run's keys), so TRAIN_KEYS leaves it optional.
FINETUNE_KEYS = Schema(*(replace(k, required=True) if name == "data" else k
                         for name, k in TRAIN_KEYS.keys.items() if name not in ("epochs", "weights", "backbone_weights")))


def finetune_config(cfg: dict) -> dict:
    """The training keys of a fine-tuning command's resolved config."""
    return {name: cfg[name] for name in FINETUNE_KEYS.keys}
