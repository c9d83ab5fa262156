"""The torch-free shape pass (ir.shapes) agrees with the builder.

For every fixture net and every net of ../shared/corpus, in each state the linter checks
that ``load_net`` builds (the states and the guessed data shapes of
tests/lint/test_builder_agreement.py; the guesses are given to both), every top shape the
shape pass knows fully equals the builder's, and a partly known one has the builder's
rank and the builder's size on every known axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import caffe2torch as c2t
from caffe2torch.errors import BuildError, CaffeError
from caffe2torch.graph.stats import net_stats
from caffe2torch.ir.shapes import Shape, infer
from caffe2torch.lint.states import StateView, net_states
from tests.lint.test_builder_agreement import (
    _NO_SHAPES,
    _guess_shapes,
    _label,
    corpus_nets,
    fixture_nets,
)


def _built(path: Path, sv: StateView, param: Any) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """The net of state ``sv`` and the data shapes guessed for it; (None, {}) when the
    state does not build."""
    shapes: dict[str, tuple[int, ...]] = {}
    s = sv.state
    for _ in range(8):
        try:
            net = c2t.load_net(path, phase=s.phase, level=s.level, stages=s.stages,
                               input_shapes=shapes or None)
            return net, shapes
        except BuildError as err:
            if _NO_SHAPES in err.message and err.code is None \
                    and _guess_shapes(err, param, shapes):
                continue
            return None, {}
    return None, {}


def _fmt(s: Shape | tuple[int, ...] | None) -> str:
    return "?" if s is None else "x".join("?" if d is None else str(d) for d in s) or "scalar"


def _differs(mine: Shape, theirs: tuple[int, ...]) -> bool:
    return len(mine) != len(theirs) or any(
        d is not None and d != t for d, t in zip(mine, theirs))


def disagreements(path: Path) -> tuple[list[str], int]:
    """Every top shape where the shape pass and the builder differ, and how many known
    (or partly known) shapes were compared."""
    try:
        param = c2t.read_net(path)
    except CaffeError:
        return [], 0  # reading errors: tests/lint/test_builder_agreement.py
    layers = list(param.layer)
    found: list[str] = []
    compared = 0
    for sv in net_states(layers):
        if len(sv.state.stages) > 1:
            continue
        net, guessed = _built(path, sv, param)
        if net is None:
            continue
        res = infer(layers, sv.indices, guessed)
        for stats in net_stats(net):
            mine = res.tops.get(stats.index, [])
            for k, theirs in enumerate(stats.top_shapes):
                shape = mine[k] if k < len(mine) else None
                if shape is None:
                    continue
                compared += 1
                if _differs(shape, theirs):
                    lp = layers[stats.index]
                    found.append(
                        f"{_label(path)} [{sv.label}] {lp.type} '{lp.name}' top "
                        f"'{lp.top[k]}': shape pass {_fmt(shape)}, builder {_fmt(theirs)}")
    return found, compared


FIXTURES = fixture_nets()


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_net_shapes_agree(path: Path) -> None:
    found, _ = disagreements(path)
    assert not found, "\n".join(found)


CORPUS_NETS = corpus_nets()


@pytest.mark.shared
@pytest.mark.skipif(not CORPUS_NETS, reason="../shared/corpus is absent")
@pytest.mark.parametrize("path", CORPUS_NETS, ids=[_label(p) for p in CORPUS_NETS])
def test_corpus_net_shapes_agree(path: Path) -> None:
    found, _ = disagreements(path)
    assert not found, "\n".join(found)


# SphereFace/AM-Softmax heads: their modules and the shape pass share ir.shapes' rules
MARGIN_HEADS = """name: "heads"
layer { name: "in" type: "Input" top: "feat" top: "label"
        input_param { shape { dim: 4 dim: 2 dim: 3 dim: 3 } shape { dim: 4 } } }
layer { name: "fc" type: "MarginInnerProduct" bottom: "feat" bottom: "label"
        top: "fc" top: "lambda"
        margin_inner_product_param { num_output: 5 type: DOUBLE } }
layer { name: "fc1" type: "MarginInnerProduct" bottom: "feat" bottom: "label" top: "fc1"
        margin_inner_product_param { num_output: 7 axis: -3 } }
layer { name: "am" type: "LabelSpecificAdd" bottom: "fc" bottom: "label" top: "am"
        label_specific_add_param { bias: -0.35 } }
layer { name: "am2" type: "LabelSpecificAdd" bottom: "fc" bottom: "label" top: "am2"
        top: "margin" label_specific_add_param { bias: -0.35 } }
layer { name: "scaled" type: "ChannelScale" bottom: "am" bottom: "label" top: "scaled" }
"""


def test_margin_heads_shapes_agree(tmp_path: Path) -> None:
    """The shape pass knows MarginInnerProduct's and LabelSpecificAdd's tops (ir.shapes'
    rules, the ones the modules' infer_shapes call) and they equal the builder's."""
    path = tmp_path / "heads.prototxt"
    path.write_text(MARGIN_HEADS)
    param = c2t.read_net(path)
    res = infer(list(param.layer), range(len(param.layer)))
    assert res.tops[1] == [(4, 5), (1,)] and res.tops[2] == [(4, 7)]
    assert res.tops[3] == [(4, 5)] and res.tops[4] == [(4, 5), (1,)]
    assert res.tops[5] == [(4, 5)]  # ChannelScale: like its scores
    found, compared = disagreements(path)
    assert not found, "\n".join(found)
    # feat, label, fc, lambda, fc1, am, am2, margin, scaled (a net without phase rules: TEST)
    assert compared == 9


# Face-margin layers on cosine scores (4 items x 5 classes): top 0 like the scores
# (each Reshape's ReshapeLike(*bottom[0])), LabelSpecificRescale's optional top 1 the
# positive weight (1,)
FACE_HEAD = """name: "face"
layer {{ name: "in" type: "Input" top: "cos" top: "label"
        input_param {{ shape {{ dim: 4 dim: 5 }} shape {{ dim: 4 }} }} }}
layer {{ name: "head" type: "{type}" bottom: "cos" bottom: "label" {tops} }}
"""


@pytest.mark.parametrize("type_name,tops,expected", [
    ("LabelSpecificRescale", 'top: "out" top: "weight"', [(4, 5), (1,)]),
    ("LabelSpecificRescale", 'top: "out"', [(4, 5)]),
    ("CosinAddm", 'top: "out"', [(4, 5)]),
    ("AdaCosAddmScale", 'top: "out"', [(4, 5)]),
], ids=["LabelSpecificRescale_2_tops", "LabelSpecificRescale", "CosinAddm",
        "AdaCosAddmScale"])
def test_face_margin_layer_shapes_come_from_the_shape_rules(
        tmp_path: Path, type_name: str, tops: str, expected: list[tuple[int, ...]]) -> None:
    """The shape pass knows these tops, and the built module's infer_shapes (which the
    builder uses) gives the same shapes from the same rules."""
    path = tmp_path / "face.prototxt"
    path.write_text(FACE_HEAD.format(type=type_name, tops=tops))
    param = c2t.read_net(path)
    assert infer(list(param.layer), range(2)).tops[1] == expected
    net = c2t.load_net(path)
    module = net._modules_in_order[1]
    assert module.infer_shapes([(4, 5), (4,)]) == expected
    found, compared = disagreements(path)
    assert not found, "\n".join(found)
    assert compared == 2 + len(expected)
