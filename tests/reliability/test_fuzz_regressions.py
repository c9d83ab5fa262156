"""Inputs the mutation fuzzer (tools/fuzz.py) found to break the contract, each reduced to
its cause: only typed errors, no hang, no memory blow-up."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

import caffe2torch as c2t
from caffe2torch.errors import CaffeError, ParseError
from caffe2torch.graph.names import NameTable
from caffe2torch.io.positions import scan
from caffe2torch.lint.parse import REPAIR_BUDGET_CHARS


def test_deep_nesting_scan_is_linear_in_memory() -> None:
    # every level used to record its whole dotted path: 20000 levels took ~1 GB
    depth = 20_000
    text = "layer { " + "convolution_param { " * depth + "num_output: 1" + " }" * (depth + 1)
    tracemalloc.start()
    try:
        source = scan(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
    assert source.blocks[0].field("convolution_param") is not None


def test_deep_nesting_gives_typed_errors(tmp_path: Path) -> None:
    depth = 40_000
    path = tmp_path / "deep.prototxt"
    path.write_text("layer { " * depth + 'name: "x"' + " }" * depth)
    with pytest.raises(ParseError) as info:
        c2t.read_net(path)
    assert (info.value.path, info.value.line, info.value.col) == (str(path), 1, 9)
    with pytest.raises(ParseError):
        c2t.upgrade_text(path.read_text())


def test_lint_repairs_are_bounded_by_file_size(tmp_path: Path) -> None:
    depth = 2000  # one syntax error per level: each repair re-reads the whole text
    text = "layer { " * depth + 'name: "x"' + " }" * depth
    path = tmp_path / "deep.prototxt"
    path.write_text(text)
    found = c2t.lint(path)
    syntax = [d for d in found if d.code in ("C2T001", "C2T002", "C2T003")]
    assert len(syntax) <= REPAIR_BUDGET_CHARS // len(text) + 1
    assert any("too many syntax errors" in d.message for d in found)


def test_lint_stride_zero_does_not_divide_by_zero(tmp_path: Path) -> None:
    path = tmp_path / "s0.prototxt"
    path.write_text('input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
                    'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                    "convolution_param { num_output: 2 kernel_size: 3 stride: 0 } }\n")
    c2t.lint(path)  # used to raise ZeroDivisionError
    with pytest.raises(CaffeError, match="stride"):
        c2t.load_net(path)


def test_repeated_layer_names_get_numbered_suffixes() -> None:
    # add() used to probe name_2, name_3, ... from the start: quadratic in repeats
    table = NameTable()
    idents = [table.add("r", key=i) for i in range(3000)]
    assert idents[:3] == ["r", "r_2", "r_3"] and idents[-1] == "r_3000"
    assert len(set(idents)) == 3000
    assert table.add("r_3001", key="x") == "r_3001"
    assert table.add("r", key=3000) == "r_3002"


def test_filler_errors_name_the_layer(tmp_path: Path) -> None:
    path = tmp_path / "f.prototxt"
    path.write_text('input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
                    'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                    'convolution_param { num_output: 2 kernel_size: 3 '
                    'weight_filler { type: "gausian" } } }\n')
    with pytest.raises(CaffeError, match=r"layer 'c' \(Convolution\): unknown filler type"):
        c2t.load_net(path)


def _block_at_by_scanning(toks, line: int, col: int) -> int | None:
    """The original linear scan, kept as the reference for the indexed lookup."""
    target, depth, opened = (line, col), 0, None
    for k, t in enumerate(toks):
        if t[1] in ("{", "<"):
            if depth == 0:
                name = k - 2 if k >= 2 and toks[k - 1][1] == ":" else k - 1
                opened = name if name >= 0 and toks[name][1] in ("layer", "layers") else None
            depth += 1
        elif t[1] in ("}", ">") and depth > 0:
            depth -= 1
            if depth == 0 and opened is not None:
                first = toks[opened]
                if (first[2], first[3]) <= target <= (t[2], t[3]):
                    return opened
                if (first[2], first[3]) > target:
                    return None
    return opened if depth > 0 and opened is not None else None


@pytest.mark.parametrize("tail", ["", 'layers { name: "open" type: RELU '])
def test_block_lookup_matches_the_scan(tail: str) -> None:
    # _mixed looked up every block with a scan of the whole file: quadratic in blocks
    from caffe2torch.lint.fix import Rewriter
    from caffe2torch.lint.source import Text

    text = ('name: "m"\nlayers { name: "a" type: RELU bottom: "d" top: "d" }\n'
            'input_param { shape { dim: 1 } }\n'
            'layer { name: "b" type: "ReLU" convolution_param { pad: 1 } }\n\n'
            'layer: < name: "c" >\n' + tail)
    rw = Rewriter(Text(text))
    lines = text.split("\n")
    for line in range(1, len(lines) + 1):
        for col in range(1, len(lines[line - 1]) + 2):
            assert rw.block_at(line, col) == _block_at_by_scanning(rw.toks, line, col), (
                line, col)
