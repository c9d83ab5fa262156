"""ImageSegData (DeepLab-v2 / PSPNet) and ImageLabelmapData (HED) as layers: the tops'
shapes, the build's refusals, and the forks' real training nets (read from the local
mirrors; skipped without them): DeepLab-LargeFOV's V1 train.prototxt and HED's
train_val.prototxt build, and read their data when the paths are made real."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from caffe2torch.proto.forks import fork_of_layer_type
from tests.support.seg_data import code, coded_image, write_pair

MIRRORS = Path("/work/.mirror")
# DeepLab's run scripts fill these in with sed before Caffe reads the file
DEEPLAB_VARS = {"NET_ID": "largefov", "NUM_LABELS": "21", "EXP": "voc12",
                "DATA_ROOT": "", "LIST_SUFFIX": "", "TRAIN_SET": "train_aug"}


def _git_show(repo: str, path: str) -> str | None:
    git_dir = MIRRORS / repo / "repo"
    if not git_dir.exists():
        return None
    done = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"],
                          capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def _shapes(net) -> dict[str, tuple[int, ...]]:
    return {r.name: s for r, s in net._version_shapes.items()}


def _load(tmp_path: Path, text: str, **kw):
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    return c2t.load_net(path, **kw)


def seg(param: str, transform: str = "", tops: str = 'top: "data" top: "label"') -> str:
    return (f'layer {{ name: "d" type: "ImageSegData" {tops} '
            f"image_data_param {{ batch_size: 2 {param} }} transform_param {{ {transform} }} }}\n")


def test_names_and_forks() -> None:
    assert find_layer_spec("IMAGE_SEG_DATA").type == "ImageSegData"
    assert find_layer_spec("SEG_ACCURACY").type == "SegAccuracy"
    assert "PSPNet" in fork_of_layer_type("ImageSegData")
    assert "hed" in fork_of_layer_type("ImageLabelmapData")


@pytest.mark.parametrize(
    ("param", "transform", "hw"),
    [
        pytest.param("new_height: 9 new_width: 7", "", (9, 7), id="resize"),
        pytest.param("new_height: 9 new_width: 7", "crop_size: 5", (5, 5), id="crop-size"),
        pytest.param("", "crop_height: 4 crop_width: 6", (4, 6), id="crop-hw"),
    ],
)
def test_image_seg_data_shapes(tmp_path: Path, param: str, transform: str,
                               hw: tuple[int, int]) -> None:
    tops = 'top: "data" top: "label" top: "data_dim"'
    shapes = _shapes(_load(tmp_path, seg(f"{param} is_color: false", transform, tops)))
    assert shapes == {"data": (2, 1, *hw), "label": (2, 1, *hw), "data_dim": (2, 1, 1, 2)}


def test_image_seg_data_size_of_the_first_listed_image(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text(write_pair(tmp_path / "img", "a", coded_image(5, 3),
                                                  code(5, 3)) + "\n")
    net = _load(tmp_path, seg(f'source: "{tmp_path}/list.txt" root_folder: "{tmp_path}/" '
                              "label_type: PIXEL"))
    assert _shapes(net) == {"data": (2, 3, 5, 3), "label": (2, 1, 5, 3)}


@pytest.mark.parametrize(
    ("param", "transform", "match"),
    [
        ("new_height: 9", "", "new_height and new_width must be set together"),
        ("", "crop_size: 4 crop_height: 3 crop_width: 3", "either specify crop_size or both"),
        ("", "crop_width: 3", "either specify crop_size or both"),
        ("", 'mean_file: "m.binaryproto" crop_size: 3', "does not support mean_file"),
        ("", "crop_size: 3 mean_value: 1 mean_value: 2", "2 mean_value entries for 3"),
        ("label_type: LINE", "crop_size: 3", "label_type must be NONE, IMAGE or PIXEL"),
        ("ignore_label: 2.5", "crop_size: 3", "ignore_label must be an integer"),
        ("", "crop_size: 3 scale_factors: -1", "scale_factors must be positive"),
    ],
)
def test_image_seg_data_refusals(tmp_path: Path, param: str, transform: str,
                                 match: str) -> None:
    with pytest.raises(BuildError, match=match):
        _load(tmp_path, seg(param, transform))


def test_labelmap_data_shapes(tmp_path: Path) -> None:
    layer = ('layer {{ name: "d" type: "ImageLabelmapData" top: "data" top: "label" '
             'image_data_param {{ batch_size: 1 {} }} transform_param {{ {} }} }}\n')
    net = _load(tmp_path, layer.format("new_height: 8 new_width: 6", ""))
    assert _shapes(net) == {"data": (1, 3, 8, 6), "label": (1, 1, 8, 6)}
    net = _load(tmp_path, layer.format("is_color: false", "crop_size: 4"))
    assert _shapes(net) == {"data": (1, 1, 4, 4), "label": (1, 1, 4, 4)}
    with pytest.raises(BuildError, match="crop_height"):  # Cysu's field, not HED's
        _load(tmp_path, layer.format("", "crop_height: 3 crop_width: 3"))


# --------------------------------------------------------------------------- real nets


def _deeplab_train(tmp_path: Path) -> str:
    text = _git_show("martinkersner+train-DeepLab", "DeepLab-LargeFOV/train.prototxt")
    if text is None:
        pytest.skip("the martinkersner/train-DeepLab mirror is absent")
    for name, value in DEEPLAB_VARS.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text
    return text


def test_the_unfilled_deeplab_template_names_its_variable(tmp_path: Path) -> None:
    from caffe2torch.errors import ParseError

    text = _git_show("martinkersner+train-DeepLab", "DeepLab-LargeFOV/train.prototxt")
    if text is None:
        pytest.skip("the martinkersner/train-DeepLab mirror is absent")
    with pytest.raises(ParseError, match=r"num_output.*not \$\{NUM_LABELS\}") as e:
        _load(tmp_path, text, phase="TRAIN")
    assert "template" in (e.value.hint or "") and e.value.line is not None


def test_deeplab_largefov_train_net_builds(tmp_path: Path, capsys) -> None:
    text = _deeplab_train(tmp_path)
    net = _load(tmp_path, text, phase="TRAIN")
    shapes = _shapes(net)
    assert shapes["data"] == (30, 3, 321, 321) and shapes["label"] == (30, 1, 321, 321)
    assert shapes["fc8_voc12"] == (30, 21, 41, 41) and shapes["accuracy"] == (1, 1, 1, 3)
    modules = dict(net.named_modules())
    assert modules["layers.loss"].ignore_label == 255  # softmaxloss_param (DeepLab v1)
    assert modules["layers.accuracy"].ignore == (255,)
    (tmp_path / "n.prototxt").write_text(text)
    from caffe2torch.cli.main import main

    assert main(["info", str(tmp_path / "n.prototxt")]) == 0
    assert main(["lint", str(tmp_path / "n.prototxt")]) == 1  # warnings, no error
    assert "0 error(s), 12 warning(s)" in capsys.readouterr().err


def test_deeplab_largefov_train_net_reads_its_data(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    text = _deeplab_train(tmp_path)
    text = text.replace("batch_size: 30", "batch_size: 2").replace("crop_size: 321",
                                                                    "crop_size: 17")
    lines = [write_pair(tmp_path / "JPEGImages", f"{i}", coded_image(12 + i, 20),
                        (code(12 + i, 20) % 21)) for i in range(3)]
    (tmp_path / "voc12" / "list").mkdir(parents=True)
    (tmp_path / "voc12" / "list" / "train_aug.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    net = _load(tmp_path, text, phase="TRAIN")
    out = net()
    assert float(out["(loss)"].detach()) > 0  # the loss layer names no top
    assert out["accuracy"].shape == (1, 1, 1, 3)


def test_hed_train_val_builds_and_reads_its_data(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = _git_show("s9xie+hed", "examples/hed/train_val.prototxt")
    if text is None:
        pytest.skip("the s9xie/hed mirror is absent")
    net = _load(tmp_path, text, phase="TRAIN",
                input_shapes={"data": [1, 3, 64, 64], "label": [1, 1, 64, 64]})
    assert _shapes(net)["upscore-fuse"] == (1, 1, 64, 64)
    root = tmp_path / "data" / "HED-BSDS"
    pair = write_pair(root / "train", "a", coded_image(40, 48),
                      (code(40, 48).astype(np.int64) * 2 % 256).astype(np.uint8))
    (root / "train_pair.lst").write_text(pair.replace("train/", "train/") + "\n")
    work = tmp_path / "examples" / "hed"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # root_folder: "../../data/HED-BSDS/"
    net = _load(work, text, phase="TRAIN")
    assert _shapes(net)["data"] == (1, 3, 40, 48)
    out = net()
    losses = [float(v.detach()) for k, v in out.items() if "loss" in k]
    assert len(losses) == 6 and all(np.isfinite(v) and v > 0 for v in losses), out.keys()


def test_lint_names_the_forks_of_deeplab_v1_fields(tmp_path: Path, capsys) -> None:
    from caffe2torch.cli.main import main

    path = tmp_path / "v1.prototxt"
    path.write_text('layers { name: "d" type: IMAGE_SEG_DATA top: "data" top: "label" '
                    'image_data_param { source: "l.txt" label_type: PIXEL batch_size: 1 } '
                    "transform_param { crop_size: 5 } }\n"
                    'layers { name: "s" type: INTERP bottom: "label" top: "small" '
                    "interp_param { shrink_factor: 2 } }\n")
    assert main(["lint", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "0 error(s)" in err
    assert re.search(r'"IMAGE_SEG_DATA" is not a value .*DeepLab', out)
    assert re.search(r'"interp_param": kept aside \(it comes from DeepLab', out)


def test_a_colour_label_image_is_read_in_grey(tmp_path: Path) -> None:
    colour = np.zeros((3, 4, 3), np.uint8)
    colour[..., 2] = 128  # red, as a VOC palette PNG: the fork reads its luminance
    cv2.imwrite(str(tmp_path / "l.png"), colour)
    cv2.imwrite(str(tmp_path / "i.png"), coded_image(3, 4))
    (tmp_path / "list.txt").write_text("i.png l.png\n")
    net = _load(tmp_path, seg(f'source: "{tmp_path}/list.txt" root_folder: "{tmp_path}/" '
                              "label_type: PIXEL"))
    out = net()  # the data layer's tops, read by the net's own feeder
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(out["label"].numpy()[0, 0], grey)
    assert int(grey[0, 0]) == 38


def test_the_forks_own_schema_types_the_fields(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Read with DeepLab-v2's caffe.proto (--proto), the fields come typed: the same
    tops."""
    proto = _git_show("xmyqsh+deeplab-v2", "src/caffe/proto/caffe.proto")
    if proto is None:
        pytest.skip("the xmyqsh/deeplab-v2 mirror is absent")
    (tmp_path / "caffe.proto").write_text(proto)
    (tmp_path / "list.txt").write_text(write_pair(tmp_path / "img", "a", coded_image(5, 7),
                                                  code(5, 7) % 3) + "\n")
    text = ('layer { name: "d" type: "ImageSegData" top: "data" top: "label" top: "dim" '
            'image_data_param { source: "list.txt" batch_size: 1 label_type: PIXEL '
            "ignore_label: 254 } transform_param { crop_height: 6 crop_width: 8 "
            "mean_value: 1 scale_factors: 1 } }\n"
            'layer { name: "c" type: "Convolution" bottom: "data" top: "s" '
            "convolution_param { num_output: 3 kernel_size: 1 } }\n"
            'layer { name: "acc" type: "SegAccuracy" bottom: "s" bottom: "label" top: "acc" '
            "seg_accuracy_param { ignore_label: 254 reset: false metric: PixelIOU } }\n")
    monkeypatch.chdir(tmp_path)
    outs = []
    for kw in ({"proto": str(tmp_path / "caffe.proto")}, {}):
        net = _load(tmp_path, text, **kw)
        assert _shapes(net)["label"] == (1, 1, 6, 8)
        out = net()
        assert out["dim"].reshape(-1).tolist() == [5.0, 7.0]
        assert dict(net.named_modules())["layers.acc"].reset is False
        outs.append(out["acc"].shape)
    assert outs == [(1, 1, 1, 3)] * 2
