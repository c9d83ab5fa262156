"""``path label`` list files as ImageDataLayer::DataLayerSetUp reads them.

Rules (image_data_layer.cpp): each line is split at its LAST space, so file names may hold
spaces; the label is ``atoi`` of what follows (``0042`` -> 42, ``7x`` -> 7, ``-3`` -> -3);
``root_folder`` is prefixed by plain string concatenation (no separator added).

Where Caffe silently reads garbage we stop with a DataError naming the file and line: an
empty line, a line without a space, or a label with no leading integer (Caffe would take
the whole line as a file name, or label it 0), a label with a fraction (``0.5``: atoi
reads 0; ``1.0`` is read as 1, as by Caffe). A UTF-8 byte-order mark at the start of the
file is dropped, as the prototxt reader drops it (Caffe reads it as part of the first file
name and stops: "Could not load"). Lines may end in CRLF, as Caffe reads them (atoi stops
at the CR).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from caffe2torch.errors import DataError

_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?\d+)")


def atoi(text: str) -> int | None:
    """C's ``atoi``: leading whitespace, an optional sign, then digits up to the first
    non-digit; None where atoi finds no digits at all (it would return 0)."""
    m = _ATOI.match(text)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class ListEntry:
    """One line of a list file."""

    name: str  # the file name as written (before root_folder)
    label: int
    line: int  # 1-based line number in the list file


def parse_list_text(text: str, path: str = "<list>") -> list[ListEntry]:
    """Parse the text of a list file (``path`` names it in errors): the first problem, in
    line order, is raised."""
    entries, problems = scan_list_text(text, path)
    if problems:
        raise problems[0]
    return entries


def scan_list_text(text: str, path: str = "<list>"
                   ) -> tuple[list[ListEntry], list[DataError]]:
    """Every good line of a list file and a DataError for each bad one, in line order (the
    linter reports them all; readers stop at the first)."""
    entries: list[ListEntry] = []
    problems: list[DataError] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]  # an editor's UTF-8 BOM, dropped as in a prototxt
    for number, raw in enumerate(lines, start=1):
        try:
            entries.append(_parse_line(raw, number, path))
        except DataError as e:
            problems.append(e)
    if not entries and not problems:
        problems.append(DataError("the list file is empty", path=path,
                                  hint="it should hold one 'path label' line per image"))
    return entries, problems


def _parse_line(raw: str, number: int, path: str) -> ListEntry:
    line = raw[:-1] if raw.endswith("\r") else raw
    if not line.strip():
        raise DataError("empty line in the list file", path=path, line=number,
                        hint="every line must be 'path label'; remove blank lines")
    pos = line.rfind(" ")
    if pos < 0:
        hint = ("the separator must be a space (a tab does not count)" if "\t" in line
                else "write 'path label', e.g. 'images/cat.jpg 3'")
        raise DataError(f"no label on this line: {line!r}", path=path, line=number,
                        hint=hint)
    label = atoi(line[pos + 1:])
    if label is None:
        trailing = line != line.rstrip()
        raise DataError(
            f"the text after the last space is not a label: {line[pos + 1:]!r}",
            path=path, line=number, col=pos + 2,
            hint="the line ends in spaces or tabs: remove them (Caffe splits each line "
            "at its last space)" if trailing else
            "each line must end with an integer label after a space")
    _check_fraction(line[pos + 1:], label, path, number, pos + 2)
    if pos == 0:
        raise DataError("no file name before the label", path=path, line=number)
    return ListEntry(line[:pos], label, number)


_FRACTION = re.compile(r"[ \t\n\v\f\r]*[+-]?\d+\.\d*(?:[eE][+-]?\d+)?\s*$")


def _check_fraction(text: str, label: int, path: str, line: int, col: int) -> None:
    """A decimal label whose value is not ``label`` (``0.5``, ``2.7``): Caffe's atoi keeps
    the integer part, so real-valued targets would all silently become 0, 1..."""
    if _FRACTION.match(text) and float(text) != label:
        raise DataError(
            f"label {text.strip()!r} is not an integer: Caffe's ImageData reads it with atoi "
            f"as {label}", path=path, line=line, col=col,
            hint="ImageData labels are integer classes; real-valued targets need another "
            "data layer (HDF5Data)")


def read_list_text(path: str | os.PathLike[str], shown_as: str | None = None) -> str:
    """A list file's text, undecodable bytes kept (surrogateescape); ``shown_as`` is the
    name used in errors (the source as the prototxt writes it)."""
    p = os.fspath(path)
    name = shown_as or p
    try:
        with open(p, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError("list file not found", path=name,
                        hint="paths in a data layer are relative to the working directory "
                             "Caffe runs in") from None
    except OSError as e:
        raise DataError(f"cannot read the list file: {e.strerror}", path=name) from None
    return data.decode("utf-8", "surrogateescape")


def read_list_file(path: str | os.PathLike[str], shown_as: str | None = None
                   ) -> list[ListEntry]:
    """Read and parse a list file; ``shown_as`` is the name used in errors."""
    return parse_list_text(read_list_text(path, shown_as), shown_as or os.fspath(path))


__all__ = ["ListEntry", "atoi", "parse_list_text", "read_list_file", "read_list_text",
           "scan_list_text"]
