"""``caffe2torch info``: the layer table of a net or caffemodel, per phase.

The table is a list of Column objects over LayerRow objects: a new column (output shapes,
parameter counts, FLOPs) is one more Column in the list, filled by whoever can compute it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from caffe2torch.cli import common
from caffe2torch.cli.netargs import add_proto_arg
from caffe2torch.errors import CaffeError, UsageError
from caffe2torch.ir.netstate import PHASES

if TYPE_CHECKING:  # the readers load numpy and protobuf: only when a file is read
    from caffe2torch.ir.netstate import NetState
    from caffe2torch.proto import caffe_pb2


def add_arguments(p: argparse.ArgumentParser) -> None:
    from caffe2torch.cli.netargs import (
        add_input_shape_arg,
        add_netstate_args,
        add_python_layers_arg,
        add_share_arg,
    )
    p.add_argument("file", metavar="FILE", help="net prototxt (any version) or caffemodel")
    add_proto_arg(p)
    add_netstate_args(p, None)
    p.add_argument("--weights", "--model-weights", dest="weights", metavar="W",
                   help="a caffemodel whose learned blob shapes to show beside a prototxt")
    add_input_shape_arg(p)
    add_share_arg(p)
    add_python_layers_arg(p)


DESCRIPTION = """\
List the layers of a net for each phase it declares (TRAIN, TEST), or for the --phase
given, filtered by the include/exclude rules as Caffe filters them: name, type, bottoms,
tops and, when the net can be built, the top shapes, the parameter count and the FLOPs of
each layer (FLOPs count the multiply-adds of convolutions and inner products, 2 per
multiply-accumulate). For a caffemodel, or with --weights, the shapes of the learned blobs
too.

Data tops whose shape comes from the data (an image list without new_height/new_width, an
LMDB) need --input-shape for the params and FLOPs; until then the top shapes column shows
what the prototxt alone says, with ? for the sizes that need --input-shape.

Without --phase, a phase that cannot be built because its data layers are all in the
other phase (a train-only file: they all `include { phase: TRAIN }`), or because the
layers that make what it reads are in the other phase in a file whose rules never name it
(a deploy net whose Reshapes say `include { phase: TEST }`), is not listed: one note says
why and which --phase lists it; the other phase is listed as usual.

