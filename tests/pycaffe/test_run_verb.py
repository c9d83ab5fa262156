"""``caffe2torch run SCRIPT ARGS``: ``import caffe`` and its submodules resolve to
caffe2torch.pycaffe, the script runs as __main__ with its arguments untouched, and the
exit code is the script's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from caffe2torch.cli.main import main
from caffe2torch.pycaffe import alias

SCRIPT = """import sys
import caffe
import caffe.io
import caffe.draw
import caffe.net_spec
import caffe.coord_map
from caffe.pycaffe import Net, SGDSolver
import caffe.classifier, caffe.detector
import caffe._caffe
assert caffe._caffe.BlobVec is caffe.BlobVec
assert Net is caffe.Net and SGDSolver is caffe.SGDSolver
from caffe.proto import caffe_pb2
from caffe import layers as L, params as P
import caffe2torch.proto.caffe_pb2 as ours
assert caffe.__name__ == "caffe2torch.pycaffe"
assert caffe_pb2 is ours and caffe.proto.caffe_pb2 is ours
assert caffe.io.Transformer is caffe.io.Transformer and P.Pooling.MAX == 0
print("main" if __name__ == "__main__" else __name__, sys.argv)
sys.exit(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 0)
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture(autouse=True)
def no_alias_left() -> object:
    yield
    alias.uninstall()


@pytest.mark.parametrize("args,code", [([], 0), (["-model", "x.prototxt", "--help"], 0),
                                       (["3"], 3)], ids=["plain", "caffe_style_flags", "exit_3"])
def test_run_passes_args_and_exit_code(script: Path, capsys: pytest.CaptureFixture[str],
                                       args: list[str], code: int) -> None:
    argv_before = list(sys.argv)
    assert main(["run", str(script), *args]) == code
    out = capsys.readouterr().out
    assert out.strip() == f"main {[str(script), *args]}"
    assert sys.argv == argv_before


def test_script_exception_is_a_failed_run(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import caffe\nraise KeyError('oops')\n")
    assert main(["run", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "KeyError: 'oops'" in err and "bad.py" in err and "runpy" not in err


def test_script_base_exception_is_a_failed_run(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # lmb-freiburg/flownet2's scripts/run-flownet.py checks its inputs with
    # `raise BaseException('img0 does not exist: ...')`: Python prints the script's
    # traceback and exits 1, without the frames of whatever ran the script
    bad = tmp_path / "bad.py"
    bad.write_text("import caffe\nraise BaseException('img0 does not exist: a.png')\n")
    assert main(["run", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "BaseException: img0 does not exist: a.png" in err and "bad.py" in err
    assert "runpy" not in err and "caffe2torch" not in err


def test_python_2_script_gets_the_syntax_error_and_a_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.py"
    old.write_text("import caffe\nprint caffe.TEST\n")
    assert main(["run", str(old)]) == 1
    err = capsys.readouterr().err
    assert "line 2" in err and "SyntaxError" in err and "2to3" in err
    assert "runpy" not in err and "Traceback" not in err


def test_caffe_error_in_a_script_is_reported_cleanly(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import caffe\ncaffe.Net('missing.prototxt', caffe.TEST)\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing.prototxt" in err
    # the script's line that led to it (set_mode_gpu without a GPU fails at caffe.Net)
    assert f"in {bad}, line 2: caffe.Net('missing.prototxt', caffe.TEST)" in err
    assert "Traceback" not in err


def test_missing_script_is_a_usage_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "none.py")]) == 2
    assert "no such script" in capsys.readouterr().err


def test_alias_install_and_uninstall() -> None:
    alias.install()
    alias.install()
    assert sum(isinstance(f, alias.CaffeAliasFinder) for f in sys.meta_path) == 1
    import caffe  # type: ignore[import-not-found]

    import caffe2torch.pycaffe as ours

    assert caffe is ours and ours.__spec__.name == "caffe2torch.pycaffe"
    with pytest.raises(ImportError):
        import caffe.no_such_module  # type: ignore[import-not-found]
    alias.uninstall()
    assert "caffe" not in sys.modules and not alias.installed()


FORK_MODULE = """import caffe
from caffe import layers as L
from .proto import caffe_pb2


def ConvReLU(net, bottom, name):
    net[name] = L.Convolution(bottom, num_output=2, kernel_size=1)
    net[name + "_relu"] = L.ReLU(net[name], in_place=True)
    return caffe_pb2.Phase.Value("TEST")
"""


def test_a_forks_pure_python_module_runs_on_ours(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # weiliu89/caffe's SSD scripts say `from caffe.model_libs import *`, a module of the
    # fork's python/caffe/ folder that only builds on net_spec and caffe_pb2
    fork = tmp_path / "fork" / "python"
    (fork / "caffe").mkdir(parents=True)
    (fork / "caffe" / "__init__.py").write_text("raise ImportError('the fork is not built')\n")
    (fork / "caffe" / "model_libs.py").write_text(FORK_MODULE)
    monkeypatch.syspath_prepend(str(fork))
    script = tmp_path / "ssd.py"
    script.write_text("import caffe\nfrom caffe.model_libs import *\n"
                      "import caffe2torch.pycaffe as ours\nassert caffe is ours\n"
                      "net = caffe.NetSpec()\n"
                      "net.data = caffe.layers.Input(shape=dict(dim=[1, 3]))\n"
                      "print(ConvReLU(net, net.data, 'conv'), len(net.to_proto().layer))\n")
    assert main(["run", str(script)]) == 0
    assert capsys.readouterr().out.split() == ["1", "3"]
    alias.uninstall()
    assert "caffe.model_libs" not in sys.modules


def test_a_module_no_caffe_has_says_where_one_would_come_from(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    script = tmp_path / "ssd.py"
    script.write_text("from caffe.model_libs import *\n")
    assert main(["run", str(script)]) == 1
    err = capsys.readouterr().err
    assert "No module named 'caffe.model_libs'" in err and "PYTHONPATH" in err
