"""MemoryData: (batch, channels, height, width) data and a (batch, 1, 1, 1) label."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("MemoryData")
def test_golden(case_dir):
    run_golden(case_dir)


def test_shapes_and_label_layout():
    assert find_layer_spec("MEMORY_DATA").type == "MemoryData"
    m = build(
        'name: "m" type: "MemoryData" top: "data" top: "label" '
        "memory_data_param { batch_size: 4 channels: 2 height: 3 width: 5 }"
    )
    assert top_shapes(m, []) == [(4, 2, 3, 5), (4, 1, 1, 1)]
    _, label = m(torch.zeros(4, 2, 3, 5), torch.arange(4.0))
    assert label.shape == (4, 1, 1, 1)


def test_zero_dims_are_refused():
    with pytest.raises(BuildError, match="positive"):
        build(
            'name: "m" type: "MemoryData" top: "data" top: "label" '
            "memory_data_param { batch_size: 4 channels: 2 height: 3 }"
        )
