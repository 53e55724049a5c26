import os
from pathlib import Path

import pytest

# Keep test processes from oversubscribing the 2-core machines this suite runs on.
os.environ.setdefault("OMP_NUM_THREADS", "2")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data next to the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """Deterministic, single-threaded torch for tests that compare numbers across runs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A YOLO data.yaml of 3 train and 3 val frames (FRAME_W x FRAME_H) with the boxes GT (export_tiny)."""
    import cv2
    import numpy as np

    from edgecnn.data.yolo import format_labels, write_data_yaml
    from edgecnn.runtime.boxes import xyxy_to_cxcywh
    from export_tiny import FRAME_H, FRAME_W, GT, GT_CLASSES, META, random_images

    size = [FRAME_W, FRAME_H, FRAME_W, FRAME_H]
    labels = format_labels(np.concatenate([np.array(GT_CLASSES)[:, None], xyxy_to_cxcywh(GT) / size], axis=1))

    root = tmp_path_factory.mktemp("data")
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i, image in enumerate(random_images(3, size=FRAME_W, seed=len(split))):
            cv2.imwrite(str(root / "images" / split / f"{i}.jpg"), image[:FRAME_H])
            (root / "labels" / split / f"{i}.txt").write_text(labels)
    return write_data_yaml(root / "data.yaml", META["names"], "images/train", "images/val", root=str(root))
