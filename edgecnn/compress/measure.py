"""What compression changed: parameters, MACs, weight size and single-image CPU latency of a
torch model and of its ONNX export, measured the same way before and after."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.compress.prune import count_macs_params


def example_input(model: nn.Module, imgsz) -> torch.Tensor:
    """A zero batch of one image at `imgsz` with the model's input channels."""
    from edgecnn.runtime.preprocess import input_hw

    first = next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    channels = first.in_channels if isinstance(first, nn.Conv2d) else 3
    return torch.zeros(1, channels, *input_hw(imgsz))


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers as stored (fp32 for a float model)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def model_profile(model: nn.Module, meta: dict[str, Any], imgsz, onnx_path: str | os.PathLike | None = None,
                  threads: int = 1, runs: int = 20) -> dict[str, float]:
    """params, MACs, weights_mb and median CPU latency (torch; ONNX Runtime when `onnx_path` is
    given: the model is exported there first). One thread by default: latencies compare
    architectures, not the host's spare cores."""
    from edgecnn.export.onnx import export_onnx
    from edgecnn.export.torch_backend import TorchBackend
    from edgecnn.runtime.backends import load_backend
    from edgecnn.runtime.timing import measure_latency

    def median_ms(backend) -> float:
        return round(measure_latency(backend, runs=runs, warmup=3)["latency_ms_p50"], 3)

    macs, params = count_macs_params(model, example_input(model, imgsz))
    out = {"params": params, "macs": macs, "weights_mb": round(weight_bytes(model) / 2**20, 3)}
    previous_threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            out["latency_torch_ms"] = median_ms(TorchBackend(model, meta, imgsz, threads=threads))
    finally:
        torch.set_num_threads(previous_threads)
    if onnx_path is not None:
        export_onnx(model, meta, Path(onnx_path), imgsz=imgsz)
        out["latency_onnx_ms"] = median_ms(load_backend(onnx_path, threads=threads))
    model.eval()
    return out
