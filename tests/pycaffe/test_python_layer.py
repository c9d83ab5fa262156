"""caffe.Layer subclasses as Python layers: param_str and phase, exceptions that keep their
type, ``self.blobs.add_blob`` params that are real net params (saved, copied, shared,
updated by the solver), and a Python data layer feeding a net."""

from __future__ import annotations

from pathlib import Path

import pytest

import caffe2torch.pycaffe as caffe

MODULE = __name__


class Scale(caffe.Layer):
    """top = w * bottom, with one learnable scalar w (starts at 1)."""

    def setup(self, bottom, top):  # type: ignore[no-untyped-def]
        self.blobs.add_blob(1)
        self.blobs[0].data[...] = 1.0

    def reshape(self, bottom, top):  # type: ignore[no-untyped-def]
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):  # type: ignore[no-untyped-def]
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):  # type: ignore[no-untyped-def]
        self.blobs[0].diff[0] += (top[0].diff * bottom[0].data).sum()
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


class Fail(caffe.Layer):
    """Raises the exception named by param_str in the method named by phase_fail."""

    def setup(self, bottom, top):  # type: ignore[no-untyped-def]
        self.where, kind = self.param_str.split(":")
        self.kind = {"key": KeyError, "value": ValueError, "zero": ZeroDivisionError}[kind]
        if self.where == "setup":
            raise self.kind("in setup")

    def reshape(self, bottom, top):  # type: ignore[no-untyped-def]
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):  # type: ignore[no-untyped-def]
        if self.where == "forward":
            raise self.kind("in forward")
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):  # type: ignore[no-untyped-def]
        if self.where == "backward":
            raise self.kind("in backward")


class Counter(caffe.Layer):
    """A Python data layer: batches of 2 rows filled with a running counter, label = the
    counter modulo 2; param_str gives the row width."""

    def setup(self, bottom, top):  # type: ignore[no-untyped-def]
        self.width = int(self.param_str)
        self.count = 0

    def reshape(self, bottom, top):  # type: ignore[no-untyped-def]
        top[0].reshape(2, self.width)
        top[1].reshape(2)

    def forward(self, bottom, top):  # type: ignore[no-untyped-def]
        for i in range(2):
            top[0].data[i] = self.count
            top[1].data[i] = self.count % 2
            self.count += 1


class Phase(caffe.Layer):
    def reshape(self, bottom, top):  # type: ignore[no-untyped-def]
        top[0].reshape(1)

    def forward(self, bottom, top):  # type: ignore[no-untyped-def]
        top[0].data[0] = self.phase


# py-faster-rcnn's proposal layer: settings per phase, looked up by the phase's name
SETTINGS = {"TRAIN": 12.0, "TEST": 6.0}


class OldStyle(caffe.Layer):
    """Written for caffe-fast-rcnn's Python layers: ``param_str_`` (the name until 2016)
    and ``cfg[str(self.phase)]`` (a Boost.Python enum, whose str is its name)."""

    def setup(self, bottom, top):  # type: ignore[no-untyped-def]
        self.offset = float(self.param_str_)

    def reshape(self, bottom, top):  # type: ignore[no-untyped-def]
        top[0].reshape(1)

    def forward(self, bottom, top):  # type: ignore[no-untyped-def]
        top[0].data[0] = SETTINGS[str(self.phase)] + self.offset


def scale_net(tmp_path: Path, name: str = "net.prototxt") -> str:
    path = tmp_path / name
    path.write_text(f"""name: "py" force_backward: true
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 3 dim: 2 }} }} }}
layer {{ name: "scale" type: "Python" bottom: "data" top: "out"
  python_param {{ module: "{MODULE}" layer: "Scale" }} }}
""")
    return str(path)


def test_add_blob_params_are_net_params(tmp_path: Path) -> None:
    net = caffe.Net(scale_net(tmp_path), caffe.TRAIN)
    assert list(net.params) == ["scale"]
    assert net.params["scale"][0].data.shape == (1,)
    net.blobs["data"].data[...] = 2.0
    net.params["scale"][0].data[0] = 3.0  # net surgery reaches the layer
    assert (net.forward()["out"] == 6.0).all()
    net.blobs["out"].diff[...] = 1.0
    net.backward()
    assert net.params["scale"][0].diff[0] == pytest.approx(12.0)
    assert (net.blobs["data"].diff == 3.0).all()
    # saved and copied by layer name
    saved = str(tmp_path / "w.caffemodel")
    net.save(saved)
    other = caffe.Net(scale_net(tmp_path, "b.prototxt"), caffe.TEST, weights=saved)
    assert other.params["scale"][0].data[0] == 3.0
    # shared
    third = caffe.Net(scale_net(tmp_path, "c.prototxt"), caffe.TEST)
    third.share_with(net)
    net.params["scale"][0].data[0] = 5.0
    assert third.layers[1].blobs[0].data[0] == 5.0


