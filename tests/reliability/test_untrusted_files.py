"""Caffe files from the internet are data, never code: Python layers run only when allowed,
no loader unpickles, and list-file paths stay paths (tests/reliability/test_data_faults.py)."""

from __future__ import annotations

import ast
import contextlib
import sys
from pathlib import Path

import pytest

import caffe2torch as c2t
from caffe2torch.errors import BuildError

PACKAGE = Path(c2t.__file__).resolve().parent

EVIL = """\
from pathlib import Path
Path({marker!r}).write_text("imported")

class Layer:
    def setup(self, bottom, top):
        pass
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data
    def backward(self, top, propagate_down, bottom):
        pass
"""

NET = """name: "untrusted"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "py" type: "Python" bottom: "data" top: "out"
        python_param { module: "%s" layer: "Layer" } }
"""


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A prototxt whose Python layer names a module that writes a marker file on import."""
    name = f"c2t_evil_{abs(hash(tmp_path)) % 10**8}"
    marker = tmp_path / "marker"
    (tmp_path / f"{name}.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(NET % name)
    yield prototxt, marker
    sys.modules.pop(name, None)


def test_python_layer_is_refused_and_never_imported(evil: tuple[Path, Path]) -> None:
    prototxt, marker = evil
    c2t.read_net(prototxt)
    c2t.lint(prototxt)
    c2t.upgrade_text(prototxt.read_text())
    for phase in ("TEST", "TRAIN"):
        with pytest.raises(BuildError, match="Python layers are refused") as info:
            c2t.load_net(prototxt, phase=phase)
        assert "layer 'py'" in info.value.message
        assert (info.value.path, info.value.line) == (str(prototxt), 3)
        assert "allow_python_layers=True" in (info.value.hint or "")
    assert not marker.exists()


def test_allowing_python_layers_does_import(evil: tuple[Path, Path]) -> None:
    """The other side of the switch (so the refusal above is what kept the file away)."""
    prototxt, marker = evil
    # the layer itself may not build here; importing it is what matters
    with contextlib.suppress(BuildError):
        c2t.load_net(prototxt, allow_python_layers=True)
    assert marker.read_text() == "imported"


def _calls(tree: ast.AST, dotted: str) -> list[ast.Call]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            try:
                name = ast.unparse(node.func)
            except Exception:  # pragma: no cover - unparse handles every call node
                continue
            if name == dotted:
                out.append(node)
    return out


def test_no_loader_unpickles() -> None:
    """torch.load only with weights_only=True (also in generated code); no pickle, no
    np.load with allow_pickle, no eval/exec of file contents, no shell."""
    bad: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "marshal")
                       for n in names):
                    bad.append(f"{where}:{node.lineno}: imports a pickle module")
        for call in _calls(tree, "torch.load"):
            kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
            if kw.get("weights_only") != "True":
                bad.append(f"{where}:{call.lineno}: torch.load without weights_only=True")
        for name in ("eval", "exec", "os.system", "os.popen"):
            for call in _calls(tree, name):
                bad.append(f"{where}:{call.lineno}: {name}()")
        for call in _calls(tree, "subprocess.run") + _calls(tree, "subprocess.Popen"):
            if any(k.arg == "shell" for k in call.keywords):
                bad.append(f"{where}:{call.lineno}: subprocess with shell=")
        for call in _calls(tree, "np.load") + _calls(tree, "numpy.load"):
            if any(k.arg == "allow_pickle" for k in call.keywords):
                bad.append(f"{where}:{call.lineno}: np.load(allow_pickle=...)")
        # generated code (the standalone .py export) is text: check torch.load in strings
        for line_no, line in enumerate(source.splitlines(), start=1):
            if "torch.load(" in line and ("'" in line or '"' in line) \
                    and "weights_only=True" not in line:
                bad.append(f"{where}:{line_no}: generated torch.load without weights_only")
    assert not bad, "\n".join(bad)