Exit codes: 0 listed; 1 the net cannot be built in a phase listed, in the --phase asked
for, or in any phase (the reason is printed); 2 usage or I/O error (a missing file, a
solver instead of a net)."""

EXAMPLES = """\
examples:
  caffe2torch info deploy.prototxt
  caffe2torch info train_val.prototxt --phase TRAIN --input-shape data=64,1,28,28
  caffe2torch info bvlc_alexnet.caffemodel
  caffe2torch info deploy.prototxt --weights bvlc_alexnet.caffemodel"""


# ----------------------------------------------------------------------------- the table


@dataclass
class LayerRow:
    """One layer as the table sees it: ``index`` in the upgraded net, the layer message,
    and the shapes of its learned blobs when known."""

    index: int
    layer: Any
    blob_shapes: list[tuple[int, ...]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Column:
    header: str
    cell: Callable[[LayerRow], str]
    align: str = "<"


def _names(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "-"


def _shapes(row: LayerRow) -> str:
    if row.blob_shapes is None:
        return ""
    if not row.blob_shapes:
        return "-"
    return ", ".join("x".join(str(d) for d in s) if s else "scalar" for s in row.blob_shapes)


BASE_COLUMNS: list[Column] = [
    Column("#", lambda r: str(r.index), ">"),
    Column("name", lambda r: r.layer.name),
    Column("type", lambda r: r.layer.type),
    Column("bottoms", lambda r: _names(r.layer.bottom)),
    Column("tops", lambda r: _names(r.layer.top)),
]
BLOBS_COLUMN = Column("blobs", _shapes)


def _shape_list(shapes: Sequence[tuple[int, ...]]) -> str:
    return ", ".join("x".join(str(d) for d in s) if s else "scalar" for s in shapes) or "-"


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def _known_shape_list(shapes: Sequence[tuple[int | None, ...] | None]) -> str:
    return ", ".join(
        "?" if s is None else "x".join("?" if d is None else str(d) for d in s) or "scalar"
        for s in shapes
    ) or "-"


# Where the net cannot be built: the top shapes the shape pass (ir.shapes) knows from the
# prototxt alone, "?" for what it does not (LayerRow.extra["pass_shapes"]).
PASS_COLUMN = Column("top shapes", lambda r: _known_shape_list(r.extra["pass_shapes"]))

# Columns that need the built net (LayerRow.extra["stats"] is a build.stats.LayerStats).
BUILT_COLUMNS: list[Column] = [
    Column("top shapes", lambda r: _shape_list(r.extra["stats"].top_shapes)),
    Column("params", lambda r: _count(r.extra["stats"].params), ">"),
    Column("FLOPs", lambda r: _count(r.extra["stats"].flops), ">"),
]


def render_table(rows: Sequence[LayerRow], columns: Sequence[Column]) -> list[str]:
    cells = [[c.header for c in columns]] + [[c.cell(r) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    out = []
    for line in cells:
        parts = [f"{text:{c.align}{w}}" for text, c, w in zip(line, columns, widths)]
        out.append("  ".join(parts).rstrip())
    return out


# ----------------------------------------------------------------------------- loading


@dataclass
class NetInfo:
    """A net and, per layer name, the shapes of its learned blobs (when weights are known)."""

    path: str
    net: caffe_pb2.NetParameter
    blob_shapes: dict[str, list[tuple[int, ...]]] | None = None
    kind: str = "prototxt"
    source_map: Any = None


def load(path: str, weights: str | None = None, proto: Any = None) -> NetInfo:
    from caffe2torch.io.binary import blob_shape, looks_binary, read_caffemodel_arrays
    from caffe2torch.io.text import is_solver_text, read_net_with_positions, read_text

    if looks_binary(path):
        net, _ = read_caffemodel_arrays(path, proto)
        shapes = {layer.name: [blob_shape(b) for b in layer.blobs] for layer in net.layer}
        return NetInfo(path, net, shapes, "caffemodel")
    if is_solver_text(read_text(path)):
        raise UsageError(
            "this is a solver prototxt; `info` lists the layers of a net",
            path=path, hint="run `caffe2torch info` on the net file named by its `net:` field",
        )
    net, source_map = read_net_with_positions(path, proto)
    info = NetInfo(path, net, source_map=source_map)
    if weights is not None:
        wnet, _ = read_caffemodel_arrays(weights, proto)
        info.blob_shapes = {ly.name: [blob_shape(b) for b in ly.blobs] for ly in wnet.layer}
    return info


def rows_for(info: NetInfo, state: NetState) -> list[LayerRow]:
    from caffe2torch.ir.netstate import filter_layers

    rows = []
    for i in filter_layers(info.net.layer, state):
        layer = info.net.layer[i]
        shapes = None
        if info.blob_shapes is not None:
            shapes = info.blob_shapes.get(layer.name, [])
        rows.append(LayerRow(i, layer, shapes))
    return rows


def columns_for(info: NetInfo, built: bool = False, pass_shapes: bool = False) -> list[Column]:
    return (
        BASE_COLUMNS
        + (BUILT_COLUMNS if built else [PASS_COLUMN] if pass_shapes else [])
        + ([BLOBS_COLUMN] if info.blob_shapes is not None else [])
    )


def attach_pass_shapes(
    info: NetInfo, rows: list[LayerRow], shapes: dict[str, list[int]] | None
) -> bool:
    """Put on each row the top shapes the torch-free shape pass knows (with the
    --input-shape shapes); whether it knows any dimension at all."""
    from caffe2torch.ir.shapes import infer

    res = infer(info.net.layer, [r.index for r in rows], shapes)
    for row in rows:
        row.extra["pass_shapes"] = res.tops.get(row.index, [])
    return any(s is not None and any(d is not None for d in s)
               for tops in res.tops.values() for s in tops)


def attach_stats(
    info: NetInfo, state: NetState, rows: list[LayerRow], shapes: dict[str, list[int]] | None,
    share: str | None = "declared", options: dict[str, Any] | None = None,
) -> tuple[int, int] | CaffeError:
    """Build the net for ``state`` and put each layer's statistics on its row; returns the
    totals (unique params, FLOPs), or why the net could not be built."""
    from caffe2torch.graph import build_net
    from caffe2torch.graph.stats import net_stats, unique_param_count

    try:
        net = build_net(info.net, state, input_shapes=shapes, share=share,
                        source_map=info.source_map, options=options)
    except CaffeError as err:
        return err
    by_index = {s.index: s for s in net_stats(net)}
    for row in rows:
        row.extra["stats"] = by_index[row.index]
    return unique_param_count(net), sum(s.flops for s in by_index.values())


def needs_data(err: CaffeError) -> bool:
    """Whether a build failed only because a data top's shape depends on the data (a list
    file's first image, an LMDB), which --input-shape gives: not a fault of the net."""
    # (an unknown bottom's hint names --input-shape too: that is the net's fault)
    return err.code != "C2T201" and "--input-shape" in (err.hint or "")


