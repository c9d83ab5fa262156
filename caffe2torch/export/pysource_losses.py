"""Standalone source for Caffe's loss layers and Accuracy (kept with ``keep_losses``).

Each loss is a call of the loss layer's own forward function (copied into the generated
file) computing Caffe's forward value (the unweighted top, as the net reports it); its
gradient is autograd's, which is Caffe's except where the layer docs of
caffe2torch.layers.bvlc.losses say otherwise.
"""

from __future__ import annotations

from caffe2torch.export.pysource import Emit, emitter, num
from caffe2torch.layers.bvlc import blob_ops, losses
from caffe2torch.proto import caffe_pb2


def _mode(value: int) -> str:
    return repr(caffe_pb2.LossParameter.NormalizationMode.Name(value))


def _bottoms(e: Emit, count: int) -> str:
    return ", ".join(e.bottoms[:count])


@emitter(losses.CaffeSoftmaxWithLoss)
def _softmax_loss(e: Emit) -> list[str]:
    m = e.module
    weights = "None"
    if m.class_weights is not None:  # SegNet's class weights: the infogain rule, H = diag(w)
        weights = e.buffer(m.class_weights, "class_weights")
    args = (f"{_bottoms(e, 2)}, {weights}, {m.axis}, {m.ignore_label}, "
            f"{_mode(m.normalization)}, {num(losses.FLT_MIN)}")
    return e.assign_leading(e.call("softmax_loss", args))


@emitter(losses.CaffeInfogainLoss)
def _infogain_loss(e: Emit) -> list[str]:
    m = e.module
    logits = e.bottoms[0]
    matrix = e.bottoms[2] if len(e.bottoms) > 2 else e.buffer(m.infogain, "infogain")
    matrix = f"{matrix}.reshape({logits}.shape[{m.axis}], -1)"
    args = (f"{_bottoms(e, 2)}, {matrix}, {m.axis}, {m.ignore_label}, "
            f"{_mode(m.normalization)}, {num(losses.LOG_THRESHOLD)}")
    return e.assign_leading(e.call("softmax_loss", args))


@emitter(losses.CaffeSigmoidCrossEntropyLoss)
def _sigmoid_ce(e: Emit) -> list[str]:
    m = e.module
    args = f"{_bottoms(e, 2)}, {m.ignore_label}, {_mode(m.normalization)}"
    return e.assign(f"{e.call('sigmoid_cross_entropy', args)}[0]")


@emitter(losses.CaffeEuclideanLoss)
def _euclidean(e: Emit) -> list[str]:
    return e.assign(e.call("euclidean_loss", _bottoms(e, 2)))


@emitter(losses.CaffeHingeLoss)
def _hinge(e: Emit) -> list[str]:
    return e.assign(e.call("hinge_loss", f"{_bottoms(e, 2)}, {e.module.squared}"))


@emitter(losses.CaffeMultinomialLogisticLoss)
def _multinomial(e: Emit) -> list[str]:
    args = f"{_bottoms(e, 2)}, {num(losses.LOG_THRESHOLD)}"
    return e.assign(f"{e.call('multinomial_logistic_loss', args)}[0]")


@emitter(losses.CaffeContrastiveLoss)
def _contrastive(e: Emit) -> list[str]:
    m = e.module
    args = f"{_bottoms(e, 3)}, {num(m.margin)}, {m.legacy}"
    return e.assign(f"{e.call('contrastive_loss', args)}[0]")


@emitter(losses.CaffeAccuracy)
def _accuracy(e: Emit) -> list[str]:
    m = e.module
    args = f"{_bottoms(e, 2)}, {m.top_k}, {m.axis}, {m.ignore_label}, {len(e.tops) > 1}"
    return e.assign_leading(e.call("caffe_accuracy", args))


@emitter(blob_ops.CaffeSilence)
def _silence(e: Emit) -> list[str]:
    return [f"# {e.layer.name}: Silence reads {', '.join(e.bottoms)} and computes nothing"]
