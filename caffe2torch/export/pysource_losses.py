"""Standalone source for Caffe's loss layers and Accuracy (kept with ``keep_losses``).

Each loss is a small class in the generated file computing Caffe's forward value (the
unweighted top, as the net reports it); its gradient is autograd's, which is Caffe's
except where the layer docs of caffe2torch.layers.bvlc.losses say otherwise.
"""

from __future__ import annotations

from caffe2torch.export.pysource import Emit, emitter, num
from caffe2torch.export.snippets import add_snippets
from caffe2torch.layers.bvlc import blob_ops, losses
from caffe2torch.proto import caffe_pb2

NORMALIZER = '''
def caffe_normalizer(mode: str, outer: int, inner: int, valid: torch.Tensor) -> torch.Tensor:
    """Caffe's loss normalizer, never below 1: FULL counts every entry, VALID the entries
    not ignored, BATCH_SIZE the outer count, NONE is 1."""
    if mode == "FULL":
        count = float(outer * inner)
    elif mode == "VALID":
        return torch.clamp(valid.sum().to(torch.float32), min=1.0)
    elif mode == "BATCH_SIZE":
        count = float(outer)
    else:
        count = 1.0
    return torch.tensor(max(count, 1.0))
'''

SOFTMAX_LOSS = '''
class CaffeSoftmaxLoss(nn.Module):
    """Caffe's SoftmaxWithLoss, and InfogainLoss when given the matrix H.

    p = softmax over `axis`; the loss of an entry is -log(max(p[label], clamp)) (InfogainLoss:
    -sum_l H[label, l] log(max(p[l], clamp))); entries whose int(label) is `ignore_label`
    count 0; the sum is divided by caffe_normalizer. Returns (loss, p)."""

    def __init__(self, axis: int, ignore_label: int | None, mode: str, clamp: float) -> None:
        super().__init__()
        self.axis, self.ignore_label, self.mode, self.clamp = axis, ignore_label, mode, clamp

    def forward(self, logits: torch.Tensor, labels: torch.Tensor,
                infogain: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        prob = torch.softmax(logits, dim=self.axis)
        outer = math.prod(prob.shape[:self.axis])
        channels = prob.shape[self.axis]
        p = prob.reshape(outer, channels, -1)
        label = labels.to(torch.int64).reshape(outer, -1)  # int(label): truncation
        valid = torch.ones_like(label, dtype=torch.bool)
        if self.ignore_label is not None:
            valid = label != self.ignore_label
        safe = torch.where(valid, label, torch.zeros_like(label)).unsqueeze(1)
        if infogain is None:
            terms = -torch.log(torch.clamp(p.gather(1, safe).squeeze(1), min=self.clamp))
        else:
            rows = infogain.reshape(channels, channels)[safe.squeeze(1)].permute(0, 2, 1)
            terms = -(rows * torch.log(torch.clamp(p, min=self.clamp))).sum(dim=1)
        terms = torch.where(valid, terms, torch.zeros_like(terms))
        norm = caffe_normalizer(self.mode, outer, p.shape[2], valid)
        return terms.sum() / norm, prob
'''

SIGMOID_CE = '''
class CaffeSigmoidCrossEntropyLoss(nn.Module):
    """Caffe's SigmoidCrossEntropyLoss: -sum(x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0])))
    over the entries whose int(t) is not `ignore_label`, divided by caffe_normalizer."""

    def __init__(self, ignore_label: int | None, mode: str) -> None:
        super().__init__()
        self.ignore_label, self.mode = ignore_label, mode

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = target.reshape(x.shape).to(x.dtype)
        valid = torch.ones_like(x, dtype=torch.bool)
        if self.ignore_label is not None:
            valid = t.to(torch.int64) != self.ignore_label
        pos = (x >= 0).to(x.dtype)
        terms = x * (t - pos) - torch.log(1 + torch.exp(x - 2 * x * pos))
        terms = torch.where(valid, terms, torch.zeros_like(terms))
        outer = x.shape[0] if x.dim() else 1
        norm = caffe_normalizer(self.mode, outer, x.numel() // max(outer, 1), valid)
        return -terms.sum() / norm
'''

