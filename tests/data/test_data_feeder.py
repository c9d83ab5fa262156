"""DataFeeder behaviour the goldens cannot show: shuffles, paired layers, bad images,
TRAIN-phase crops and mirrors, rand_skip, sharding, HDF5 shuffling, LevelDB."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from google.protobuf import text_format

from caffe2torch.data import DataFeeder, IndexStream, Transformer
from caffe2torch.errors import CaffeError, DataError
from caffe2torch.proto import caffe_pb2


def layer(text: str) -> caffe_pb2.LayerParameter:
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def image_layer(name: str, source: str, batch: int = 4, extra: str = "",
                transform: str = "") -> caffe_pb2.LayerParameter:
    tp = f"transform_param {{ {transform} }}" if transform else ""
    return layer(f'name: "{name}" type: "ImageData" top: "{name}" top: "{name}_label" {tp} '
                 f'image_data_param {{ source: "{source}" batch_size: {batch} {extra} }}')


def write_images(folder: Path, n: int, list_name: str, offset: int = 0) -> None:
    """``n`` 6x8 images whose pixels all equal the row number (+offset), labels = row."""
    lines = []
    for i in range(n):
        img = np.full((6, 8, 3), i + offset, np.uint8)
        cv2.imwrite(str(folder / f"{list_name}_{i}.png"), img)
        lines.append(f"{list_name}_{i}.png {i}")
    (folder / list_name).write_text("\n".join(lines) + "\n")


def test_sequential_wraps_inside_a_batch(tmp_path: Path) -> None:
    write_images(tmp_path, 5, "a.txt")
    f = DataFeeder([image_layer("a", "a.txt", batch=3)], "TEST", cwd=tmp_path)
    labels = [f.next_batch()["a_label"].tolist() for _ in range(3)]
    assert labels == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]


def test_shuffle_is_seeded_per_epoch_and_pairs_stay_aligned(tmp_path: Path) -> None:
    write_images(tmp_path, 10, "t1.txt")
    write_images(tmp_path, 10, "t2.txt", offset=100)
    layers = [image_layer("data", "t1.txt", 5, "shuffle: true"),
              image_layer("data_p", "t2.txt", 5, "shuffle: true")]
    f = DataFeeder(layers, "TRAIN", cwd=tmp_path, seed=3)
    epochs = []
    for _ in range(2):
        rows = []
        for _ in range(2):
            b = f.next_batch()
            assert torch.equal(b["data_label"], b["data_p_label"])
            assert torch.equal(b["data"][:, 0, 0, 0] + 100, b["data_p"][:, 0, 0, 0])
            rows += b["data_label"].int().tolist()
        assert sorted(rows) == list(range(10))
        epochs.append(rows)
    assert epochs[0] != epochs[1] != list(range(10))
    again = DataFeeder(layers, "TRAIN", cwd=tmp_path, seed=3)
    assert again.next_batch()["data_label"].int().tolist() == epochs[0][:5]


def test_paired_lengths_must_match(tmp_path: Path) -> None:
    write_images(tmp_path, 4, "train1.txt")
    write_images(tmp_path, 3, "train2.txt")
    layers = [image_layer("data", "train1.txt"), image_layer("data_p", "train2.txt")]
    with pytest.raises(DataError, match=r"train1\.txt") as e:
        DataFeeder(layers, "TRAIN", cwd=tmp_path)
    assert "train2.txt" in e.value.message and "aligned=False" in (e.value.hint or "")
    f = DataFeeder(layers, "TRAIN", cwd=tmp_path, aligned=False)  # Caffe's way
    assert f.next_batch()["data_p_label"].tolist() == [0, 1, 2, 0]


def test_bad_image_raises_or_is_skipped_in_both_lists(tmp_path: Path) -> None:
    write_images(tmp_path, 4, "t1.txt")
    write_images(tmp_path, 4, "t2.txt")
    (tmp_path / "t2.txt_1.png").unlink()
    layers = [image_layer("data", "t1.txt", 3), image_layer("data_p", "t2.txt", 3)]
    with pytest.raises(DataError, match=r"could not read image 't2\.txt_1\.png'") as e:
        DataFeeder(layers, "TEST", cwd=tmp_path).next_batch()
    assert (e.value.path, e.value.line) == ("t2.txt", 2)
    f = DataFeeder(layers, "TEST", cwd=tmp_path, skip_bad=True)
    with pytest.warns(UserWarning, match="t2.txt:2"):
        b = f.next_batch()
    assert b["data_label"].tolist() == b["data_p_label"].tolist() == [0, 2, 3]
    assert f.skipped == 1 and f.last_indices == {"data": [0, 2, 3], "data_p": [0, 2, 3]}


@pytest.mark.parametrize("bad_row", [False, True], ids=["all-good", "one-bad-row"])
def test_workers_give_the_batches_of_the_main_process(tmp_path: Path, bad_row: bool) -> None:
    """Worker processes write rows into shared batch tensors; the batches (random crops
    and mirrors included) equal those read in the main process, also when a skipped row
    moves the batch boundaries away from the workers' chunks."""
    rng = np.random.default_rng(0)
    for name in ("t1.txt", "t2.txt"):
        lines = []
        for i in range(9):
            cv2.imwrite(str(tmp_path / f"{name}_{i}.png"),
                        rng.integers(0, 256, (7, 9, 3), dtype=np.uint8))
            lines.append(f"{name}_{i}.png {i}")
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    if bad_row:
        (tmp_path / "t2.txt_4.png").unlink()
    transform = "crop_size: 5 mirror: true mean_value: 100 scale: 0.5"
    layers = [image_layer("data", "t1.txt", 4, "shuffle: true", transform),
              image_layer("data_p", "t2.txt", 4, "shuffle: true", transform)]

    def batches(workers: int) -> list[dict[str, torch.Tensor]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with DataFeeder(layers, "TRAIN", cwd=tmp_path, seed=5, skip_bad=bad_row,
                            num_workers=workers) as f:
                return [f.next_batch() for _ in range(5)]

    here, there = batches(0), batches(2)
    for a, b in zip(here, there):
        assert a.keys() == b.keys()
        for top in a:
            assert torch.equal(a[top], b[top]), top
        assert torch.equal(a["data_label"], a["data_p_label"])


def test_workers_report_images_of_different_sizes(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((5, 4, 3), np.uint8))
    (tmp_path / "l.txt").write_text("a.png 0\nb.png 1\n")
    with pytest.raises(DataError, match=r"differ in size \(3x4x4, 3x5x4\)"), DataFeeder(
            [image_layer("d", "l.txt", 2)], "TEST", cwd=tmp_path, num_workers=1) as f:
        f.next_batch()


def test_images_of_different_sizes_in_one_batch(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((5, 4, 3), np.uint8))
    (tmp_path / "l.txt").write_text("a.png 0\nb.png 1\n")
    with pytest.raises(DataError, match="differ in size"):
        DataFeeder([image_layer("d", "l.txt", 2)], "TEST", cwd=tmp_path).next_batch()
    f = DataFeeder([image_layer("d", "l.txt", 2, "new_height: 3 new_width: 3")], "TEST",
                   cwd=tmp_path)
    assert tuple(f.next_batch()["d"].shape) == (2, 3, 3, 3)


def test_train_crop_and_mirror_are_random_but_seeded() -> None:
    param = text_format.Parse("crop_size: 2 mirror: true", caffe_pb2.TransformationParameter())
    img = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    train = Transformer(param, "TRAIN")
    outs = {train(img, np.random.default_rng(s)).tobytes() for s in range(40)}
    assert len(outs) > 4  # several offsets and flips
    for s in range(5):
        a = train(img, np.random.default_rng(s))
        b = train(img, np.random.default_rng(s))
        assert np.array_equal(a, b)
    test = Transformer(param, "TEST")
    centre = img[:, 1:3, 1:3].astype(np.float32)
    seen = {test(img, np.random.default_rng(s)).tobytes() for s in range(20)}
    assert seen == {centre.tobytes(), centre[:, :, ::-1].copy().tobytes()}  # Caffe mirrors in TEST


class _Draws:
    """A stand-in generator whose integers() returns fixed values in turn."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def integers(self, high: int) -> int:
        value = self.values.pop(0)
        assert 0 <= value < high
        return value


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("layout", ["opencv", "chw"])
@pytest.mark.parametrize("mirror", [0, 1])
def test_transform_equals_the_formula_for_every_layout(channels: int, layout: str,
                                                        mirror: int) -> None:
    """(pixel - mean) * scale of the crop, mirrored: the same whether the image is an
    OpenCV H x W x C array seen as C x H x W (the fast path) or a C x H x W array, and
    whether it is written into a batch row or a new array."""
    rng = np.random.default_rng(channels)
    hwc = rng.integers(0, 256, (9, 11, channels), dtype=np.uint8)
    chw = hwc.transpose(2, 0, 1) if layout == "opencv" else np.ascontiguousarray(
        hwc.transpose(2, 0, 1))
    means = " ".join(f"mean_value: {10.5 + k}" for k in range(channels))
    param = text_format.Parse(f"crop_size: 5 mirror: true scale: 0.017 {means}",
                              caffe_pb2.TransformationParameter())
    transform = Transformer(param, "TRAIN")
    crop = hwc.transpose(2, 0, 1)[:, 3:8, 2:7].astype(np.float32)
    if mirror:
        crop = crop[:, :, ::-1]
    mean = np.float32(10.5) + np.arange(channels, dtype=np.float32)
    want = (crop - mean[:, None, None]) * np.float32(0.017)
    got = transform(chw, _Draws(mirror, 3, 2))
    assert got.dtype == np.float32 and np.array_equal(got, want)
    batch = np.zeros((2, channels, 5, 5), np.float32)
    into = transform(chw, _Draws(mirror, 3, 2), out=batch[1])
    assert np.shares_memory(into, batch) and np.array_equal(batch[1], want)
    assert not batch[0].any()


def test_mean_value_count_and_scale() -> None:
    img = np.full((3, 2, 2), 10, np.uint8)
    p = text_format.Parse("mean_value: 1 mean_value: 2 mean_value: 3 scale: 0.5",
                          caffe_pb2.TransformationParameter())
    out = Transformer(p, "TEST")(img)
    assert out[:, 0, 0].tolist() == [4.5, 4.0, 3.5] and out.dtype == np.float32
    bad = text_format.Parse("mean_value: 1 mean_value: 2", caffe_pb2.TransformationParameter())
    with pytest.raises(DataError, match="2 mean_value entries for 3 channels"):
        Transformer(bad, "TEST")(img)
    both = text_format.Parse('mean_value: 1 mean_file: "m.binaryproto"',
                             caffe_pb2.TransformationParameter())
    with pytest.raises(DataError, match="mean_file and mean_value"):
        Transformer(both, "TEST")


def test_stream_rand_skip_and_shards() -> None:
    s = IndexStream([5], rand_skip=4, rng=np.random.default_rng(1))
    start = s.skipped_at_start
    assert 0 <= start < 4 and s.take(6) == [(start + i) % 5 for i in range(6)]
    ranks = [IndexStream([6], rank=r, world_size=2).take(4) for r in range(2)]
    assert ranks == [[0, 2, 4, 0], [1, 3, 5, 1]]
    with pytest.raises(DataError, match="rand_skip"):
        IndexStream([2], rand_skip=10**6, rng=np.random.default_rng(0))


def test_hdf5_shuffle_is_file_major(tmp_path: Path) -> None:
    for name, rows in (("p1.h5", range(0, 3)), ("p2.h5", range(3, 7))):
        with h5py.File(tmp_path / name, "w") as f:
            f["x"] = np.array(list(rows), dtype=np.int32)[:, None]
    (tmp_path / "list.txt").write_text("p1.h5\n  p2.h5 ")
    hl = layer('name: "h" type: "HDF5Data" top: "x" '
               'hdf5_data_param { source: "list.txt" batch_size: 7 shuffle: true }')
    f = DataFeeder([hl], "TRAIN", cwd=tmp_path, seed=5)
    rows = f.next_batch()["x"][:, 0].int().tolist()
    assert sorted(rows) == list(range(7))
    first = set(rows[:3]) == {0, 1, 2} or set(rows[:4]) == {3, 4, 5, 6}
    assert first  # one file's rows, then the other's
    with_tp = layer('name: "h" type: "HDF5Data" top: "x" transform_param { scale: 2 } '
                    'hdf5_data_param { source: "list.txt" batch_size: 2 }')
    with pytest.raises(DataError, match="does not transform"):
        DataFeeder([with_tp], "TRAIN", cwd=tmp_path)
    missing = layer('name: "h" type: "HDF5Data" top: "y" '
                    'hdf5_data_param { source: "list.txt" batch_size: 2 }')
    with pytest.raises(DataError, match="no dataset 'y'"):
        DataFeeder([missing], "TRAIN", cwd=tmp_path)


def test_lmdb_source_written_here(tmp_path: Path) -> None:
    import lmdb

    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        for i in range(3):
            d = caffe_pb2.Datum(channels=1, height=2, width=2, label=i,
                                data=bytes([i, i, i, 200]))
            txn.put(f"{i:08d}".encode(), d.SerializeToString())
        d = caffe_pb2.Datum(channels=1, height=1, width=2, label=9, float_data=[0.5, 1.5])
        txn.put(b"zz", d.SerializeToString())
    env.close()
    dl = layer('name: "d" type: "Data" top: "data" top: "label" '
               'data_param { source: "db" batch_size: 3 backend: LMDB }')
    b = DataFeeder([dl], "TEST", cwd=tmp_path).next_batch()
    assert b["label"].tolist() == [0, 1, 2]
    assert b["data"][:, 0, 1, 1].tolist() == [200, 200, 200]
    leveldb = layer('name: "d" type: "Data" top: "data" data_param { source: "db" '
                    "batch_size: 3 }")
    with pytest.raises(DataError, match="backend: LMDB"):
        DataFeeder([leveldb], "TEST", cwd=tmp_path)


def test_one_lmdb_read_by_two_feeders_at_once(tmp_path: Path) -> None:
    # Caffe opens an LMDB in every Data layer that names it (a train and a test net on
    # one source, a second solver beside the first); py-lmdb refuses a second open of
    # the same files in one process, so the readers share one environment
    import lmdb

    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        for i in range(4):
            d = caffe_pb2.Datum(channels=1, height=1, width=1, label=i, data=bytes([i]))
            txn.put(f"{i:08d}".encode(), d.SerializeToString())
    env.close()
    dl = layer('name: "d" type: "Data" top: "data" top: "label" '
               'data_param { source: "db" batch_size: 2 backend: LMDB }')
    first = DataFeeder([dl], "TEST", cwd=tmp_path)
    second = DataFeeder([dl], "TEST", cwd=tmp_path)
    assert first.next_batch()["label"].tolist() == [0, 1]
    assert second.next_batch()["label"].tolist() == [0, 1]
    # a worker process forked while both are open reads it too
    with DataFeeder([dl], "TEST", cwd=tmp_path, num_workers=1) as forked:
        # (the first batch is read here while the workers start)
        assert [forked.next_batch()["label"].tolist() for _ in range(3)] == [
            [0, 1], [2, 3], [0, 1]]
    first.close()
    assert second.next_batch()["label"].tolist() == [2, 3]  # still open for the other
    second.close()
    # the last reader closed it: the process may open the database again for writing
    lmdb.open(str(tmp_path / "db"), map_size=1 << 20).close()


def test_from_net_picks_the_phase(tmp_path: Path) -> None:
    write_images(tmp_path, 2, "tr.txt")
    write_images(tmp_path, 3, "te.txt")
    net = text_format.Parse(
        'layer { name: "d" type: "ImageData" top: "data" top: "label" include { phase: TRAIN }'
        ' image_data_param { source: "tr.txt" batch_size: 2 } }'
        'layer { name: "d" type: "ImageData" top: "data" top: "label" include { phase: TEST }'
        ' image_data_param { source: "te.txt" batch_size: 3 } }'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }',
        caffe_pb2.NetParameter())
    assert DataFeeder.from_net(net, "TRAIN", cwd=tmp_path).next_batch()["label"].shape == (2,)
    assert DataFeeder.from_net(net, "TEST", cwd=tmp_path).next_batch()["label"].shape == (3,)
    with pytest.raises(DataError, match="not a data layer"):
        DataFeeder([net.layer[2]], "TEST")


def _label_lmdb(path: Path, n: int) -> None:
    import lmdb

    env = lmdb.open(str(path), map_size=1 << 20)
    with env.begin(write=True) as txn:
        for i in range(n):
            d = caffe_pb2.Datum(channels=1, height=1, width=1, label=i, data=bytes([i]))
            txn.put(f"{i:08d}".encode(), d.SerializeToString())
    env.close()


def _epochs(draw, n_batches: int, epochs: int) -> list[list[int]]:
    labels = [int(v) for _ in range(n_batches * epochs) for v in draw()["label"].tolist()]
    size = len(labels) // epochs
    return [labels[k * size:(k + 1) * size] for k in range(epochs)]


def test_data_shuffle_of_a_fork_reorders_every_epoch(tmp_path: Path) -> None:
    """data_param.shuffle (intel/caffe, lim0606/caffe's GoogLeNet-BN), kept aside by the
    reader: every epoch is a new permutation of the records; without it, key order."""
    from caffe2torch.graph.fed import build_fed_net
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir.netstate import NetState

    _label_lmdb(tmp_path / "db", 8)
    dl = layer('name: "d" type: "Data" top: "data" top: "label" '
               'data_param { source: "db" batch_size: 4 backend: LMDB }')
    plain = DataFeeder([dl], "TRAIN", cwd=tmp_path, seed=3)
    assert _epochs(plain.next_batch, 2, 2) == [list(range(8))] * 2
    plain.close()
    mixed = DataFeeder([dl], "TRAIN", cwd=tmp_path, seed=3,
                       extras={"d": {"data_param.shuffle": True}})
    epochs = _epochs(mixed.next_batch, 2, 4)
    assert all(sorted(e) == list(range(8)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1 and epochs != [list(range(8))] * 4
    mixed.close()
    # from a net file: the builder accepts the field and the feeder gets it
    net_file = tmp_path / "train.prototxt"
    net_file.write_text('layer { name: "d" type: "Data" top: "data" top: "label" '
                        'data_param { source: "db" batch_size: 4 backend: LMDB '
                        "shuffle: true } }\n")
    net_param, source_map = read_net_with_positions(str(net_file))
    net = build_fed_net(net_param, NetState.of("TRAIN"), cwd=tmp_path, seed=3,
                        source_map=source_map, num_workers=0)
    fed = _epochs(net.batch_stream, 2, 4)
    assert all(sorted(e) == list(range(8)) for e in fed) and fed != [list(range(8))] * 4
    net.batch_stream.close()
    net_file.write_text(net_file.read_text().replace("shuffle: true", "shuffle: 2"))
    net_param, source_map = read_net_with_positions(str(net_file))
    with pytest.raises(CaffeError, match=r"data_param\.shuffle must be true or false"):
        build_fed_net(net_param, NetState.of("TRAIN"), cwd=tmp_path, source_map=source_map,
                      num_workers=0)
