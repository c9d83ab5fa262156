"""What real pycaffe scripts from public repositories needed beyond BVLC's own tests
(docs/pycaffe.md, "Real scripts"), each checked on a small script or net of ours."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import caffe2torch.pycaffe as caffe
from caffe2torch.errors import CaffeError
from tests.pycaffe.test_example_workflows import run_script


def test_caffe_module_names_the_compiled_module_types() -> None:
    # python/caffe/_caffe.cpp: the classes and functions a script may reach through
    # caffe._caffe are those of caffe itself
    for name in ("Net", "Blob", "BlobVec", "Layer", "SGDSolver", "get_solver",
                 "set_mode_cpu", "layer_type_list", "Timer"):
        assert getattr(caffe._caffe, name) is getattr(caffe, name)


def test_fold_batchnorm_surgery(tmp_path: Path) -> None:
    out = run_script("fold_batchnorm.py", str(tmp_path), cwd=tmp_path)
    assert "conv [(4, 3, 3, 3), (4,)]" in out
    found = re.search(r"max difference (\S+)", out)
    assert found, out
    diff = float(found.group(1))
    assert diff < 1e-4, out


def test_nccl_refuses_with_the_multi_gpu_route() -> None:
    # python/train.py starts with caffe.NCCL.new_uid(); has_nccl() stays False
    assert caffe.has_nccl() is False
    assert caffe._caffe.NCCL is caffe.NCCL
    with pytest.raises(CaffeError, match="NCCL") as info:
        caffe.NCCL.new_uid()
    assert "-gpu all" in (info.value.hint or "")
    with pytest.raises(CaffeError, match="NCCL"):
        caffe.NCCL(None, "")


def test_import_caffe_loads_pil_image_as_pycaffe_does() -> None:
    # py-faster-rcnn's imdb.py says `import PIL` and calls PIL.Image.open: with BVLC's
    # pycaffe, caffe.io's scikit-image has loaded PIL.Image by then
    pytest.importorskip("PIL")
    import subprocess
    import sys

    code = ("import caffe2torch.pycaffe.alias as a; a.install(); import caffe, PIL; "
            "print(PIL.Image.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "PIL.Image", out.stderr


def test_second_solver_on_the_same_lmdb(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # BVLC's 01-learning-lenet notebook builds a second solver on the LMDBs of the first
    # (`solver = None` then get_solver): Caffe opens an LMDB in every Data layer
    lmdb = pytest.importorskip("lmdb")
    import numpy as np

    env = lmdb.open(str(tmp_path / "train_lmdb"), map_size=1 << 22)
    with env.begin(write=True) as txn:
        for i in range(8):
            img = np.full((1, 4, 4), 30 * i, np.uint8)
            txn.put(f"{i:08d}".encode(),
                    caffe.io.array_to_datum(img, i % 2).SerializeToString())
    env.close()
    n = caffe.NetSpec()
    n.data, n.label = caffe.layers.Data(batch_size=4, backend=caffe.params.Data.LMDB,
                                        source="train_lmdb", ntop=2,
                                        transform_param=dict(scale=1. / 255))
    n.score = caffe.layers.InnerProduct(n.data, num_output=2,
                                        weight_filler=dict(type="xavier"))
    n.loss = caffe.layers.SoftmaxWithLoss(n.score, n.label)
    (tmp_path / "net.prototxt").write_text(str(n.to_proto()))
    (tmp_path / "solver.prototxt").write_text(
        'train_net: "net.prototxt" test_net: "net.prototxt" test_iter: 1 '
        'test_interval: 1000 base_lr: 0.1 lr_policy: "fixed" max_iter: 10 solver_mode: CPU')
    monkeypatch.chdir(tmp_path)
    first = caffe.get_solver("solver.prototxt")  # train and test net on one LMDB
    first.step(1)
    second = caffe.get_solver("solver.prototxt")  # the first still alive
    second.step(2)
    first.test_nets[0].forward()
    assert second.iter == 2
    assert second.net.blobs["label"].data.tolist() == [0, 1, 0, 1]


def test_fork_resize_field_named_before_the_mean_it_breaks(tmp_path: Path) -> None:
    # yihui-he/channel-pruning's vgg.prototxt: caffe-pro's `new_dim: 256` (shorter side
    # resized) with a 224 x 224 mean file. The data open before the net is built, so
    # without this check the first error was the mean not fitting the unresized image
    import cv2
    import numpy as np

    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 12, 3), 40 * i, np.uint8))
    (tmp_path / "list.txt").write_text("0.png 0\n1.png 1\n")
    mean = caffe.io.array_to_blobproto(np.zeros((1, 3, 8, 8), np.float32))
    (tmp_path / "mean.binaryproto").write_bytes(mean.SerializeToString())
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "ImageData" top: "data" top: "label"\n'
        '  image_data_param { new_dim: 16 bicubic: true batch_size: 2\n'
        f'    source: "{tmp_path / "list.txt"}" root_folder: "{tmp_path}/" }}\n'
        f'  transform_param {{ crop_size: 8 mean_file: "{tmp_path / "mean.binaryproto"}" }} }}\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        '  inner_product_param { num_output: 2 } }\n')
    with pytest.raises(CaffeError) as info:
        caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    err = info.value
    assert err.code == "C2T605" and "`new_dim: 16` and 1 more" in err.message, err
    assert err.line == 2 and str(err.path).endswith("net.prototxt"), err


REFINEDET_OUT = """name: "refinedet_head"
layer { name: "in" type: "Input" top: "loc" top: "conf" top: "prior" top: "arm_conf"
  top: "arm_loc" input_param { shape { dim: 1 dim: 8 } shape { dim: 1 dim: 6 }
  shape { dim: 1 dim: 2 dim: 8 } shape { dim: 1 dim: 4 } shape { dim: 1 dim: 8 } } }
