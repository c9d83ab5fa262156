"""Real SSD-family TRAIN nets (MultiBoxLoss at the end) build from the repositories' own
files, and MobileNet-SSD's trains: a few SGD steps on one drawn image with three boxes lower
its loss. The nets are read from the bare mirrors under /work/.mirror (skipped without
them). The AnnotatedData layer becomes an input of the given shape for a synthetic batch;
MobileNet-SSD's own augmenting data layer also reads a drawn LMDB, and the net trains from
it."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest
import torch

import caffe2torch as c2t
from tests.layers.test_ssd_end_to_end import drawn_image, preprocess

MIRROR = Path("/work/.mirror")
NETS = {
    "MobileNet-SSD": ("chuanqi305+MobileNet-SSD", "voc/MobileNetSSD_train.prototxt", 300),
    "MobileNetv2-SSDLite": ("chuanqi305+MobileNetv2-SSDLite", "ssdlite/voc/train.prototxt",
                            300),
    "Pelee": ("Robert-JunWang+Pelee", "model/voc/train_merged.prototxt", 304),
}
# the drawn image's rectangle, circle and ellipse, [item, label, instance, box, difficult]
BOXES = [[0, 1, 0, 30 / 300, 40 / 300, 140 / 300, 200 / 300, 0],
         [0, 2, 0, 165 / 300, 55 / 300, 275 / 300, 165 / 300, 0],
         [0, 3, 0, 130 / 300, 205 / 300, 270 / 300, 275 / 300, 0]]


def mirrored_file(name: str, tmp_path: Path) -> Path:
    repo, path, _ = NETS[name]
    root = MIRROR / repo / "repo"
    git_dir = root / ".git" if (root / ".git").is_dir() else root
    if not (git_dir / "HEAD").is_file():
        pytest.skip(f"needs the mirror of {repo.replace('+', '/')} under {MIRROR}")
    shown = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"],
                           capture_output=True, text=True)
    if shown.returncode:
        pytest.skip(f"{path} is not in the mirror of {repo}: {shown.stderr.strip()}")
    out = tmp_path / Path(path).name
    out.write_text(shown.stdout)
    return out


@pytest.mark.parametrize("name", list(NETS))
def test_train_net_builds(tmp_path: Path, name: str) -> None:
    size = NETS[name][2]
    net = c2t.load_net(mirrored_file(name, tmp_path), phase="TRAIN",
                       input_shapes={"data": (1, 3, size, size)})
    assert type(net.module("mbox_loss")).__name__ == "CaffeMultiBoxLoss"
    assert net.blob_shapes["mbox_loss"] == ()
    assert net.inputs == ["data", "label"]


@pytest.mark.slow
def test_mobilenet_ssd_loss_goes_down(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = c2t.load_net(mirrored_file("MobileNet-SSD", tmp_path), phase="TRAIN",
                       input_shapes={"data": (1, 3, 300, 300)})
    image = preprocess(drawn_image())  # the train net's own mean 127.5 and scale 0.007843
    label = torch.tensor(BOXES).reshape(1, 1, -1, 8)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = net.loss(net(data=image, label=label))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert bool(torch.isfinite(torch.tensor(losses)).all())
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.97 * losses[0], losses


def drawn_lmdb(path: Path) -> None:
    """Two encoded 300 x 300 records: the drawn scene and its mirror image, with the
    scene's three boxes."""
    import cv2
    import lmdb
    import numpy as np

    from caffe2torch.proto import caffe_pb2

    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, img in enumerate((drawn_image(), drawn_image()[:, ::-1])):
            anno = caffe_pb2.AnnotatedDatum(type=caffe_pb2.AnnotatedDatum.BBOX)
            anno.datum.encoded = True
            anno.datum.data = cv2.imencode(".jpg", np.ascontiguousarray(img))[1].tobytes()
            for _, label, _, x0, y0, x1, y1, _ in BOXES:
                a = anno.annotation_group.add(group_label=int(label)).annotation.add()
                if k:
                    x0, x1 = 1 - x1, 1 - x0
                a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax = x0, y0, x1, y1
            txn.put(f"{k:08d}".encode(), anno.SerializeToString())
    env.close()


def mobilenet_ssd_on_lmdb(tmp_path: Path, batch: int) -> Path:
    """MobileNet-SSD's train net reading a drawn LMDB with its own augmenting data layer
    (distort, expand, seven batch samplers, random interp_mode, mirror)."""
    path = mirrored_file("MobileNet-SSD", tmp_path)
    drawn_lmdb(tmp_path / "lmdb")
    text = path.read_text().replace('source: "trainval_lmdb/"', 'source: "lmdb"').replace(
        "batch_size: 24", f"batch_size: {batch}")
    assert 'source: "lmdb"' in text and f"batch_size: {batch}" in text
    path.write_text(text)
    return path


def test_mobilenet_ssd_data_layer_reads_its_train_path(tmp_path: Path) -> None:
    from caffe2torch.layers.forks.ssd_data import AnnotatedDataReader

    path = mobilenet_ssd_on_lmdb(tmp_path, 4)
    reader = AnnotatedDataReader.from_net_param(c2t.read_net(path), "TRAIN", tmp_path, seed=1)
    for _ in range(3):
        batch = reader.next_batch()
        assert batch["data"].shape == (4, 3, 300, 300)
        label = batch["label"].reshape(-1, 8)
        assert label.shape[0] >= 1 and bool(torch.isfinite(batch["data"]).all())
        boxes = label[label[:, 0] >= 0]
        assert set(boxes[:, 0].tolist()) <= {0, 1, 2, 3}
        assert bool(((boxes[:, 3:7] >= 0) & (boxes[:, 3:7] <= 1)).all())
        assert set(boxes[:, 1].tolist()) <= {1, 2, 3}
    reader.close()


@pytest.mark.slow
def test_mobilenet_ssd_trains_from_its_lmdb(tmp_path: Path) -> None:
    from caffe2torch.layers.forks.ssd_data import AnnotatedDataReader

    path = mobilenet_ssd_on_lmdb(tmp_path, 2)
    torch.manual_seed(0)
    net = c2t.load_net(path, phase="TRAIN", input_shapes={"data": (2, 3, 300, 300)})
    reader = AnnotatedDataReader.from_net_param(c2t.read_net(path), "TRAIN", tmp_path, seed=0)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = net.loss(net(**reader.next_batch()))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    reader.close()
    assert bool(torch.isfinite(torch.tensor(losses)).all()), losses