def _missing_bottoms(info: NetInfo, rows: Sequence[LayerRow]) -> list[str]:
    """The bottoms of a state's layers that no earlier layer of the state makes."""
    made: set[str] = set(info.net.input)
    missing = []
    for row in rows:
        missing += [b for b in row.layer.bottom if b not in made]
        made.update(row.layer.top)
    return missing


def has_no_data(info: NetInfo, rows: Sequence[LayerRow], err: CaffeError) -> bool:
    """Whether a phase failed (C2T201, an unknown bottom) only because its data comes from
    data layers of another phase: every bottom that no earlier layer of the phase makes is
    made in the file by a layer that reads nothing (a data or Input layer) and is not in
    the phase, as in a train-only file whose data layers all say ``include { phase: TRAIN }``."""
    if err.code != "C2T201":
        return False
    in_phase = {r.index for r in rows}
    sources = {top: i for i, layer in enumerate(info.net.layer) if len(layer.bottom) == 0
               for top in layer.top}
    missing = _missing_bottoms(info, rows)
    return bool(missing) and all(b in sources and sources[b] not in in_phase for b in missing)


def made_by_other_phase(info: NetInfo, state: NetState, rows: Sequence[LayerRow],
                        err: CaffeError) -> list[str]:
    """The layers of the other phase that a phase lacks, when that alone stops its build
    (C2T201) in a file whose rules never name this phase: every bottom no earlier layer of
    the phase makes is made by a layer outside it, as in LRCN's deploy_lstm.prototxt, whose
    Reshapes before the LSTM say ``include { phase: TEST }`` and nothing names TRAIN. Empty
    otherwise (a train_val net, whose rules name both phases, keeps its error)."""
    if err.code != "C2T201":
        return []
    if any(rule.HasField("phase") and PHASES[rule.phase] == state.phase
           for layer in info.net.layer for rule in list(layer.include) + list(layer.exclude)):
        return []
    in_phase = {r.index for r in rows}
    makers: dict[str, int] = {}
    for i, layer in enumerate(info.net.layer):
        for top in layer.top:
            makers.setdefault(top, i)
    missing = _missing_bottoms(info, rows)
    if not missing or not all(b in makers and makers[b] not in in_phase for b in missing):
        return []
    return list(dict.fromkeys(info.net.layer[makers[b]].name for b in missing))


@dataclass
class PhaseTable:
    """One state's rows and the totals of its build, or why it cannot be built."""

    state: NetState
    rows: list[LayerRow]
    totals: tuple[int, int] | CaffeError


def _label(state: NetState) -> str:
    label = f"phase {state.phase}"
    if state.level:
        label += f", level {state.level}"
    if state.stages:
        label += f", stages {', '.join(state.stages)}"
    return label


def _skip_note(table: PhaseTable, others: Sequence[str], makers: Sequence[str]) -> str:
    """Why a phase is not listed: its data layers are another phase's, or (``makers``) the
    layers that make what it reads are another phase's in a file that never names it."""
    err = table.totals
    assert isinstance(err, CaffeError)
    phase = table.state.phase
    only = "/".join(others)
    if makers:
        names = ", ".join(f"'{m}'" for m in makers)
        why = (f"no rule of the file names {phase} and the layers that make what it reads "
               f"({names}) are in another phase only")
    else:
        why = "its data layers are in another phase only"
    return (f"note: phase {phase} not listed: {why}, so it cannot be built ({err.message}); "
            f"this looks like a {only}-only file. --phase {phase} lists that phase anyway, "
            f"--phase {others[0]} the {others[0]} phase alone")


