"""io.plain_text reads only what text_format.Parse reads, and reads it to the same message:
over every prototxt of the corpus and of the repository, over hand-written edge cases, and
over random one-character edits of a net (where it must step aside, not guess)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from google.protobuf import text_format
from google.protobuf.message import Message

from caffe2torch.io.plain_text import parse_plain
from caffe2torch.io.text import normalize_newlines
from caffe2torch.proto import caffe_pb2
from tests.conftest import CORPUS, REPO

ROOTS: tuple[type[Message], ...] = (caffe_pb2.NetParameter, caffe_pb2.SolverParameter)


def _agrees(text: str, root: type[Message]) -> bool:
    """Whether the fast path read ``text``; asserts that text_format reads it the same."""
    fast = root()
    if not parse_plain(text, fast):
        return False
    ref = root()
    text_format.Parse(text, ref)  # raises if the fast path read what text_format refuses
    assert fast.SerializeToString(deterministic=True) == ref.SerializeToString(
        deterministic=True)
    assert fast == ref
    return True


def _prototxts() -> list[Path]:
    files = sorted(CORPUS.rglob("*.prototxt")) if CORPUS.exists() else []
    return files + sorted(p for p in REPO.rglob("*.prototxt") if ".git" not in p.parts)


def test_every_prototxt_reads_as_text_format_reads_it() -> None:
    read = 0
    files = _prototxts()
    for path in files:
        text = normalize_newlines(path.read_bytes().decode("utf-8", errors="replace"))
        read += any([_agrees(text, root) for root in ROOTS])
    assert read >= len(files) // 2  # the plain forms are the common case


def test_the_nets_lint_is_timed_on_take_the_fast_path() -> None:
    nets = [CORPUS / "KaimingHe__deep-residual-networks" / "prototxt" / "ResNet-50-deploy.prototxt",
            CORPUS / "BVLC__caffe" / "examples" / "mnist" / "lenet.prototxt"]
    for net in nets:
        if not net.exists():
            pytest.skip(f"{net} is absent")
        assert _agrees(net.read_text(), caffe_pb2.NetParameter), net


PLAIN = [
    'name: "n" layer { name: "a" type: "Convolution" convolution_param { num_output: 8 } }',
    'layer: { name: "a" bottom: "x" bottom: "y" top: "z" }',  # ':' before a block
    "input_dim: 1 input_dim: 3, input_dim: 5; input_dim: 5",  # separators
    "force_backward: true debug_info: 0",
    "layer { type: 'Pooling' pooling_param { pool: MAX kernel_size: 2 stride: 2 } }",
    "layers { type: CONVOLUTION blobs_lr: 1 blobs_lr: 2 weight_decay: 0 }",
    "layer { param { lr_mult: 0.5 decay_mult: 1e-3 } param { lr_mult: -0 } }",
    "layer { dropout_param { dropout_ratio: 0.25 } }  # a comment",
    "state { phase: TEST level: -2147483648 stage: \"s\" }",
    "layer { } layer { name: \"b\" }",
    "",
]

NOT_PLAIN = [
    "name: \"a\" name: \"b\"",  # given twice: text_format.Parse refuses
    "state { } state { }",
    "input_dim: +1", "input_dim: 010", "input_dim: 0x10", "input_dim: 2147483648",
    "input_dim: 1.0", "input_dim: -", "layer { dropout_param { dropout_ratio: 1. } }",
    "layer { dropout_param { dropout_ratio: .5 } }",
    "layer { dropout_param { dropout_ratio: inf } }",
    "layer { dropout_param { dropout_ratio: 1.5f } }",
    'name: "a\\"b"', 'name: "a" "b"', 'name: "caf\u00e9"', 'name: "open',
    "layer < name: \"a\" >", "input_dim: [1, 2]", "no_such_field: 1",
    "layer { name: \"a\" }}", "layer { name: \"a\"", "force_backward: yes",
    "layer { type: \"Pooling\" pooling_param { pool: 0 } }",  # an enum by number
    "layer { pooling_param { pool: max } }", "name: x", "input_dim:1-2",
    "name-x: \"a\"", "[caffe.ext] { }", "layer { name: \"a\" } }", "state: TEST",
    "layer { name { } }",
]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_forms_are_read(text: str) -> None:
    assert _agrees(text, caffe_pb2.NetParameter)


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_other_forms_are_left_to_text_format(text: str) -> None:
    assert not parse_plain(text, caffe_pb2.NetParameter())


def test_random_edits_never_read_differently() -> None:
    base = PLAIN[0] + "\n" + "\n".join(PLAIN[1:-1])
    lenet = CORPUS / "BVLC__caffe" / "examples" / "mnist" / "lenet.prototxt"
    if lenet.exists():
        base = lenet.read_text()
    alphabet = ' \n{}:<>[],;"#\'\\-+.0123456789eExfFtTab_'
    rng = random.Random(0)
    for _ in range(400):
        chars = list(base)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                del chars[at]
            elif op < 0.8:
                chars.insert(at, rng.choice(alphabet))
            else:
                chars[at] = rng.choice(alphabet)
        _agrees("".join(chars), caffe_pb2.NetParameter)