@pytest.mark.parametrize("where", ["setup", "forward", "backward"])
@pytest.mark.parametrize("kind,exc", [("key", KeyError), ("value", ValueError),
                                      ("zero", ZeroDivisionError)])
def test_exceptions_keep_their_type(tmp_path: Path, where: str, kind: str,
                                    exc: type[Exception]) -> None:
    path = tmp_path / "fail.prototxt"
    path.write_text(f"""name: "fail" force_backward: true
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 2 }} }} }}
layer {{ name: "f" type: "Python" bottom: "data" top: "out"
  python_param {{ module: "{MODULE}" layer: "Fail" param_str: "{where}:{kind}" }} }}
""")
    with pytest.raises(exc, match=f"in {where}"):
        net = caffe.Net(str(path), caffe.TRAIN)
        net.forward()
        net.backward()


def test_phase_is_the_nets(tmp_path: Path) -> None:
    path = tmp_path / "phase.prototxt"
    path.write_text(f"""layer {{ name: "p" type: "Python" top: "phase"
  python_param {{ module: "{MODULE}" layer: "Phase" }} }}""")
    for phase in (caffe.TRAIN, caffe.TEST):
        assert caffe.Net(str(path), phase).forward()["phase"][0] == phase


def test_net_layers_gives_the_python_layer_object(tmp_path: Path) -> None:
    # py-faster-rcnn's train.py: solver.net.layers[0].set_roidb(roidb) on its data layer
    net = caffe.Net(scale_net(tmp_path), caffe.TRAIN)
    layer = net.layers[1]
    assert isinstance(layer, Scale) and layer is net.layer_dict["scale"]
    assert layer.type == "Python" and net.layers[0].type == "Input"
    layer.blobs[0].data[0] = 4.0  # the layer's own blobs are the net's params
    assert net.params["scale"][0].data[0] == 4.0
    net.blobs["data"].data[...] = 1.0
    assert (net.forward()["out"] == 4.0).all()


def test_caffe_fast_rcnn_layer_api(tmp_path: Path) -> None:
    path = tmp_path / "old.prototxt"
    path.write_text(f"""layer {{ name: "p" type: "Python" top: "out"
  python_param {{ module: "{MODULE}" layer: "OldStyle" param_str: "0.5" }} }}""")
    for phase, want in ((caffe.TRAIN, 12.5), (caffe.TEST, 6.5)):
        assert caffe.Net(str(path), phase).forward()["out"][0] == want
    # the same layer in a net built by load_net (the CLI verbs' route)
    from caffe2torch.graph import load_net

    net = load_net(str(path), phase="TEST", allow_python_layers=True)
    assert float(net()["out"][0]) == 6.5
    # the phase stays equal to caffe.TRAIN / caffe.TEST and prints as Caffe's enum
    assert caffe._caffe.Phase.TEST == caffe.TEST and f"{caffe._caffe.Phase.TRAIN}" == "TRAIN"


def data_layer_net(tmp_path: Path) -> str:
    path = tmp_path / "counter.prototxt"
    path.write_text(f"""name: "counter"
layer {{ name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "{MODULE}" layer: "Counter" param_str: "3" }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 2 weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
""")
    return str(path)


def test_python_data_layer_feeds_each_forward(tmp_path: Path) -> None:
    net = caffe.Net(data_layer_net(tmp_path), caffe.TRAIN)
    net.forward()
    assert net.blobs["data"].data[:, 0].tolist() == [0.0, 1.0]
    net.forward()
    assert net.blobs["data"].data[:, 0].tolist() == [2.0, 3.0]
    assert net.blobs["label"].data.tolist() == [0.0, 1.0]


def test_solver_updates_python_layer_params(tmp_path: Path) -> None:
    net = tmp_path / "train.prototxt"
    net.write_text(f"""name: "py_train"
layer {{ name: "data" type: "DummyData" top: "data" top: "zero"
  dummy_data_param {{ shape {{ dim: 3 dim: 2 }} data_filler {{ type: "constant" value: 1 }}
    data_filler {{ type: "constant" value: 0 }} }} }}
layer {{ name: "scale" type: "Python" bottom: "data" top: "out"
  python_param {{ module: "{MODULE}" layer: "Scale" }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "zero" top: "loss" }}
""")
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text(f'net: "{net}" base_lr: 0.1 lr_policy: "fixed" max_iter: 5 '
                           f'snapshot_prefix: "{tmp_path}/snap" snapshot_after_train: false')
    solver = caffe.SGDSolver(str(solver_file))
    before = float(solver.net.params["scale"][0].data[0])
    solver.step(1)
    # loss = 1/(2N) * sum((w x)^2) over 6 ones, N = 3: d/dw = 2 w; w <- w - 0.1 * 2 w
    assert float(solver.net.params["scale"][0].data[0]) == pytest.approx(before * 0.8)
    solver.snapshot()
    saved = caffe.Net(str(net), caffe.TEST, weights=f"{tmp_path}/snap_iter_1.caffemodel")
    assert float(saved.params["scale"][0].data[0]) == pytest.approx(0.8)
