"""Standalone source for the metric-learning losses of the forks: TripletLoss, NPairLoss
and CenterLoss (kept with ``keep_losses``; forward values as the net reports them)."""

from __future__ import annotations

from caffe2torch.export.pysource import Emit, emitter, num
from caffe2torch.export.snippets import add_snippets
from caffe2torch.layers.bvlc import metric_losses
from caffe2torch.layers.forks import face as forks_face

TRIPLET = '''
class TripletLoss(nn.Module):
    """The forks' TripletLoss over sets (anchor, positive, num_negatives negatives) in
    consecutive rows, or three bottoms (anchor, positive, negative). With squared distances
    dp = |a - p|^2 and dn = |a - n|^2 each (set, negative) costs max(0, margin + dp - dn)
    (losstype 0), max(0, 1 - dn / (dp + margin)) (1) or max(0, 1 - e^dn / (e^dp + margin))
    (2); use_pair adds dp; the sum is divided by 2 x the number of sets."""

    def __init__(self, margin: float, losstype: int, num_negatives: int, use_pair: bool) -> None:
        super().__init__()
        self.margin, self.losstype = margin, losstype
        self.num_negatives, self.use_pair = num_negatives, use_pair

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        if len(rest) == 2:
            num = x.shape[0]
            a, p, n = x.reshape(num, -1), rest[0].reshape(num, -1), rest[1].reshape(num, 1, -1)
        else:
            sets = x.reshape(x.shape[0] // (2 + self.num_negatives), 2 + self.num_negatives, -1)
            a, p, n = sets[:, 0], sets[:, 1], sets[:, 2:]
        dp = ((a - p) ** 2).sum(dim=1).unsqueeze(1)
        dn = ((a.unsqueeze(1) - n) ** 2).sum(dim=2)
        if self.losstype == 0:
            terms = torch.clamp(self.margin + dp - dn, min=0.0)
        elif self.losstype == 1:
            terms = torch.clamp(1 - dn / (dp + self.margin), min=0.0)
        else:
            terms = torch.clamp(1 - torch.exp(dn) / (torch.exp(dp) + self.margin), min=0.0)
        total = terms.sum()
        if self.use_pair:
            total = total + dp.sum()
        return total / a.shape[0] / 2
'''

NPAIR = '''
class NPairLoss(nn.Module):
    """Multi-class N-pair loss: cross-entropy of anchor . positive^T against the diagonal,
    plus reg_lambda x the mean squared norm of the embeddings (summed over both bottoms)."""

    def __init__(self, reg_lambda: float) -> None:
        super().__init__()
        self.reg_lambda = reg_lambda

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        num = anchors.shape[0]
        a, p = anchors.reshape(num, -1), positives.reshape(num, -1)
        loss = F.cross_entropy(a @ p.t(), torch.arange(num))
        if self.reg_lambda:
            loss = loss + self.reg_lambda * ((a * a).sum() + (p * p).sum()) / num
        return loss
'''

CENTER = '''
class CenterLoss(nn.Module):
    """Center loss: sum_i |x_i - c_{y_i}|^2 / N / 2 (L1: sum |x_i - c_{y_i}| / N)."""

    def __init__(self, l1: bool) -> None:
        super().__init__()
        self.l1 = l1

    def forward(self, x: torch.Tensor, label: torch.Tensor,
                centers: torch.Tensor) -> torch.Tensor:
        num = x.shape[0]
        diff = x.reshape(num, -1) - centers[label.reshape(num, -1)[:, 0].to(torch.int64)]
        return torch.abs(diff).sum() / num if self.l1 else (diff * diff).sum() / num / 2
'''

add_snippets({"TripletLoss": TRIPLET, "NPairLoss": NPAIR, "CenterLoss": CENTER})


@emitter(metric_losses.CaffeTripletLoss)
def _triplet(e: Emit) -> list[str]:
    m = e.module
    module = e.submodule(
        "TripletLoss", f"{num(m.margin)}, {m.losstype}, {m.num_negatives}, {m.use_pair}"
    )
    # with a label bottom (sets in consecutive rows) the label is not read
    bottoms = e.bottoms if len(e.bottoms) == 3 else e.bottoms[:1]
    return e.assign(f"{module}({', '.join(bottoms)})")


@emitter(metric_losses.NPairLoss)
def _npair(e: Emit) -> list[str]:
    module = e.submodule("NPairLoss", num(e.module.reg_lambda))
    return e.assign(f"{module}({', '.join(e.bottoms)})")


@emitter(forks_face.CaffeCenterLoss)
def _center(e: Emit) -> list[str]:
    m = e.module
    module = e.submodule("CenterLoss", str(m.l1))
    return e.assign(f"{module}({', '.join(e.bottoms)}, {e.param(0, 'centers')})")
