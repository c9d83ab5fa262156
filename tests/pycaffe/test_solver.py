"""pycaffe's solvers on caffe2torch: forced types, step with blobs holding the last
forward, apply_update without moving iter, callbacks, snapshot/restore, test nets and
weight sharing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import caffe2torch.pycaffe as caffe

NET = """name: "small" force_backward: true
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 6 dim: 4 } shape { dim: 6 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def solver_file(tmp_path: Path, extra: str = "") -> str:
    (tmp_path / "net.prototxt").write_text(NET)
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "{tmp_path}/net.prototxt" base_lr: 0.1 lr_policy: "fixed" '
                    f'max_iter: 20 display: 0 snapshot_prefix: "{tmp_path}/snap" '
                    f'test_iter: 1 test_interval: 1000 {extra}')
    return str(path)


@pytest.mark.parametrize("cls,kind", [
    (caffe.SGDSolver, "SGD"), (caffe.NesterovSolver, "Nesterov"),
    (caffe.AdaGradSolver, "AdaGrad"), (caffe.RMSPropSolver, "RMSProp"),
    (caffe.AdaDeltaSolver, "AdaDelta"), (caffe.AdamSolver, "Adam")],
    ids=lambda v: v if isinstance(v, str) else "")
def test_each_solver_forces_its_type(tmp_path: Path, cls: type, kind: str) -> None:
    extra = "momentum: 0.9 " if kind in ("SGD", "Nesterov", "AdaDelta", "Adam") else ""
    solver = cls(solver_file(tmp_path, extra + 'type: "AdaGrad"'))
    assert solver.param.type == kind
    before = solver.net.params["ip"][0].data.copy()
    solver.step(2)
    assert solver.iter == 2
    assert not np.array_equal(before, solver.net.params["ip"][0].data)


def test_get_solver_uses_the_files_type(tmp_path: Path) -> None:
    solver = caffe.get_solver(solver_file(tmp_path, 'type: "Adam" momentum: 0.9'))
    assert solver.param.type == "Adam"


def test_step_leaves_the_last_forward_in_the_blobs(tmp_path: Path) -> None:
    solver = caffe.SGDSolver(solver_file(tmp_path))
    w, b = (p.data.copy() for p in solver.net.params["ip"])
    solver.step(1)
    net = solver.net
    # ip was computed from this data and the weights before the update
    np.testing.assert_allclose(net.blobs["ip"].data, net.blobs["data"].data @ w.T + b,
                               rtol=1e-5, atol=1e-6)
    assert net.blobs["loss"].data.shape == ()
    assert net.params["ip"][0].diff.any()  # the diff the update used


def test_blobs_written_between_steps_are_read(tmp_path: Path) -> None:
    """DummyData keeps constant-filled tops: labels written by a script are used (as
    BVLC's test_solver does)."""
    solver = caffe.SGDSolver(solver_file(tmp_path))
    solver.net.blobs["label"].data[...] = 2
    solver.step(1)
    assert (solver.net.blobs["label"].data == 2).all()


def test_apply_update_does_not_move_iter(tmp_path: Path) -> None:
    solver = caffe.SGDSolver(solver_file(tmp_path))
    data = solver.net.layers[1].blobs[0].data
    data[...] = 0
    solver.net.layers[1].blobs[0].diff[...] = 1
    solver.apply_update()
    np.testing.assert_allclose(data, -0.1)
    assert solver.iter == 0


def test_callbacks(tmp_path: Path) -> None:
    solver = caffe.SGDSolver(solver_file(tmp_path))
    seen: list[str] = []
    solver.add_callback(lambda: seen.append("start"),
                        lambda: seen.append(f"grad{int(solver.net.params['ip'][0].diff.any())}"))
    solver.step(2)
    assert seen == ["start", "grad1", "start", "grad1"]


def test_snapshot_and_restore(tmp_path: Path) -> None:
    solver = caffe.SGDSolver(solver_file(tmp_path, "momentum: 0.9"))
    solver.step(3)
    solver.snapshot()
    saved = solver.net.params["ip"][0].data.copy()
    solver.step(2)
    assert not np.array_equal(saved, solver.net.params["ip"][0].data)
    solver.restore(str(tmp_path / "snap_iter_3.solverstate"))
    assert solver.iter == 3
    np.testing.assert_array_equal(saved, solver.net.params["ip"][0].data)


def test_solve_and_test_nets_share_weights(tmp_path: Path) -> None:
    solver = caffe.SGDSolver(solver_file(tmp_path, "snapshot_after_train: false"))
    assert len(solver.test_nets) == 1
    solver.solve()
    assert solver.iter == 20
    np.testing.assert_array_equal(solver.test_nets[0].params["ip"][0].data,
                                  solver.net.params["ip"][0].data)
    out = solver.test_nets[0].forward()
    assert set(out) == {"loss"}


def test_share_weights(tmp_path: Path) -> None:
    solver = caffe.SGDSolver(solver_file(tmp_path))
    other = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    solver.share_weights(other)
    solver.step(1)
    np.testing.assert_array_equal(other.params["ip"][0].data, solver.net.params["ip"][0].data)
