"""``--allow-python-layers`` on the verbs that build a net: without it a Python layer is
refused with a hint naming the flag; with it the module on the path is imported and run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from caffe2torch.cli.main import main
from tests.solver.tiny import NET, write_data

MODULE = textwrap.dedent(
    """
    import caffe

    class Double(caffe.Layer):
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = 2 * bottom[0].data
    """
)

DEPLOY = """name: "py"
layer { name: "x" type: "DummyData" top: "x"
  dummy_data_param { shape { dim: 1 dim: 2 } data_filler { type: "constant" value: 1.5 } } }
layer { name: "double" type: "Python" bottom: "x" top: "y"
  python_param { module: "c2t_test_double" layer: "Double" } }
"""

MONITOR = """layer { name: "double" type: "Python" bottom: "ip2" top: "doubled"
  python_param { module: "c2t_test_double" layer: "Double" } }
"""

SOLVER = """net: "train.prototxt"
base_lr: 0.1
lr_policy: "fixed"
max_iter: 2
display: 1
snapshot_prefix: "out/py"
random_seed: 1
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "c2t_test_double.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))  # as PYTHONPATH puts it
    (tmp_path / "deploy.prototxt").write_text(DEPLOY)
    write_data(tmp_path)
    (tmp_path / "train.prototxt").write_text(NET.format(batch=4, shuffle="false") + MONITOR)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


VERBS = {
    "test": ["test", "-model", "deploy.prototxt", "-iterations", "1", "-q"],
    "time": ["time", "-model", "deploy.prototxt", "-iterations", "1", "-phase", "TEST"],
    "train": ["train", "-solver", "solver.prototxt", "--no-progress"],
    "export": ["export", "deploy.prototxt", "-o", "m.onnx"],
}


@pytest.mark.parametrize("verb", list(VERBS))
def test_python_layers_are_refused_without_the_flag(folder: Path, verb: str, capsys) -> None:
    assert main(VERBS[verb]) == 1
    err = capsys.readouterr().err
    assert "Python layers are refused by default" in err
    assert "--allow-python-layers" in err


def test_test_verb_runs_the_python_layer(folder: Path, capsys) -> None:
    assert main([*VERBS["test"], "--allow-python-layers"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["y = 3", "y = 3"]


def test_time_verb_runs_the_python_layer(folder: Path, capsys) -> None:
    assert main([*VERBS["time"], "--allow-python-layers"]) == 0
    assert "double" in capsys.readouterr().err


def test_train_verb_runs_the_python_layer(folder: Path, capsys) -> None:
    assert main([*VERBS["train"], "--allow-python-layers"]) == 0
    err = capsys.readouterr().err
    assert "Train net output #0: doubled = " in err
    assert (folder / "out/py_iter_2.caffemodel").exists()


def test_draw_shows_shapes_with_the_flag_and_suggests_it_without(folder: Path, capsys) -> None:
    draw = ["draw", "deploy.prototxt", "-o", "net.dot"]
    assert main(draw) == 0  # drawn without shapes: the build refused the Python layer
    err = capsys.readouterr().err
    assert "blob shapes not shown" in err and "Python layers are refused" in err
    assert "help: if you trust that code, allow it with --allow-python-layers" in err
    assert "1x2" not in (folder / "net.dot").read_text()
    assert main([*draw, "--allow-python-layers"]) == 0
    assert "shapes not shown" not in capsys.readouterr().err
    dot = (folder / "net.dot").read_text()
    assert 'label="x\\n1x2"' in dot and 'label="y\\n1x2"' in dot
