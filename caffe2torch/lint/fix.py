"""Safe rewrites (``--fix``): a V1 ``layers { }`` block (or a V2 ``layer { }`` block written
with V1 contents) -> a V2 block, edited token by token so that comments and layout
elsewhere stay as the user wrote them; applying fixes to a text."""

from __future__ import annotations

import bisect

from caffe2torch.io.positions import COL, KIND, LINE, TEXT, Token
from caffe2torch.io.upgrade import V1_TYPES
from caffe2torch.lint.diagnostic import Diagnostic, Edit, Fix
from caffe2torch.lint.source import Text, block_tokens, field_end, token_at, token_end, tokenize

# V1 per-blob fields -> the ParamSpec field each becomes (UpgradeV1LayerParameter).
_PER_BLOB = {"param": "name", "blob_share_mode": "share_mode", "blobs_lr": "lr_mult",
             "weight_decay": "decay_mult"}
_PARAM_ORDER = ("name", "share_mode", "lr_mult", "decay_mult")
# Old data-transformation fields of V1 data layers (UpgradeNetDataTransformation).
_DATA_PARAMS = {"DATA": "data_param", "IMAGE_DATA": "image_data_param",
                "WINDOW_DATA": "window_data_param"}
_TRANSFORM = ("scale", "mirror", "crop_size", "mean_file")


