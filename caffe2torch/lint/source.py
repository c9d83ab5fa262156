"""The text being linted: original positions and offsets, a repairable copy whose
positions map back to the original, and token helpers (field extents)."""

from __future__ import annotations

from bisect import bisect_right

from caffe2torch.io.positions import COL, KIND, LINE, TEXT, Token, tokenize


class Text:
    """The original (decoded, newline-normalised) text: line:col <-> offset."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.starts = [0]
        for ln in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(ln) + 1)

    def offset(self, line: int, col: int) -> int:
        line = max(1, min(line, len(self.lines)))
        return self.starts[line - 1] + col - 1

    def pos(self, offset: int) -> tuple[int, int]:
        i = bisect_right(self.starts, offset) - 1
        return i + 1, offset - self.starts[i] + 1

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 1 <= line <= len(self.lines) else ""


class Buffer:
    """A copy of the text that the lenient parser repairs. Edits never add or remove line
    breaks, so lines stay put; a replacement of different length shifts the rest of its
    line, and :meth:`orig` undoes that shift."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self._shifts: dict[int, list[tuple[int, int]]] = {}  # line -> [(new col, delta)]

    def text(self) -> str:
        return "\n".join(self.lines)

    def orig(self, line: int, col: int) -> tuple[int, int]:
        """The original position of ``line:col`` of the repaired text."""
        delta = sum(d for c, d in self._shifts.get(line, ()) if c <= col)
        return line, max(1, col - delta)

    def replace(self, line: int, c1: int, c2: int, new: str) -> None:
        """Replace columns ``[c1, c2)`` of ``line`` (1-based) with ``new`` (one line)."""
        s = self.lines[line - 1]
        self.lines[line - 1] = s[: c1 - 1] + new + s[c2 - 1:]
        delta = len(new) - (c2 - c1)
        if delta:
            shifts = self._shifts.setdefault(line, [])
            shifts[:] = [(c + delta if c >= c2 else c, d) for c, d in shifts]
            shifts.append((c1 + len(new), delta))

    def blank(self, l1: int, c1: int, l2: int, c2: int) -> None:
        """Overwrite ``[l1:c1, l2:c2)`` with spaces (positions unchanged)."""
        for ln in range(l1, l2 + 1):
            s = self.lines[ln - 1]
            a = c1 if ln == l1 else 1
            b = c2 if ln == l2 else len(s) + 1
            self.lines[ln - 1] = s[: a - 1] + " " * max(0, b - a) + s[b - 1:]

    def append_line(self, new: str) -> None:
        self.lines.append(new)


def token_end(tok: Token) -> tuple[int, int]:
    """Position just after ``tok`` (tokens never span lines)."""
    return tok[LINE], tok[COL] + len(tok[TEXT])


def token_at(toks: list[Token], line: int, col: int) -> int:
    """Index of the token at ``line:col``, else of the first token after it (len at EOF)."""
    lo, hi = 0, len(toks)
    while lo < hi:
        mid = (lo + hi) // 2
        if (toks[mid][LINE], toks[mid][COL]) < (line, col):
            lo = mid + 1
        else:
            hi = mid
    return lo


def field_start(toks: list[Token], k: int) -> int | None:
    """Index of the name token of the field whose name or value is token ``k``."""
    if k >= len(toks):
        return None
    nxt = toks[k + 1][TEXT] if k + 1 < len(toks) else ""
    if toks[k][KIND] == "ident" and nxt in (":", "{", "<"):
        return k
    for back in (1, 2):
        j = k - back
        if j < 0:
            break
        if toks[j][KIND] == "ident" and ((back == 1 and toks[k][TEXT] in "{<:")
                                         or (back == 2 and toks[j + 1][TEXT] == ":")):
            return j
    return None


def field_end(toks: list[Token], k: int) -> int:
    """Index of the last token of the field whose name is token ``k``."""
    n = len(toks)
    j = k + 1
    if j < n and toks[j][TEXT] == ":":
        j += 1
    if j >= n:
        return n - 1
    t = toks[j][TEXT]
    if t in ("{", "<", "["):
        close = {"{": "}", "<": ">", "[": "]"}[t]
        depth = 0
        for m in range(j, n):
            if toks[m][TEXT] == t:
                depth += 1
            elif toks[m][TEXT] == close:
                depth -= 1
                if depth == 0:
                    return m
        return n - 1
    if toks[j][KIND] in ("str", "num", "ident"):
        m = j
        if toks[j][KIND] == "str":
            while m + 1 < n and toks[m + 1][KIND] == "str":
                m += 1
        return m
    return j - 1  # no value: the name (and colon) alone


def block_tokens(toks: list[Token], start: int) -> tuple[int, int]:
    """For the field whose name is ``toks[start]`` and whose value is a block, the indices
    of its opening and closing brace."""
    j = start + 1
    if toks[j][TEXT] == ":":
        j += 1
    return j, field_end(toks, start)


__all__ = [
    "Buffer",
    "Text",
    "block_tokens",
    "field_end",
    "field_start",
    "token_at",
    "token_end",
    "tokenize",
]
