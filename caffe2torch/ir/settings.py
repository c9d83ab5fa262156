"""Settings a layer cannot be set up without (lint code C2T307), written once for the linter
(lint/rules_layer.py) and the builder (layers/registry.build_layer), so both refuse the same
layers with the same code.

The Caffe checks reproduced, none of which needs a shape:

* BaseConvolutionLayer::LayerSetUp (Convolution, Deconvolution): ``num_output`` > 0
  ("CHECK_GT(num_output_, 0)"), and a kernel: ``kernel_size``, or ``kernel_h`` with
  ``kernel_w`` ("Filter dimensions must be nonzero"; one of the pair alone leaves the other 0);
* PoolingLayer::LayerSetUp: ``global_pooling``, ``kernel_size``, or ``kernel_h`` with
  ``kernel_w`` ("For non-square filters both kernel_h and kernel_w are required");
* InnerProduct: ``num_output`` > 0 where the weights are the layer's own (one bottom; with two
  the second bottom is the weight matrix, a fork's form).

Departure: Caffe accepts a Convolution with no kernel when its bottom has no spatial axis
(a 0-D convolution); the rule needs no shape and refuses it, as the linter always did.
"""

from __future__ import annotations

from typing import Any

from caffe2torch.ir.problems import Problem, problem

CODE = "C2T307"


def _has_kernel(p: Any, repeated: bool) -> bool:
    """A kernel written as ``kernel_size`` (repeated in ConvolutionParameter, optional in
    PoolingParameter) or as both ``kernel_h`` and ``kernel_w``."""
    given = len(p.kernel_size) > 0 if repeated else p.HasField("kernel_size")
    return given or (p.HasField("kernel_h") and p.HasField("kernel_w"))


def _missing(layer: Any) -> list[tuple[str, str, str]]:
    """(setting, block, hint) for each required setting ``layer`` lacks."""
    t = layer.type
    out = []
    if t in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        if p.num_output == 0:
            out.append(("num_output", "convolution_param",
                        "set convolution_param { num_output: N }"))
        if not _has_kernel(p, repeated=True):
            out.append(("kernel size", "convolution_param",
                        "set convolution_param { kernel_size: K } (or kernel_h and kernel_w)"))
    elif t == "InnerProduct" and layer.inner_product_param.num_output == 0 \
            and len(layer.bottom) < 2:
        out.append(("num_output", "inner_product_param",
                    "set inner_product_param { num_output: N }"))
    elif t == "Pooling":
        p = layer.pooling_param
        if not p.global_pooling and not _has_kernel(p, repeated=False):
            out.append(("kernel size", "pooling_param",
                        "set pooling_param { kernel_size: K } (or kernel_h and kernel_w) or "
                        "global_pooling: true"))
    return out


def missing_settings(layer: Any, index: int = -1, source_map: Any = None) -> list[Problem]:
    """One C2T307 problem per required setting that ``layer`` (a V2 LayerParameter, at
    ``index`` in the net) lacks; empty when it has them all. ``summary`` is the linter's
    text, ``message`` the builder's (``Problem.error`` raises it)."""
    return [
        problem(
            CODE,
            f"layer '{layer.name}' ({layer.type}): has no {setting} (Caffe cannot set the "
            "layer up without it)",
            summary=f"{layer.type} layer '{layer.name}' has no {setting}",
            layer=layer.name, index=index, field=block, hint=hint, source_map=source_map,
        )
        for setting, block, hint in _missing(layer)
    ]