class Rewriter:
    """Token-level view of the original text, shared by the fixes of one file."""

    def __init__(self, src: Text) -> None:
        self.src = src
        self.toks: list[Token] = tokenize(src.text)
        self._top: tuple[list[tuple[int, int]], list[tuple[int, int]], list[int],
                         int | None] | None = None

    def _off(self, tok: Token) -> int:
        return self.src.offset(tok[LINE], tok[COL])

    def _end(self, tok: Token) -> int:
        line, col = token_end(tok)
        return self.src.offset(line, col)

    def _children(self, open_k: int, close_k: int) -> list[tuple[int, int]]:
        """(name index, last index) of the direct fields of the block between the braces."""
        out = []
        j = open_k + 1
        while j < close_k:
            if self.toks[j][KIND] == "ident":
                e = field_end(self.toks, j)
                out.append((j, e))
                j = e + 1
            else:
                j += 1
        return out

    def _indent(self, line: int) -> str:
        s = self.src.line_text(line)
        return s[: len(s) - len(s.lstrip())]

    def _deletions(self, spans: list[tuple[int, int]]) -> list[Edit]:
        """Delete the fields ``(first, last)``; a line left blank goes as a whole."""
        by_line: dict[int, list[tuple[int, int]]] = {}
        for a, b in spans:
            by_line.setdefault(self.toks[a][LINE], []).append((a, b))
        edits = []
        for line, group in by_line.items():
            s = self.src.line_text(line)
            start = self.src.offset(line, 1)
            rest = s
            for a, b in sorted(group, reverse=True):
                ca, cb = self._off(self.toks[a]) - start, self._end(self.toks[b]) - start
                rest = rest[:ca] + rest[cb:]
            single_line = all(self.toks[b][LINE] == line for _, b in group)
            if single_line and not rest.strip():
                end = start + len(s) + 1 if line < len(self.src.lines) else start + len(s)
                edits.append(Edit(start, min(end, len(self.src.text)), ""))
            else:
                edits.extend(Edit(self._off(self.toks[a]), self._end(self.toks[b]), "")
                             for a, b in group)
        return edits

    def _top_blocks(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[int],
                                   int | None]:
        """The closed top-level ``layer``/``layers`` blocks in file order (where each starts,
        where it closes, its name token) and the name token of an unclosed last one; found
        once per file, so that looking up every block stays linear."""
        if self._top is None:
            starts: list[tuple[int, int]] = []
            closes: list[tuple[int, int]] = []
            names: list[int] = []
            depth = 0
            opened: int | None = None
            for k, t in enumerate(self.toks):
                if t[TEXT] in ("{", "<"):
                    if depth == 0:
                        name = k - 2 if k >= 2 and self.toks[k - 1][TEXT] == ":" else k - 1
                        opened = name if name >= 0 and self.toks[name][TEXT] in (
                            "layer", "layers") else None
                    depth += 1
                elif t[TEXT] in ("}", ">") and depth > 0:
                    depth -= 1
                    if depth == 0 and opened is not None:
                        first = self.toks[opened]
                        starts.append((first[LINE], first[COL]))
                        closes.append((t[LINE], t[COL]))
                        names.append(opened)
            tail = opened if depth > 0 and opened is not None else None
            self._top = (starts, closes, names, tail)
        return self._top

    def block_at(self, line: int, col: int) -> int | None:
        """Index of the ``layer``/``layers`` name token of the top-level block that
        contains ``line:col`` (its name token included)."""
        starts, closes, names, tail = self._top_blocks()
        target = (line, col)
        i = bisect.bisect_right(starts, target) - 1
        if i >= 0 and target <= closes[i]:
            return names[i]
        if i + 1 < len(starts):  # between blocks, or before the first
            return None
        return tail

    def v2_block(self, name_k: int) -> Fix | None:
        """Edits that turn the block named at ``name_k`` into a V2 ``layer`` block."""
        toks = self.toks
        open_k, close_k = block_tokens(toks, name_k)
        edits: list[Edit] = []
        if toks[name_k][TEXT] == "layers":
            edits.append(Edit(self._off(toks[name_k]), self._end(toks[name_k]), "layer"))
        per_blob: dict[str, list[str]] = {}
        spans: list[tuple[int, int]] = []
        v1_type = None
        children = self._children(open_k, close_k)
        for a, b in children:
            name = toks[a][TEXT]
            v = b  # the value token (fields here are scalars)
            if name == "layer":
                return None  # a V0 block: only the full upgrade can rewrite it
            if name == "type" and toks[v][KIND] == "ident" and toks[v][TEXT] in V1_TYPES:
                v1_type = toks[v][TEXT]
                edits.append(Edit(self._off(toks[v]), self._end(toks[v]),
                                  f'"{V1_TYPES[v1_type]}"'))
            elif name in _PER_BLOB and toks[v][KIND] != "sym" and toks[v][TEXT] != "{":
                if name == "param" and toks[v][KIND] != "str":
                    continue
                per_blob.setdefault(_PER_BLOB[name], []).append(toks[v][TEXT])
                spans.append((a, b))
        if spans:
            first = min(spans)
            ind = self._indent(toks[first[0]][LINE])
            n = max(len(v) for v in per_blob.values())
            blocks = []
            for i in range(n):
                inner = [f"{ind}  {f}: {per_blob[f][i]}" for f in _PARAM_ORDER
                         if i < len(per_blob.get(f, ()))]
                blocks.append("param {\n" + "\n".join(inner) + f"\n{ind}}}")
            dels = self._deletions([s for s in spans if s != first])
            edits.append(Edit(self._off(toks[first[0]]), self._end(toks[first[1]]),
                              f"\n{ind}".join(blocks)))
            edits.extend(dels)
        if v1_type in _DATA_PARAMS:
            moved = self._transform_edits(children, _DATA_PARAMS[v1_type])
            if moved is None:
                return None
            edits.extend(moved)
        if not edits:
            return None
        return Fix("rewrite the block in the V2 `layer { }` format", tuple(edits))

    def _transform_edits(self, children: list[tuple[int, int]], pname: str) -> list[Edit] | None:
        toks = self.toks
        if any(toks[a][TEXT] == "transform_param" for a, _ in children):
            return None  # merging into an existing transform_param is left to the user
        for a, _ in children:
            if toks[a][TEXT] != pname:
                continue
            open_k, close_k = block_tokens(toks, a)
            moved = [(x, y) for x, y in self._children(open_k, close_k)
                     if toks[x][TEXT] in _TRANSFORM]
            if not moved:
                return []
            ind = self._indent(toks[a][LINE])
            inner = [f"{ind}  {toks[x][TEXT]}: {toks[y][TEXT]}" for x, y in moved]
            block = "transform_param {\n" + "\n".join(inner) + f"\n{ind}}}\n{ind}"
            return [Edit(self._off(toks[a]), self._off(toks[a]), block),
                    *self._deletions(moved)]
        return []

    def replace_token(self, line: int, col: int, new: str) -> Edit | None:
        k = token_at(self.toks, line, col)
        if k >= len(self.toks) or self.toks[k][LINE] != line:
            return None
        return Edit(self._off(self.toks[k]), self._end(self.toks[k]), new)


def apply_edits(text: str, edits: list[Edit]) -> tuple[str, int]:
    """Apply non-overlapping edits (identical duplicates merged; an edit overlapping one
    already taken is skipped). Returns the new text and the number of edits applied."""
    unique = sorted(set(edits), key=lambda e: (e.start, e.end))
    taken: list[Edit] = []
    last_end = -1
    for e in unique:
        if e.start < last_end or (taken and e.start == taken[-1].start and e.start == e.end
                                  and taken[-1].start == taken[-1].end):
            continue
        taken.append(e)
        last_end = max(last_end, e.end)
    out = text
    for e in reversed(taken):
        out = out[: e.start] + e.new + out[e.end:]
    return out, len(taken)


def fix_edits(diagnostics: list[Diagnostic]) -> list[Edit]:
    return [e for d in diagnostics if d.fix is not None for e in d.fix.edits]