HINGE = '''
class CaffeHingeLoss(nn.Module):
    """Caffe's HingeLoss: t_k = max(0, 1 + s_k x_k) with s = -1 at the label and +1 elsewhere;
    L1 sums t, L2 sums t^2; divided by the batch size."""

    def __init__(self, squared: bool) -> None:
        super().__init__()
        self.squared = squared

    def forward(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num = scores.shape[0]
        x = scores.reshape(num, -1)
        sign = torch.ones_like(x).scatter(1, labels.to(torch.int64).reshape(num, 1), -1.0)
        margin = torch.relu(1 + sign * x)
        return ((margin * margin).sum() if self.squared else margin.sum()) / num
'''

MULTINOMIAL = '''
class CaffeMultinomialLogisticLoss(nn.Module):
    """Caffe's MultinomialLogisticLoss over probabilities: -log(max(p[label], 1e-20)) / N."""

    def forward(self, prob: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num = prob.shape[0]
        picked = prob.reshape(num, -1).gather(1, labels.to(torch.int64).reshape(num, 1))
        return -torch.log(torch.clamp(picked, min=1e-20)).sum() / num
'''

CONTRASTIVE = '''
class CaffeContrastiveLoss(nn.Module):
    """Caffe's ContrastiveLoss: 1/(2N) sum[y d^2 + (1 - y) max(margin - d, 0)^2]
    (legacy_version: max(margin - d^2, 0)), y = int(sim) != 0."""

    def __init__(self, margin: float, legacy: bool) -> None:
        super().__init__()
        self.margin, self.legacy = margin, legacy

    def forward(self, a: torch.Tensor, b: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
        num = a.shape[0]
        diff = a.reshape(num, -1) - b.reshape(num, -1)
        dist_sq = (diff * diff).sum(dim=1)
        similar = sim.to(torch.int64).reshape(num) != 0
        if self.legacy:
            dissimilar = torch.clamp(self.margin - dist_sq, min=0.0)
        else:
            dissimilar = torch.clamp(self.margin - torch.sqrt(dist_sq), min=0.0) ** 2
        return torch.where(similar, dist_sq, dissimilar).sum() / num / 2
'''

ACCURACY = '''
class CaffeAccuracy(nn.Module):
    """Caffe's Accuracy: an entry is right when fewer than `top_k` other classes score at
    least as high as its label's; entries labelled `ignore_label` are skipped. Returns
    (accuracy, per-class accuracy)."""

    def __init__(self, top_k: int, axis: int, ignore_label: int | None) -> None:
        super().__init__()
        self.top_k, self.axis, self.ignore_label = top_k, axis, ignore_label

    def forward(self, scores: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outer = math.prod(scores.shape[:self.axis])
        channels = scores.shape[self.axis]
        s = scores.reshape(outer, channels, -1)
        label = labels.to(torch.int64).reshape(outer, -1)
        valid = torch.ones_like(label, dtype=torch.bool)
        if self.ignore_label is not None:
            valid = label != self.ignore_label
        safe = torch.where(valid, label, torch.zeros_like(label)).unsqueeze(1)
        better = (s >= s.gather(1, safe)).sum(dim=1) - 1  # the label's class counts itself
        correct = (better < self.top_k) & valid
        count = valid.sum().to(scores.dtype)
        accuracy = torch.where(count > 0, correct.sum().to(scores.dtype) / count.clamp(min=1), 0.0)
        zeros = scores.new_zeros(channels)
        flat = safe.reshape(-1)
        total = zeros.index_add(0, flat, valid.reshape(-1).to(scores.dtype))
        hits = zeros.index_add(0, flat, correct.reshape(-1).to(scores.dtype))
        return accuracy, torch.where(total > 0, hits / total.clamp(min=1), 0.0)
'''

