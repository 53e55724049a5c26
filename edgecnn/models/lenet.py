"""LeNet-5 (LeCun et al., 1998) for 28-32 px digits: faithful tanh/avg-pool or a ReLU/max-pool variant."""

from __future__ import annotations

from torch import nn

from edgecnn.models.registry import register_model


@register_model("lenet5", task="classify", imgsz=32)
def lenet5(num_classes: int = 10, in_channels: int = 1, imgsz: int = 32, classic: bool = True) -> nn.Sequential:
    """C1 6@5x5, S2, C3 16@5x5, S4, F5 120, F6 84, output. Inputs under 32 px are zero-padded in
    C1 so that a 28 px MNIST digit yields the paper's 5x5 S4 maps (its 32 px input was a padded 28)."""
    act, pool = (nn.Tanh, nn.AvgPool2d) if classic else (nn.ReLU, nn.MaxPool2d)
    pad = max(0, (32 - imgsz + 1) // 2)
    side = ((imgsz + 2 * pad - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"lenet5 needs imgsz >= 12, got {imgsz}")
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=pad), act(), pool(2),
        nn.Conv2d(6, 16, 5), act(), pool(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120), act(),
        nn.Linear(120, 84), act(),
        nn.Linear(84, num_classes),
    )
