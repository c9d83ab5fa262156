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


PYCAFFE_USER_CODE = textwrap.dedent(
    """
    import caffe
    import caffe.io
    from caffe._caffe import RawBlobVec
    from caffe.proto import caffe_pb2

    class Norm(caffe.Layer):
        # as real layers do: the rest of pycaffe, not only caffe.Layer
        def setup(self, bottom, top):
            assert self.phase in (caffe.TRAIN, caffe.TEST)
            self.param = caffe_pb2.LayerParameter()

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            assert isinstance(bottom, RawBlobVec) and isinstance(top, RawBlobVec)
            flat = caffe.io.blobproto_to_array(caffe.io.array_to_blobproto(bottom[0].data))
            top[0].data[...] = flat / ((flat ** 2).sum(axis=1, keepdims=True) ** 0.5)
    """
)


def test_a_layer_gets_all_of_pycaffe_where_no_pycaffe_is_installed(tmp_path) -> None:
    # a fresh interpreter, where no `caffe` module exists until the layer is built
    import subprocess

    (tmp_path / "c2t_test_norm.py").write_text(PYCAFFE_USER_CODE)
    script = textwrap.dedent(
        """
        import sys
        import torch
        import caffe2torch
        from caffe2torch.io import read_net_text
        assert "caffe" not in sys.modules
        net = caffe2torch.build_net(read_net_text(
            'input: "x" input_shape { dim: 2 dim: 3 }\\n'
            'layer { name: "n" type: "Python" bottom: "x" top: "n" '
            'python_param { module: "c2t_test_norm" layer: "Norm" } }\\n'),
            "TEST", options={"allow_python_layers": True})
        out = net(x=torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]]))["n"]
        print(out.tolist(), sys.modules["caffe"].__name__)
        """
    )
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[[0.6000000238418579,", "0.800000011920929,", "0.0],",
                                   "[0.0,", "0.0,", "1.0]]", "caffe2torch.pycaffe"]
