"""Tile: whole sub-blobs from axis repeated tiles times (np.tile along one axis)."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Tile")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_matches_np_tile(axis):
    m = build(
        f'name: "t" type: "Tile" bottom: "x" top: "y" tile_param {{ axis: {axis} tiles: 3 }}',
        [(2, 3, 4)],
    )
    x = torch.randn(2, 3, 4)
    reps = [1, 1, 1]
    reps[axis] = 3
    np.testing.assert_array_equal(m(x).numpy(), np.tile(x.numpy(), reps))


def test_tiles_required():
    with pytest.raises(BuildError, match="tiles"):
        build('name: "t" type: "Tile" bottom: "x" top: "y" tile_param { axis: 1 }', [(2, 3)])
