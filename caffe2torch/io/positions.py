"""Source positions of a protobuf text file: where each top-level ``layer``/``layers`` block
starts and ends, and where each field inside it sits (1-based line:col).

A small tolerant tokenizer, independent of protobuf's parser: it never raises, so the linter
can locate things in files that do not parse. Unbalanced braces, stray tokens and a missing
final ``}`` are absorbed (an unclosed block ends at the last token and is marked
``closed=False``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Final

Pos = tuple[int, int]  # (line, col), both 1-based

# One significant token per match; whitespace is skipped by finditer. Strings may be
# unterminated at the end of a line (tolerance), numbers are matched loosely.
_TOKEN_RE = re.compile(
    r"""
     (?P<ident>-?[A-Za-z_][A-Za-z0-9_]*)
    |(?P<sym>[{}:<>\[\];,])
    |(?P<str>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)
    |(?P<num>[-+]?[0-9.][0-9A-Za-z_.]*(?:(?<=[eE])[-+][0-9]+[fF]?)?)
    |(?P<comment>\#[^\n]*)
    |(?P<other>\S)
    """,
    re.VERBOSE,
)

LAYER_FIELDS = ("layer", "layers")


# A token is (kind, text, line, col): kind is "ident", "sym", "str", "num" or "other".
Token = tuple[str, str, int, int]
# Final, so that a type checker knows token[TEXT] is a str and token[LINE] an int.
KIND: Final = 0
TEXT: Final = 1
LINE: Final = 2
COL: Final = 3


def tokenize(text: str) -> list[Token]:
    """Significant tokens of ``text`` (comments dropped) with 1-based positions."""
    return list(_tokens(text))


# Lint tokenizes one text three times (the solver test, the --fix rewriter, the layer
# positions): the last texts' tokens are kept (tokens are tuples; each caller gets its list).
@functools.lru_cache(maxsize=2)
def _tokens(text: str) -> tuple[Token, ...]:
    out: list[Token] = []
    append = out.append
    line = 1
    line_start = 0  # offset of the first character of ``line``
    find_nl = text.find
    next_nl = find_nl("\n")
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        if kind == "comment":
            continue
        pos = m.start()
        if next_nl != -1 and next_nl < pos:
            while next_nl != -1 and next_nl < pos:
                line += 1
                line_start = next_nl + 1
                next_nl = find_nl("\n", line_start)
        append((kind or "other", m.group(), line, pos - line_start + 1))
    return tuple(out)


@dataclass
class LayerPos:
    """Where one layer block is written.

    ``kind`` is ``"layer"`` (V2), ``"layers"`` (V0/V1) or ``"input"`` (an Input layer that
    the upgrade made from top-level ``input:`` fields). ``fields`` maps a dotted path relative
    to the block (``"convolution_param.kernel_size"``) to the position of each occurrence.
    """

    kind: str
    start_line: int
    start_col: int
    end_line: int
    end_col: int
    fields: dict[str, list[Pos]] = field(default_factory=dict)
    name: str | None = None
    type_token: str | None = None  # the raw token after ``type:`` (quoted or an enum name)
    closed: bool = True
    index: int = -1  # index of the block among the file's top-level layer blocks

    def field(self, path: str) -> Pos | None:
        """Position of the first occurrence of ``path``, or None."""
        found = self.fields.get(path)
        return found[0] if found else None

    @property
    def start(self) -> Pos:
        return (self.start_line, self.start_col)


@dataclass
class SourceMap:
    """Positions of a net (or solver) text file.

    ``blocks`` are the top-level ``layer``/``layers`` blocks in file order; ``layers`` is what
    ``layer(i)`` indexes: the blocks themselves for a raw scan, or one entry per layer of the
    upgraded net after :meth:`remap` (see ``read_net_with_positions``).
    """

    blocks: list[LayerPos]
    top_fields: dict[str, list[Pos]]
    layers: list[LayerPos]
    path: str | None = None
    n_lines: int = 0
    # fields the schema lacks, kept by the reader (io.extra.ExtraField)
    extras: list = field(default_factory=list)

    def layer(self, i: int) -> LayerPos:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[LayerPos]:
        return iter(self.layers)

    def top(self, name: str) -> Pos | None:
        found = self.top_fields.get(name)
        return found[0] if found else None

    def extras_of(self, i: int) -> list:
        """The kept unknown fields written in the block of ``layer(i)``."""
        block = self.layers[i].index
        return [e for e in self.extras if e.block == block and block >= 0]

    def kinds(self) -> set[str]:
        return {b.kind for b in self.blocks}

    def runs(self) -> list[tuple[str, int, int]]:
        """Consecutive blocks of one kind merged: ``(kind, first_line, last_line)``."""
        out: list[tuple[str, int, int]] = []
        for b in self.blocks:
            if out and out[-1][0] == b.kind:
                out[-1] = (b.kind, out[-1][1], b.end_line)
            else:
                out.append((b.kind, b.start_line, b.end_line))
        return out

    def input_block(self) -> LayerPos | None:
        """A pseudo block for top-level ``input``/``input_dim``/``input_shape`` fields,
        starting at the first ``input:`` line (what the Input layer is made from)."""
        tops = self.top_fields.get("input")
        if not tops:
            return None
        spots = [p for key, ps in self.top_fields.items() if key.startswith("input") for p in ps]
        fields: dict[str, list[Pos]] = {"top": list(tops)}
        if "input_dim" in self.top_fields:
            fields["input_param.shape.dim"] = list(self.top_fields["input_dim"])
        if "input_shape" in self.top_fields:
            fields["input_param.shape"] = list(self.top_fields["input_shape"])
        if "input_shape.dim" in self.top_fields:
            fields["input_param.shape.dim"] = list(self.top_fields["input_shape.dim"])
        end = max(spots)
        return LayerPos("input", tops[0][0], tops[0][1], end[0], end[1], fields, name="input")

    def remap(self, origin: list[int | None]) -> SourceMap:
        """A map whose ``layer(i)`` is the block of upgraded layer ``i``: ``origin[i]`` is the
        index of its source block, or None for the Input layer made from ``input:`` fields."""
        inp = self.input_block()
        layers: list[LayerPos] = []
        for o in origin:
            if o is None:
                if inp is None:
                    raise ValueError("origin names an Input layer but the file has no input:")
                layers.append(inp)
            else:
                layers.append(self.blocks[o])
        return replace(self, layers=layers)


@dataclass
class _Frame:
    name: str  # field name that opened the block
    close: str  # "}" or ">"
    layer: LayerPos | None  # the top-level layer block this frame is inside
    prefix: str  # dotted path of this frame relative to the layer (or to the file)


# Deepest block nesting whose field paths are recorded (Caffe's schema nests ~6 deep).
MAX_DEPTH = 64


def _unquote(tok: str) -> str:
    if len(tok) >= 2 and tok[0] in "\"'" and tok[-1] == tok[0]:
        return tok[1:-1]
    return tok.strip("\"'")


def scan(text: str, path: str | None = None) -> SourceMap:
    """Scan ``text`` (already decoded, any newline style) into a :class:`SourceMap`."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    toks = tokenize(text)
    n = len(toks)
    blocks: list[LayerPos] = []
    top: dict[str, list[Pos]] = {}
    stack: list[_Frame] = []
    i = 0
    while i < n:
        kind, txt, line, col = toks[i]
        # expecting a field name, or the end of the current block
        if kind == "ident":
            i = _field(toks, i, txt, line, col, stack, blocks, top)
        elif txt == "}" or txt == ">":
            if stack and stack[-1].close == txt:
                frame = stack.pop()
                if not stack and frame.layer is not None:
                    frame.layer.end_line, frame.layer.end_col = line, col
            i += 1
        elif txt == "[":  # extension name: [pkg.name]
            j = i + 1
            parts = []
            while j < n and toks[j][TEXT] not in "]{}:":
                parts.append(toks[j][TEXT])
                j += 1
            name = "[" + "".join(parts) + "]"
            if j < n and toks[j][TEXT] == "]":
                i = _field(toks, j, name, line, col, stack, blocks, top)
            else:
                i = j
        else:
            i += 1  # stray token: skip it
    if stack:  # close what the end of the file left open
        last = toks[-1]
        bottom = stack[0]
        if bottom.layer is not None:
            bottom.layer.end_line, bottom.layer.end_col = last[LINE], last[COL]
            bottom.layer.closed = False
    n_lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    return SourceMap(blocks=blocks, top_fields=top, layers=list(blocks), path=path,
                     n_lines=n_lines)


def _field(
    toks: list[Token],
    i: int,
    name: str,
    line: int,
    col: int,
    stack: list[_Frame],
    blocks: list[LayerPos],
    top: dict[str, list[Pos]],
) -> int:
    """Record the field whose name ends at ``toks[i]`` (written at ``line:col``), consume its
    value, and return the index of the next token to look at."""
    n = len(toks)
    j = i + 1
    if j < n and toks[j][TEXT] == ":":
        j += 1
    pos = (line, col)
    frame = stack[-1] if stack else None
    layer = frame.layer if frame is not None else None
    prefix = frame.prefix if frame is not None else ""
    path = f"{prefix}.{name}" if prefix else name
    fields = layer.fields if layer is not None else top
    if path in fields:
        fields[path].append(pos)
    else:
        fields[path] = [pos]
    if j >= n:
        return j
    vkind, vtext = toks[j][KIND], toks[j][TEXT]
    if vtext == "{" or vtext == "<":
        close = "}" if vtext == "{" else ">"
        if frame is None and name in LAYER_FIELDS:
            lp = LayerPos(name, line, col, line, col, index=len(blocks))
            blocks.append(lp)
            stack.append(_Frame(name, close, lp, ""))
        else:
            # past MAX_DEPTH levels the dotted path stops growing: no Caffe message nests
            # that deep, and a path per level would make a deeply nested file quadratic
            sub = path if len(stack) < MAX_DEPTH else prefix
            stack.append(_Frame(name, close, layer, sub))
        return j + 1
    if vtext == "[":  # short repeated form: f: [1, 2, 3]
        k = j + 1
        while k < n and toks[k][TEXT] not in "]{}":
            k += 1
        return k + 1 if k < n and toks[k][TEXT] == "]" else k
    if vkind == "str" or vkind == "num" or vkind == "ident":
        if layer is not None:
            if len(stack) == 1:
                if name == "type":
                    layer.type_token = vtext
                elif name == "name" and vkind == "str":
                    layer.name = _unquote(vtext)
            elif path == "layer.name" and layer.name is None:
                layer.name = _unquote(vtext)  # V0: layers { layer { name: ... } }
        k = j + 1
        if vkind == "str":  # adjacent strings concatenate
            while k < n and toks[k][KIND] == "str":
                k += 1
        return k
    return j  # missing value: let the caller look at this token again


def enclosing_fields(text: str, line: int, col: int) -> list[str]:
    """Names of the blocks that enclose position ``line:col`` (outermost first), e.g.
    ``["layer", "convolution_param"]``. Tolerant like :func:`scan`."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    stack: list[tuple[str, str]] = []
    toks = tokenize(text)
    for k, (_, txt, tline, tcol) in enumerate(toks):
        if (tline, tcol) >= (line, col):
            break
        if txt == "{" or txt == "<":
            before = k - 1
            if before >= 0 and toks[before][TEXT] == ":":
                before -= 1
            name = toks[before][TEXT] if before >= 0 else ""
            stack.append((name, "}" if txt == "{" else ">"))
        elif (txt == "}" or txt == ">") and stack and stack[-1][1] == txt:
            stack.pop()
    return [s[0] for s in stack]
