"""The model zoo: classifiers from the CNN canon, the YOLO-style detector, the ReID embedder, segmenters.

Importing this package registers every model; build one with `build_model(name, **kwargs)`.

Model outputs, the contract every exporter, backend and post-processor relies on. A model takes
RGB in [0, 1] normalized with its checkpoint's `(x - mean) / std`, NCHW, sides multiples of 32.
- classifier: logits `(B, C)`.
- embedder (ReID): L2-normalized embeddings `(B, 128)` (`runtime.reid.EMBEDDING_DIM`).
- detector: `(boxes, scores)`. `boxes (B, A, 4)`: distances left, top, right, bottom from each
  anchor centre, in units of that anchor's stride; `scores (B, A, C)`: sigmoid probabilities in
  eval/export mode, logits in training mode. Anchors run over the strides in `meta["strides"]`
  (8, 16, 32), row-major within a level; the centre of cell (x, y) at stride s is
  ((x + 0.5) s, (y + 0.5) s). Boxes and scores stay apart so int8 gives each its own scale;
  decoding and NMS are `runtime.postprocess` (numpy). Training mode adds `box_bins (B, A, 4,
  reg_max)`, the DFL bin logits whose softmax expectation is `boxes`.
- segmenter: logits `(B, C, H, W)` at the input size (the head's stride-8/16 output resized
  bilinear in the graph); training mode of a model built with an auxiliary head
  (`deeplabv3-mnv3 aux_loss=true`) returns `(logits, aux_logits)`. `output_layers()` names the class
  convs pruning keeps; the backbone sits under `backbone.` with its classifier's layer names
  (`segment.load_backbone` maps `features.N` → `backbone.N`).
A built model carries `task` and `arch`; the registry (`registry.py`) says what else it may offer.
"""

from edgecnn.models import lenet, mobilenet, reid, resnet, segment, vgg, yolo, yolo_v8_11  # noqa: F401  (register models)
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
