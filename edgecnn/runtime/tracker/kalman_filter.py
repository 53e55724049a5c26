"""Constant-velocity Kalman filter over boxes (cx, cy, aspect, h), batched over tracks.

The state is (cx, cy, a, h, vcx, vcy, va, vh); the filter observes (cx, cy, a, h). Process and
measurement noise scale with the box height, as in deep_sort, so small and large people get the
same relative uncertainty. Every method takes stacked arrays of N tracks: one numpy call per
frame instead of one per track.
"""

from __future__ import annotations

import numpy as np

# scipy.stats.chi2.ppf(0.95, dof): the Mahalanobis gate for 2 (position only) or 4 degrees of
# freedom; a table keeps scipy.stats (slow to import on a Pi) off the device's start-up path.
CHI2INV95 = {1: 3.8415, 2: 5.9915, 3: 7.8147, 4: 9.4877, 5: 11.070, 6: 12.592, 7: 14.067, 8: 15.507, 9: 16.919}


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / np.maximum(h, 1e-9), h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, 4)
    w = xyah[:, 2] * xyah[:, 3]
    half_w, half_h = w / 2, xyah[:, 3] / 2
    return np.stack([xyah[:, 0] - half_w, xyah[:, 1] - half_h, xyah[:, 0] + half_w, xyah[:, 1] + half_h], axis=1)


def _diag(std: np.ndarray) -> np.ndarray:
    """(N, D) standard deviations -> (N, D, D) diagonal covariances."""
    out = np.zeros(std.shape + (std.shape[-1],))
    idx = np.arange(std.shape[-1])
    out[:, idx, idx] = std**2
    return out


class KalmanFilter:
    """deep_sort's filter with its noise model; `std_weight_*` scale the noise by box height."""

    ndim = 4

    def __init__(self, std_weight_position: float = 1 / 20, std_weight_velocity: float = 1 / 160, dt: float = 1.0):
        self.std_weight_position = std_weight_position
        self.std_weight_velocity = std_weight_velocity
        self.motion = np.eye(2 * self.ndim)
        self.motion[: self.ndim, self.ndim :] = dt * np.eye(self.ndim)

    def _std(self, h: np.ndarray, pos: float, vel: float) -> np.ndarray:
        wp, wv = pos * self.std_weight_position * h, vel * self.std_weight_velocity * h
        ones = np.ones_like(h)
        return np.stack([wp, wp, 1e-2 * ones, wp, wv, wv, 1e-5 * ones, wv], axis=1)

    def initiate(self, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from (N, 4) xyah measurements: zero velocity, wide velocity uncertainty."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, self.ndim)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        return mean, _diag(self._std(z[:, 3], 2.0, 10.0))

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step ahead: x' = F x, P' = F P F^T + Q."""
        q = _diag(self._std(mean[:, 3], 1.0, 1.0))
        f = self.motion
        return mean @ f.T, f @ cov @ f.T + q

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Into measurement space: H x and H P H^T + R."""
        h = mean[:, 3]
        wp = self.std_weight_position * h
        r = _diag(np.stack([wp, wp, np.full_like(h, 1e-1), wp], axis=1))
        return mean[:, : self.ndim], cov[:, : self.ndim, : self.ndim] + r

    def update(self, mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct N tracks with their N xyah measurements."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, self.ndim)
        proj_mean, proj_cov = self.project(mean, cov)
        # K = P H^T S^-1, solved rather than inverted; S is symmetric so K^T = S^-1 (P H^T)^T.
        gain = np.linalg.solve(proj_cov, np.swapaxes(cov[:, :, : self.ndim], 1, 2)).swapaxes(1, 2)
        new_mean = mean + np.einsum("nij,nj->ni", gain, z - proj_mean)
        new_cov = cov - gain @ proj_cov @ np.swapaxes(gain, 1, 2)
        return new_mean, new_cov

    def gating_distance(
        self, mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray, only_position: bool = False
    ) -> np.ndarray:
        """(N tracks, M measurements) squared Mahalanobis distances in measurement space."""
        proj_mean, proj_cov = self.project(mean, cov)
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, self.ndim)
        if only_position:
            proj_mean, proj_cov, z = proj_mean[:, :2], proj_cov[:, :2, :2], z[:, :2]
        chol = np.linalg.cholesky(proj_cov)
        delta = z[None, :, :] - proj_mean[:, None, :]  # (N, M, d)
        whitened = np.linalg.solve(chol, np.swapaxes(delta, 1, 2))  # (N, d, M)
        return np.sum(whitened**2, axis=1)
