"""Run one golden layer case through the layer registry directly.

Interim harness for the layer catalog, used until the graph builder can load the case's
net.prototxt itself; it does what the golden README says pycaffe did: Input tops fed from
``input/*``, params from weights.py (overridden by ``param/*``), forward, then backward from
``top_diff/*`` or from the loss weights.
"""

from __future__ import annotations

import torch
from google.protobuf import text_format

from caffe2torch.layers.registry import BuildContext, build_layer, find_layer_spec
from caffe2torch.proto import caffe_pb2
from tests.golden import GoldenCase, assert_matches, golden_weights


def run_layer_case(case: GoldenCase) -> None:
    net = text_format.Parse((case.path / "net.prototxt").read_text(), caffe_pb2.NetParameter())
    meta = case.meta
    blobs: dict[str, torch.Tensor] = {}
    originals: dict[str, torch.Tensor] = {}
    target = next(ly for ly in net.layer if ly.name == meta["layer"])
    backward_meta = meta["backward"] or {}  # null for forward-only cases
    propagate = backward_meta.get("propagate_down")
    for layer in net.layer:
        if layer is target:
            break
        for top in layer.top:
            t = torch.tensor(case.arrays[f"input/{top}"], dtype=torch.float32)
            originals[top] = t
    for i, name in enumerate(target.bottom):
        t = originals[name].clone()
        wants_grad = not meta["forward_only"] and (propagate[i] if propagate else True)
        if wants_grad and name in backward_meta.get("bottom_diff", []):
            t.requires_grad_(True)
        originals[name] = t
        blobs[name] = t
    phase = meta["phase"]
    ctx = BuildContext(
        layer=target,
        bottom_shapes=[tuple(blobs[b].shape) for b in target.bottom],
        num_tops=len(target.top),
        phase=phase,
    )
    module = build_layer(ctx)
    module.train(phase == "TRAIN")
    weights = golden_weights()
    with torch.no_grad():
        for i, blob in enumerate(module.blobs):
            key = f"param/{target.name}/{i}"
            if key in case.arrays:
                value = case.arrays[key]
            else:
                value = weights.fill(target.name, i, tuple(blob.shape), target.type)
            blob.copy_(torch.as_tensor(value).reshape(blob.shape))
    spec = find_layer_spec(target.type)
    assert spec is not None
    if spec.data:
        # data layers pass fed tensors through their module (MemoryData reshapes the label)
        fed = [torch.tensor(case.arrays[f"input/{t}"], dtype=torch.float32) for t in target.top]
        out = module(*fed)
        tops = out if isinstance(out, tuple) else (out,)
    else:
        out = module(*[blobs[b] for b in target.bottom])
        tops = out if isinstance(out, tuple) else (out,)
    assert len(tops) == len(target.top)
    for name, value in zip(target.top, tops):
        assert_matches(case, f"blob/{name}", value)
    for key in case.keys(f"param_after/{target.name}/"):
        assert_matches(case, key, module.blobs[int(key.rsplit("/", 1)[1])])
    if meta["forward_only"]:
        return
    backward = meta["backward"]
    if backward.get("loss_weight_driven"):
        weights_ = list(target.loss_weight) or [1.0] + [0.0] * (len(tops) - 1)
        total = sum(w * t.sum() for w, t in zip(weights_, tops) if w != 0)
        total.backward()
    else:
        pairs = [(t, torch.tensor(case.arrays[f"top_diff/{n}"])) for n, t in zip(target.top, tops)
                 if f"top_diff/{n}" in case.arrays and t.requires_grad]
        if pairs:
            torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])
    for name in backward.get("bottom_diff", []):
        grad = originals[name].grad
        if grad is None and not target.top:
            grad = torch.zeros_like(originals[name])  # a sink (Silence): Caffe's diff is 0
        assert grad is not None, f"{case.id}: no gradient reached bottom {name}"
        assert_matches(case, f"bottom_diff/{name}", grad)
    for key in case.keys(f"param_diff/{target.name}/"):
        blob = module.blobs[int(key.rsplit("/", 1)[1])]
        assert blob.grad is not None, f"{case.id}: no gradient for {key}"
        assert_matches(case, key, blob.grad)
