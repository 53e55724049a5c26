"""What runs on the device: numpy, OpenCV and an interpreter only — never torch or TensorFlow."""
