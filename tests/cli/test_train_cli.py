"""The training verbs end to end on the golden solver's tiny softmax net (copied to
tmp_path): ``train`` (log lines Caffe's parsers read, CSV, snapshots, -weights, -iterations,
-snapshot), ``test``, ``time``, ``device_query``, ``plot``; plus the solver's refusals."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.cli.main import main
from caffe2torch.errors import ParseError, SolverError
from caffe2torch.io.binary import read_caffemodel_arrays
from caffe2torch.solver.metrics import read_metrics
from caffe2torch.solver.state import read_solver_state
from tests.conftest import GOLDEN, need_shared

CASE = GOLDEN / "solver" / "sgd_momentum_l2"
SOLVER = """net: "train.prototxt"
type: "SGD"
base_lr: 0.05
lr_policy: "step"
gamma: 0.5
stepsize: 4
momentum: 0.9
max_iter: 10
display: 2
snapshot: 5
snapshot_prefix: "out/tiny"
random_seed: 7
"""


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = need_shared(CASE)
    for name in ("train.prototxt", "h5list.txt", "data.h5"):
        shutil.copy(src / name, tmp_path / name)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_writes_caffe_log_csv_and_snapshots(tiny: Path, capsys) -> None:
    assert main(["train", "-solver", "solver.prototxt"]) == 0
    err = capsys.readouterr().err
    # the lines tools/extra/parse_log.py looks for, with glog's prefix
    glog = r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] "
    assert re.search(glog + r"Solving tiny_softmax$", err, re.M)
    assert re.search(glog + r"Iteration 0 \(.* iter/s, .*s/2 iters\), loss = [\d.]+$", err, re.M)
    assert re.search(glog + r"    Train net output #0: loss = ([\d.]+) \(\* 1 = \1 loss\)$",
                     err, re.M)
    assert re.search(glog + r"Iteration 4, lr = 0\.025$", err, re.M)
    assert "Iteration 1," not in err  # display: 2
    assert re.search(r"Iteration 10, loss = [\d.]+\n.*Optimization Done\.", err)
    for it in (5, 10):
        assert (tiny / f"out/tiny_iter_{it}.caffemodel").exists()
        assert (tiny / f"out/tiny_iter_{it}.solverstate").exists()
    rows = read_metrics(tiny / "out/tiny_metrics.csv")
    lr = {r["iteration"]: r["value"] for r in rows if r["metric"] == "lr"}
    assert lr == {0: pytest.approx(0.05), 2: pytest.approx(0.05), 4: pytest.approx(0.025),
                  6: pytest.approx(0.025), 8: pytest.approx(0.0125)}
    losses = [r["value"] for r in rows if r["metric"] == "iteration_loss"]
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)
    # the snapshot holds the trained weights, loadable by name
    net = c2t.load_net("train.prototxt", phase="TRAIN",
                       input_shapes={"data": (8, 1, 6, 6), "label": (8,)},
                       weights="out/tiny_iter_10.caffemodel")
    assert float(net.params["ip2"][0].detach().abs().sum()) > 0


def test_train_overrides_and_resume(tiny: Path, capsys) -> None:
    assert main(["train", "-solver", "solver.prototxt", "-iterations", "5", "-q",
                 "--log-csv", "a.csv"]) == 0
    assert not (tiny / "out/tiny_iter_10.caffemodel").exists()
    assert main(["train", "-solver", "solver.prototxt", "-snapshot",
                 "out/tiny_iter_5.solverstate", "-q", "--log-csv", "a.csv"]) == 0
    rows = read_metrics(tiny / "a.csv")
    assert sorted({r["iteration"] for r in rows}) == [0, 2, 4, 6, 8]
    assert (tiny / "out/tiny_iter_10.solverstate").exists()
    # fine-tuning from weights: training starts from them
    assert main(["train", "-solver", "solver.prototxt", "-weights",
                 "out/tiny_iter_10.caffemodel", "-iterations", "1", "-q"]) == 0
    # -snapshot and -weights together are refused, as by Caffe
    assert main(["train", "-solver", "solver.prototxt", "-weights", "x", "-snapshot", "y"]) == 2


FORK = Path(__file__).parents[1] / "fixtures" / "fork_proto" / "fork.proto"


def _losses(csv: Path) -> dict[int, float]:
    return {r["iteration"]: r["value"] for r in read_metrics(csv)
            if r["metric"] == "iteration_loss"}


def test_train_with_a_fork_schema_snapshots_resumes_and_tests(tiny: Path, capsys) -> None:
    # the reference: one run without --proto
    assert main(["train", "-solver", "solver.prototxt", "-q", "--log-csv", "ours.csv"]) == 0
    shutil.move(tiny / "out", tiny / "ours")
    _, ours_weights = read_caffemodel_arrays(tiny / "ours/tiny_iter_10.caffemodel")
    ours_state = read_solver_state(tiny / "ours/tiny_iter_10.solverstate")
    # the fork's: 5 iterations, then resumed from the snapshot, both with the fork's schema
    fork = ["--proto", str(FORK)]
    assert main(["train", *fork, "-solver", "solver.prototxt", "-iterations", "5", "-q",
                 "--log-csv", "fork.csv"]) == 0
    assert main(["train", *fork, "-solver", "solver.prototxt", "-snapshot",
                 "out/tiny_iter_5.solverstate", "-q", "--log-csv", "fork.csv"]) == 0
    assert _losses(tiny / "fork.csv") == _losses(tiny / "ours.csv")
    assert sorted(_losses(tiny / "ours.csv")) == [0, 2, 4, 6, 8]
    state = read_solver_state("out/tiny_iter_10.solverstate", FORK)
    assert (state.iter, state.current_step) == (ours_state.iter, ours_state.current_step)
    assert all(np.array_equal(a, b) for a, b in zip(state.history, ours_state.history, strict=True))
    _, weights = read_caffemodel_arrays("out/tiny_iter_10.caffemodel", FORK)
    for name, blobs in ours_weights.items():
        assert all(np.array_equal(a, b) for a, b in zip(weights[name], blobs, strict=True))
    # written in the fork's numbers: without --proto it is not a caffemodel of ours
    with pytest.raises(ParseError):
        read_caffemodel_arrays("out/tiny_iter_10.caffemodel")
    # the net verbs read it with --proto
    capsys.readouterr()
    assert main(["info", *fork, "out/tiny_iter_10.caffemodel"]) == 0
    assert re.search(r"ip2 +InnerProduct +ip1 +ip2 +3x10, 3", capsys.readouterr().out)
    losses = []
    for weights_file, proto in (("ours/tiny_iter_10.caffemodel", []),
                                ("out/tiny_iter_10.caffemodel", fork)):
        assert main(["test", *proto, "-model", "train.prototxt", "-weights", weights_file,
                     "-iterations", "2", "-phase", "TRAIN"]) == 0
        losses.append(re.findall(r"^loss = (\S+)", capsys.readouterr().out, re.M))
    assert losses[0] == losses[1] and len(losses[0]) == 1


def test_test_time_plot_device_query(tiny: Path, capsys) -> None:
    assert main(["train", "-solver", "solver.prototxt", "-q"]) == 0
    capsys.readouterr()
    assert main(["test", "-model", "train.prototxt", "-weights", "out/tiny_iter_10.caffemodel",
                 "-iterations", "5", "-phase", "TRAIN"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"Batch 4, loss = [\d.]+", err)
    m = re.search(r"^loss = ([\d.]+) \(\* 1 = \1 loss\)$", out, re.M)
    assert m and 0 < float(m.group(1)) < 5
    assert main(["time", "-model", "train.prototxt", "-iterations", "2"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"conv1\tforward: [\d.e-]+ ms\.", err)
    assert re.search(r"conv1\tbackward: [\d.e-]+ ms\.", err)
    assert "Average Forward-Backward" in err
    assert main(["device_query"]) == 0
    assert "torch" in capsys.readouterr().out
    assert main(["plot", "out/tiny_metrics.csv", "-o", "curves.png"]) == 0
    assert (tiny / "curves.png").stat().st_size > 1000


def test_plot_reads_a_caffe_log(tmp_path: Path) -> None:
    log = tmp_path / "caffe.log"
    log.write_text(
        "I0210 13:39:22.381027 25210 solver.cpp:204] Solving LeNet\n"
        "I0210 13:39:22.381027 25210 solver.cpp:330] Iteration 0, Testing net (#0)\n"
        "I0210 13:39:22.381027 25210 solver.cpp:397]     Test net output #0: accuracy = 0.1\n"
        "I0210 13:39:22.381027 25210 solver.cpp:218] Iteration 0 (0 iter/s), loss = 2.3\n"
        "I0210 13:39:22.381027 25210 solver.cpp:237]     Train net output #0: loss = 2.3 "
        "(* 1 = 2.3 loss)\n"
        "I0210 13:39:22.381027 25210 solver.cpp:218] Iteration 100 (9 iter/s), loss = 0.3\n"
        "I0210 13:39:22.381027 25210 solver.cpp:237]     Train net output #0: loss = 0.3 "
        "(* 1 = 0.3 loss)\n")
    from caffe2torch.cli.plot import read_series

    series = read_series(str(log))
    assert series == {"test0/accuracy": [(0, 0.1)], "train/loss": [(0, 2.3), (100, 0.3)]}
    assert main(["plot", str(log), "-o", str(tmp_path / "c.png")]) == 0
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    assert main(["plot", str(empty)]) == 1


def test_nan_loss_names_iteration_and_layer(tiny: Path) -> None:
    with h5py.File("data.h5", "a") as f:
        data = f["data"][()]
        data[:] = np.inf
        f["data"][...] = data
    nan_solver = c2t.get_solver("solver.prototxt", log=None)
    with pytest.raises(SolverError, match=r"iteration 0: the loss is nan.*input 'data'"):
        nan_solver.step(1)


def test_exploding_rate_stops_with_layer(tiny: Path) -> None:
    text = SOLVER.replace("base_lr: 0.05", "base_lr: 1e30")
    Path("solver.prototxt").write_text(text)
    solver = c2t.get_solver("solver.prototxt", log=None)
    with pytest.raises(SolverError, match=r"iteration \d+: the loss is (nan|inf).*"
                                          r"first non-finite output: blob '\w+' of layer"):
        solver.step(10)
    assert solver.iter < 10


def test_solver_refusals(tiny: Path) -> None:
    Path("bad.prototxt").write_text(SOLVER.replace('net: "train.prototxt"\n', ""))
    with pytest.raises(SolverError, match="names no train net"):
        c2t.get_solver("bad.prototxt", log=None)
    Path("bad.prototxt").write_text(SOLVER + "test_iter: 2\n")
    with pytest.raises(SolverError, match="test_interval"):
        c2t.get_solver("bad.prototxt", log=None)
    Path("bad.prototxt").write_text(SOLVER.replace('type: "SGD"', 'type: "Adamm"'))
    with pytest.raises(SolverError, match="did you mean 'Adam'"):
        c2t.get_solver("bad.prototxt", log=None)
    assert main(["train", "-solver", "bad.prototxt"]) == 1


def test_hdf5_output_writes_every_batch(tiny: Path) -> None:
    Path("h5o.prototxt").write_text(
        'name: "h5o"\n'
        'layer { name: "data" type: "HDF5Data" top: "data" top: "label"\n'
        '  hdf5_data_param { source: "h5list.txt" batch_size: 8 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        '  inner_product_param { num_output: 3 } }\n'
        'layer { name: "out" type: "HDF5Output" bottom: "ip" bottom: "label"\n'
        '  hdf5_output_param { file_name: "feat.h5" } }\n')
    assert main(["test", "-model", "h5o.prototxt", "-iterations", "3", "-q"]) == 0
    with h5py.File("feat.h5", "r") as f, h5py.File("data.h5", "r") as src:
        assert f["data"].shape == (24, 3, 1, 1)  # Caffe's legacy 4-D shape
        np.testing.assert_array_equal(f["label"][:, 0, 0, 0], src["label"][:24])


def test_channels_last_and_cuda_graph_flags_on_the_cpu(tiny: Path, capsys) -> None:
    assert main(["train", "-solver", "solver.prototxt", "-q"]) == 0
    with h5py.File("data.h5") as f:
        shapes = {"data": (8, *f["data"].shape[1:]), "label": (8,)}
    plain = c2t.load_net("train.prototxt", weights="out/tiny_iter_10.caffemodel",
                         phase="TRAIN", input_shapes=shapes)
    shutil.rmtree("out")
    capsys.readouterr()
    assert main(["train", "-solver", "solver.prototxt", "--channels-last", "--cuda-graph"]) == 0
    err = capsys.readouterr().err
    assert "CUDA graph not used: the device is cpu, not a GPU; training runs eagerly" in err
    nhwc = c2t.load_net("train.prototxt", weights="out/tiny_iter_10.caffemodel",
                        phase="TRAIN", input_shapes=shapes)
    for name, blobs in plain.params.items():  # same training up to float rounding
        for a, b in zip(blobs, nhwc.params[name]):
            np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(),
                                       rtol=1e-4, atol=1e-6)
    assert main(["test", "-model", "train.prototxt", "-weights", "out/tiny_iter_10.caffemodel",
                 "-iterations", "2", "-phase", "TRAIN", "--channels-last"]) == 0
    assert main(["time", "-model", "train.prototxt", "-iterations", "2",
                 "--channels-last"]) == 0
    assert "Average Forward-Backward" in capsys.readouterr().err


def test_time_help_says_what_a_backward_time_counts(capsys) -> None:
    """runtime/timing.py charges each layer the autograd nodes its own forward made, not
    the span from its output gradient to its input gradients: the help says the former."""
    assert main(["time", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "output gradient is ready" not in text
    assert "the gradients of the operations its own forward ran" in text
    assert "waiting while other branches of the net run backward" in text
