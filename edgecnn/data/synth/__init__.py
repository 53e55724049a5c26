"""Built-in synthetic datasets, offline and deterministic by seed, one module per generator:

- `detect.synth_detect`: YOLO detection images of the classes in `scene.CLASSES`.
- `video.synth_video`: MOTChallenge tracking sequences, from a fixed or a moving camera.
- `digits.synth_classify`: an ImageFolder of MNIST-like digits.
- `reid.synth_reid`: an ImageFolder of identity crops for a ReID embedder.
- `segment.synth_segment`: detection-like scenes with class-index masks (`task: segment`).

`dataset` holds what they share (the version, the labelling rule, the atomic dataset writer);
`edgecnn.data.scene` draws the objects, backgrounds and light.
"""

from edgecnn.data.synth.dataset import GENERATOR_VERSION
from edgecnn.data.synth.detect import synth_detect
from edgecnn.data.synth.digits import synth_classify
from edgecnn.data.synth.reid import synth_reid
from edgecnn.data.synth.segment import synth_segment
from edgecnn.data.synth.video import synth_video

__all__ = ["GENERATOR_VERSION", "synth_classify", "synth_detect", "synth_reid", "synth_segment", "synth_video"]
