"""torch Datasets, samplers and collate functions over the dataset readers.

Images are letterboxed to the model's square input with `edgecnn.runtime.preprocess.letterbox`,
exactly as the device does, and stay uint8 until the trainer normalizes them on its device.
Samplers hand out `(index, seed)` pairs: each sample's augmentation is drawn from its own seed,
so a run is reproducible whatever the worker count, and `resume` sees the same batches.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from edgecnn.data.augment import ClassificationAugment, DetectionAugment, SegmentationAugment, mosaic
from edgecnn.runtime.preprocess import input_hw, letterbox


def default_workers() -> int:
    """One worker per spare core, at most 8: on a 2-core machine, one loads while one trains."""
    return min(8, max((os.cpu_count() or 1) - 1, 0))


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def letterboxed_tensor(path: Path, imgsz) -> tuple[torch.Tensor, tuple[float, float], tuple[float, float], tuple[int, int]]:
    image = read_rgb(path)
    boxed, scale, pad = letterbox(image, input_hw(imgsz))
    return torch.from_numpy(np.ascontiguousarray(boxed.transpose(2, 0, 1))), scale, pad, image.shape[:2]


@contextlib.contextmanager
def seeded(seed: int):
    """Draw from the CPU generator seeded with `seed`, leaving the caller's random state as it was.

    Seeds only the CPU generator: `torch.manual_seed` also walks every accelerator backend and
    costs ~0.3 ms, more than augmenting a small image."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def _split_key(key) -> tuple[int, int | None]:
    return (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), None)


class DetectionDataset(Dataset):
    """YOLO labels -> (image uint8 (3, s, s), targets (N, 5) `class x1 y1 x2 y2` in input pixels, index).

    `labels[i]` is (N, 5) `class cx cy w h` normalized, as `edgecnn.data.yolo` reads them.
    With an `augment` and a seeded key, a sample becomes a mosaic with probability `mosaic`
    and then goes through the box-aware transforms; `mosaic` can be set to 0 between epochs.
    """

    def __init__(self, images: Sequence[Path], labels: Sequence[np.ndarray], imgsz: int,
                 augment: DetectionAugment | None = None, mosaic: float = 0.0):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} label arrays")
        self.images, self.labels, self.imgsz = list(images), list(labels), imgsz
        self.augment, self.mosaic = augment, mosaic

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, (scale_x, scale_y), (left, top), (h, w) = letterboxed_tensor(self.images[i], self.imgsz)
        lab = torch.as_tensor(self.labels[i], dtype=torch.float32).reshape(-1, 5)
        cx, cy, bw, bh = (lab[:, 1] * w, lab[:, 2] * h, lab[:, 3] * w, lab[:, 4] * h)
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        boxes *= torch.tensor([scale_x, scale_y, scale_x, scale_y])
        boxes += torch.tensor([left, top, left, top])
        return image, boxes, lab[:, 0].long()

    def __getitem__(self, key):
        i, seed = _split_key(key)
        if self.augment is None or seed is None:
            image, boxes, labels = self.load(i)
        else:
            with seeded(seed):
                if self.mosaic and torch.rand(()) < self.mosaic:
                    others = torch.randint(len(self), (3,)).tolist()
                    image, boxes, labels = mosaic([self.load(j) for j in [i, *others]], self.imgsz)
                else:
                    image, boxes, labels = self.load(i)
                image, boxes, labels = self.augment(image, boxes, labels)
        targets = torch.cat([labels[:, None].float(), boxes.float()], 1)
        return image, targets, i


def collate_detection(batch):
    """-> images (B, 3, s, s) uint8, targets (N, 6) `batch_index class x1 y1 x2 y2`, indices (B,)."""
    images, targets, indices = zip(*batch)
    rows = [torch.cat([torch.full((len(t), 1), float(b)), t], 1) for b, t in enumerate(targets)]
    return torch.stack(images), torch.cat(rows) if rows else torch.zeros(0, 6), torch.tensor(indices)


