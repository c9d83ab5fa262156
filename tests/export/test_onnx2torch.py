"""Round trip: the exported ONNX of LeNet, GoogLeNet, a ResNet and the MNIST Siamese net
loads in onnx2torch and the PyTorch module it makes reproduces real Caffe's blobs
(../shared/golden/nets).

Skipped where onnx2torch cannot be imported. It imports torchvision, whose build must match
the installed torch: torchvision 0.28.0 is the match for torch 2.13.0, but the wheel PyPI
has is built against the CUDA torch (its _C.so links libtorch_cuda.so and libc10_cuda.so),
so with torch 2.13.0+cpu ``import torchvision`` fails ("operator torchvision::nms does not
exist") and onnx2torch with it. The CPU build (0.28.0+cpu) lives on PyTorch's own index.
A matching pair from PyPI runs it: in a virtual environment,
``pip install torch==2.14.1 torchvision==0.29.1 onnx2torch && pip install -e ".[dev]"``,
then ``python -m pytest tests/export/test_onnx2torch.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from caffe2torch.export import export_onnx
from tests.export._golden_export import loaded
from tests.support.golden import assert_matches

try:
    import onnx2torch
except (ImportError, RuntimeError, OSError) as exc:  # torchvision's ops fail to register
    pytest.skip(f"onnx2torch cannot be imported: {exc}", allow_module_level=True)

CASES = [
    pytest.param("lenet", ["prob"], id="lenet"),
    pytest.param("googlenet", ["prob"], id="googlenet", marks=pytest.mark.slow),
    pytest.param("resnet10_cvgj", None, id="resnet10"),
]


def _convert(path: Path) -> torch.nn.Module:
    import onnx

    return onnx2torch.convert(onnx.load(path)).eval()


def _run(module: torch.nn.Module, *feeds: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        got = module(*[torch.from_numpy(np.ascontiguousarray(f)) for f in feeds])
    return [g.numpy() for g in (got if isinstance(got, (tuple, list)) else [got])]


@pytest.mark.parametrize(("case_name", "outputs"), CASES)
def test_onnx2torch_round_trip(golden_dir: Path, tmp_path: Path, case_name: str,
                               outputs: list[str] | None) -> None:
    case, net = loaded(golden_dir / "nets" / case_name)
    report = export_onnx(net, tmp_path / "m.onnx", outputs=outputs)
    feeds = [np.asarray(case.arrays[f"input/{n}"], dtype=np.float32) for n in report.inputs]
    got = _run(_convert(tmp_path / "m.onnx"), *feeds)
    assert len(got) == len(report.outputs)
    for name, value in zip(report.outputs, got):
        assert_matches(case, f"blob/{name}", value)


def test_onnx2torch_siamese_tower(golden_dir: Path, tmp_path: Path) -> None:
    """One tower (--branch data) of the MNIST Siamese net: fed the first image of each pair
    it gives Caffe's ip1 and feat, fed the second, the other tower's feat_p."""
    case, net = loaded(golden_dir / "nets" / "mnist_siamese_train_test")
    export_onnx(net, tmp_path / "tower.onnx", branch="data", outputs=["ip1", "feat"])
    module = _convert(tmp_path / "tower.onnx")
    pair = np.asarray(case.arrays["input/pair_data"], dtype=np.float32)
    ip1, _feat = _run(module, pair[:, :1])
    assert_matches(case, "blob/ip1", ip1)
    _ip1_p, feat_p = _run(module, pair[:, 1:])
    assert_matches(case, "blob/feat_p", feat_p)
