"""HDF5Output: a sink with two bottoms and no tops."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build


@pytest.mark.parametrize("alias", ["HDF5_OUTPUT", "hdf5_output"])
def test_names(alias):
    assert find_layer_spec(alias).type == "HDF5Output"


def test_two_bottoms_no_tops():
    m = build(
        'name: "o" type: "HDF5Output" bottom: "data" bottom: "label" '
        'hdf5_output_param { file_name: "out.h5" }',
        [(2, 3), (2,)],
    )
    assert m.file_name == "out.h5"
    assert m(torch.zeros(2, 3), torch.zeros(2)) == ()
    with pytest.raises(BuildError, match="bottom"):
        build('name: "o" type: "HDF5Output" bottom: "data"', [(2, 3)])
