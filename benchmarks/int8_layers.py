"""Where full int8 pays on this CPU: single layers timed in fp32 and int8 TFLite, interleaved.

    PYTHONPATH=. python benchmarks/int8_layers.py [--threads 2] [--runs 50]

Each layer is a one-layer Keras model (then an 8x8 average pool, so the output copy is small),
converted by TFLite's converter to fp32 and to full int8 with int8 I/O (8 random calibration
inputs), and run by the device's interpreter (LiteRT, XNNPACK) on zeros. The shapes are those of
a segmentation model at 480x360 (the first conv of MobileNetV3, its depthwise and 1x1 convs at
stride 2) and of a detector's deeper layers (a 3x3 conv of 64 channels at stride 8), so the
figures say which layers make a network's int8 faster or slower than its fp32 on this machine.
Writes runs/benchmarks/int8_layers.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from common import OUT

from edgecnn.fileio import atomic_write_json
from edgecnn.runtime.backends import tflite_interpreter_class

# name: (input HWC, the layer's keyword arguments for a Keras Conv2D or DepthwiseConv2D)
LAYERS = {
    "first conv 3x3/2, 3→16, 360x480": ((360, 480, 3), {"filters": 16, "kernel_size": 3, "strides": 2}),
    "depthwise 3x3, 16, 180x240": ((180, 240, 16), {"kernel_size": 3}),
    "1x1 conv, 16→16, 180x240": ((180, 240, 16), {"filters": 16, "kernel_size": 1}),
    "1x1 conv, 24→88, 45x60": ((45, 60, 24), {"filters": 88, "kernel_size": 1}),
    "3x3 conv, 64→64, 40x40": ((40, 40, 64), {"filters": 64, "kernel_size": 3}),
}


def one_layer(shape: tuple[int, int, int], kwargs: dict):
    import tensorflow as tf

    x = tf.keras.Input(shape, batch_size=1)
    layer = tf.keras.layers.Conv2D if "filters" in kwargs else tf.keras.layers.DepthwiseConv2D
    y = layer(padding="same", activation="relu", **kwargs)(x)
    return tf.keras.Model(x, tf.keras.layers.AveragePooling2D(8)(y))


def convert(model, shape: tuple[int, int, int], precision: str) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        calib = np.random.default_rng(0).uniform(0, 2, (8, 1, *shape)).astype(np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([c] for c in calib)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def interpreter(model_bytes: bytes, threads: int):
    it = tflite_interpreter_class()(model_content=model_bytes, num_threads=threads)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    it.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    runners = {(name, p): interpreter(convert(one_layer(shape, kwargs), shape, p), args.threads)
               for name, (shape, kwargs) in LAYERS.items() for p in ("fp32", "int8")}
    times: dict = {key: [] for key in runners}
    for _ in range(5):
        for it in runners.values():
            it.invoke()
    for _ in range(args.runs):  # interleaved: a drifting load weighs on every layer alike
        for key, it in runners.items():
            tic = time.perf_counter()
            it.invoke()
            times[key].append(time.perf_counter() - tic)
    rows = []
    for name in LAYERS:
        fp32, int8 = (float(np.median(times[(name, p)]) * 1e3) for p in ("fp32", "int8"))
        rows.append({"layer": name, "fp32_ms": round(fp32, 3), "int8_ms": round(int8, 3),
                     "int8_over_fp32": round(int8 / fp32, 2)})
        print(f"{name:<34} fp32 {fp32:6.2f} ms  int8 {int8:6.2f} ms  ({int8 / fp32:.2f}x)")
    atomic_write_json(OUT / "int8_layers.json", {"threads": args.threads, "runs": args.runs,
                                                 "interpreter": tflite_interpreter_class().__module__,
                                                 "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
