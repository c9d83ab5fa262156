"""``path label`` list files: Caffe's parsing rules and our errors (file and line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caffe2torch.data.listfile import atoi, parse_list_text, read_list_file
from caffe2torch.errors import DataError


@pytest.mark.parametrize(
    ("text", "value"),
    [("0042", 42), ("7x", 7), ("-3", -3), ("+5", 5), ("  12", 12), ("\t9 ", 9), ("1e3", 1),
     ("x7", None), ("", None), ("-", None), (" - 3", None)],
)
def test_atoi(text: str, value: int | None) -> None:
    assert atoi(text) == value


@given(st.integers(-(2**31), 2**31 - 1), st.text(alphabet="xyz. ", max_size=4))
def test_atoi_reads_the_leading_integer(n: int, tail: str) -> None:
    assert atoi(f"{n}{tail}") == n


def test_split_at_last_space_and_labels() -> None:
    entries = parse_list_text(
        "_images/my image 1.png 4\nb.png -3\r\nc d.jpg 0042\nnoise.png 7x\n", "list.txt")
    assert [(e.name, e.label, e.line) for e in entries] == [
        ("_images/my image 1.png", 4, 1),
        ("b.png", -3, 2),
        ("c d.jpg", 42, 3),
        ("noise.png", 7, 4),
    ]


def test_last_line_without_newline() -> None:
    assert [e.label for e in parse_list_text("a.png 1\nb.png 2", "l.txt")] == [1, 2]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a.png 1\n\nb.png 2\n", 2, "empty line"),
        ("a.png 1\nb.png\n", 2, "no label"),
        ("a.png 1\nb.png\t2\n", 2, "no label"),
        ("a.png 1\nb.png 2\nc.png \n", 3, "not a label"),
        ("my file.png\n", 1, "not a label"),
        ("a.png 1\n   \n", 2, "empty line"),
        (" 3\n", 1, "no file name"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(DataError, match=words) as e:
        parse_list_text(text, "train1.txt")
    assert e.value.path == "train1.txt"
    assert e.value.line == line
    assert str(e.value).startswith(f"train1.txt:{line}")


def test_tab_separator_hint() -> None:
    with pytest.raises(DataError) as e:
        parse_list_text("a.png\t2\n", "l.txt")
    assert "tab" in (e.value.hint or "")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty") as e:
        read_list_file(empty, shown_as="empty.txt")
    assert e.value.path == "empty.txt"
    with pytest.raises(DataError, match="not found") as e:
        read_list_file(tmp_path / "nope.txt", shown_as="nope.txt")
    assert e.value.path == "nope.txt"


def test_read_list_file(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_bytes(b"x y.png 3\nz.png 0\n")
    assert [(e.name, e.label) for e in read_list_file(f)] == [("x y.png", 3), ("z.png", 0)]
