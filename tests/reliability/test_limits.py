"""Limits that turn absurd sizes in untrusted files into typed errors before any work or
allocation: blob bytes (CAFFE2TORCH_MAX_BLOB_BYTES), layer count (CAFFE2TORCH_MAX_LAYERS)."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.errors import BuildError, CaffeError, ParseError
from caffe2torch.io import read_caffemodel, read_caffemodel_arrays, write_caffemodel_arrays
from caffe2torch.limits import (
    DEFAULT_MAX_BLOB_BYTES,
    MAX_BLOB_BYTES_ENV,
    MAX_LAYERS_ENV,
    blob_limit,
    max_blob_bytes,
)

NET = """name: "n"
input: "data"
input_shape { dim: 1 dim: 3 dim: %s dim: %s }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: %s kernel_size: %s } }
"""


def _write(tmp_path: Path, text: str, name: str = "net.prototxt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _net(num_output: int | str, kernel: int | str, size: int = 8) -> str:
    return NET % (size, size, num_output, kernel)


@pytest.mark.parametrize(("num_output", "kernel", "size"), [
    ("4000000000", "3", 8), ("16", "50000", 100000), ("4000000", "1000", 1000)])
def test_huge_conv_is_refused_before_allocating(tmp_path: Path, num_output: str,
                                                kernel: str, size: int) -> None:
    path = _write(tmp_path, _net(num_output, kernel, size))
    before = _peak_rss_mib()
    with pytest.raises(BuildError) as info:
        c2t.load_net(path)
    err = info.value
    assert "conv1" in err.message and "Convolution" in err.message
    assert "more than the limit of 8.0 GiB" in err.message
    assert num_output in err.message  # the shape is named
    assert MAX_BLOB_BYTES_ENV in (err.hint or "")
    assert (err.path, err.line) == (str(path), 4)  # where the layer is written
    assert _peak_rss_mib() - before < 512  # nothing near the asked size was allocated


def test_inner_product_and_batchnorm_limits(tmp_path: Path) -> None:
    ip = _write(tmp_path, 'input: "x" input_shape { dim: 1 dim: 100000 }\n'
                'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" '
                "inner_product_param { num_output: 3000000000 } }\n")
    with pytest.raises(BuildError, match=r"layer 'fc' \(InnerProduct\).*3000000000"):
        c2t.load_net(ip)
    bn = _write(tmp_path, 'input: "x" input_shape { dim: 1 dim: 3000000000 }\n'
                'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }\n', "bn.prototxt")
    with pytest.raises(BuildError, match=r"layer 'bn' \(BatchNorm\).*11\.2 GiB"):
        c2t.load_net(bn)
    param = _write(tmp_path, 'layer { name: "p" type: "Parameter" top: "p" '
                   "parameter_param { shape { dim: 100000 dim: 100000 dim: 1000 } } }\n",
                   "param.prototxt")
    with pytest.raises(BuildError, match=r"layer 'p' \(Parameter\).*36\.4 TiB"):
        c2t.load_net(param)


def test_limit_from_env_and_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, _net(64, 3))  # 64*3*3*3 floats = 6912 bytes
    c2t.load_net(path)
    monkeypatch.setenv(MAX_BLOB_BYTES_ENV, "4096")
    assert max_blob_bytes() == 4096
    with pytest.raises(BuildError, match=r"conv1.*6\.8 KiB \(6912 bytes\).*4\.0 KiB"):
        c2t.load_net(path)
    c2t.load_net(path, max_blob_bytes=10_000)  # the option wins over the variable
    monkeypatch.setenv(MAX_BLOB_BYTES_ENV, "lots")
    with pytest.raises(CaffeError, match="not a positive whole number"):
        max_blob_bytes()
    monkeypatch.delenv(MAX_BLOB_BYTES_ENV)
    assert max_blob_bytes() == DEFAULT_MAX_BLOB_BYTES
    with blob_limit(100), pytest.raises(BuildError, match="limit of 100 bytes"):
        c2t.load_net(path)


def test_caffemodel_blob_over_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    net = c2t.read_net(_write(tmp_path, _net(8, 3)))
    model = tmp_path / "w.caffemodel"
    write_caffemodel_arrays(model, net, {"conv1": [np.ones((8, 3, 3, 3), np.float32),
                                                   np.zeros(8, np.float32)]})
    monkeypatch.setenv(MAX_BLOB_BYTES_ENV, "512")  # the weight is 864 bytes
    for read in (read_caffemodel, read_caffemodel_arrays):
        with pytest.raises(ParseError, match=r"blob of 8\d\d bytes is over the limit of 512 "
                           r"bytes .*in layer 1 'conv1'") as info:
            read(model)
        assert info.value.path == str(model)


def test_too_many_layers_is_refused_before_parsing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    one = 'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }\n'
    text = 'input: "data" input_shape { dim: 1 }\n' + one * 300
    path = _write(tmp_path, text)
    assert len(c2t.read_net(path).layer) == 301
    monkeypatch.setenv(MAX_LAYERS_ENV, "200")
    for call in (lambda: c2t.read_net(path), lambda: c2t.lint(path),
                 lambda: c2t.upgrade_text(text, str(path))):
        with pytest.raises(ParseError, match=r"300 layer blocks, more than the limit of 200"
                           ) as info:
            call()
        assert info.value.path == str(path) and MAX_LAYERS_ENV in (info.value.hint or "")
    monkeypatch.setenv(MAX_LAYERS_ENV, "400")
    net = c2t.read_net(path)
    monkeypatch.setenv(MAX_LAYERS_ENV, "200")
    with pytest.raises(BuildError, match="301 layer blocks"):
        c2t.load_net(net)  # a NetParameter built in code is counted too


def test_out_of_range_sizes_are_parse_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, _net("999999999999", 3))
    with pytest.raises(ParseError, match="non-negative 32-bit integer") as info:
        c2t.load_net(path)
    assert (info.value.path, info.value.line) == (str(path), 5)


def test_million_layers_refused_quickly(tmp_path: Path) -> None:
    text = 'layer { name: "r" type: "ReLU" bottom: "d" top: "d" }\n' * 1_000_000
    path = _write(tmp_path, text)
    with pytest.raises(ParseError, match="1000000 layer blocks"):
        c2t.read_net(path)
