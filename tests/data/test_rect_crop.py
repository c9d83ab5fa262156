"""A fork's rectangular crop in the data transform (caffe2torch.data.crop): Cysu/caffe's
crop_height / crop_width (kept aside, or typed by the fork's proto), SSD's crop_h / crop_w;
offsets in TRAIN, the centre in TEST, with mirror, mean and scale; refusals."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

from caffe2torch.data import DataFeeder, Transformer
from caffe2torch.errors import CaffeError, DataError
from caffe2torch.proto import caffe_pb2

H_KEY = "transform_param.crop_height"
W_KEY = "transform_param.crop_width"
CYSU = Path("/work/.mirror/Cysu+caffe/repo")
DGD = Path("/work/.mirror/Cysu+dgd_person_reid/repo/.git")


def tparam(text: str = "") -> caffe_pb2.TransformationParameter:
    return text_format.Parse(text, caffe_pb2.TransformationParameter())


def coded(h: int, w: int) -> np.ndarray:
    """1 x h x w float32 whose pixel (y, x) is 100 * y + x."""
    return (100 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.float32)[None]


class Script:
    """Draws that answer from a list, recording each bound asked for."""

    def __init__(self, answers: list[int]) -> None:
        self.answers, self.bounds = list(answers), []

    def integers(self, high: int, /) -> int:
        self.bounds.append(high)
        return self.answers.pop(0)


def test_train_offsets_cover_the_range_and_stay_inside() -> None:
    t = Transformer(tparam(), "TRAIN", extras={H_KEY: 3, W_KEY: 5})
    img = coded(7, 9)
    rng = np.random.default_rng(0)
    tops, lefts = set(), set()
    for _ in range(400):
        out = t(img, rng)
        assert out.shape == (1, 3, 5)
        top, left = divmod(int(out[0, 0, 0]), 100)
        np.testing.assert_array_equal(out, img[:, top:top + 3, left:left + 5])
        tops.add(top)
        lefts.add(left)
    assert tops == set(range(5)) and lefts == set(range(5))  # 7 - 3 + 1, 9 - 5 + 1
    assert t.random


def test_test_phase_takes_the_centre_with_mean_and_scale() -> None:
    t = Transformer(tparam("mean_value: 2 scale: 0.5"), "TEST",
                    extras={H_KEY: 3, W_KEY: 4})
    assert not t.random
    out = t(coded(6, 8))
    # top = (6 - 3) // 2 = 1, left = (8 - 4) // 2 = 2: pixels 102..105, 202..205,
    # 302..305, each (pixel - 2) * 0.5
    expected = [[[50.0, 50.5, 51.0, 51.5],
                 [100.0, 100.5, 101.0, 101.5],
                 [150.0, 150.5, 151.0, 151.5]]]
    np.testing.assert_array_equal(out, np.float32(expected))


def test_mirror_is_drawn_first_then_height_then_width() -> None:
    t = Transformer(tparam("mirror: true"), "TRAIN", extras={H_KEY: 2, W_KEY: 3})
    draws = Script([1, 2, 0])  # mirror, top, left
    out = t(coded(5, 6), draws)
    assert draws.bounds == [2, 4, 4]  # Rand(2), Rand(5 - 2 + 1), Rand(6 - 3 + 1)
    np.testing.assert_array_equal(out, np.float32([[[202, 201, 200], [302, 301, 300]]]))
    # TEST: centre (1, 1), still mirrored when the coin says so
    t = Transformer(tparam("mirror: true"), "TEST", extras={H_KEY: 2, W_KEY: 3})
    draws = Script([1])
    out = t(coded(5, 6), draws)
    assert draws.bounds == [2]
    np.testing.assert_array_equal(out, np.float32([[[103, 102, 101], [203, 202, 201]]]))


def test_mean_file_is_cropped_at_the_same_offset() -> None:
    t = Transformer(tparam(), "TEST", extras={H_KEY: 2, W_KEY: 2})
    t.mean = np.ones((1, 4, 6), np.float32) * np.arange(6, dtype=np.float32)
    out = t(coded(4, 6))
    # centre (1, 2): pixels 102, 103 / 202, 203 minus mean columns 2, 3
    np.testing.assert_array_equal(out, np.float32([[[100, 100], [200, 200]]]))


def test_one_axis_falls_back_to_crop_size_or_stays_whole() -> None:
    assert Transformer(tparam("crop_size: 4"), "TEST", extras={H_KEY: 2}).crop_h == 2
    t = Transformer(tparam("crop_size: 4"), "TEST", extras={H_KEY: 2})
    assert (t.crop_h, t.crop_w) == (2, 4)
    t = Transformer(tparam(), "TEST", extras={W_KEY: 3})
    out = t(coded(4, 7))
    assert out.shape == (1, 4, 3) and out[0, 0, 0] == 2  # whole height, left (7-3)//2


def test_ssd_crop_h_crop_w() -> None:
    t = Transformer(tparam("crop_h: 2 crop_w: 3"), "TEST")
    np.testing.assert_array_equal(t(coded(4, 5)), np.float32([[[101, 102, 103],
                                                                 [201, 202, 203]]]))
    t = Transformer(tparam("crop_size: 2 crop_h: 3 crop_w: 4"), "TEST")  # crop_size wins
    assert (t.crop_h, t.crop_w) == (2, 2)
    with pytest.raises(DataError, match="only crop_h: SSD's transform crops only when both"):
        Transformer(tparam("crop_h: 3"), "TEST", where="layer 'd'")


def test_refusals_name_what_is_wrong() -> None:
    with pytest.raises(DataError, match="two forks' crops"):
        Transformer(tparam("crop_h: 3 crop_w: 3"), "TEST", extras={H_KEY: 2})
    with pytest.raises(DataError, match="crop_height must be a non-negative integer"):
        Transformer(tparam(), "TEST", extras={H_KEY: "big"})
    t = Transformer(tparam(), "TRAIN", where="layer 'd'", extras={H_KEY: 3, W_KEY: 5})
    with pytest.raises(DataError, match=r"image 4x4 is smaller than the crop 3 x 5"):
        t(coded(4, 4), np.random.default_rng(0))
    with pytest.raises(DataError, match="smaller than crop_size 5"):  # unchanged wording
        Transformer(tparam("crop_size: 5"), "TEST")(coded(4, 4))


def _images(folder: Path, n: int) -> None:
    lines = []
    for i in range(n):
        img = np.zeros((6, 8, 3), np.uint8)
        img[:, :, 0] = 10 * np.arange(6)[:, None] + np.arange(8)[None, :]
        cv2.imwrite(str(folder / f"i{i}.png"), img)
        lines.append(f"i{i}.png {i}")
    (folder / "list.txt").write_text("\n".join(lines) + "\n")


NET = """layer {{ name: "d" type: "ImageData" top: "data" top: "label"
  transform_param {{ crop_height: 3 crop_width: 5 {extra} }}
  image_data_param {{ source: "list.txt" batch_size: 2 }} }}