add_snippets(
    {
        "caffe_normalizer": NORMALIZER,
        "CaffeSoftmaxLoss": SOFTMAX_LOSS,
        "CaffeSigmoidCrossEntropyLoss": SIGMOID_CE,
        "CaffeHingeLoss": HINGE,
        "CaffeMultinomialLogisticLoss": MULTINOMIAL,
        "CaffeContrastiveLoss": CONTRASTIVE,
        "CaffeAccuracy": ACCURACY,
    },
    {
        "CaffeSoftmaxLoss": ("caffe_normalizer",),
        "CaffeSigmoidCrossEntropyLoss": ("caffe_normalizer",),
    },
)


def _mode(value: int) -> str:
    return repr(caffe_pb2.LossParameter.NormalizationMode.Name(value))


def _call(e: Emit, helper: str, args: str) -> list[str]:
    """``top = self.<layer>(bottoms)``, or the leading tops of a helper returning a tuple."""
    call = f"{e.submodule(helper, args)}({', '.join(e.bottoms)})"
    return e.assign_leading(call) if helper in _PAIRED else e.assign(call)


_PAIRED = frozenset({"CaffeSoftmaxLoss", "CaffeAccuracy"})  # return (value, second top)


@emitter(losses.CaffeSoftmaxWithLoss)
def _softmax_loss(e: Emit) -> list[str]:
    m = e.module
    args = f"{m.axis}, {m.ignore_label}, {_mode(m.normalization)}, {num(losses.FLT_MIN)}"
    return _call(e, "CaffeSoftmaxLoss", args)


@emitter(losses.CaffeInfogainLoss)
def _infogain_loss(e: Emit) -> list[str]:
    m = e.module
    args = f"{m.axis}, {m.ignore_label}, {_mode(m.normalization)}, {num(losses.LOG_THRESHOLD)}"
    module = e.submodule("CaffeSoftmaxLoss", args)
    logits, labels = e.bottoms[:2]
    matrix = e.bottoms[2] if len(e.bottoms) > 2 else e.buffer(m.infogain, "infogain")
    return e.assign_leading(f"{module}({logits}, {labels}, {matrix})")


@emitter(losses.CaffeSigmoidCrossEntropyLoss)
def _sigmoid_ce(e: Emit) -> list[str]:
    m = e.module
    args = f"{m.ignore_label}, {_mode(m.normalization)}"
    return _call(e, "CaffeSigmoidCrossEntropyLoss", args)


@emitter(losses.CaffeEuclideanLoss)
def _euclidean(e: Emit) -> list[str]:
    a, b = e.bottoms
    top = e.tops[0]
    return [
        f"{top} = {a} - {b}.reshape({a}.shape)",
        f"{top} = ({top} * {top}).sum() / {a}.shape[0] / 2",
    ]


@emitter(losses.CaffeHingeLoss)
def _hinge(e: Emit) -> list[str]:
    return _call(e, "CaffeHingeLoss", str(e.module.squared))


@emitter(losses.CaffeMultinomialLogisticLoss)
def _multinomial(e: Emit) -> list[str]:
    return _call(e, "CaffeMultinomialLogisticLoss", "")


@emitter(losses.CaffeContrastiveLoss)
def _contrastive(e: Emit) -> list[str]:
    m = e.module
    return _call(e, "CaffeContrastiveLoss", f"{num(m.margin)}, {m.legacy}")


@emitter(losses.CaffeAccuracy)
def _accuracy(e: Emit) -> list[str]:
    m = e.module
    return _call(e, "CaffeAccuracy", f"{m.top_k}, {m.axis}, {m.ignore_label}")


@emitter(blob_ops.CaffeSilence)
def _silence(e: Emit) -> list[str]:
    return [f"# {e.layer.name}: Silence reads {', '.join(e.bottoms)} and computes nothing"]
