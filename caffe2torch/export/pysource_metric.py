"""Standalone source for the metric-learning losses of the forks: TripletLoss, NPairLoss
and CenterLoss (kept with ``keep_losses``; forward values as the net reports them)."""

from __future__ import annotations

from caffe2torch.export.pysource import Emit, emitter, num
from caffe2torch.layers.bvlc import metric_losses
from caffe2torch.layers.forks import face as forks_face


@emitter(metric_losses.CaffeTripletLoss)
def _triplet(e: Emit) -> list[str]:
    m = e.module
    # with a label bottom (sets in consecutive rows) the label is not read
    bottoms = ", ".join(e.bottoms) if len(e.bottoms) == 3 else f"{e.bottoms[0]}, None, None"
    args = f"{bottoms}, {num(m.margin)}, {m.losstype}, {m.num_negatives}, {m.use_pair}"
    return e.assign(e.call("triplet_loss", args))


@emitter(metric_losses.NPairLoss)
def _npair(e: Emit) -> list[str]:
    return e.assign(e.call("npair_loss", f"{', '.join(e.bottoms)}, {num(e.module.reg_lambda)}"))


@emitter(forks_face.CaffeCenterLoss)
def _center(e: Emit) -> list[str]:
    m = e.module
    x, label = e.bottoms[:2]
    flat = f"{x}.reshape({x}.shape[0], -1)"
    labels = e.call("label_index", f"{label}, {x}.shape[0]")
    args = f"{flat}, {e.param(0, 'centers')}, {labels}, {m.l1}"
    return e.assign(f"{e.call('center_loss', args)}[0]")
