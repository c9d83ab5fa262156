"""``--simplify``: constant folding and graph simplification of an exported model.

onnxsim (onnx-simplifier) when it is installed (``pip install onnxsim``): it folds
constants, removes identities and redundant shape computations, and checks its result
against the original with onnxruntime. Otherwise onnxruntime's own basic graph
optimisations (constant folding, redundant node elimination), written back as a model.
Node names (the Caffe layer names) are kept by both.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from caffe2torch.errors import ExportError


def simplify_model(model: Any) -> tuple[Any, str]:
    """(simplified model, which tool did it)."""
    try:
        import onnxsim
    except ImportError:
        return _ort_basic(model), "onnxruntime basic optimisations"
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as exc:
        raise ExportError(f"onnxsim could not simplify the model: {exc}"[:400],
                          hint="export without --simplify") from exc
    if not ok:
        raise ExportError("onnxsim's simplified model does not reproduce the original",
                          hint="export without --simplify")
    return simplified, "onnxsim"


def _ort_basic(model: Any) -> Any:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "simplified.onnx")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = out
        ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
        return onnx.load(out)
