"""`convert`: the generated .py runs in a fresh interpreter that cannot import caffe2torch
and reproduces real Caffe's outputs (../shared/golden/nets) from the written weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caffe2torch.export.standalone import convert_net
from tests.export._golden_export import NET_CASES, loaded, net_params
from tests.graph.test_golden_nets import print_summary
from tests.support.golden import GOLDEN, assert_matches

RESULTS: dict[str, str] = {}

# Run by a fresh `python -I` (no PYTHONPATH, no user site, cwd = the output folder) with
# caffe2torch blocked, so the file must stand alone.
RUNNER = """
import sys
sys.modules["caffe2torch"] = None  # any import of it fails
import numpy as np
import torch
sys.path.insert(0, ".")
import {module} as generated
model = generated.load_model()
feeds = np.load("inputs.npz")
with torch.no_grad():
    out = model(*[torch.from_numpy(feeds[n]) for n in model.inputs])
if not isinstance(out, dict):
    out = {{model.outputs[0]: out}}
np.savez("outputs.npz", **{{k: v.numpy() for k, v in out.items()}})
"""

@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if RESULTS:
        ok = sum(v == "ok" for v in RESULTS.values())
        lines = [f"golden nets converted to standalone .py and reproduced: {ok}/{len(RESULTS)}"]
        lines += [f"  FAILED {k}: {v}" for k, v in sorted(RESULTS.items()) if v != "ok"]
        print_summary(request, lines)


def run_generated(folder: Path, module: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    np.savez(folder / "inputs.npz", **feeds)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", RUNNER.format(module=module)],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(folder / "outputs.npz") as data:
        return {k: data[k] for k in data.files}


def _check_case(case_dir: Path, tmp_path: Path, branch: str | None = None) -> None:
    case, net = loaded(case_dir)
    report = convert_net(net, tmp_path / "net.py", branch=branch)
    text = (tmp_path / "net.py").read_text()
    assert "caffe2torch" not in text.split('"""', 2)[-1]  # no import of it past the docstring
    feeds = {n: np.asarray(case.arrays[f"input/{n}"], dtype=np.float32) for n in report.inputs}
    got = run_generated(tmp_path, "net", feeds)
    compared = 0
    for name in report.outputs:
        if f"blob/{name}" in case.arrays:
            assert_matches(case, f"blob/{name}", got[name])
            compared += 1
    assert compared, f"{case.id}: none of the outputs {report.outputs} is a saved golden blob"


@pytest.mark.skipif(not NET_CASES, reason="../shared/golden/nets is absent")
@pytest.mark.parametrize("case_dir", net_params())
def test_generated_module_reproduces_golden(case_dir: Path, tmp_path: Path) -> None:
    try:
        _check_case(case_dir, tmp_path)
    except BaseException as exc:
        RESULTS[case_dir.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        raise
    RESULTS[case_dir.name] = "ok"


def test_siamese_branch_is_one_tower(golden_dir: Path, tmp_path: Path) -> None:
    """--branch data: the tower of `data` alone, its weights once. Fed the first image of
    each pair it gives Caffe's ip1; fed the second, Caffe's feat_p (the other tower, which
    shares every weight)."""
    case, net = loaded(golden_dir / "nets" / "mnist_siamese_train_test")
    report = convert_net(net, tmp_path / "tower.py", branch="data", outputs=["ip1", "feat"])
    assert report.inputs == ["data"] and report.outputs == ["ip1", "feat"]
    text = (tmp_path / "tower.py").read_text()
    assert "conv1_p" not in text and "pair_data" not in text.split('"""', 2)[-1]
    pair = np.asarray(case.arrays["input/pair_data"], dtype=np.float32)
    first = run_generated(tmp_path, "tower", {"data": np.ascontiguousarray(pair[:, :1])})
    assert_matches(case, "blob/ip1", first["ip1"])
    second = run_generated(tmp_path, "tower", {"data": np.ascontiguousarray(pair[:, 1:])})
    assert_matches(case, "blob/feat_p", second["feat"])
    import torch

    state = torch.load(tmp_path / "tower.pt", weights_only=True)
    assert sorted(state) == sorted(
        f"{layer}_{blob}" for layer in ("conv1", "conv2", "ip1", "ip2", "feat")
        for blob in ("weight", "bias")
    )


def test_generated_file_is_readable(golden_dir: Path, tmp_path: Path) -> None:
    _, net = loaded(GOLDEN / "nets" / "lenet")
    convert_net(net, tmp_path / "lenet.py")
    text = (tmp_path / "lenet.py").read_text()
    assert "conv1 = F.conv2d(data, self.conv1_weight, self.conv1_bias)" in text
    assert "ip1 = F.relu(ip1)" in text  # an in-place Caffe layer reassigns its blob
    assert "prob = torch.softmax(ip2, dim=1)" in text
