"""Data layers against real Caffe (../shared/golden/data): every blob of every forward
bit for bit, and the rows in Caffe's order. Each case runs with its own folder as the
working directory, as Caffe did (paths in net.prototxt are relative to it)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from caffe2torch.data import DataFeeder
from caffe2torch.data.sources import DatumSource
from caffe2torch.io import read_net
from tests.conftest import GOLDEN, need_shared

DATA_DIR = GOLDEN / "data"
CASES = sorted(p.name for p in DATA_DIR.iterdir() if (p / "data.npz").exists()) \
    if DATA_DIR.exists() else []


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def check_case(name: str, num_workers: int = 0) -> None:
    case = need_shared(DATA_DIR / name)
    meta = json.loads((case / "meta.json").read_text())
    with np.load(case / "data.npz") as z:
        golden = {k: z[k] for k in z.files}
    order = golden["order"]
    with chdir(case):
        net = read_net("net.prototxt")
        feeder = DataFeeder.from_net(net, meta["phase"], seed=0, num_workers=num_workers)
        try:
            for k in range(order.shape[0]):
                batch = feeder.next_batch()
                expected = {key.split("/")[1] for key in golden if key.startswith("blob/")}
                assert set(batch) == expected
                for top, tensor in batch.items():
                    want = golden[f"blob/{top}/{k}"]
                    got = tensor.numpy()
                    assert got.dtype == np.float32
                    assert got.shape == want.shape, f"{name} {top} forward {k}"
                    np.testing.assert_array_equal(got, want, err_msg=f"{name} {top} forward {k}")
                for layer, indices in feeder.last_indices.items():
                    assert indices == order[k].tolist(), f"{name} {layer} order forward {k}"
        finally:
            feeder.close()


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name: str) -> None:
    check_case(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["imagedata_meanfile_crop", "data_lmdb_raw_meanfile_crop",
                                  "hdf5data_two_files"])
def test_golden_case_with_workers(name: str) -> None:
    """DataLoader worker processes give the very same batches in the same order."""
    check_case(name, num_workers=2)


def test_spaces_labels_root_parsing() -> None:
    case = need_shared(DATA_DIR / "imagedata_spaces_labels_root")
    with np.load(case / "data.npz") as z:
        expected = z["expected_labels"].tolist()
    with chdir(case):
        feeder = DataFeeder.from_net(read_net("net.prototxt"), "TEST")
        source = feeder.sources[0]
        assert [e.label for e in source.entries] == expected  # type: ignore[attr-defined]
        assert source.entries[0].name == "_images/my image 1.png"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", [c for c in CASES if c.startswith("data_lmdb")])
def test_lmdb_records(name: str) -> None:
    """Keys in LMDB order; raw records decode to the stored Datum arrays."""
    case = need_shared(DATA_DIR / name)
    with np.load(case / "data.npz") as z:
        golden = {k: z[k] for k in z.files}
    with chdir(case):
        layer = read_net("net.prototxt").layer[0]
        src = DatumSource(layer, "TEST", ".")
        assert [k.decode() for k in src.keys] == golden["lmdb_keys"].tolist()
        for i in range(len(src)):
            arr, label = src.datum_image(i)
            assert label == int(golden[f"datum_label/{i}"])
            if f"datum/{i}" in golden:
                np.testing.assert_array_equal(arr, golden[f"datum/{i}"])
        src.close()


def test_hdf5_rows_match_inputs() -> None:
    case = need_shared(DATA_DIR / "hdf5data_two_files")
    with np.load(case / "data.npz") as z:
        inputs = {k.split("/")[1]: z[k] for k in z.files if k.startswith("input/")}
    with chdir(case):
        feeder = DataFeeder.from_net(read_net("net.prototxt"), "TEST")
        src = feeder.sources[0]
        assert src.segments() == [7, 5]
        for i in range(len(src)):
            for top, row in zip(src.tops, src.load(i)):
                np.testing.assert_array_equal(row, inputs[top][i].astype(np.float32))
