"""What differs between training a detector, a classifier, an embedder and a segmenter: their data,
loss and validation metric. The trainer's loop is the same for all four."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from edgecnn.data.augment import DEFAULTS, AugmentConfig, ClassificationAugment, DetectionAugment, SegmentationAugment
from edgecnn.data.loaders import (ClassificationDataset, DetectionDataset, PKBatchSampler, SeededSampler,
                                  SegmentationDataset, collate_classification, collate_detection, collate_segmentation)
from edgecnn.runtime.preprocess import input_hw
from edgecnn.train.keys import AUGMENT_KEYS, FITNESS

LOG = logging.getLogger("edgecnn")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Split:
    """One split of a dataset in the form the Datasets take."""

    names: tuple[str, ...]
    images: list  # detect: image paths; classify/embed: (path, class) samples; segment: (path, mask source)
    labels: list | None = None  # detect: (N, 5) arrays
    spec: object = None  # segment: the SegmentationSpec (ignore index, how masks are read)


def read_split(task: str, data: str, split: str) -> Split:
    """Detect: a YOLO `data.yaml`; segment: one with `task: segment` (every mask checked here).
    Classify: an ImageFolder root (`<split>/<class>/`). Embed: the same with one folder per
    identity, each split holding its own identities."""
    from edgecnn.data import open_task_dataset

    spec = open_task_dataset(data, task)
    if task == "segment":
        from edgecnn.data.segment import scan_segment_split

        return Split(spec.names, scan_segment_split(spec, split), spec=spec)
    if task == "detect":
        from edgecnn.data.yolo import scan_split

        scan = scan_split(spec, split, check_images=False)
        return Split(spec.names, scan.images, scan.labels)
    from edgecnn.data.imagefolder import scan_folder

    scan = scan_folder(spec, split, check_images=False)
    return Split(tuple(scan.names), list(zip(scan.images, scan.targets)))


def augment_config(task: str, cfg: dict) -> AugmentConfig:
    """The task's defaults, overridden by every augmentation key set in `cfg` (None = default)."""
    given = {k: cfg[k] for k in AUGMENT_KEYS if cfg.get(k) is not None}
    return AugmentConfig(**{**DEFAULTS[task].__dict__, **given})


def to_input(images: torch.Tensor, device, mean, std, channels_last: bool) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> normalized float on `device`, as the backends feed the exported model."""
    x = images.to(device, non_blocking=True).float().div_(255)
    x = (x - torch.tensor(mean, device=device).view(1, -1, 1, 1)) / torch.tensor(std, device=device).view(1, -1, 1, 1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def square(imgsz) -> int:
    return input_hw(imgsz)[0]


class Task:
    """A task's datasets, loss and validation; `model` is the plain (unwrapped) model."""

    name = ""

    def __init__(self, cfg: dict, imgsz, names: tuple[str, ...]):
        self.cfg, self.imgsz, self.names = cfg, imgsz, names
        self.fitness = FITNESS[self.name]

    def extra_modules(self) -> list[torch.nn.Module]:
        """Trainable modules besides the model (e.g. an ArcFace head); saved in train_state."""
        return []

    def loader(self, dataset, batch: int, workers: int, shuffle: bool, seed: int, world=None, epoch_sampler=None):
        kwargs = dict(num_workers=workers, pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(seed), collate_fn=self.collate)
        if epoch_sampler is not None:
            return DataLoader(dataset, batch_sampler=epoch_sampler, **kwargs)
        if not shuffle:
            return DataLoader(dataset, batch_size=batch, shuffle=False, **kwargs)
        rank, size = (world.rank, world.size) if world else (0, 1)
        sampler = SeededSampler(dataset, num_replicas=size, rank=rank, shuffle=True, seed=seed)
        return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=len(dataset) // size > batch, **kwargs)


