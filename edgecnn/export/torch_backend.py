"""The host-side backend for PyTorch models and checkpoints, with the runtime backends' interface.

`edgecnn val`, `bench` and the parity checks run a `.pt` through the very same pre/post-processing
as an `.onnx` or `.tflite` on the device.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.export.onnx import artifact_meta
from edgecnn.runtime.preprocess import input_hw
from edgecnn.runtime.backends import Backend, load_backend


class TorchBackend(Backend):
    """A PyTorch model in eval mode on the CPU (or `device`)."""

    kind = "torch"

    def __init__(self, model, meta: dict[str, Any], imgsz: int | list[int] | None = None,
                 path: str | os.PathLike = "<model>", threads: int | None = None, device: str = "cpu"):
        import torch

        if threads:
            torch.set_num_threads(threads)
        size = input_hw(imgsz or meta.get("input_size") or meta.get("imgsz") or 320)
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        super().__init__(path, artifact_meta(meta, size, format="torch"), batch=None)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, imgsz=None, threads=None, device="cpu") -> TorchBackend:
        from edgecnn.models import load_checkpoint

        model, meta = load_checkpoint(path)
        return cls(model, meta, imgsz=imgsz, path=path, threads=threads, device=device)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(self.normalize(images).transpose(0, 3, 1, 2))).to(self.device)
        with torch.inference_mode():
            outputs = self.model(x)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        if self.meta["task"] == "segment":  # NCHW logits at the input size → the artifacts' NHWC
            outputs = (outputs[0].permute(0, 2, 3, 1),)
        return {name: out.float().cpu().numpy() for name, out in zip(self.output_names, outputs)}


def load_host_backend(path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None,
                      imgsz: int | list[int] | None = None) -> Backend:
    """Any artifact on the host: a `.pt` checkpoint here, `.onnx`/`.tflite` through the runtime."""
    path = Path(path)
    if path.suffix.lower() in (".pt", ".pth"):
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return TorchBackend.from_checkpoint(path, imgsz=imgsz, threads=threads)
    return load_backend(path, threads=threads, providers=providers)
