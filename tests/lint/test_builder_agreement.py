"""The linter and the builder agree (both read ir's problem list).

For every net of the fixtures and of ../shared/corpus, in every state the linter checks
(each declared phase, alone and with each stage an include rule asks for):

* each error ``load_net`` raises with a code is a lint finding of that code on that line;
* an error without a code is one of the builder's own refusals that are no fault of the
  net (a Python layer, data shapes that only the data files know), or a layer's setup
  check on actual shapes listed in KNOWN_SETUP_REFUSALS (the linter does not run layer
  setup);
* where ``load_net`` builds the state, the linter reports no error for it.

Reading errors (syntax, schema, upgrade) carry no code yet: lint must report an error on
the same line. Data layers whose shapes only the data files know get guessed shapes
(batch 2, 3x227x227) so that the rest of the net is built; after such a guess only errors
with a code are compared (a wrong guess can upset a layer's setup, not Net::Init).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import caffe2torch as c2t
from caffe2torch.errors import BuildError, CaffeError
from caffe2torch.io.text import is_solver_text, read_text
from caffe2torch.lint.diagnostic import Diagnostic
from caffe2torch.lint.engine import lint_file
from caffe2torch.lint.states import StateView, net_states
from tests.conftest import CORPUS, REPO

# Builder refusals that are policy, not a fault of the net (message fragments).
_NO_SHAPES = "cannot be computed from the prototxt"
_POLICY = ("Python layers are refused by default",)
# A layer's setup refusing the shapes it gets (LayerSetUp/Reshape checks the linter does
# not repeat): (net, state label) -> message fragment.
KNOWN_SETUP_REFUSALS: dict[tuple[str, str], str] = {
    ("tests/lint/fixtures/pair_labels.prototxt", "TEST"): "the two feature bottoms must both",
}
# Findings that depend on the data shapes (not compared where the shapes are guessed).
_SHAPE_CODES = frozenset({"C2T304", "C2T305", "C2T306", "C2T329"})
# Checks that need the data files or a caffemodel: not the builder's business.
_DATA_CODES = frozenset({"C2T321", "C2T322", "C2T323", "C2T327", "C2T328", "C2T401",
                         "C2T402"})


def fixture_nets() -> list[Path]:
    found = sorted(p for p in (REPO / "tests").rglob("*.prototxt")
                   if not is_solver_text(read_text(p)))
    return [p for p in found if "corpus" not in p.parts]


def corpus_nets() -> list[Path]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:]]
    return [CORPUS / r[0] for r in rows if len(r) > 5 and r[5] in ("V0", "V1", "V2")]


@dataclass
class Outcome:
    """What the comparison of one net found."""

    states: int = 0
    built: int = 0
    compared: int = 0  # builder errors matched against lint
    skipped: list[str] = field(default_factory=list)  # refusals that are policy
    disagreements: list[str] = field(default_factory=list)


def _label(path: Path) -> str:
    for root in (REPO, CORPUS):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)


def _guess_shapes(err: BuildError, param: Any, shapes: dict[str, tuple[int, ...]]) -> bool:
    """Add guessed shapes for the tops of the data layer ``err`` names; False when the
    layer is not found (nothing to guess)."""
    for layer in param.layer:
        if f"layer '{layer.name}'" in err.message and not layer.bottom:
            for k, top in enumerate(layer.top):
                shapes.setdefault(top, (2, 3, 227, 227) if k == 0 else (2,))
            return True
    return False


def _build(path: Path, sv: StateView, param: Any) -> tuple[BuildError | None, bool, str]:
    """load_net in ``sv``: (error, shapes were guessed, policy refusal or '')."""
    shapes: dict[str, tuple[int, ...]] = {}
    s = sv.state
    for _ in range(8):
        try:
            c2t.load_net(path, phase=s.phase, level=s.level, stages=s.stages,
                         input_shapes=shapes or None)
            return None, bool(shapes), ""
        except BuildError as err:
            if _NO_SHAPES in err.message and err.code is None \
                    and _guess_shapes(err, param, shapes):
                continue
            policy = next((p for p in _POLICY if p in err.message), "")
            return err, bool(shapes), policy
    return None, bool(shapes), "too many data layers to guess"


def _errors_for(diags: list[Diagnostic], label: str) -> list[Diagnostic]:
    """Lint errors that concern state ``label`` (a finding without phases concerns all)."""
    return [d for d in diags if d.severity == "error" and d.code not in _DATA_CODES
            and (not d.phases or label in d.phases)]


def compare(path: Path) -> Outcome:
    out = Outcome()
    name = _label(path)
    diags = lint_file(path)
    try:
        param = c2t.read_net(path)
    except CaffeError as err:
        out.compared += 1
        lines = {d.line for d in diags if d.severity == "error"}
        if err.line not in lines:
            out.disagreements.append(f"{name}: reading fails at line {err.line} ({err.message})"
                                     f" but lint reports no error there")
        return out
    checked = net_states(list(param.layer))
    # Stage pairs are explored by lint for wiring only (two stages may exclude each other):
    # built below only to tell a stage-dependent finding.
    built = [(sv, *_build(path, sv, param)) for sv in checked if len(sv.state.stages) <= 1]
    for sv, err, guessed, policy in built:
        out.states += 1
        errors = _errors_for(diags, sv.label)
        where = f"{name} [{sv.label}]"
        if err is None:
            out.built += 1
            if not guessed and errors:
                out.disagreements.append(
                    f"{where}: builds, but lint reports " + ", ".join(
                        f"{d.code} at line {d.line}" for d in errors))
            continue
        if policy:
            out.skipped.append(f"{where}: {policy}")
            continue
        if err.code is None:
            known = KNOWN_SETUP_REFUSALS.get((name, sv.label))
            if guessed or (known and known in err.message):
                out.skipped.append(f"{where}: layer setup: {err.message[:80]}")
                continue
            out.disagreements.append(f"{where}: builder error without a code: {err}")
            continue
        if guessed and err.code in _SHAPE_CODES:
            out.skipped.append(f"{where}: {err.code} on guessed data shapes")
            continue
        out.compared += 1
        if any(d.code == err.code and d.line == err.line for d in diags):
            continue
        same_phase = [_build(path, s, param)[0] for s in checked
                      if s.state.phase == sv.state.phase and s is not sv]
        if not all(e is not None and (e.code, e.line) == (err.code, err.line)
                   for e in same_phase):
            # lint's rule for nets with stages: a wiring finding that some state of the
            # phase does not have belongs to stage combinations, and is not reported
            out.skipped.append(f"{where}: {err.code} at line {err.line} in some stages only")
            continue
        out.disagreements.append(
            f"{where}: builder raises {err.code} at line {err.line} ({err.message}); lint "
            "has " + (", ".join(f"{d.code}@{d.line}" for d in errors) or "no error"))
    return out


FIXTURES = fixture_nets()


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_net_agreement(path: Path) -> None:
    outcome = compare(path)
    assert not outcome.disagreements, "\n".join(outcome.disagreements)


CORPUS_NETS = corpus_nets()


@pytest.mark.shared
@pytest.mark.skipif(not CORPUS_NETS, reason="../shared/corpus is absent")
@pytest.mark.parametrize("path", CORPUS_NETS, ids=[_label(p) for p in CORPUS_NETS])
def test_corpus_net_agreement(path: Path) -> None:
    outcome = compare(path)
    assert not outcome.disagreements, "\n".join(outcome.disagreements)


def test_new_user_shared_param_of_two_shapes(tmp_path: Path) -> None:
    """Two layers share ``param { name: "w" }`` with different shapes: the builder stops
    with the shapes, and lint reports the same code on the same line (it used to say the
    net was clean)."""
    net = tmp_path / "twins.prototxt"
    net.write_text(
        'layer { name: "in" type: "Input" top: "a" top: "b"\n'
        '        input_param { shape { dim: 2 dim: 8 } shape { dim: 2 dim: 5 } } }\n'
        'layer { name: "fa" type: "InnerProduct" bottom: "a" top: "fa"\n'
        '        param { name: "w" } inner_product_param { num_output: 4 bias_term: false } }\n'
        'layer { name: "fb" type: "InnerProduct" bottom: "b" top: "fb"\n'
        '        param { name: "w" } inner_product_param { num_output: 4 bias_term: false } }\n'
    )
    with pytest.raises(BuildError) as err:
        c2t.load_net(net)
    assert err.value.code == "C2T329" and err.value.line == 6
    assert "owner shape 4 8 (32), sharing shape 4 5 (20)" in err.value.message
    found = [(d.code, d.line) for d in lint_file(net) if d.severity == "error"]
    assert found == [("C2T329", 6)]
    assert compare(net).disagreements == []


# C2T307 (ir/settings.py): one layer lacking a setting Caffe's setup requires, on line 3
_MISSING_SETTING = {
    "conv-num_output": 'type: "Convolution" convolution_param { kernel_size: 3 }',
    "conv-kernel": 'type: "Convolution" convolution_param { num_output: 4 }',
    "conv-kernel_h-alone": 'type: "Convolution" convolution_param { num_output: 4 kernel_h: 3 }',
    "deconv-kernel": 'type: "Deconvolution" convolution_param { num_output: 4 }',
    "ip-num_output": 'type: "InnerProduct"',
    "pool-kernel": 'type: "Pooling" pooling_param { pool: MAX }',
    "pool-kernel_w-alone": 'type: "Pooling" pooling_param { pool: AVE kernel_w: 2 }',
}


@pytest.mark.parametrize("body", list(_MISSING_SETTING.values()), ids=list(_MISSING_SETTING))
def test_missing_setting_same_code_and_line(tmp_path: Path, body: str) -> None:
    """The builder refuses a layer without a required setting with lint's code C2T307, on
    the line lint reports (the builder used to raise its own text without a code)."""
    net = tmp_path / "missing.prototxt"
    net.write_text(
        'layer { name: "in" type: "Input" top: "data"\n'
        '        input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }\n'
        f'layer {{ name: "x" bottom: "data" top: "x" {body} }}\n'
    )
    with pytest.raises(BuildError) as err:
        c2t.load_net(net)
    assert err.value.code == "C2T307" and err.value.line == 3
    assert "layer 'x'" in err.value.message and "has no " in err.value.message
    found = [(d.code, d.line) for d in lint_file(net) if d.severity == "error"]
    assert found == [("C2T307", 3)]
    assert compare(net).disagreements == []


def test_required_settings_present_build(tmp_path: Path) -> None:
    """What the rule accepts builds: global pooling without a kernel, kernel_h with
    kernel_w, an InnerProduct whose weights are its second bottom."""
    net = tmp_path / "present.prototxt"
    net.write_text(
        'layer { name: "in" type: "Input" top: "data" top: "w"\n'
        '        input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 }\n'
        '                      shape { dim: 5 dim: 192 } } }\n'
        'layer { name: "g" type: "Pooling" bottom: "data" top: "g"\n'
        '        pooling_param { pool: AVE global_pooling: true } }\n'
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
        '        convolution_param { num_output: 2 kernel_h: 3 kernel_w: 1 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" bottom: "w" top: "ip" }\n'
    )
    shapes = c2t.load_net(net).blob_shapes
    assert shapes["g"] == (2, 3, 1, 1) and shapes["c"] == (2, 2, 6, 8)
    assert not [d for d in lint_file(net) if d.code == "C2T307"]
    assert compare(net).disagreements == []
