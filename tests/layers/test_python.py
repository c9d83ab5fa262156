"""Python layers: refused unless allowed; when allowed, pycaffe's setup/reshape/forward."""

import sys
import textwrap

import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, top_shapes

LAYER_CODE = textwrap.dedent(
    """
    import caffe

    class Scale(caffe.Layer):
        def setup(self, bottom, top):
            self.factor = float(self.param_str)
            if len(bottom) != 1:
                raise Exception("one bottom")

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)
            top[1].reshape(bottom[0].num, 1)

        def forward(self, bottom, top):
            top[0].data[...] = bottom[0].data * self.factor
            top[1].data[...] = bottom[0].data.reshape(bottom[0].num, -1).sum(1, keepdims=True)
    """
)

TEXT = (
    'name: "py" type: "Python" bottom: "x" top: "y" top: "s" '
    'python_param { module: "c2t_test_pylayer" layer: "Scale" param_str: "2.5" }'
)


@pytest.fixture
def layer_module(tmp_path, monkeypatch):
    (tmp_path / "c2t_test_pylayer.py").write_text(LAYER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("c2t_test_pylayer", None)


def test_refused_by_default(layer_module):
    with pytest.raises(BuildError, match="arbitrary code") as info:
        build(TEXT, [(2, 3)])
    assert "allow_python_layers" in str(info.value)
    assert "c2t_test_pylayer" not in sys.modules


def test_runs_when_allowed(layer_module):
    m = build(TEXT, [(2, 3)], options={"allow_python_layers": True})
    assert top_shapes(m, [(4, 3)]) == [(4, 3), (4, 1)]
    x = torch.arange(6.0).reshape(2, 3)
    y, s = m(x)
    torch.testing.assert_close(y, x * 2.5)
    torch.testing.assert_close(s, torch.tensor([[3.0], [12.0]]))


def test_missing_module_is_a_build_error():
    text = TEXT.replace("c2t_test_pylayer", "c2t_no_such_module_here")
    with pytest.raises(BuildError, match="cannot import"):
        build(text, [(2, 3)], options={"allow_python_layers": True})
