"""Metric-learning losses usable from prototxt: the TripletLoss of the Caffe triplet forks and
the multi-class N-pair loss (Sohn, NeurIPS 2016).

TripletLoss (BVLC/caffe PR #5019; PR #2603 spelled ``num_negatives`` as ``num_triplets``):
with two bottoms (features, labels) the batch is cut into sets of ``2 + num_negatives``
consecutive items -- anchor, positive, then the negatives; the labels are not read. With
three bottoms (anchor, positive, negative) item i of each forms one triplet. With squared
L2 distances dp = |a - p|^2 and dn = |a - n|^2, each (set, negative) adds

* ``losstype: 0``: max(0, margin + dp - dn)
* ``losstype: 1``: max(0, 1 - dn / (dp + margin))
* ``losstype: 2``: max(0, 1 - exp(dn) / (exp(dp) + margin))

plus dp once per set with ``use_pair: 1``; the sum is divided by 2 * (number of sets). The
forks' hand-written gradients are the derivatives of these (a hinge at exactly 0 passes no
gradient), which autograd reproduces.

NPairLoss: bottoms (anchors, positives), N pairs of D-vectors with pair i of class i.
S = A P^T; loss = mean_i CE(softmax(S_i), i) + lambda (1/N) sum_i (|a_i|^2 + |p_i|^2), the
paper's L2 penalty. ``lambda`` is the ``reg_lambda`` field of ``npair_loss_param``, a
plug-in field (the schema has no message for this layer).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.plugins import layer_fields
from caffe2torch.layers.plugins import register_layer as register_plugin_layer
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, register_layer

# ------------------------------------------------------------------------------ TripletLoss


@portable
def triplet_terms(
    dp: torch.Tensor, dn: torch.Tensor, margin: float, losstype: int
) -> torch.Tensor:
    """The per-(set, negative) hinge of each ``losstype``; ``dp`` broadcasts over negatives."""
    if losstype == 0:
        return torch.clamp(margin + dp - dn, min=0.0)
    if losstype == 1:
        return torch.clamp(1 - dn / (dp + margin), min=0.0)
    return torch.clamp(1 - torch.exp(dn) / (torch.exp(dp) + margin), min=0.0)


class CaffeTripletLoss(nn.Module):
    """TripletLoss of the Caffe forks (see the module docstring)."""

    def __init__(self, margin: float, losstype: int, num_negatives: int, use_pair: bool) -> None:
        super().__init__()
        self.margin = margin
        self.losstype = losstype
        self.num_negatives = num_negatives
        self.use_pair = use_pair

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        positive, negative = (rest[0], rest[1]) if len(rest) == 2 else (None, None)
        return triplet_loss(
            x, positive, negative, self.margin, self.losstype, self.num_negatives, self.use_pair
        )


@portable
def triplet_loss(
    x: torch.Tensor,
    positive: torch.Tensor | None,
    negative: torch.Tensor | None,
    margin: float,
    losstype: int,
    num_negatives: int,
    use_pair: bool,
) -> torch.Tensor:
    """The forks' TripletLoss over the bottoms (anchor ``x``, ``positive``, ``negative``), or
    over sets (anchor, positive, ``num_negatives`` negatives) in consecutive rows of ``x``:
    with squared distances dp, dn each (set, negative) costs triplet_terms; ``use_pair``
    adds dp; the sum is divided by 2 x the number of sets."""
    if positive is not None and negative is not None:
        num = x.shape[0]
        a, p = x.reshape(num, -1), positive.reshape(num, -1)
        n = negative.reshape(num, 1, -1)
    else:
        size = 2 + num_negatives
        sets = x.reshape(x.shape[0] // size, size, -1)
        a, p, n = sets[:, 0], sets[:, 1], sets[:, 2:]
    # a, p: (S, D); n: (S, K, D)
    dp = ((a - p) ** 2).sum(dim=1)
    dn = ((a.unsqueeze(1) - n) ** 2).sum(dim=2)
    total = triplet_terms(dp.unsqueeze(1), dn, margin, losstype).sum()
    if use_pair:
        total = total + dp.sum()
    return total / a.shape[0] / 2


@register_layer(
    "TripletLoss", param="triplet_loss_param", bottoms=(2, 3), aliases=("TRIPLET_LOSS",),
    loss=True,
)
def build_triplet_loss(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if p.losstype not in (0, 1, 2):
        raise ctx.error(f"losstype must be 0, 1 or 2, got {p.losstype}")
    # PR #2603 nets write num_triplets; PR #5019 renamed it num_negatives.
    k = p.num_triplets if p.HasField("num_triplets") and not p.HasField("num_negatives") else (
        p.num_negatives
    )
    shapes = ctx.bottom_shapes
    num = shapes[0][0]
    if len(shapes) == 3:
        if not (tuple(shapes[0]) == tuple(shapes[1]) == tuple(shapes[2])):
            raise ctx.error(
                "anchor, positive and negative bottoms must have the same shape, got "
                + ", ".join(str(list(s)) for s in shapes)
            )
        k = 1
    else:
        if k < 1:
            raise ctx.error("num_negatives must be at least 1")
        if num % (2 + k):
            raise ctx.error(
                f"the batch ({num}) must hold whole sets of 2 + num_negatives = {2 + k} items",
                hint="each set is anchor, positive, then the negatives, in consecutive rows",
            )
        if not shapes[1] or shapes[1][0] != num:
            raise ctx.error(f"the label bottom {list(shapes[1])} must have {num} items")
    return CaffeTripletLoss(float(p.margin), int(p.losstype), int(k), bool(p.use_pair))


# -------------------------------------------------------------------------------- NPairLoss


class NPairLoss(nn.Module):
    """Multi-class N-pair loss with the paper's L2 penalty on the embeddings."""

    def __init__(self, reg_lambda: float) -> None:
        super().__init__()
        self.reg_lambda = reg_lambda

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        return npair_loss(anchors, positives, self.reg_lambda)


