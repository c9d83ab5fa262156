"""Every TEST-phase golden net (../shared/golden/nets) exported to ONNX: onnx.checker clean,
and onnxruntime reproduces real Caffe's blobs (inputs from input/*, weights from
weights.py) within the case tolerances. The export keeps its dynamic batch axis, so the
golden batch size need not be the traced one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffe2torch.export import deploy_view, export_onnx
from caffe2torch.export.deploy import plan_view
from caffe2torch.export.onnx import run_onnx
from tests.export._golden_export import NET_CASES, loaded, net_params, saved_blobs
from tests.graph.test_golden_nets import print_summary
from tests.support.golden import assert_matches

RESULTS: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if RESULTS:
        ok = sum(v == "ok" for v in RESULTS.values())
        lines = [f"golden nets exported to ONNX and reproduced by onnxruntime: {ok}/{len(RESULTS)}"]
        lines += [f"  FAILED {k}: {v}" for k, v in sorted(RESULTS.items()) if v != "ok"]
        print_summary(request, lines)


def _exportable_outputs(net, names: list[str]) -> list[str]:
    """The saved blobs the deploy view computes (loss and Accuracy tops are not in it)."""
    _, kept, outs, _ = plan_view(net)
    made = {t.name for p in kept for t in net.ir.layers[p].tops} | {r.name for r in outs}
    return [n for n in names if n in made]


@pytest.mark.skipif(not NET_CASES, reason="../shared/golden/nets is absent")
@pytest.mark.parametrize("case_dir", net_params())
def test_onnx_reproduces_golden(case_dir: Path, tmp_path: Path) -> None:
    try:
        case, net = loaded(case_dir)
        outputs = _exportable_outputs(net, saved_blobs(case))
        assert outputs, f"{case.id}: no saved blob is in the deploy view"
        path = tmp_path / "model.onnx"
        report = export_onnx(net, path, outputs=outputs)
        assert report.outputs == outputs
        feeds = {
            name: np.asarray(case.arrays[f"input/{name}"], dtype=np.float32)
            for name in report.inputs
        }
        got = run_onnx(path, feeds)
        for name, value in zip(outputs, got):
            assert_matches(case, f"blob/{name}", value)
    except BaseException as exc:
        RESULTS[case_dir.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        raise
    RESULTS[case_dir.name] = "ok"


def test_deploy_view_drops_scoring_layers(golden_dir: Path) -> None:
    _case, net = loaded(golden_dir / "nets" / "lenet_train_test")
    view = deploy_view(net)
    assert view.inputs == ["data"]  # the label is read only by the dropped layers
    assert view.outputs == ["ip2"]
    assert sorted(view.dropped) == ["accuracy", "loss"]
    assert "loss" not in view.net.layer_names