layer { name: "detection_out" type: "DetectionOutput" bottom: "loc" bottom: "conf"
  bottom: "prior" bottom: "arm_conf" bottom: "arm_loc" top: "detection_out"
  detection_output_param { num_classes: 3 share_location: true background_label_id: 0
    nms_param { nms_threshold: 0.45 top_k: 10 } code_type: CENTER_SIZE keep_top_k: 10
    confidence_threshold: 0.01 objectness_score: 0.02 } }
"""


def test_refinedet_detection_output_with_the_arm_bottoms(tmp_path: Path) -> None:
    # sfzhang15/RefineDet's deploy.prototxt (written by examples/refinedet/*.py, run by
    # test/refinedet_demo.py): DetectionOutput takes arm_conf and arm_loc after SSD's
    # three bottoms. A prior whose objectness is below objectness_score counts as
    # background (OSGetConfidenceScores); the others are first moved by arm_loc
    # (CasRegDecodeBBoxesAll), then decoded with the ODM's loc
    import numpy as np

    (tmp_path / "net.prototxt").write_text(REFINEDET_OUT)
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    net.blobs["prior"].data[...] = [[0.1, 0.1, 0.3, 0.3, 0.5, 0.5, 0.7, 0.7],
                                    [0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.2, 0.2]]
    net.blobs["arm_conf"].data[...] = [[0.985, 0.015, 0.3, 0.7]]  # prior 0: no object
    net.blobs["arm_loc"].data[...] = [[0, 0, 0, 0, 1, 0, 0, 0]]  # prior 1: x + 0.1 * w
    net.blobs["conf"].data[...] = [[0.0, 0.9, 0.1, 0.1, 0.2, 0.7]]
    net.blobs["loc"].data[...] = 0
    out = net.forward()["detection_out"]
    np.testing.assert_allclose(out[0, 0], [[0, 1, 0.2, 0.52, 0.5, 0.72, 0.7],
                                           [0, 2, 0.7, 0.52, 0.5, 0.72, 0.7]], atol=1e-6)


def test_refinedet_detection_output_is_not_exported_as_ssd(tmp_path: Path) -> None:
    # the ONNX form decodes against the fixed priors: a five-bottom layer is refused
    from caffe2torch import load_net
    from caffe2torch.errors import ExportError
    from caffe2torch.export.onnx import onnx_detection_heads

    (tmp_path / "net.prototxt").write_text(REFINEDET_OUT)
    with pytest.raises(ExportError, match="RefineDet"):
        onnx_detection_heads(load_net(str(tmp_path / "net.prototxt"), phase="TEST"))