"""


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_a_net_file_without_the_fork_schema_builds_and_feeds_the_crop(
        tmp_path: Path, phase: str) -> None:
    from caffe2torch.graph.fed import build_fed_net
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir.netstate import NetState

    _images(tmp_path, 3)
    (tmp_path / "n.prototxt").write_text(NET.format(extra=""))
    net_param, source_map = read_net_with_positions(str(tmp_path / "n.prototxt"))
    net = build_fed_net(net_param, NetState.of(phase), cwd=tmp_path, seed=1,
                        source_map=source_map, num_workers=0)
    batch = net.batch_stream()
    data = batch["data"].numpy() if hasattr(batch["data"], "numpy") else batch["data"]
    assert tuple(data.shape) == (2, 3, 3, 5)
    first = data[0, 0]
    top, left = divmod(int(first[0, 0]), 10)
    assert 0 <= top <= 3 and 0 <= left <= 3
    if phase == "TEST":
        assert (top, left) == (1, 1)
    np.testing.assert_array_equal(first, 10 * np.arange(top, top + 3)[:, None]
                                  + np.arange(left, left + 5)[None, :])
    net.batch_stream.close()


def test_a_net_file_with_a_bad_crop_stops_the_build(tmp_path: Path) -> None:
    from caffe2torch.graph.fed import build_fed_net
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir.netstate import NetState

    _images(tmp_path, 1)
    (tmp_path / "n.prototxt").write_text(NET.format(extra="crop_h: 3 crop_w: 5"))
    net_param, source_map = read_net_with_positions(str(tmp_path / "n.prototxt"))
    with pytest.raises(CaffeError, match="two forks' crops"):
        build_fed_net(net_param, NetState.of("TRAIN"), cwd=tmp_path, source_map=source_map,
                      num_workers=0)


def test_feeder_takes_the_crop_from_extras(tmp_path: Path) -> None:
    _images(tmp_path, 2)
    lp = text_format.Parse('name: "d" type: "ImageData" top: "data" top: "label" '
                           'image_data_param { source: "list.txt" batch_size: 2 }',
                           caffe_pb2.LayerParameter())
    f = DataFeeder([lp], "TEST", cwd=tmp_path, extras={"d": {H_KEY: 4, W_KEY: 2}})
    assert tuple(f.next_batch()["data"].shape) == (2, 3, 4, 2)
    f.close()


def _git_show(repo: Path, spec: str) -> str | None:
    if not repo.exists() or shutil.which("git") is None:
        return None
    done = subprocess.run(["git", f"--git-dir={repo}", "show", spec], capture_output=True,
                          text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def _datum_lmdb(path: Path, n: int, h: int, w: int) -> None:
    import lmdb

    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(n):
            pix = np.full((3, h, w), i, np.uint8)
            d = caffe_pb2.Datum(channels=3, height=h, width=w, label=i, data=pix.tobytes())
            txn.put(f"{i:08d}".encode(), d.SerializeToString())
    env.close()


def test_dgd_cuhk03_data_layer_with_cysu_proto(tmp_path: Path) -> None:
    """The TRAIN data layer of Cysu/dgd_person_reid's models/dgd/cuhk03_trainval.prototxt
    (crop_height: 144 crop_width: 56, mirror, mean_value), read with Cysu/caffe's own
    caffe.proto and without it."""
    from caffe2torch.graph.fed import build_fed_net
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir.netstate import NetState

    net_text = _git_show(DGD, "master:models/dgd/cuhk03_trainval.prototxt")
    proto = _git_show(CYSU, "domain-guided-dropout:src/caffe/proto/caffe.proto")
    if net_text is None or proto is None:
        pytest.skip("the Cysu/dgd_person_reid or Cysu/caffe mirror is absent")
    start = net_text.index("layer {")
    end = net_text.index("layer {", start + 1)
    data_layer = net_text[start:end]
    assert "crop_height: 144 crop_width: 56" in data_layer
    _datum_lmdb(tmp_path / "db", 3, 160, 64)
    data_layer = data_layer.replace('"external/exp/db/cuhk03/train_lmdb"', '"db"')
    (tmp_path / "caffe.proto").write_text(proto)
    for with_proto in (False, True):
        for pool in (True, False):
            text = data_layer if pool else data_layer.replace("shuffle_pool_size: 10", "")
            (tmp_path / "n.prototxt").write_text(text)
            kw = {"proto": str(tmp_path / "caffe.proto")} if with_proto else {}
            net_param, source_map = read_net_with_positions(str(tmp_path / "n.prototxt"),
                                                            **kw)
            if pool:
                # past the transform: what stops the build is the fork's shuffle pool
                with pytest.raises(CaffeError, match="shuffle_pool_size") as e:
                    build_fed_net(net_param, NetState.of("TRAIN"), cwd=tmp_path,
                                  source_map=source_map, num_workers=0)
                assert "crop_" not in str(e.value)
                continue
            net = build_fed_net(net_param, NetState.of("TRAIN"), cwd=tmp_path, seed=2,
                                source_map=source_map, num_workers=0)
            data = net.batch_stream()["data"]
            assert tuple(data.shape) == (50, 3, 144, 56)
            # records of pixel value i, minus mean_value 102 / 102 / 101
            assert float(data[1, 0, 0, 0]) == 1 - 102 and float(data[1, 2, 5, 5]) == 1 - 101
            net.batch_stream.close()
