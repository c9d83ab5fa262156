"""tools/fork_survey.py on a mirror made here: both sections' counts and reasons, the phases
a one-phase file builds, and the tables it writes (the real run reads /work/.mirror)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.tools import tool_module

DEPLOY = """name: "tiny"
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 5 } }
layer { name: "fc_bn" type: "BN" bottom: "fc" top: "fc_bn" bn_param { frozen: true } }
"""
# a train file whose only data layer is TRAIN's: its TEST net does not wire, as in Caffe
TRAIN_ONLY = """name: "train"
layer { name: "in" type: "Input" top: "data" include { phase: TRAIN }
        input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
"""
PLUGIN = """name: "p"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "x" type: "NoSuchFancyLayer" bottom: "data" top: "x" }
"""


@pytest.fixture(scope="module")
def survey():
    with tool_module("fork_survey") as module:
        yield module


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mirrors")
    work = root / "me+nets" / "repo"
    (work / "src/caffe/proto").mkdir(parents=True)
    (work / "deploy.prototxt").write_text(DEPLOY)
    (work / "train.prototxt").write_text(TRAIN_ONLY)
    (work / "plugin.prototxt").write_text(PLUGIN)
    (work / "src/caffe/proto/caffe.proto").write_text(
        (REPO / "proto" / "caffe.proto").read_text())
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "nets"], check=True)
    return root


def test_zoo_counts_builds_plugins_and_one_phase_files(survey, mirrors, monkeypatch) -> None:
    monkeypatch.setattr(survey, "ZOO", [("tiny", "me/nets", [
        ("deploy.prototxt",),
        ("train.prototxt", {}, ["TRAIN"]),
        ("plugin.prototxt",),
    ])])
    (row,) = survey.survey_zoo(str(mirrors), export=False)
    assert (row.files, row.info, row.lint, row.build, row.plugin) == (3, 3, 3, 2, 1)
    assert row.reasons == ["plugin.prototxt: unregistered type NoSuchFancyLayer (plug-in hint)"]
    text = survey.render_zoo([row], 1.0, export=False)
    assert "| **total** (1 repositories) | 3 | 3 | 3 | 0 | 0 | 2 | 1 | 0 | 0 |" in text


def test_forks_build_the_phases_a_net_names(survey, mirrors, monkeypatch) -> None:
    nets = [("me/nets", "deploy.prototxt"), ("me/nets", "train.prototxt")]
    monkeypatch.setattr(survey, "SURVEY", [("mine", "me/nets", "src/caffe/proto/caffe.proto",
                                            nets)])
    (every,) = survey.survey(str(mirrors))
    assert (every.files, every.parse_p, every.build_p, every.build) == (2, 2, 1, 1)
    assert any("train.prototxt" in r and "TEST" in r for r in every.reasons)
    nets[1] = ("me/nets", "train.prototxt", {}, ["TRAIN"])
    (one,) = survey.survey(str(mirrors))
    assert (one.build_p, one.build, one.reasons) == (2, 2, [])
    assert "| **total** | 1 forks | 2 | 2 | 2 | 2 | 0 |" in survey.render([one], 1.0)


def test_repo_picks_rows(survey, mirrors, monkeypatch) -> None:
    monkeypatch.setattr(survey, "ZOO", [("tiny", "me/nets", [("deploy.prototxt",)])])
    assert survey.survey_zoo(str(mirrors), export=False, only=["someone/else"]) == []
    assert len(survey.survey_zoo(str(mirrors), export=False, only=["me/nets"])) == 1


TEMPLATE = """name: "t"
input: "img0"
input_shape { dim: 1 dim: 3 dim: $TARGET_HEIGHT$ dim: $TARGET_WIDTH$ }
layer { name: "conv" type: "Convolution" bottom: "img0" top: "conv"
        convolution_param { num_output: ${NUM_LABELS} kernel_size: 3 } }
"""
# an SSD train net: AnnotatedData resizes every image to resize_param's size
RESIZED = """name: "ssd"
layer { name: "data" type: "AnnotatedData" top: "data" top: "label"
        include { phase: TRAIN }
        transform_param { resize_param { height: 320 width: 480 } }
        data_param { source: "lmdb" batch_size: 3 } }
"""


def test_templates_are_filled_as_their_scripts_fill_them(survey, tmp_path) -> None:
    work = tmp_path / "me+tpl" / "repo"
    work.mkdir(parents=True)
    (work / "net.prototxt.template").write_text(TEMPLATE)
    (work / "net.prototxt").write_text(TEMPLATE)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "t"], check=True)
    filled = survey.extract(str(tmp_path), "me/tpl", "net.prototxt.template", str(tmp_path))
    ok, why = survey.build_all(filled, None)
    assert (ok, why) == (True, "")
    text = Path(filled).read_text()
    assert "dim: 384 dim: 512" in text and "num_output: 21" in text
    # a plain file is read as it is: its $ fields are the file's own error
    plain = survey.extract(str(tmp_path), "me/tpl", "net.prototxt", str(tmp_path))
    ok, why = survey.build_all(plain, None)
    assert not ok and why.startswith("read: 3:")


def test_ssd_resize_param_sizes_the_guessed_image(survey) -> None:
    from caffe2torch.io.text import read_net_text

    net = read_net_text(RESIZED)
    assert survey._guess_shapes(net, ["data", "label"]) == {"data": [3, 3, 320, 480],
                                                            "label": [3]}


def test_batchnorm_nets_get_the_unit_statistics_retry(survey, mirrors, tmp_path) -> None:
    # a failed export of a net with BatchNorm or a fork's BN is checked again on unit
    # statistics: zero filler statistics overflow some values (inf boxes), not only all
    deploy = survey.extract(str(mirrors), "me/nets", "deploy.prototxt", str(tmp_path))
    plugin = survey.extract(str(mirrors), "me/nets", "plugin.prototxt", str(tmp_path))
    assert survey._has_batchnorm(deploy) and not survey._has_batchnorm(plugin)