class DetectTask(Task):
    name = "detect"
    collate = staticmethod(collate_detection)

    def __init__(self, cfg, imgsz, names, strides):
        super().__init__(cfg, imgsz, names)
        from edgecnn.train.losses import DetectionLoss

        self.strides = tuple(strides)
        self.criterion = DetectionLoss(len(names), self.strides, box_loss=cfg["box_loss"], cls_loss=cfg["cls_loss"])
        self._regions: dict[tuple[str, tuple[int, int]], np.ndarray] = {}  # val image → its letterbox region

    def train_dataset(self, split: Split, mosaic: bool):
        aug = augment_config("detect", self.cfg)
        return DetectionDataset(split.images, split.labels, square(self.imgsz), DetectionAugment(aug), aug.mosaic if mosaic else 0.0)

    def val_dataset(self, split: Split):
        return DetectionDataset(split.images, split.labels, square(self.imgsz))

    def loss(self, model, batch, to_device):
        images, targets, _ = batch
        x = to_device(images)
        return self.criterion(model(x), targets.to(x.device), tuple(x.shape[-2:]))

    @torch.no_grad()
    def evaluate(self, model, loader, to_device, progress=None) -> dict:
        from edgecnn.metrics.detection import DetectionMetrics
        from edgecnn.runtime.postprocess import postprocess

        metrics = DetectionMetrics(len(self.names), self.names)
        for images, targets, indices in progress(loader) if progress else loader:
            x = to_device(images)
            size = tuple(x.shape[-2:])
            boxes, scores = model(x)[:2]
            dets = postprocess(boxes.float().cpu().numpy(), scores.float().cpu().numpy(), size,
                               self.strides, conf=self.cfg["val_conf"], iou=self.cfg["val_iou"], max_det=300)
            for b, det in enumerate(dets):
                # Boxes clipped to the image, as the device's detector clips them to the frame: one mAP
                # for the same weights here and in `edgecnn val`.
                region = self._region(loader.dataset.images[int(indices[b])], size)
                xyxy = np.clip(det.xyxy, region[[0, 1, 0, 1]], region[[2, 3, 2, 3]])
                gt = targets[targets[:, 0] == b]
                metrics.update(xyxy, det.scores, det.classes, gt[:, 2:].numpy(), gt[:, 1].long().numpy())
        return metrics.compute()

    def _region(self, path, size: tuple[int, int]) -> np.ndarray:
        from edgecnn.data.yolo import image_shape
        from edgecnn.runtime.preprocess import image_region

        key = (str(path), size)
        if key not in self._regions:
            self._regions[key] = image_region(image_shape(Path(path)), size)
        return self._regions[key]


class ClassifyTask(Task):
    name = "classify"
    collate = staticmethod(collate_classification)

    def train_dataset(self, split: Split, mosaic: bool = False):
        return ClassificationDataset(split.images, square(self.imgsz), ClassificationAugment(augment_config(self.name, self.cfg)))

    def val_dataset(self, split: Split):
        return ClassificationDataset(split.images, square(self.imgsz))

    def loss(self, model, batch, to_device):
        from edgecnn.train.losses import classification_loss

        images, labels, _ = batch
        x = to_device(images)
        loss = classification_loss(model(x), labels.to(x.device), self.cfg["label_smoothing"])
        return loss, {"cls": loss.detach()}

    @torch.no_grad()
    def evaluate(self, model, loader, to_device, progress=None) -> dict:
        from edgecnn.metrics.classification import ClassificationMetrics

        metrics = ClassificationMetrics(len(self.names), self.names)
        for images, labels, _ in progress(loader) if progress else loader:
            metrics.update(model(to_device(images)).float().cpu().numpy(), labels.numpy())
        return metrics.compute()


