"""What runs on the device: numpy, OpenCV and an interpreter only — never torch or TensorFlow."""

import os

# The runtime's matrices are tiny (the Kalman filter's 8x8): OpenBLAS threads only spin-wait on the
# cores the interpreter needs (10 tracks: 0.30 -> 0.16 ms a frame). Read once, when numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
