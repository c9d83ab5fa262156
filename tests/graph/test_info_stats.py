"""`caffe2torch info`: top shapes, parameter counts and FLOPs from the built net."""

from __future__ import annotations

from pathlib import Path

from caffe2torch.cli.main import main
from caffe2torch.graph import build_net
from caffe2torch.graph.stats import net_stats, unique_param_count
from caffe2torch.io import read_net_text

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        param { name: "w" } param { name: "b" }
        convolution_param { num_output: 4 kernel_size: 3 group: 1 } }
layer { name: "conv_p" type: "Convolution" bottom: "data" top: "conv_p"
        param { name: "w" } param { name: "b" }
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up"
        convolution_param { num_output: 2 kernel_size: 2 stride: 2 group: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv_p" top: "ip"
        inner_product_param { num_output: 5 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
"""

DATA_NET = """
name: "needs_shape"
layer { name: "data" type: "Data" top: "data" top: "label"
        data_param { source: "x" batch_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 } }
"""


def test_layer_stats_count_multiply_adds():
    net = build_net(read_net_text(NET), "TEST")
    stats = {s.name: s for s in net_stats(net)}
    # conv: 2 * (2*4*6*6 outputs) * (3*3*3 per output)
    assert stats["conv"].top_shapes == [(2, 4, 6, 6)]
    assert stats["conv"].flops == 2 * (2 * 4 * 6 * 6) * 27
    assert stats["conv"].params == 4 * 27 + 4
    # deconv (group 2): each input element feeds (2/2) x 2 x 2 outputs
    assert stats["up"].top_shapes == [(2, 2, 12, 12)]
    assert stats["up"].flops == 2 * (2 * 4 * 6 * 6) * 4
    # inner product: 2 * outputs * fan_in
    assert stats["ip"].flops == 2 * (2 * 5) * (4 * 6 * 6)
    assert stats["relu"].flops == 0 and stats["relu"].params == 0
    # the shared conv weights count once in the total
    assert unique_param_count(net) == (4 * 27 + 4) + stats["up"].params + stats["ip"].params


def test_info_prints_shapes_and_totals(tmp_path: Path, capsys):
    path = tmp_path / "tiny.prototxt"
    path.write_text(NET)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "top shapes" in out and "2x4x6x6" in out
    assert "FLOPs per forward" in out


def test_info_says_why_shapes_are_missing_and_takes_input_shape(tmp_path: Path, capsys):
    path = tmp_path / "data.prototxt"
    path.write_text(DATA_NET)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no params or FLOPs" in out and "input-shape" in out
    # the shapes the prototxt alone gives, ? where the data decides
    assert "4x?x?x?, 4" in out and "4x3\n" in out
    assert "note: shapes marked ? need --input-shape" in out
    assert main(["info", str(path), "--input-shape", "data=4,2,3,3",
                 "--input-shape", "label=4"]) == 0
    out = capsys.readouterr().out
    assert "4x3" in out and "total: 57 params" in out and "?" not in out
