"""``caffe2torch run --proto PATH SCRIPT``: the script speaks a Caffe fork's schema, as a
pycaffe built from that fork would: ``caffe.proto.caffe_pb2`` is the fork's compiled
module, and Net, the solvers, net_spec and caffe.io read and write with its numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import caffe2torch as c2t
import caffe2torch.pycaffe as caffe
from caffe2torch.cli.main import main
from caffe2torch.io import fork_schema
from caffe2torch.io.binary import read_caffemodel_arrays
from caffe2torch.proto import caffe_pb2 as ours
from caffe2torch.pycaffe import alias, schema

FORK = Path(__file__).parents[1] / "fixtures" / "fork_proto" / "fork.proto"
ABSORB = Path(__file__).parent / "scripts" / "absorb_segnet_bn.py"


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("CAFFE2TORCH_CACHE_DIR", str(tmp_path / "cache"))
    fork_schema.clear_memory_cache()
    yield
    schema.use(None)
    alias.uninstall()


def test_script_edits_fork_prototxt_and_nets_read_it_with_the_fork(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--proto", str(FORK), str(ABSORB), str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "layers ['Input', 'Convolution', 'InnerProduct']" in out
    diff = float(out.split("max difference")[1])
    assert diff < 1e-5, out
    # Net.save wrote the fork's numbers: the net verbs' --proto reads it back
    _, arrays = read_caffemodel_arrays(tmp_path / "folded.caffemodel", proto=FORK)
    assert [a.shape for a in arrays["conv"]] == [(4, 3, 3, 3), (4,)]
    net = c2t.load_net(tmp_path / "folded.prototxt", weights=tmp_path / "folded.caffemodel",
                       proto=FORK)
    np.testing.assert_array_equal(net.params["conv"][1].detach().numpy(), arrays["conv"][1])
    # the run is over: the next script gets caffe2torch's schema again
    assert schema.active() is None and caffe.proto.caffe_pb2 is ours


def test_without_proto_our_schema_refuses_the_fork_fields(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(ABSORB), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'has no field named "fork_comment"' in err


def test_proto_given_to_the_script_stays_the_scripts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "args.py"
    script.write_text("import sys\nfrom caffe.proto import caffe_pb2\n"
                      "print(sys.argv[1:], hasattr(caffe_pb2.NetParameter(), 'fork_comment'))\n")
    assert main(["run", str(script), "--proto", "x.proto"]) == 0
    assert capsys.readouterr().out.strip() == "['--proto', 'x.proto'] False"
    assert main(["run", "-proto", str(FORK), str(script), "a"]) == 0  # Caffe's one dash
    assert capsys.readouterr().out.strip() == "['a'] True"


def test_bad_proto_is_a_usage_error_before_the_script_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('ran')\n")
    missing = tmp_path / "none.proto"
    assert main(["run", "--proto", str(missing), str(script)]) == 2
    captured = capsys.readouterr()
    assert str(missing) in captured.err and "ran" not in captured.out
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto2";\nmessage NetParameter {\n  optional strin name = 1;\n}\n')
    assert main(["run", "--proto", str(broken), str(script)]) == 2
    captured = capsys.readouterr()
    assert f"{broken}:3:" in captured.err and "ran" not in captured.out


def test_run_help_describes_proto(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--proto PATH" in out and "src/caffe/proto/caffe.proto" in out
    assert "caffe.proto.caffe_pb2" in out


def test_net_spec_io_and_net_speak_the_fork_schema() -> None:
    schema.use(FORK)
    pb2 = caffe.proto.caffe_pb2
    assert pb2 is not ours and pb2.BNParameter.INFERENCE == 1
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2, 3, 3]))
    n.bn = L.BN(n.data, bn_mode=P.BN.INFERENCE, scale_filler=dict(type="constant", value=2),
                shift_filler=dict(type="constant", value=0.5))
    msg = n.to_proto()
    assert isinstance(msg, pb2.NetParameter)
    assert "bn_mode: INFERENCE" in text_format.MessageToString(msg)
    blob = caffe.io.array_to_blobproto(np.ones((2, 3), np.float32))
    msg.layer[0].blobs.append(blob)  # only a message of the fork's own schema fits here
    del msg.layer[0].blobs[:]
    net = caffe.Net(msg, caffe.TEST)  # a fork message, as NetSpec made it
    x = np.arange(18, dtype=np.float32).reshape(1, 2, 3, 3)
    net.blobs["data"].data[...] = x
    np.testing.assert_allclose(net.forward()["bn"], 2 * x + 0.5)


def test_solver_reads_and_saves_with_the_fork_schema(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text("""fork_comment: "trained by the fork"
layer { name: "data" type: "Input" top: "data" top: "target"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
""")
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 2 momentum: 0.9\n')
    schema.use(FORK)
    solver = caffe.SGDSolver("solver.prototxt")
    assert solver.param.base_lr == pytest.approx(0.1)
    solver.net.blobs["data"].data[...] = 1.0
    solver.net.blobs["target"].data[...] = 0.5
    before = solver.net.params["ip"][0].data.copy()
    solver.step(1)
    assert not np.array_equal(before, solver.net.params["ip"][0].data)
    solver.net.save("trained.caffemodel")
    _, arrays = read_caffemodel_arrays("trained.caffemodel", proto=FORK)
    np.testing.assert_array_equal(arrays["ip"][0], solver.net.params["ip"][0].data)


SNAPSHOT_SCRIPT = Path(__file__).parent / "scripts" / "snapshot_resume.py"
SNAPSHOT_NET = """layer { name: "data" type: "Input" top: "data" top: "target"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
"""


def _snapshot_run(folder: Path, capsys: pytest.CaptureFixture[str], *proto: str) -> dict:
    folder.mkdir()
    head = 'fork_comment: "trained by the fork"\n' if proto else ""
    (folder / "net.prototxt").write_text(head + SNAPSHOT_NET)
    (folder / "solver.prototxt").write_text(
        'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 max_iter: 100\n'
        'snapshot_prefix: "snap/s" random_seed: 3\n')
    capsys.readouterr()
    assert main(["run", *proto, str(SNAPSHOT_SCRIPT), str(folder)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_solver_snapshot_and_restore_with_the_fork_schema(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the script changes directory: give it back afterwards
    ours_run = _snapshot_run(tmp_path / "ours", capsys)
    fork_run = _snapshot_run(tmp_path / "fork", capsys, "--proto", str(FORK))
    # restore goes on where snapshot left off: iteration, weights and momentum history
    assert fork_run["resumed_at"] == 3 and fork_run["same_weights"]
    assert fork_run["resumed"] == fork_run["full"][3:]
    # and the fork's run is the run without --proto, loss for loss
    assert fork_run["full"] == ours_run["full"] and ours_run["resumed"] == ours_run["full"][3:]
    # the snapshot is in the fork's numbers: the fork's own messages read it
    fork = fork_schema.load_schema(FORK)
    state = fork.need("SolverState")()
    state.ParseFromString((tmp_path / "fork/snap/s_iter_3.solverstate").read_bytes())
    assert state.iter == 3 and state.learned_net == "snap/s_iter_3.caffemodel"
    assert [list(h.shape.dim) for h in state.history] == [[2, 3], [2]]
    model = fork.net()
    model.ParseFromString((tmp_path / "fork/snap/s_iter_3.caffemodel").read_bytes())
    assert [list(b.shape.dim) for b in model.layer[1].blobs] == [[2, 3], [2]]


# ----------------------------------------------------------------- ENet's BN absorber

MIRROR = Path("/work/.mirror")
ENET = MIRROR / "TimoSaemann+ENet" / "repo"
CAFFE_ENET = MIRROR / "TimoSaemann+caffe-enet" / "repo"


def _git_show(repo: Path, path: str) -> str:
    import subprocess

    return subprocess.run(["git", f"--git-dir={repo}", "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _python3(source: str) -> str:
    """The mechanical Python 2 fixes docs/pycaffe.md lists: print statements, xrange,
    tabs as Python 2 read them (to the next multiple of 8), NumPy 2's removed np.int."""
    import re

    lines = [re.sub(r'^(\s*)print (".*")$', r"\1print(\2)", line.expandtabs(8))
             for line in source.split("\n")]
    return "\n".join(lines).replace("xrange(", "range(").replace("dtype=np.int)", "dtype=int)")


ENET_CHECK = """import sys
import caffe
import numpy as np
from caffe.proto import caffe_pb2
from google.protobuf import text_format


def small(src, dst, first_drop_only=False):  # a 64 x 128 input: same layers, quicker
    msg = caffe_pb2.NetParameter()
    text_format.Merge(open(src).read(), msg)
    msg.layer[0].input_param.shape[0].dim[2:] = [64, 128]
    drops = [ly for ly in msg.layer if ly.type == "Python"]
    for ly in drops[1:] if first_drop_only else []:  # 1 / (1 - 1e-12) is 1.0f
        ly.python_param.param_str = "{'phase': 'TEST', 'p': '1e-12'}"
    open(dst, "w").write(text_format.MessageToString(msg))
    return dst


def out(model, weights, x):
    net = caffe.Net(model, weights, caffe.TEST)
    net.blobs["data"].data[...] = x
    return net.forward()["deconv6_0_0"].copy()


x = np.random.default_rng(1).normal(0, 1, (1, 3, 64, 128)).astype(np.float32)
got = out(small("out/bn_conv_merged_model.prototxt", "a.prototxt"),
          "out/bn_conv_merged_weights.caffemodel", x)
for name, first in (("original", False), ("first_dropout", True)):
    ref = out(small("enet_deploy.prototxt", "o.prototxt", first), "enet.caffemodel", x)
    print(name, float(np.abs(got - ref).max() / np.abs(ref).max()))
"""

ENET_WEIGHTS = """import sys
import caffe
import numpy as np

rng = np.random.default_rng(0)
net = caffe.Net(sys.argv[1], caffe.TEST)
for layer in net.layers:
    for i, b in enumerate(layer.blobs):
        if layer.type == "BN":
            b.data[...] = rng.uniform(0.5, 1.5, b.shape) if i == 0 else rng.normal(0, .1, b.shape)
        elif layer.type == "PReLU":
            b.data[...] = rng.uniform(0.05, 0.3, b.shape)
        elif i == 0:
            b.data[...] = rng.normal(0, np.sqrt(2.0 / np.prod(b.shape[1:])), b.shape)
        else:
            b.data[...] = rng.normal(0, 0.05, b.shape)
net.save(sys.argv[2])
"""


@pytest.mark.skipif(not (ENET.is_dir() and CAFFE_ENET.is_dir() and shutil.which("git")),
                    reason="needs git and TimoSaemann/ENet, caffe-enet under /work/.mirror")
def test_enet_bn_absorber_runs_with_the_forks_schema(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    proto = tmp_path / "caffe.proto"
    proto.write_text(_git_show(CAFFE_ENET, "src/caffe/proto/caffe.proto"))
    (tmp_path / "spatial_dropout.py").write_text(
        _python3(_git_show(CAFFE_ENET, "python/spatial_dropout.py")))
    (tmp_path / "BN-absorber-enet.py").write_text(
        _python3(_git_show(ENET, "scripts/BN-absorber-enet.py")))
    for name in ("enet_deploy.prototxt", "enet_deploy_final.prototxt"):
        (tmp_path / name).write_text(_git_show(ENET, f"prototxts/{name}"))
    (tmp_path / "weights.py").write_text(ENET_WEIGHTS)
    (tmp_path / "check.py").write_text(ENET_CHECK)
    monkeypatch.syspath_prepend(str(tmp_path))  # the fork's Python layer, spatial_dropout
    run = ["run", "--proto", str(proto)]
    assert main([*run, "weights.py", "enet_deploy.prototxt", "enet.caffemodel"]) == 0
    assert main([*run, "BN-absorber-enet.py", "--model", "enet_deploy.prototxt", "--weights",
                 "enet.caffemodel", "--out_dir", "out", "--gpu", "1"]) == 0
    assert "Done!" in capsys.readouterr().out
    # the prototxt it writes is the repository's own inference net, byte for byte
    assert ((tmp_path / "out" / "bn_conv_merged_model.prototxt").read_text()
            == (tmp_path / "enet_deploy_final.prototxt").read_text())
    assert main([*run, "check.py"]) == 0
    errors = dict(line.split() for line in capsys.readouterr().out.splitlines())
    # every BN is absorbed exactly; of the 27 SpatialDropout scales (x 1 / 0.99 at TEST)
    # the script folds only the first: its `return net` is inside the loop
    assert float(errors["first_dropout"]) < 1e-5
    assert float(errors["original"]) > 0.01