class EmbedTask(ClassifyTask):
    """Metric learning on identity crops: batch-hard triplet loss over P x K batches (+ ArcFace)."""

    name = "embed"
    VAL_MIN_GAP = 30  # frames

    def __init__(self, cfg, imgsz, names, dim: int | None = None):
        super().__init__(cfg, imgsz, names)
        self.arcface = None
        if cfg["arcface"]:
            from edgecnn.train.losses import ArcFaceHead

            if dim is None:
                raise ValueError("arcface needs the embedding size of the model")
            self.arcface = ArcFaceHead(dim, len(names))

    def extra_modules(self):
        return [self.arcface] if self.arcface is not None else []

    def pk_sampler(self, dataset, batch: int, seed: int, world=None):
        k = self.cfg["k"]
        rank, size = (world.rank, world.size) if world else (0, 1)
        return PKBatchSampler(dataset.targets, max(batch // k, 2), k, seed=seed, rank=rank, world=size)

    def train_dataset(self, split: Split, mosaic: bool = False):
        aug = augment_config(self.name, self.cfg)
        return ClassificationDataset(split.images, self.imgsz, ClassificationAugment(aug))

    def val_dataset(self, split: Split):
        return ClassificationDataset(split.images, self.imgsz)

    def loss(self, model, batch, to_device):
        from edgecnn.train.losses import batch_hard_triplet_loss

        images, labels, _ = batch
        x = to_device(images)
        labels = labels.to(x.device)
        emb = model(x).float()
        triplet = batch_hard_triplet_loss(emb, labels, self.cfg["margin"])
        parts = {"triplet": triplet.detach()}
        loss = triplet
        if self.arcface is not None:
            arc = self.arcface(emb, labels)
            parts["arcface"] = arc.detach()
            loss = loss + arc
        return loss, parts

    @torch.no_grad()
    def evaluate(self, model, loader, to_device, progress=None) -> dict:
        from edgecnn.data import crops
        from edgecnn.metrics.retrieval import retrieval_metrics

        embeddings, labels, indices = [], [], []
        for images, y, i in progress(loader) if progress else loader:
            embeddings.append(model(to_device(images)).float().cpu().numpy())
            labels.append(y.numpy())
            indices.append(i.numpy())
        embeddings, labels = np.concatenate(embeddings), np.concatenate(labels)
        paths = [Path(loader.dataset.samples[i][0]) for i in np.concatenate(indices)]
        # `edgecnn data crops` names crops by frame: a same-identity crop within a second of the
        # query is a near-duplicate and does not count.
        if paths and (paths[0].parents[2] / crops.RECORD).is_file():
            try:
                return retrieval_metrics(embeddings, labels, [int(p.stem) for p in paths], self.VAL_MIN_GAP)
            except ValueError:
                LOG.warning("val: no identity has crops %d frames apart; scoring every pair", self.VAL_MIN_GAP)
        return retrieval_metrics(embeddings, labels)


class SegmentTask(Task):
    """Per-pixel cross-entropy with the dataset's ignore index (optionally class-weighted), plus
    an auxiliary head's loss when the model returns one; validated by mIoU."""

    name = "segment"
    collate = staticmethod(collate_segmentation)

    def __init__(self, cfg, imgsz, names):
        super().__init__(cfg, imgsz, names)
        self.ignore_index, self.weights = 255, None

    def _adopt(self, split: Split) -> None:
        self.ignore_index = split.spec.ignore_index

    def train_dataset(self, split: Split, mosaic: bool = False):
        self._adopt(split)
        self.weights = class_weights(self.cfg["class_weights"], split)
        crop = input_hw(self.cfg["crop"] or self.imgsz)
        augment = SegmentationAugment(augment_config(self.name, self.cfg), crop, self.ignore_index)
        return SegmentationDataset(split.images, split.spec, self.imgsz, augment)

    def val_dataset(self, split: Split):
        self._adopt(split)
        return SegmentationDataset(split.images, split.spec, self.imgsz)

    def loss(self, model, batch, to_device):
        import torch.nn.functional as F

        images, masks, _ = batch
        x = to_device(images)
        target = masks.to(x.device)
        out = model(x)
        logits, aux = out if isinstance(out, (tuple, list)) else (out, None)
        weight = None if self.weights is None else self.weights.to(x.device)
        loss = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=self.ignore_index)
        parts = {"ce": loss.detach()}
        if aux is not None:
            aux_loss = F.cross_entropy(aux.float(), target, weight=weight, ignore_index=self.ignore_index)
            parts["aux"] = aux_loss.detach()
            loss = loss + self.cfg["aux_weight"] * aux_loss
        return loss, parts

    @torch.no_grad()
    def evaluate(self, model, loader, to_device, progress=None) -> dict:
        from edgecnn.metrics.segmentation import SegmentationMetrics

        metrics = SegmentationMetrics(len(self.names), self.names, self.ignore_index)
        for images, masks, _ in progress(loader) if progress else loader:
            metrics.update(model(to_device(images)).argmax(1).cpu().numpy(), masks.numpy())
        return metrics.compute()


def class_weights(setting, split: Split) -> torch.Tensor | None:
    """None, 'auto' (median-frequency balancing over the train masks) or one weight per class."""
    if setting is None:
        return None
    if setting == "auto":
        from edgecnn.data.segment import class_pixels, median_frequency_weights

        weights = median_frequency_weights(class_pixels(split.spec, split.images))
        LOG.info("class weights (median frequency): %s", ", ".join(f"{n}={w:.2f}" for n, w in zip(split.names, weights)))
        return torch.tensor(weights, dtype=torch.float32)
    if isinstance(setting, str) or len(setting) != len(split.names):
        raise ValueError(f"class_weights={setting!r}: use 'auto' or a list of {len(split.names)} numbers (one per class)")
    return torch.tensor([float(w) for w in setting], dtype=torch.float32)


def make_task(task: str, cfg: dict, imgsz, names, model) -> Task:
    if task == "detect":
        if len(set(input_hw(imgsz))) != 1:
            raise ValueError(f"imgsz={imgsz}: the detector trains on square inputs (imgsz=<int>)")
        strides = getattr(model, "strides", None)
        if strides is None:
            raise ValueError("a detector must carry `strides` (see the output contract)")
        return DetectTask(cfg, imgsz, names, strides)
    if task == "classify":
        return ClassifyTask(cfg, imgsz, names)
    if task == "embed":
        return EmbedTask(cfg, imgsz, names, dim=getattr(model, "dim", None) or embedding_dim(model, imgsz))
    if task == "segment":
        return SegmentTask(cfg, imgsz, names)
    raise ValueError(f"unknown task '{task}' (detect, classify, embed or segment)")


@torch.no_grad()
def embedding_dim(model, imgsz) -> int:
    h, w = input_hw(imgsz)
    was = model.training
    model.eval()
    p = next(model.parameters())
    dim = model(torch.zeros(1, 3, h, w, device=p.device)).shape[-1]
    model.train(was)
    return int(dim)
