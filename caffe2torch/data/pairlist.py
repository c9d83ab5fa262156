"""Image / label-map list files of the segmentation and edge-detection forks.

* ImageSegData (DeepLab-v2, hszhao/PSPNet; image_seg_data_layer.cpp): each line is read
  with ``std::getline`` and split at whitespace (``iss >> imgfn >> segfn``); the first
  token is the image, the second the label (a label image's path for ``label_type:
  PIXEL``, an integer read with atoi for ``IMAGE``, not read at all for ``NONE``); further
  tokens are ignored.
* ImageLabelmapData (s9xie/hed; image_labelmap_data_layer.cpp): ``infile >> img >> gt``
  over the whole file: whitespace-separated pairs, blank lines skipped.

Where the forks read garbage we stop with a DataError naming the file and line: a blank
line in an ImageSegData list (the fork keeps it as an image named ""), a line without a
label (PIXEL: the fork reads the folder ``root_folder`` as the label image and crashes;
IMAGE: atoi("") gives 0), an IMAGE label without digits (atoi gives 0), and a HED line
with other than two names (the fork pairs names across lines, so every later pair is
shifted). A UTF-8 byte-order mark at the start is dropped, as ImageData's list reader does.
"""

from __future__ import annotations

from dataclasses import dataclass

from caffe2torch.data.listfile import atoi, read_list_text
from caffe2torch.errors import DataError

LABEL_TYPES = ("NONE", "IMAGE", "PIXEL")  # ImageDataParameter.LabelType, in value order


@dataclass(frozen=True)
class PairEntry:
    """One line of an image / label list."""

    image: str  # as written (before root_folder)
    label: str  # the label image's name, or the integer label as written ("" for NONE)
    line: int  # 1-based line number


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines


def parse_seg_list(text: str, label_type: str, path: str = "<list>") -> list[PairEntry]:
    """ImageSegData's list (see the module doc); ``label_type``: NONE, IMAGE or PIXEL."""
    entries: list[PairEntry] = []
    for number, raw in enumerate(_lines(text), start=1):
        tokens = raw.split()
        if not tokens:
            raise DataError("empty line in the list file", path=path, line=number,
                            hint="every line must name an image (and its label); remove "
                                 "blank lines")
        label = ""
        if label_type != "NONE":
            if len(tokens) < 2:
                what = ("'image label_image' (the label image's path after a space)"
                        if label_type == "PIXEL" else
                        "'image label' (the image's integer class after a space)")
                raise DataError(f"no label on this line ({label_type} labels): "
                                f"{raw.strip()!r}", path=path, line=number,
                                hint=f"write {what}, or set image_data_param.label_type: "
                                     "NONE")
            label = tokens[1]
            if label_type == "IMAGE" and atoi(label) is None:
                raise DataError(f"the label {label!r} is not an integer", path=path,
                                line=number, hint="label_type: IMAGE takes one integer "
                                "class per image (the fork's atoi would read 0)")
        entries.append(PairEntry(tokens[0], label, number))
    if not entries:
        raise DataError("the list file is empty", path=path,
                        hint="it should name one image (and its label) per line")
    return entries


def parse_labelmap_list(text: str, path: str = "<list>") -> list[PairEntry]:
    """ImageLabelmapData's list: one ``image label_map`` pair per line, blank lines
    skipped (see the module doc)."""
    entries: list[PairEntry] = []
    for number, raw in enumerate(_lines(text), start=1):
        tokens = raw.split()
        if not tokens:
            continue  # `infile >>` skips blank lines
        if len(tokens) != 2:
            raise DataError(f"{len(tokens)} name(s) on this line, not 2: {raw.strip()!r}",
                            path=path, line=number,
                            hint="write 'image label_map' on each line (the fork pairs "
                                 "names across lines, so one missing name shifts every "
                                 "later pair)")
        entries.append(PairEntry(tokens[0], tokens[1], number))
    if not entries:
        raise DataError("the list file is empty", path=path,
                        hint="it should hold one 'image label_map' line per image")
    return entries


def label_type_name(value: object, where: str) -> str:
    """``image_data_param.label_type`` as written (a name, or its number when a fork schema
    typed it) -> NONE / IMAGE / PIXEL; the fork's default is IMAGE."""
    if value is None:
        return "IMAGE"
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 3:
        return LABEL_TYPES[value]
    if isinstance(value, str) and value in LABEL_TYPES:
        return value
    raise DataError(f"{where}: image_data_param.label_type must be NONE, IMAGE or PIXEL, "
                    f"got {value!r}")


def first_image_name(source: str) -> str | None:
    """The first token of the first non-blank line of ``source`` (None when unreadable)."""
    try:
        text = read_list_text(source, source)
    except DataError:
        return None
    for raw in _lines(text):
        if raw.split():
            return raw.split()[0]
    return None


__all__ = ["LABEL_TYPES", "PairEntry", "first_image_name", "label_type_name",
           "parse_labelmap_list", "parse_seg_list"]
