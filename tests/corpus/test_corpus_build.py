"""Real-world nets of ../shared/corpus: every net whose layer types are all registered builds
in every phase it declares and runs a forward on random input at a small batch.

Outcomes per (net, phase): built; skipped with the reason (a data layer whose shapes come
from its data files, a Python layer, refused by default); refused as Caffe refuses it (a
bottom no layer of that phase makes: Caffe's "Unknown bottom blob"); or failed (a bug).
The heavy sweep is marked slow; counts are printed at the end of the module.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import BuildError, CaffeError
from caffe2torch.ir import declared_phases
from caffe2torch.layers.registry import find_layer_spec
from tests.conftest import CORPUS
from tests.graph.test_golden_nets import print_summary

OUTCOMES: dict[str, tuple[str, str]] = {}  # "net [PHASE]" -> (outcome, reason)


def corpus_nets() -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:]]
    return [r[0] for r in rows if len(r) > 5 and r[5] in ("V0", "V1", "V2")]


NETS = corpus_nets()


def small_batch_shapes(net: c2t.CaffeNet, batch: int = 2) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name in net.inputs:
        shape = net.blob_shapes[name]
        shapes[name] = (min(batch, shape[0]), *shape[1:]) if shape else shape
    return shapes


def random_inputs(net: c2t.CaffeNet) -> dict[str, torch.Tensor]:
    """The first top of each data layer gets random values, the others (labels) zeros."""
    torch.manual_seed(0)
    feed = {}
    for layer in net.ir.data_layers():
        for k, top in enumerate(layer.tops):
            shape = net.blob_shapes[top.name]
            feed[top.name] = torch.randn(shape) if k == 0 else torch.zeros(shape)
    return feed


def build_and_run(path: Path, phase: str) -> tuple[str, str]:
    try:
        net = c2t.load_net(path, phase=phase)
    except BuildError as err:
        text = str(err)
        if "cannot be computed from the prototxt" in text:
            return "skipped", "data shapes come from the data files"
        if "Python layers are refused" in text:
            return "skipped", "Python layer (refused by default)"
        if "unknown bottom blob" in text:
            return "refused", text.splitlines()[0].split(": ", 1)[-1][:160]
        return "failed", text.splitlines()[0][:200]
    try:
        small = c2t.load_net(path, phase=phase, input_shapes=small_batch_shapes(net))
        with torch.no_grad():
            out = small(random_inputs(small))
    except CaffeError as err:
        return "failed", f"forward: {str(err).splitlines()[0][:200]}"
    except Exception as exc:  # a layer crashing at run time is a bug to report
        return "failed", f"forward: {type(exc).__name__}: {str(exc)[:200]}"
    missing = set(small.outputs) - set(out)
    if missing:
        return "failed", f"outputs missing: {sorted(missing)}"
    return "built", ""


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if not OUTCOMES:
        return
    counts = Counter(outcome for outcome, _ in OUTCOMES.values())
    lines = ["corpus build: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    reasons = Counter(
        (outcome, reason) for outcome, reason in OUTCOMES.values() if outcome == "skipped"
    )
    lines += [f"  skipped {n}x: {reason}" for (_, reason), n in reasons.items()]
    lines += [
        f"  {outcome.upper()} {key}: {reason}"
        for key, (outcome, reason) in sorted(OUTCOMES.items())
        if outcome in ("failed", "refused")
    ]
    print_summary(request, lines)


def check_net(rel: str) -> None:
    path = CORPUS / rel
    try:
        param = c2t.read_net(path)
    except CaffeError as err:
        OUTCOMES[rel] = ("skipped", f"not readable: {str(err).splitlines()[0][:120]}")
        pytest.skip(str(err).splitlines()[0])
    unknown = sorted({ly.type for ly in param.layer if find_layer_spec(ly.type) is None})
    if unknown:
        OUTCOMES[rel] = ("skipped", "unregistered layer types")
        pytest.skip(f"unregistered layer types: {', '.join(unknown)}")
    failures = []
    for phase in declared_phases(param.layer):
        outcome, reason = build_and_run(path, phase)
        OUTCOMES[f"{rel} [{phase}]"] = (outcome, reason)
        if outcome == "failed":
            failures.append(f"{phase}: {reason}")
    assert not failures, "; ".join(failures)


def test_lenet_train_test_builds_both_phases(corpus_dir):
    path = corpus_dir / "BVLC__caffe/examples/mnist/lenet_train_test.prototxt"
    if not path.exists():
        pytest.skip("lenet_train_test is not in this corpus")
    shapes = {"data": (2, 1, 28, 28), "label": (2,)}
    train = c2t.load_net(path, phase="TRAIN", input_shapes=shapes)
    test = c2t.load_net(path, phase="TEST", input_shapes=shapes)
    assert train.outputs == ["loss"] and test.outputs == ["accuracy", "loss"]
    out = test(data=torch.rand(2, 1, 28, 28), label=torch.tensor([3.0, 7.0]))
    assert 0 <= float(out["accuracy"]) <= 1


@pytest.mark.slow
@pytest.mark.skipif(not NETS, reason="../shared/corpus is absent")
@pytest.mark.parametrize("rel", NETS)
def test_corpus_net_builds_and_runs(rel: str) -> None:
    check_net(rel)