class ClassificationDataset(Dataset):
    """(path, class) samples -> (image uint8 (3, s, s), class, index); also serves identity crops."""

    def __init__(self, samples: Sequence[tuple[Path, int]], imgsz, augment: ClassificationAugment | None = None):
        self.samples, self.imgsz, self.augment = list(samples), imgsz, augment
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        i, seed = _split_key(key)
        path, label = self.samples[i]
        image = letterboxed_tensor(path, self.imgsz)[0]
        if self.augment is not None and seed is not None:
            with seeded(seed):
                image = self.augment(image)
        return image, label, i


def collate_classification(batch):
    images, labels, indices = zip(*batch)
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), torch.tensor(indices)


class SegmentationDataset(Dataset):
    """(image, label source) pairs -> (image uint8 (3, h, w), mask int64 (h, w), index).

    Image and mask are letterboxed to `imgsz` as the device letterboxes frames (the mask's
    padding is the ignore index); a seeded key then augments and crops them (`augment`)."""

    def __init__(self, samples: Sequence[tuple[Path, Path]], spec, imgsz, augment: SegmentationAugment | None = None):
        self.samples, self.spec, self.imgsz, self.augment = list(samples), spec, imgsz, augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        from edgecnn.data.segment import letterbox_mask, read_mask

        i, seed = _split_key(key)
        path, source = self.samples[i]
        rgb = read_rgb(path)
        size = input_hw(self.imgsz)
        mask = letterbox_mask(read_mask(source, path, self.spec, rgb.shape[:2]), size, self.spec.ignore_index)
        image = torch.from_numpy(np.ascontiguousarray(letterbox(rgb, size)[0].transpose(2, 0, 1)))
        mask = torch.from_numpy(mask.astype(np.int64))
        if self.augment is not None and seed is not None:
            with seeded(seed):
                image, mask = self.augment(image, mask)
        return image, mask, i


def collate_segmentation(batch):
    images, masks, indices = zip(*batch)
    return torch.stack(images), torch.stack(masks), torch.tensor(indices)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + index) % (2**63)


class SeededSampler(DistributedSampler):
    """DistributedSampler (shuffled by seed + epoch, sharded by rank) yielding `(index, seed)`.

    Passing `num_replicas=1, rank=0` makes it the single-process sampler as well.
    """

    def __iter__(self):
        for index in super().__iter__():
            yield index, sample_seed(self.seed, self.epoch, index)


class PKBatchSampler(Sampler):
    """Batches of P identities x K samples each (batch-hard triplet mining needs both), sharded by rank.

    An identity with fewer than K samples is drawn with replacement. Yields lists of `(index, seed)`.
    """

    def __init__(self, labels: Sequence[int], p: int, k: int, seed: int = 0, rank: int = 0, world: int = 1):
        self.by_identity: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            self.by_identity.setdefault(int(label), []).append(index)
        if len(self.by_identity) < 2:
            raise ValueError(f"P x K sampling needs at least 2 identities, found {len(self.by_identity)}")
        self.p, self.k = min(p, len(self.by_identity)), k
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0
        # An epoch sees about every sample once (as torchreid's RandomIdentitySampler), and every
        # identity at least once: with few identities, one batch per identity group was one step.
        batches = max(len(labels) // (self.p * self.k), len(self.by_identity) // self.p)
        self.batches_per_rank = max(batches // world, 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_rank

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch))
        identities = rng.permutation(sorted(self.by_identity))
        batches = []
        for b in range(self.batches_per_rank * self.world):
            chosen = identities[(np.arange(self.p) + b * self.p) % len(identities)]
            batch = []
            for identity in chosen:
                pool = self.by_identity[int(identity)]
                picks = rng.choice(pool, self.k, replace=len(pool) < self.k)
                batch += [(int(i), sample_seed(self.seed, self.epoch, int(i) * 131 + len(batch))) for i in picks]
            batches.append(batch)
        yield from batches[self.rank :: self.world]