@portable
def npair_loss(anchors: torch.Tensor, positives: torch.Tensor, reg_lambda: float) -> torch.Tensor:
    """Multi-class N-pair loss: cross-entropy of anchor . positive^T against the diagonal,
    plus reg_lambda x the summed squared norms of both bottoms / N."""
    num = anchors.shape[0]
    a = anchors.reshape(num, -1)
    p = positives.reshape(num, -1)
    logits = a @ p.t()
    target = torch.arange(num, device=a.device)
    loss = F.cross_entropy(logits, target)
    if reg_lambda:
        loss = loss + reg_lambda * ((a * a).sum() + (p * p).sum()) / num
    return loss


@register_plugin_layer(
    "NPairLoss",
    fields={"reg_lambda": 0.002},
    param_name="npair_loss_param",
    bottoms=2,
    aliases=("NPAIR_LOSS",),
    loss=True,
)
def build_npair_loss(ctx: BuildContext) -> nn.Module:
    a, p = ctx.bottom_shapes
    if tuple(a) != tuple(p) or len(a) < 2:
        raise ctx.error(
            f"anchor and positive bottoms must both be (N, D), got {list(a)}, {list(p)}"
        )
    if a[0] < 1 or math.prod(a[1:]) < 1:
        raise ctx.error(f"empty embeddings {list(a)}")
    return NPairLoss(float(layer_fields(ctx).reg_lambda))


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeTripletLoss)
def _emit_triplet(e: Emit) -> list[str]:
    m = e.module
    # with a label bottom (sets in consecutive rows) the label is not read
    bottoms = ", ".join(e.bottoms) if len(e.bottoms) == 3 else f"{e.bottoms[0]}, None, None"
    args = f"{bottoms}, {num(m.margin)}, {m.losstype}, {m.num_negatives}, {m.use_pair}"
    return e.assign(e.call("triplet_loss", args))


@emitter(NPairLoss)
def _emit_npair(e: Emit) -> list[str]:
    return e.assign(e.call("npair_loss", f"{', '.join(e.bottoms)}, {num(e.module.reg_lambda)}"))
