"""Camera-motion compensation: the global motion between consecutive frames, to move every track
with the camera before association (BoT-SORT's GMC, its sparse optical flow variant).

A panning or shaking camera moves every object in the image at once; a constant-velocity Kalman
prediction then points where the object was, and IoU association fails. `CameraMotion.estimate`
tracks corners (`goodFeaturesToTrack`) from the previous frame with pyramidal Lucas-Kanade and
fits a rotation + scale + translation (`estimateAffinePartial2D`, RANSAC), on a frame downscaled
to `width` pixels; detection boxes are masked out, since the objects in them move on their own.
`warp_states` applies that affine to the tracks' Kalman states (centre, velocity, height).
OpenCV has every piece; what is written here is only the glue, as in BoT-SORT.
"""

from __future__ import annotations

import cv2
import numpy as np

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


class CameraMotion:
    """`estimate(frame_bgr, boxes)` → the 2x3 affine from the previous frame's pixels to this one's."""

    def __init__(self, width: int = 240, max_corners: int = 200):
        self.width, self.max_corners = width, max_corners
        self._previous: np.ndarray | None = None
        self._corners: np.ndarray | None = None
        self._scale = 1.0

    def estimate(self, frame_bgr: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        h, w = frame_bgr.shape[:2]
        self._scale = min(1.0, self.width / w)
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        if self._scale < 1.0:
            gray = cv2.resize(gray, (round(w * self._scale), round(h * self._scale)), interpolation=cv2.INTER_AREA)
        warp = IDENTITY.copy()
        if self._previous is not None and self._corners is not None and len(self._corners) >= 8:
            moved, status, _ = cv2.calcOpticalFlowPyrLK(self._previous, gray, self._corners, None)
            ok = status.reshape(-1) == 1
            if ok.sum() >= 8:
                found, _ = cv2.estimateAffinePartial2D(self._corners[ok], moved[ok], method=cv2.RANSAC,
                                                       ransacReprojThreshold=1.0)
                if found is not None:
                    warp = found
                    warp[:, 2] /= self._scale  # back to full-frame pixels
        self._previous, self._corners = gray, self._find_corners(gray, boxes)
        return warp

    def _find_corners(self, gray: np.ndarray, boxes: np.ndarray | None) -> np.ndarray | None:
        mask = np.full(gray.shape, 255, np.uint8)
        if boxes is not None:
            for x1, y1, x2, y2 in np.round(np.asarray(boxes).reshape(-1, 4) * self._scale).astype(int):
                mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 0
        return cv2.goodFeaturesToTrack(gray, self.max_corners, qualityLevel=0.01, minDistance=4, blockSize=3, mask=mask)


def warp_states(mean: np.ndarray, cov: np.ndarray, warp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kalman states (N, 8) of (cx, cy, a, h, vx, vy, va, vh) and covariances moved by a 2x3 affine
    of rotation, uniform scale and translation: positions mapped, velocities rotated and scaled,
    height scaled, aspect ratio unchanged."""
    if not len(mean):
        return mean, cov
    linear = warp[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    transform = np.eye(8)
    for start in (0, 4):
        transform[start:start + 2, start:start + 2] = linear
        transform[start + 3, start + 3] = scale
    mean = mean @ transform.T
    mean[:, :2] += warp[:, 2]
    return mean, transform @ cov @ transform.T
