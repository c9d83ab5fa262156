"""Shared by the standalone-source tests: run generated modules in a fresh interpreter that
cannot import caffe2torch, and compare them with the caffe2torch net."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import caffe2torch as c2t
from caffe2torch.export.standalone import convert_net

# Run by `python -I` (no PYTHONPATH, no user site) with caffe2torch blocked, so each file
# must stand alone. argv[1]: a JSON list of folders, each holding net.py and inputs.npz.
RUNNER = """
import json, sys
sys.modules["caffe2torch"] = None  # any import of it fails
import importlib.util
import numpy as np
import torch
torch.manual_seed(0)
for folder in json.loads(sys.argv[1]):
    spec = importlib.util.spec_from_file_location("net_" + str(abs(hash(folder))),
                                                  folder + "/net.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    model = generated.load_model(folder + "/net.pt")
    feeds = np.load(folder + "/inputs.npz")
    with torch.no_grad():
        out = model(*[torch.from_numpy(feeds[n]) for n in model.inputs])
    if not isinstance(out, dict):
        out = {model.outputs[0]: out}
    np.savez(folder + "/outputs.npz", **{k: v.numpy() for k, v in out.items()})
"""


def run_generated(folders: list[Path]) -> list[dict[str, np.ndarray]]:
    """Outputs of each folder's net.py on its inputs.npz, all in one fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", RUNNER, json.dumps([str(f) for f in folders])],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = []
    for folder in folders:
        with np.load(folder / "outputs.npz") as data:
            out.append({k: data[k] for k in data.files})
    return out


@dataclass
class NetCase:
    """A small net (prototxt text) and its inputs."""

    id: str
    prototxt: str
    feeds: dict[str, np.ndarray]
    keep_losses: bool = False
    outputs: list[str] | None = None
    positive: set[str] = field(default_factory=set)  # layers whose blobs must be > 0


def randomize(net: c2t.CaffeNet, positive: set[str], seed: int = 0) -> None:
    """Params uniform in [-1, 1) (in [0.5, 1.5) for the layers named in ``positive``)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, blobs in net.params.items():
            for blob in blobs:
                value = torch.rand(blob.shape, generator=gen)
                blob.copy_(value + 0.5 if name in positive else value * 2 - 1)


def check_cases(cases: list[NetCase], tmp_path: Path) -> None:
    """Convert every case, run all generated files at once, compare every output with the
    caffe2torch net's (relative to the output's magnitude)."""
    folders, expected = [], []
    for case in cases:
        folder = tmp_path / case.id
        folder.mkdir()
        (folder / "net.prototxt").write_text(case.prototxt)
        net = c2t.load_net(folder / "net.prototxt")
        randomize(net, case.positive)
        report = convert_net(net, folder / "net.py", outputs=case.outputs,
                             keep_losses=case.keep_losses, safetensors=False)
        text = (folder / "net.py").read_text()
        assert "caffe2torch" not in text.split('"""', 2)[-1], case.id
        feeds = {n: case.feeds[n] for n in report.inputs}
        np.savez(folder / "inputs.npz", **feeds)
        with torch.no_grad():
            want = net({n: torch.from_numpy(v) for n, v in feeds.items()},
                       blobs=report.outputs)
        expected.append({k: want[k].detach().numpy() for k in report.outputs})
        folders.append(folder)
    for case, want, got in zip(cases, expected, run_generated(folders)):
        assert sorted(got) == sorted(want), case.id
        for name, value in want.items():
            assert got[name].shape == value.shape, (case.id, name)
            scale = float(np.abs(value).max()) if value.size else 0.0
            np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-5 * max(scale, 1.0),
                                       err_msg=f"{case.id}: {name}")
