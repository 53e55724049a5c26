"""Export to ONNX and TFLite with parity checks (host side: torch, onnx, onnx2tf, TensorFlow).

`onnx.export_onnx` → `tflite.export_tflite` (fp32, fp16, full-integer int8; QAT Q/DQ graphs
re-calibrated) → `parity.check_parity`; `torch_backend.TorchBackend` runs a checkpoint through the
runtime's backend interface so every format is scored the same way.
"""
