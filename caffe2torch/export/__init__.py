"""Export: ONNX that onnxruntime reproduces, standalone PyTorch code, network drawings.

The names below load on first use, so that the torch-free modules of this package
(``export.draw``, ``export.svg``) can be imported without torch and ONNX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caffe2torch.lazy import lazy_names

if TYPE_CHECKING:
    from caffe2torch.export.deploy import DeployView, deploy_view
    from caffe2torch.export.onnx import ExportReport, export_onnx, verify_onnx

_PUBLIC = {
    "DeployView": "caffe2torch.export.deploy",
    "deploy_view": "caffe2torch.export.deploy",
    "ExportReport": "caffe2torch.export.onnx",
    "export_onnx": "caffe2torch.export.onnx",
    "verify_onnx": "caffe2torch.export.onnx",
}


__getattr__ = lazy_names(__name__, _PUBLIC, globals())


__all__ = ["DeployView", "ExportReport", "deploy_view", "export_onnx", "verify_onnx"]
