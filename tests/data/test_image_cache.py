"""ImageData keeps decoded images across epochs, within a byte budget: the second epoch
reads no file and gives the same rows, bit for bit; the budget comes from
$CAFFE2TORCH_IMAGE_CACHE_MB or --image-cache-mb."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from caffe2torch.data import image_cache, sources
from caffe2torch.data.sources import ImageListSource
from caffe2torch.errors import DataError
from caffe2torch.proto import caffe_pb2

SIDE = 12  # a 12x12 colour image is 432 bytes


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"im{i}.png"),
                    rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))
        lines.append(f"im{i}.png {i}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    return tmp_path


def _source(folder: Path, transform: str = "scale: 0.5") -> ImageListSource:
    layer = caffe_pb2.LayerParameter(name="data", type="ImageData", top=["data", "label"])
    layer.image_data_param.source = "list.txt"
    layer.image_data_param.batch_size = 2
    from google.protobuf import text_format

    text_format.Merge(transform, layer.transform_param)
    return ImageListSource(layer, "TRAIN", str(folder))


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = sources.read_image

    def counting(path, *args, **kwargs):
        seen.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sources, "read_image", counting)
    return seen


def _epoch(src: ImageListSource) -> list[np.ndarray]:
    return [src.load(i)[0].copy() for i in range(len(src))]


def test_second_epoch_reads_no_file_and_matches(folder: Path, reads: list[str]) -> None:
    src = _source(folder)
    first = _epoch(src)
    assert len(reads) == 6
    second = _epoch(src)
    assert len(reads) == 6, "an image was decoded again"
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    # and equal to a source that never caches
    fresh = _source(folder)
    fresh._cache_left = 0
    for a, b in zip(first, _epoch(fresh)):
        assert np.array_equal(a, b)


def test_budget_bounds_the_cache(folder: Path, reads: list[str], monkeypatch) -> None:
    monkeypatch.setattr(ImageListSource, "cache_bytes", 2 * SIDE * SIDE * 3)
    src = _source(folder)
    _epoch(src)
    _epoch(src)
    assert len(src._cache) == 2 and src._cache_left == 0
    assert len(reads) == 6 + 4  # the four images past the budget are decoded again


def test_zero_budget_decodes_every_time(folder: Path, reads: list[str], monkeypatch) -> None:
    monkeypatch.setattr(ImageListSource, "cache_bytes", 0)
    src = _source(folder)
    _epoch(src)
    _epoch(src)
    assert len(reads) == 12 and not src._cache


def test_random_crops_and_mirrors_still_vary(folder: Path) -> None:
    src = _source(folder, "crop_size: 8 mirror: true")
    rng = np.random.default_rng(1)
    rows = {src.load(0, rng)[0].tobytes() for _ in range(20)}
    assert len(rows) > 1, "the cached image must still go through the random transform"


def test_a_worker_copy_starts_empty(folder: Path) -> None:
    src = _source(folder)
    _epoch(src)
    clone = pickle.loads(pickle.dumps(src))
    assert clone._cache == {} and clone._cache_left == ImageListSource.cache_bytes


def test_a_file_listed_in_many_rows_is_decoded_once(folder: Path, reads: list[str]) -> None:
    (folder / "pairs.txt").write_text("".join(f"im{i % 2}.png {i % 2}\n" for i in range(10)))
    src = _source(folder)
    src.entries = _source_entries(folder, "pairs.txt")
    rows = _epoch(src)
    assert len(reads) == 2
    assert all(np.array_equal(rows[i], rows[i % 2]) for i in range(10))


def _source_entries(folder: Path, name: str):
    from caffe2torch.data.listfile import read_list_file

    return read_list_file(str(folder / name), shown_as=name)


# ------------------------------------------------------------- budget and whole epochs

def _pair_layers(shuffle: bool, transform: str) -> list:
    from google.protobuf import text_format

    layers = []
    for name, listing, tops in (("pair_a", "list.txt", ["data", "sim"]),
                                ("pair_b", "list_p.txt", ["data_p", "sim_p"])):
        layer = caffe_pb2.LayerParameter(name=name, type="ImageData", top=tops)
        layer.image_data_param.source = listing
        layer.image_data_param.batch_size = 4
        layer.image_data_param.shuffle = shuffle
        text_format.Merge(transform, layer.transform_param)
        layers.append(layer)
    return layers


def _batches(folder: Path, n: int, shuffle: bool, transform: str) -> list[dict[str, bytes]]:
    from caffe2torch.data import DataFeeder

    with DataFeeder(_pair_layers(shuffle, transform), "TRAIN", cwd=folder, seed=7) as feeder:
        return [{k: v.numpy().tobytes() for k, v in feeder.next_batch().items()}
                for _ in range(n)]


@pytest.mark.parametrize("shuffle, transform", [
    (False, "scale: 0.5"),
    (True, "crop_size: 8 mirror: true mean_value: 3 mean_value: 4 mean_value: 5"),
])
def test_cached_epochs_equal_decoded_epochs(folder: Path, reads: list[str],
                                            monkeypatch: pytest.MonkeyPatch, shuffle: bool,
                                            transform: str) -> None:
    # the second list pairs every image with another one, as a Siamese pair list does
    (folder / "list_p.txt").write_text("".join(f"im{(i + 1) % 6}.png {i}\n" for i in range(6)))
    n = 6  # four epochs of 6 rows in batches of 4, shuffled anew at each epoch
    cached = _batches(folder, n, shuffle, transform)
    assert len(reads) == 12, "each source decodes each of its files once"
    monkeypatch.setenv(image_cache.CACHE_ENV, "0")
    decoded = _batches(folder, n, shuffle, transform)
    assert len(reads) == 12 + 2 * 4 * n, "without the cache every row decodes its file"
    assert cached == decoded  # same rows, order, crops and mirrors, bit for bit


def test_environment_sets_the_budget(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(image_cache.CACHE_ENV, "0.5")
    src = _source(folder)
    assert src.cache_bytes == 2**19
    clone = pickle.loads(pickle.dumps(src))  # a worker process keeps the budget
    assert clone.cache_bytes == 2**19 and clone._cache_left == 2**19
    monkeypatch.setenv(image_cache.CACHE_ENV, "0")
    _epoch(src := _source(folder))
    assert not src._cache


@pytest.mark.parametrize("raw", ["lots", "-1", "nan", "inf"])
def test_a_bad_budget_is_a_clear_error(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                       raw: str) -> None:
    monkeypatch.setenv(image_cache.CACHE_ENV, raw)
    with pytest.raises(DataError, match=image_cache.CACHE_ENV) as info:
        _source(folder)
    assert "MiB" in info.value.message and info.value.hint


def test_cli_flag_sets_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from caffe2torch.cli.netargs import add_image_cache_arg, apply_image_cache

    monkeypatch.delenv(image_cache.CACHE_ENV, raising=False)
    p = argparse.ArgumentParser()
    add_image_cache_arg(p)
    apply_image_cache(p.parse_args(["--image-cache-mb", "64"]))
    assert image_cache.cache_budget() == 64 * 2**20
    with pytest.raises(SystemExit):
        p.parse_args(["--image-cache-mb", "-3"])
