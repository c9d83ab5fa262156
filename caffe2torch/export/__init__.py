"""Export: ONNX that onnxruntime reproduces, standalone PyTorch code, network drawings."""

from caffe2torch.export.deploy import DeployView, deploy_view
from caffe2torch.export.onnx import ExportReport, export_onnx, verify_onnx

__all__ = ["DeployView", "ExportReport", "deploy_view", "export_onnx", "verify_onnx"]
