"""HDF5Data: one top per dataset; shapes come from the files."""

import pytest

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, top_shapes

TEXT = (
    'name: "h" type: "HDF5Data" top: "data" top: "label" top: "vec" '
    'hdf5_data_param { source: "h5list.txt" batch_size: 5 }'
)


@pytest.mark.parametrize("alias", ["HDF5_DATA", "hdf5_data"])
def test_names(alias):
    spec = find_layer_spec(alias)
    assert spec.type == "HDF5Data" and spec.data


def test_three_tops_and_shapes():
    with pytest.raises(BuildError, match=r"h5list\.txt"):
        top_shapes(build(TEXT), [])
    given = {"data": (5, 2, 3), "label": (5,), "vec": (5, 4)}
    assert top_shapes(build(TEXT, options={"input_shapes": given}), []) == list(given.values())
