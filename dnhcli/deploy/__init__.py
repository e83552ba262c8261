"""Deploy: inference backends (PyTorch, OpenVINO, ONNX Runtime), export to ONNX and OpenVINO IR, INT8."""
