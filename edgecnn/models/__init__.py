"""The model zoo: classifiers from the CNN canon, the YOLO-style detector, the ReID embedder.

Importing this package registers every model; build one with `build_model(name, **kwargs)`.
"""

from edgecnn.models import alexnet, googlenet, lenet, mobilenet, reid, resnet, vgg, yolo, yolo_v8_11  # noqa: F401  (register models)
from edgecnn.models.checkpoint import FORMAT, load_checkpoint, load_weights, read_checkpoint, save_checkpoint, unwrap
from edgecnn.models.registry import build_model, get_entry, list_models, register_model

__all__ = [
    "FORMAT",
    "build_model",
    "get_entry",
    "list_models",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "register_model",
    "save_checkpoint",
    "unwrap",
]
