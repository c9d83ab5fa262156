"""Build one layer of a fork from prototxt text through load_net, so that its fields that
our schema lacks (kept by the reader) reach the builder as they do for users."""

from __future__ import annotations

from pathlib import Path

import caffe2torch as c2t


def build_fork_layer(tmp_path: Path, layer: str, shape: tuple[int, ...], phase: str = "TEST",
                     **kw):
    dims = " ".join(f"dim: {d}" for d in shape)
    path = tmp_path / "net.prototxt"
    path.write_text(f'input: "x"\ninput_shape {{ {dims} }}\nlayer {{ {layer} }}\n')
    net = c2t.load_net(path, phase=phase, **kw)
    return net, net.module(net.layer_names[-1])
