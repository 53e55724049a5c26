"""Appearance embeddings for tracking: crop each detected person, run the ReID model once per frame."""

from __future__ import annotations

import cv2
import numpy as np

EMBEDDING_DIM = 128  # the embedder's output width (edgecnn/models/__init__.py, model outputs)


class ReidEncoder:
    """`encode(frame_bgr, boxes_xyxy) -> (N, D)` L2-normalized embeddings from a ReID backend.

    Crops take the model's aspect ratio around each box's centre (as deep_sort's patch
    extraction does) so people are not squashed, and all crops of a frame go through the model
    in one batched call.
    """

    def __init__(self, backend):
        self.backend = backend
        self.height, self.width = backend.input_size

    def encode(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        crops = np.stack([self._crop(frame_bgr, box) for box in boxes])
        embedding = self.backend.predict(np.ascontiguousarray(crops[..., ::-1]))["embedding"]
        return embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)

    def _crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = box
        half_w = (y2 - y1) * self.width / self.height / 2
        cx = (x1 + x2) / 2
        rows, cols = frame.shape[:2]
        left = int(np.clip(np.floor(cx - half_w), 0, cols - 1))
        right = int(np.clip(np.ceil(cx + half_w), left + 1, cols))
        top = int(np.clip(np.floor(y1), 0, rows - 1))
        bottom = int(np.clip(np.ceil(y2), top + 1, rows))
        return cv2.resize(frame[top:bottom, left:right], (self.width, self.height), interpolation=cv2.INTER_LINEAR)
