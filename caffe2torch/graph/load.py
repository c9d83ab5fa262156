"""load_net: a prototxt (any dialect), optional weights and a NetState -> CaffeNet.

The one entry that reads, filters, builds and fills a net; the package facade, export,
the CLI and pycaffe all come here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from caffe2torch.graph.builder import build_net, gc_paused
from caffe2torch.graph.net import CaffeNet
from caffe2torch.io import read_net_with_positions
from caffe2torch.io.fork_schema import as_schema
from caffe2torch.ir import NetState
from caffe2torch.layers.fillers import PendingFills, deferred_fills


def load_net(
    path: str | os.PathLike[str] | Any,
    weights: str | os.PathLike[str] | Any | None = None,
    phase: str | int = "TEST",
    level: int = 0,
    stages: Sequence[str] = (),
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    share: str | Mapping[str, str] | None = "declared",
    proto: str | os.PathLike[str] | None = None,
    compile: bool = False,
    fold_conv_bn: bool = False,
    channels_last: bool = False,
    **options: Any,
) -> CaffeNet:
    """Build a Caffe net as an nn.Module.

    ``path``: a net prototxt in any Caffe dialect (or an upgraded NetParameter).
    ``weights``: a caffemodel (V1/V2 binary or .h5), a NetParameter with blobs, or
    {layer: [arrays]}, copied by layer name as Caffe's ``caffe.Net(proto, weights, phase)``.
    ``phase``/``level``/``stages``: the NetState that filters layers.
    ``input_shapes``: {top: shape} for data tops the prototxt gives no shape for, or to
    replace a data layer of any kind (Python, a fork's) by an input of that shape.
    ``share``: "declared" (Caffe's param sharing), "auto" (also tie identical towers such
    as conv1/conv1_p), None (untie everything) or {layer: owner layer}.
    ``proto``: the caffe.proto of the Caffe fork the net (and its weights) were written
    for: files are read with its field numbers, its own fields reach layer builders as
    ``BuildContext.extra_field``.
    ``compile``: run the net through torch.compile (inductor; see graph.compile for when
    it pays off), compiled at its first call.
    ``fold_conv_bn``: for inference, run each Convolution with the BatchNorm (global
    statistics) and Scale after it as one convolution (graph.fold; not bit-exact).
    ``channels_last``: 4-D params and inputs laid out NHWC (graph.layout; same values,
    faster convolutions on some nets and devices).
    ``options``: build options for layer builders (``allow_python_layers=True``...).
    """
    schema = as_schema(proto)
    if isinstance(path, (str, os.PathLike)):
        with gc_paused():  # parsing makes many long-lived objects too (see gc_paused)
            net_param, source_map = read_net_with_positions(path, schema)
    else:
        net_param, source_map = path, None
    state = NetState.of(phase, level, stages)
    # With weights, fillers wait for the copy and run only for the blobs it left
    # (Caffe fills everything, then CopyTrainedLayersFrom overwrites most of it).
    with deferred_fills(PendingFills() if weights is not None else None) as pending:
        net = build_net(
            net_param,
            state,
            input_shapes=input_shapes,
            options=options,
            share=share,
            source_map=source_map,
        )
    net.proto = schema
    if pending is not None:
        report = net.copy_from(weights)
        pending.run(skip=report.written)
    # imported here: the data readers load OpenCV, which `import caffe2torch.graph` need not
    from caffe2torch.runtime.feeding import attach_lazy_feeder

    # net() reads the data layers' next batch
    attach_lazy_feeder(net, net_param, state, source_map=source_map)
    if fold_conv_bn:
        from caffe2torch.graph.fold import fold_conv_bn as fold

        fold(net)
    if channels_last:
        from caffe2torch.graph.layout import use_channels_last

        use_channels_last(net)
    if compile:
        from caffe2torch.graph.compile import compile_net

        compile_net(net)
    return net