def print_info(
    info: NetInfo,
    states: Sequence[NetState],
    stream: TextIO,
    input_shapes: dict[str, list[int]] | None = None,
    share: str | None = "declared",
    guessed: bool = False,
    options: dict[str, Any] | None = None,
) -> list[CaffeError]:
    """Print the table of each state; returns the build errors of the states whose net
    cannot be built. ``guessed``: the states are the phases the file declares, not ones the
    user asked for; then a phase whose data is another phase's (``has_no_data``) gets one note
    instead of a table and no error, as long as another phase is listed."""
    failed: list[CaffeError] = []
    name = info.net.name or "(unnamed)"
    print(f"{info.path}: net {name!r}, {len(info.net.layer)} layers ({info.kind})", file=stream)
    tables = []
    for state in states:
        rows = rows_for(info, state)
        tables.append(PhaseTable(state, rows, attach_stats(info, state, rows, input_shapes,
                                                           share, options)))
    makers: dict[int, list[str]] = {}
    skipped = []
    for k, t in enumerate(tables):
        if not guessed or not isinstance(t.totals, CaffeError):
            continue
        if has_no_data(info, t.rows, t.totals):
            skipped.append(t)
        elif names := made_by_other_phase(info, t.state, t.rows, t.totals):
            skipped.append(t)
            makers[k] = names
    if len(skipped) == len(tables):  # no phase has data: show them all, each an error
        skipped = []
    listed = [t.state.phase for t in tables if t not in skipped]
    for k, table in enumerate(tables):
        if table in skipped:
            print(f"\n{_skip_note(table, listed, makers.get(k, []))}", file=stream)
            continue
        rows, totals = table.rows, table.totals
        built = not isinstance(totals, CaffeError)
        known = not built and attach_pass_shapes(info, rows, input_shapes)
        print(f"\n{_label(table.state)}: {len(rows)} layers", file=stream)
        for line in render_table(rows, columns_for(info, built, known)):
            print(f"  {line}", file=stream)
        if isinstance(totals, CaffeError):
            why = f"{totals.message}; {totals.hint}" if totals.hint else totals.message
            print(f"  (no {'' if known else 'shapes, '}params or FLOPs: {why})", file=stream)
            if known and any("?" in PASS_COLUMN.cell(r) for r in rows):
                print("  note: shapes marked ? need --input-shape" if needs_data(totals)
                      else "  note: shapes marked ? are not known from the prototxt alone",
                      file=stream)
            if info.kind == "prototxt" and not needs_data(totals):
                # (a caffemodel's layers are there for their weights: a deploy model
                # often lacks the input layer, so its build failing is no fault)
                failed.append(totals)
        else:
            params, flops = totals
            print(f"  total: {params:,} params, {flops:,} FLOPs per forward", file=stream)
    return failed


def run(args: argparse.Namespace) -> int:
    from caffe2torch.cli.netargs import (
        build_options,
        check_shape_names,
        input_shapes,
        share_option,
    )
    from caffe2torch.ir.netstate import NetState, declared_phases

    shapes = input_shapes(args.input_shape)
    info = load(args.file, args.weights, args.proto)
    check_shape_names(shapes, info.net, args.file)
    if shapes:  # a blob the file only reads becomes a listed input (as the build declares it)
        from caffe2torch.ir.loose import declare_read_blobs

        info.net, info.source_map = declare_read_blobs(info.net, shapes, info.source_map)
    phases = [args.phase] if args.phase else declared_phases(info.net.layer)
    states = [NetState.of(ph, args.level, args.stage) for ph in phases]
    failed = print_info(info, states, sys.stdout, shapes, share_option(args),
                        guessed=not args.phase, options=build_options(args))
    for err in failed:
        if err.path is None:
            err.path = args.file
        common.report(err)
    return common.FAILED if failed else common.OK
