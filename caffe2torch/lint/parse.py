"""Syntax and schema checks: parse strictly as Caffe does, report each error re-phrased
with its cause, repair the text (drop or rewrite the offending field or brace) and parse
again until the file reads; then assemble the upgraded V2 net, mixed V1/V2 files included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from google.protobuf import descriptor as _descriptor
from google.protobuf import text_format
from google.protobuf.message import Message

from caffe2torch.errors import UpgradeError
from caffe2torch.io import text as _text
from caffe2torch.io.plain_text import parse_plain
from caffe2torch.io.positions import KIND, LINE, TEXT, LayerPos, SourceMap, scan
from caffe2torch.io.text import ParseProblem
from caffe2torch.io.upgrade import V1_TYPES, mixed_error, upgrade_net_report
from caffe2torch.lint.context import Context
from caffe2torch.lint.diagnostic import Edit, Fix
from caffe2torch.lint.source import field_end, field_start, token_at, token_end, tokenize
from caffe2torch.proto import caffe_pb2, forks
from caffe2torch.suggest import close_names, did_you_mean

if TYPE_CHECKING:
    from caffe2torch.lint.fix import Rewriter

MAX_REPAIRS = 400
# Each repair re-parses the whole text, so the repairs of one file are bounded by its size
# too: about this many characters re-read in all (a few seconds), at least MIN_REPAIRS.
REPAIR_BUDGET_CHARS = 2_000_000
MIN_REPAIRS = 5

_V1_IN_LAYER = ("blobs_lr", "weight_decay", "blob_share_mode")
_V2_NAMES = {v: k for k, v in V1_TYPES.items() if v}
_LAYER_FIELDS = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name


@dataclass
class NetView:
    """The net as the rules see it: upgraded to V2, with where each layer is written."""

    net: caffe_pb2.NetParameter
    positions: list[LayerPos | None]
    dialect: str  # "V0", "V1", "V2" or "mixed"
    steps: list[str] = field(default_factory=list)

    @property
    def layers(self) -> list[caffe_pb2.LayerParameter]:
        return list(self.net.layer)

    def pos(self, i: int, path: str | None = None) -> tuple[int, int] | tuple[None, None]:
        """line:col of layer ``i`` (or of its field ``path``), in repaired coordinates."""
        lp = self.positions[i] if 0 <= i < len(self.positions) else None
        if lp is None:
            return None, None
        if path is not None:
            p = lp.field(path)
            if p is not None:
                return p
        return lp.start


_Root = TypeVar("_Root", bound=Message)


class Parser(Generic[_Root]):
    """The strict-then-lenient parse of one file into ``root`` (NetParameter or
    SolverParameter)."""

    def __init__(self, ctx: Context, root: type[_Root]) -> None:
        self.ctx = ctx
        self.root = root
        self.block_fixes: list[tuple[int, int]] = []  # blocks that want a V2 rewrite
        self.v1_types: list[tuple[int, str]] = []  # (line, name) of unknown V1 enum types

    @cached_property
    def rewriter(self) -> Rewriter:
        """The fixes' view of the original text (a file that reads as written needs none)."""
        from caffe2torch.lint.fix import Rewriter

        return Rewriter(self.ctx.src)

    def parse(self) -> _Root:
        buf = self.ctx.buf
        size = max(1, len(buf.text()))
        budget = max(MIN_REPAIRS, min(MAX_REPAIRS, REPAIR_BUDGET_CHARS // size))
        plain = self.root()
        if parse_plain(buf.text(), plain):  # what text_format.Parse would read, faster
            return plain
        for _ in range(budget):
            msg = self.root()
            text = buf.text()
            try:
                text_format.Parse(text, msg)
                return msg
            except text_format.ParseError as e:
                if not self._repair(e, text, cast(_descriptor.Descriptor, msg.DESCRIPTOR)):
                    break
        else:
            self.ctx.report("C2T001", f"too many syntax errors: stopped repairing after "
                            f"{budget}; the findings after them may be incomplete",
                            help="fix the errors above and run the linter again")
        msg = self.root()
        try:  # what a last, forgiving pass can still read
            text_format.Merge(buf.text(), msg)
        except text_format.ParseError:
            msg = self.root()
        return msg

    # ------------------------------------------------------------------ one error

    def _repair(self, e: text_format.ParseError, text: str, root: _descriptor.Descriptor) -> bool:
        line, col = e.GetLine() or 1, e.GetColumn() or 1
        pp = _text.explain_parse_error(e, text, root, self.ctx.path)
        explained, raw = pp.error, pp.raw
        toks = tokenize(text)
        k = token_at(toks, line, col)
        before = self.ctx.buf.text()
        handled = (self._no_field(pp, toks, k, line, col, explained)
                   or self._no_enum(pp, toks, k, line, col, explained)
                   or self._expected_string(pp, toks, k, line, col, explained)
                   or self._braces(raw, toks, k, line, col, explained, text)
                   or self._value(pp, toks, k, line, col, explained))
        if not handled:
            self.ctx.report("C2T001", explained.message, line, col, help=explained.hint)
            self._drop_field(toks, k)
        self.ctx.repaired_lines.add(self.ctx.buf.orig(line, col)[0])
        if self.ctx.buf.text() == before:
            # no field to drop: remove the offending token itself, then the line's rest
            if k < len(toks):
                t = toks[k]
                self.ctx.buf.blank(t[LINE], t[3], *token_end(t))
            if self.ctx.buf.text() == before and 1 <= line <= len(self.ctx.buf.lines):
                n = len(self.ctx.buf.lines[line - 1])
                self.ctx.buf.blank(line, min(col, n + 1), line, n + 1)
        return self.ctx.buf.text() != before

    def _drop_field(self, toks, k: int) -> None:
        start = field_start(toks, k)
        if start is None:
            return
        end = field_end(toks, start)
        a, b = toks[start], toks[end]
        self.ctx.buf.blank(a[LINE], a[3], *token_end(b))

    def _orig(self, line: int, col: int) -> tuple[int, int]:
        return self.ctx.buf.orig(line, col)

    def _want_block_fix(self, line: int, col: int) -> Fix | None:
        ol, oc = self._orig(line, col)
        k = self.rewriter.block_at(ol, oc)
        return self.rewriter.v2_block(k) if k is not None else None

    def _no_field(self, pp: ParseProblem, toks, k, line, col, explained) -> bool:
        if pp.kind != "no-field":
            return False
        mtype, fname = pp.names[0].removeprefix("caffe."), pp.names[1]
        ctx = self.ctx
        if fname in ("layer", "layers") and mtype in ("LayerParameter", "V1LayerParameter"):
            ctx.report("C2T002", explained.message, line, col, help=explained.hint)
            ctx.buf.replace(line, col, col, "} ")  # close the open block here
            return True
        if mtype == "LayerParameter" and fname in _V1_IN_LAYER:
            ctx.report("C2T102", explained.message, line, col, help=explained.hint,
                       fix=self._want_block_fix(line, col))
        elif mtype == "V1LayerParameter" and fname in _LAYER_FIELDS and \
                forks.fork_of_foreign(mtype, fname) is None:  # a fork's V1 field: kept, below
            ctx.report("C2T107", explained.message, line, col, help=explained.hint)
        elif mtype == "NetParameter" and fname in _LAYER_FIELDS:
            ctx.report("C2T003", f'"{fname}" is outside every layer block', line, col,
                       help=explained.hint)
        else:
            self._unknown_field(mtype, fname, line, col, explained)
        self._drop_field(toks, k)
        return True

    def _unknown_field(self, mtype: str, fname: str, line: int, col: int, explained) -> None:
        desc = caffe_pb2.DESCRIPTOR.message_types_by_name.get(mtype.split(".")[0])
        for part in mtype.split(".")[1:]:
            desc = desc.nested_types_by_name.get(part) if desc is not None else None
        names = list(desc.fields_by_name) if desc is not None else []
        import difflib

        scored = sorted(((difflib.SequenceMatcher(None, fname, n).ratio(), n) for n in names),
                        reverse=True)
        close = [n for r, n in scored if r >= 0.7][:3]
        help_ = did_you_mean(close)
        fix = None
        if close and scored[0][0] >= 0.8 and (len(scored) < 2 or scored[1][0] < scored[0][0]):
            edit = self.rewriter.replace_token(*self._orig(line, col), close[0])
            fix = Fix(f'rename "{fname}" to "{close[0]}"', (edit,)) if edit else None
        if not close and desc is not None and mtype in ("LayerParameter", "V1LayerParameter"):
            homes = [fd.name for fd in desc.fields if fd.message_type is not None
                     and fname in fd.message_type.fields_by_name]
            if homes:
                help_ = (f'"{fname}" belongs inside a parameter block: '
                         + " or ".join(f"`{h} {{ {fname}: ... }}`" for h in homes[:3]))
        fork = forks.fork_of_foreign(mtype, fname)
        if fork is not None or (fname.endswith("_param") and "Layer" in mtype
                                and (not scored or scored[0][0] < 0.85)):
            help_, fix = None, None  # a fork's field (or a type's block), not a typo
        if help_ is None:  # not a typo: most likely the field of a fork (kept by readers)
            orig = self._orig(line, col)
            if orig in self.ctx.fork_fields:
                return  # the --proto schema defines it
            origin = f"it comes from {fork}" if fork else "it most likely comes from a Caffe fork"
            read = forks.FOREIGN_FIELDS_READ.get(mtype, {}).get(fname)
            self.ctx.report(
                "C2T605", f'{mtype} has no field named "{fname}": kept aside ({origin})',
                line, col, help=read or
                "give the fork's caffe.proto with --proto PATH to read it with its type; "
                "building stops only at a layer that needs it")
            return
        self.ctx.report("C2T101", f'{mtype} has no field named "{fname}"', line, col,
                        help=help_, fix=fix)

    def _no_enum(self, pp: ParseProblem, toks, k, line, col, explained) -> bool:
        if pp.kind != "no-enum":
            return False
        etype, value = pp.names
        if etype == "caffe.V1LayerParameter.LayerType" and value in _V2_NAMES:
            enum = _V2_NAMES[value]
            edit = self.rewriter.replace_token(*self._orig(line, col), enum)
            self.ctx.report(
                "C2T103", f'`type: "{value}"` is the V2 spelling, but this is a V1 `layers {{ }}`'
                " block (it takes enum types)", line, col,
                help=f"write `type: {enum}`, or upgrade the whole file to V2 (--fix)",
                fix=Fix(f"write {enum}", (edit,)) if edit else None)
            if k < len(toks):
                t = toks[k]
                self.ctx.buf.replace(t[LINE], t[3], token_end(t)[1], enum)
            return True
        if etype == "caffe.V1LayerParameter.LayerType" and not _misspelt_v1_type(value):
            from caffe2torch.layers.typeinfo import find_type_info

            fork = forks.FOREIGN_V1_TYPES.get(value)
            origin = f" ({fork})" if fork else ""
            known = find_type_info(value)
            builds: str | None = (
                f"caffe2torch builds it as its {known.type} layer" if known is not None
                else f'register a builder for "{value}" (caffe2torch.register_layer), or '
                "give the fork's caffe.proto with --proto PATH")
            self.ctx.report(
                "C2T605", f'"{value}" is not a value of V1LayerParameter.LayerType{origin}: read '
                f'as layer type "{value}"', line, col, help=builds)
            self.v1_types.append((line, value))
            self._drop_field(toks, k)
            return True
        short = etype.removeprefix("caffe.")
        try:
            desc = caffe_pb2.DESCRIPTOR.pool.FindEnumTypeByName(etype)
            valid = list(desc.values_by_name)
        except KeyError:
            valid = []
        close = close_names(value.upper(), valid, n=1)
        # a near miss gets the one suggestion; the whole list only when nothing is near
        # (V1LayerParameter.LayerType alone has 40 names)
        help_ = did_you_mean(close, quote="") if close else (
            "valid values: " + ", ".join(valid) if valid else None)
        self.ctx.report("C2T104", f'"{value}" is not a value of {short}' if valid
                        else explained.message, line, col, help=help_)
        if etype == "caffe.V1LayerParameter.LayerType":
            # the type is dropped with the field: the layer's "has no type" would only
            # echo this finding
            self.ctx.untyped_ok.add(self.ctx.buf.orig(line, col)[0])
        self._drop_field(toks, k)
        return True

    def _expected_string(self, pp: ParseProblem, toks, k, line, col, explained) -> bool:
        if pp.kind != "expected-string":
            return False
        value = pp.names[0]
        if k >= len(toks) or toks[k][KIND] not in ("ident", "num"):
            self.ctx.report("C2T001", f"a value is missing here (found {value})", line, col,
                            help="write the field's value, or delete the field")
            self._drop_field(toks, k)
            return True
        t = toks[k]
        fname = toks[field_start(toks, k)][TEXT] if field_start(toks, k) is not None else None
        if fname == "type" and value in V1_TYPES and V1_TYPES[value]:
            new = f'"{V1_TYPES[value]}"'
            edit = self.rewriter.replace_token(*self._orig(line, col), new)
            self.ctx.report(
                "C2T103", f"`type: {value}` is a V1 enum type, but this is a V2 `layer {{ }}` "
                "block", line, col, help=f"write `type: {new}`",
                fix=Fix(f"write {new}", (edit,)) if edit else None)
        else:
            new = f'"{value}"'
            edit = self.rewriter.replace_token(*self._orig(line, col), new)
            self.ctx.report("C2T105", f"{fname or 'the field'} takes a quoted string, not "
                            f"{value}", line, col, help=f"write {new}",
                            fix=Fix(f"quote {value}", (edit,)) if edit else None)
        self.ctx.buf.replace(t[LINE], t[3], token_end(t)[1], new)
        return True

    def _braces(self, raw, toks, k, line, col, explained, text) -> bool:
        if raw.startswith('Expected "}"') or raw.startswith('Expected ">"'):
            open_blocks = [b for b in scan(text).blocks if not b.closed]
            if open_blocks:
                b = open_blocks[0]
                self.ctx.report("C2T002", explained.message, b.start_line, b.start_col,
                                help=explained.hint)
            else:
                self.ctx.report("C2T002", "a block is not closed: `}` expected", line, col,
                                help="add the missing `}`")
            self.ctx.buf.append_line("}")
            return True
        if raw.startswith("Expected identifier or number, got }"):
            self.ctx.report("C2T003", explained.message, line, col, help=explained.hint)
            self.ctx.buf.blank(line, col, line, col + 1)
            return True
        if raw.startswith('Expected "{"'):
            start = field_start(toks, k)
            fname = toks[start][TEXT] if start is not None else None
            if fname == "param" and k < len(toks) and toks[k][KIND] == "str":
                self.ctx.report("C2T102", explained.message, line, col, help=explained.hint,
                                fix=self._want_block_fix(line, col))
                t = toks[k]
                a = toks[start]
                self.ctx.buf.blank(a[LINE], a[3], *token_end(t))
                self.ctx.buf.replace(a[LINE], a[3], a[3] + len("param"),
                                     f"param {{ name: {t[TEXT]} }}")
                return True
            self.ctx.report("C2T105", explained.message, line, col, help=explained.hint)
            self._drop_field(toks, k)
            return True
        return False

    def _value(self, pp: ParseProblem, toks, k, line, col, explained) -> bool:
        raw = pp.raw
        if raw.startswith('Expected ":"') and 0 < k < len(toks) \
                and toks[k - 1][KIND] == "ident" and toks[k][KIND] in ("str", "num", "ident"):
            name = toks[k - 1][TEXT]
            self.ctx.report("C2T001", f'"{name}" needs a colon before its value', line, col,
                            help=f"write `{name}: {toks[k][TEXT]}`")
            self.ctx.buf.replace(line, col, col, ": ")
            return True
        if pp.kind == "multiple":
            fname = pp.names[1]
            self.ctx.report(
                "C2T110", f'"{fname}" is given twice in one {pp.names[0].removeprefix("caffe.")}'
                " block; Caffe's parser refuses a non-repeated field given twice", line, col,
                help="delete one of them")
            self._drop_field(toks, k)
            return True
        if pp.kind == "oneof":
            self.ctx.report("C2T110", explained.message, line, col, help="keep one of them")
            self._drop_field(toks, k)
            return True
        if ("Couldn't parse" in raw or "out of range" in raw or "Invalid value" in raw
                or raw.startswith("Expected integer") or raw.startswith("Expected double")
                or raw.startswith("Expected identifier")):
            code = "C2T105" if "parse" in raw or "range" in raw or "Invalid" in raw else "C2T001"
            self.ctx.report(code, explained.message, line, col, help=explained.hint)
            self._drop_field(toks, k)
            return True
        return False


def _misspelt_v1_type(value: str) -> bool:
    """An unknown V1 enum type that is one slip from a BVLC one (CONVOLUTON) and that no
    fork or plug-in defines: a typo to report as such, not a layer type of its own."""
    from caffe2torch.layers.typeinfo import find_type_info

    if value in forks.FOREIGN_V1_TYPES or find_type_info(value) is not None:
        return False
    names = list(caffe_pb2.V1LayerParameter.LayerType.keys())
    return bool(close_names(value.upper(), names, n=1, cutoff=0.8))


# ---------------------------------------------------------------------------- nets


def parse_net(ctx: Context, scanned: SourceMap | None = None) -> NetView:
    """Parse (leniently), report syntax/schema problems, and upgrade to V2. ``scanned``:
    the positions of ``ctx.src.text``, used when no repair changed the text."""
    parser = Parser(ctx, caffe_pb2.NetParameter)
    raw = parser.parse()
    text = ctx.buf.text()
    if scanned is not None and text == ctx.src.text and scanned.path == ctx.path:
        source = scanned
    else:
        source = scan(text, ctx.path)
    if {"layer", "layers"} <= source.kinds():
        return _mixed(ctx, parser, raw, source)
    try:
        report = upgrade_net_report(raw, source=source, path=ctx.path)
    except UpgradeError as e:
        ctx.report("C2T108", e.message, e.line, e.col, help=e.hint)
        net = caffe_pb2.NetParameter()
        net.CopyFrom(raw)
        net.ClearField("layers")
        return NetView(net, list(source.blocks) if not raw.layers else [], "V2")
    for w in report.warnings:
        ctx.report("C2T109", f"Caffe's upgrade: {w}", None, None)
    if len(source.blocks) == (len(raw.layers) or len(raw.layer)):
        positions: list[LayerPos | None] = list(source.remap(report.origin).layers)
    else:
        positions = [None] * len(report.net.layer)
    for line, value in parser.v1_types:  # as io.text reads them: an unknown layer type
        for layer, pos in zip(report.net.layer, positions):
            if pos is not None and not layer.type and pos.start_line <= line <= pos.end_line:
                layer.type = value
    dialect = "V0" if "V0 -> V1" in report.steps else "V1" if "V1 -> V2" in report.steps else "V2"
    if dialect != "V2":
        _legacy(ctx, parser, source, dialect)
    return NetView(report.net, positions, dialect, report.steps)


def _legacy(ctx: Context, parser: Parser[caffe_pb2.NetParameter], source, dialect: str) -> None:
    first = source.blocks[0] if source.blocks else None
    fix = None
    if dialect == "V1":
        edits: list[Edit] = []
        for b in source.blocks:
            k = parser.rewriter.block_at(*ctx.buf.orig(b.start_line, b.start_col))
            f = parser.rewriter.v2_block(k) if k is not None else None
            if f is None and k is not None and b.kind == "layers":
                edits = []
                break
            if f is not None:
                edits.extend(f.edits)
        fix = Fix("rewrite every `layers` block as a V2 `layer` block",
                  tuple(edits)) if edits else None
    how = "--fix rewrites it in place" if fix else "`caffe2torch upgrade FILE` rewrites it"
    ctx.report("C2T604", f"the net is in the old {dialect} format, which Caffe upgrades "
               "when it reads it", *(first.start if first else (None, None)),
               help=how, fix=fix)


def _mixed(ctx: Context, parser: Parser[caffe_pb2.NetParameter], raw, source) -> NetView:
    err = mixed_error(source, ctx.path)
    edits: list[Edit] = []
    for b in source.blocks:
        if b.kind == "layers" or (b.type_token and b.type_token[:1] not in "\"'"):
            k = parser.rewriter.block_at(*ctx.buf.orig(b.start_line, b.start_col))
            f = parser.rewriter.v2_block(k) if k is not None else None
            if f is not None:
                edits.extend(f.edits)
    fix = Fix("rewrite the V1 blocks as V2 `layer` blocks", tuple(edits)) if edits else None
    ctx.report("C2T106", err.message, err.line, err.col,
               help=(err.hint or "") + " (or run `caffe2torch lint --fix FILE`)", fix=fix)
    # Check on: upgrade the V1 blocks alone, then interleave them with the V2 ones in
    # file order.
    v1 = caffe_pb2.NetParameter()
    v1.layers.extend(raw.layers)
    try:
        up = upgrade_net_report(v1)
    except UpgradeError as e:
        ctx.report("C2T108", e.message, e.line, e.col, help=e.hint)
        up = None
    v1_blocks = [b for b in source.blocks if b.kind == "layers"]
    v2_blocks = [b for b in source.blocks if b.kind == "layer"]
    net = caffe_pb2.NetParameter()
    net.CopyFrom(raw)
    net.ClearField("layers")
    net.ClearField("layer")
    positions: list[LayerPos | None] = []
    v2_iter = iter(zip(raw.layer, v2_blocks))
    if up is None or len(v1_blocks) != len(raw.layers) or len(v2_blocks) != len(raw.layer):
        for lp in (up.net.layer if up is not None else []):
            net.layer.add().CopyFrom(lp)
            positions.append(None)
        for lp in raw.layer:
            net.layer.add().CopyFrom(lp)
            positions.append(None)
    else:
        by_origin: dict[int | None, list] = {}
        for lp, o in zip(up.net.layer, up.origin):
            by_origin.setdefault(o, []).append(lp)
        v1_index = {id(b): i for i, b in enumerate(v1_blocks)}
        for b in source.blocks:
            if b.kind == "layers":
                for lp in by_origin.get(v1_index[id(b)], []):
                    net.layer.add().CopyFrom(lp)
                    positions.append(b)
            else:
                lp, blk = next(v2_iter)
                net.layer.add().CopyFrom(lp)
                positions.append(blk)
    try:
        report = upgrade_net_report(net, source=None, path=ctx.path)
    except UpgradeError as e:
        ctx.report("C2T108", e.message, e.line, e.col, help=e.hint)
        return NetView(net, positions, "mixed")
    inp = source.input_block()
    positions = [inp if o is None else positions[o] for o in report.origin]
    return NetView(report.net, positions, "mixed", report.steps)


def parse_solver(ctx: Context) -> caffe_pb2.SolverParameter:
    return Parser(ctx, caffe_pb2.SolverParameter).parse()


def fork_of_message(desc: _descriptor.Descriptor) -> str:
    """The name forks.py uses for a message descriptor ("Outer.Inner")."""
    return desc.full_name.removeprefix("caffe.")


__all__ = ["NetView", "Parser", "forks", "parse_net", "parse_solver"]
