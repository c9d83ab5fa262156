"""Metric-learning rules: paired data layers (shuffle, and with --check-data their list
files), ReLU/Dropout right before a pairwise loss, shared params that disagree, and twin
branches that share nothing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from caffe2torch.errors import DataError
from caffe2torch.ir.pairs import LIST_DATA as _LIST_DATA
from caffe2torch.ir.pairs import PAIRWISE, feeding_data
from caffe2torch.ir.pairs import batch_size as _batch_size
from caffe2torch.layers.typeinfo import find_type_info
from caffe2torch.lint.context import Context
from caffe2torch.lint.parse import NetView
from caffe2torch.lint.states import StateView, phases_text

if TYPE_CHECKING:
    from caffe2torch.data.listfile import ListEntry

_SQUASH = frozenset({"ReLU", "Dropout"})


def check_metric(ctx: Context, view: NetView, states: list[StateView]) -> None:
    layers = view.layers
    pairwise = any(lp.type in PAIRWISE for lp in layers)
    shuffled: dict[int, list[str]] = {}
    squashed: dict[tuple[int, int], list[str]] = {}
    for sv in states:
        data = [i for i in sv.indices if layers[i].type in _LIST_DATA]
        if pairwise and len(data) >= 2:
            for i in data:
                if getattr(layers[i], _LIST_DATA[layers[i].type]).shuffle:
                    shuffled.setdefault(i, []).append(sv.label)
        if ctx.options.check_data:
            _check_lists(ctx, view, [i for i in data if layers[i].type == "ImageData"],
                         _towers(layers, sv.indices))
        for i in sv.indices:
            if layers[i].type == "ContrastiveLoss":
                for k in _squashing_layers(layers, sv.indices, i):
                    squashed.setdefault((k, i), []).append(sv.label)
        if pairwise:
            _twins(ctx, view, sv)
    others = [layers[i].name for i in shuffled]
    for i, phases in shuffled.items():
        lp = layers[i]
        pname = _LIST_DATA[lp.type]
        paired = [k for k in range(len(layers)) if layers[k].type in _LIST_DATA and k != i]
        names = ', '.join(repr(layers[k].name) for k in paired) or 'the others'
        if _same_batch(layers, [i, *paired]):
            # our DataFeeder reads data layers of one batch size as one aligned group with
            # one shared shuffle; BVLC Caffe permutes each layer's list on its own
            ctx.report("C2T320", f"data layer '{lp.name}' shuffles its list: in BVLC Caffe "
                       f"each data layer shuffles on its own, so its pairs with {names} would "
                       f"misalign in {phases_text(phases)}; caffe2torch shuffles paired "
                       "data layers together, so here they stay aligned",
                       *view.pos(i, f"{pname}.shuffle"), layer=lp.name, phases=tuple(phases),
                       severity="info", help="to train this net in BVLC Caffe too, set "
                       "shuffle: false and shuffle the pair lists together offline")
            continue
        ctx.report("C2T320", f"data layer '{lp.name}' shuffles its list while the paired data "
                   f"layers ({', '.join(repr(n) for n in others if n != lp.name) or names}) "
                   f"have another batch_size, so they are read independently (in BVLC Caffe "
                   f"and in caffe2torch) in {phases_text(phases)}: pairs would misalign",
                   *view.pos(i, f"{pname}.shuffle"), layer=lp.name,
                   phases=tuple(phases), help="give the paired data layers one batch_size, "
                   "or set shuffle: false and shuffle the pair lists together offline")
    for (k, i), phases in squashed.items():
        lp, loss = layers[k], layers[i]
        what = "clips the embedding to >= 0" if lp.type == "ReLU" else \
            "zeroes random embedding dimensions, differently in each branch"
        ctx.report("C2T324", f"{lp.type} '{lp.name}' is applied right before the "
                   f"ContrastiveLoss '{loss.name}' embedding '{lp.top[0]}': it {what}",
                   *view.pos(k), layer=lp.name, phases=tuple(phases),
                   help="feed the loss the output of the last InnerProduct; move the "
                   f"{lp.type} before it or delete it")


def _same_batch(layers, indices: list[int]) -> bool:
    return len({_batch_size(layers[k]) for k in indices}) == 1


def _squashing_layers(layers, indices, loss_i: int) -> list[int]:
    """ReLU/Dropout layers at the end of the in-place chain that writes each embedding."""
    out = []
    before = [i for i in indices if i < loss_i]
    for blob in list(layers[loss_i].bottom)[:2]:
        for k in reversed(before):
            lp = layers[k]
            if blob not in lp.top:
                continue
            in_place = blob in lp.bottom
            if lp.type in _SQUASH:
                out.append(k)
            if not in_place:
                break
    return out


def _branch(layers, indices, blob: str, at: int) -> list[int]:
    """Learnable layers on the way from the data to ``blob`` (as read by layer ``at``)."""
    out: list[int] = []
    seen = set()
    todo = [(blob, at)]
    order = [i for i in indices]
    while todo:
        b, pos = todo.pop()
        writer = next((k for k in reversed(order) if k < pos and b in layers[k].top), None)
        if writer is None or (b, writer) in seen:
            continue
        seen.add((b, writer))
        spec = find_type_info(layers[writer].type)
        if spec is not None and spec.blobs and writer not in out:
            out.append(writer)
        todo.extend((x, writer) for x in layers[writer].bottom)
    return sorted(out)


def _twins(ctx: Context, view: NetView, sv: StateView) -> None:
    layers = view.layers
    for i in sv.indices:
        lp = layers[i]
        if lp.type != "ContrastiveLoss" or len(lp.bottom) < 2:
            continue
        a = _branch(layers, sv.indices, lp.bottom[0], i)
        b = _branch(layers, sv.indices, lp.bottom[1], i)
        if not a or len(a) != len(b) or set(a) & set(b):
            continue
        if [layers[k].type for k in a] != [layers[k].type for k in b]:
            continue
        shared = any({p.name for p in layers[x].param if p.name}
                     & {p.name for p in layers[y].param if p.name} for x, y in zip(a, b))
        if shared:
            continue
        pairs = ", ".join(f"{layers[x].name}/{layers[y].name}" for x, y in list(zip(a, b))[:3])
        ctx.report("C2T326", f"the branches feeding ContrastiveLoss '{lp.name}' ('{lp.bottom[0]}'"
                   f" and '{lp.bottom[1]}') have {len(a)} learnable layers alike but share no "
                   f"weights ({pairs}, ...)", *view.pos(i), layer=lp.name, phases=(sv.label,),
                   help='give each pair the same `param { name: "..." }` (one per blob) so the '
                   "twins share weights")


# ---------------------------------------------------------------------------- --check-data


def _resolve(ctx: Context, source: str) -> str | None:
    candidates = [source]
    if ctx.path and not os.path.isabs(source):
        candidates.append(os.path.join(os.path.dirname(ctx.path), source))
    return next((c for c in candidates if os.path.isfile(c)), None)


def _read_list(path: str, shown: str) -> tuple[list[ListEntry], list[DataError]]:
    """The list's lines as the ImageData reader takes them (data.listfile: split at the
    last space, atoi labels), and its bad lines. (Imported here: the data package loads
    torch, which lint without --check-data does not need.)"""
    from caffe2torch.data.listfile import scan_list_text

    with open(path, "rb") as f:
        return scan_list_text(f.read().decode("utf-8", "surrogateescape"), shown)


def _missing_images(ctx: Context, view: NetView, i: int, src: str,
                    rows: list[ListEntry]) -> None:
    """ImageDataLayer opens root_folder + name relative to the working directory; a name
    that is not there stops Caffe ('Could not open or find file')."""
    lp = view.layers[i]
    root = lp.image_data_param.root_folder
    base = os.path.dirname(ctx.path) if ctx.path else ""
    missing = []
    for row in rows:
        n, path = row.line, root + row.name
        if not (os.path.isfile(path) or (base and not os.path.isabs(path)
                                         and os.path.isfile(os.path.join(base, path)))):
            missing.append((n, path))
    if missing:
        n, path = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        ctx.report("C2T327", f"data layer '{lp.name}': list '{src}' names images that do not "
                   f"exist: line {n}, '{path}'{more}", *view.pos(i, "image_data_param.source"),
                   layer=lp.name, help="paths are opened as root_folder + name, relative to "
                   "the folder Caffe runs in; fix the list or root_folder")


def _pair_labels(ctx: Context, view: NetView, i: int, src: str,
                 rows: list[ListEntry]) -> None:
    """ContrastiveLoss reads the pair label as similar (non-zero) or not (0): a class label
    in a pair list silently counts as 'similar'."""
    lp = view.layers[i]
    bad = [(row.line, row.label) for row in rows if row.label not in (0, 1)]
    if bad:
        n, label = bad[0]
        more = f" (and {len(bad) - 1} more lines)" if len(bad) > 1 else ""
        ctx.report("C2T328", f"line {n} of pair list '{src}' has label {label}, not 0 or 1"
                   f"{more}: ContrastiveLoss counts any non-zero label as 'similar'",
                   *view.pos(i, "image_data_param.source"), layer=lp.name,
                   help="pair lists end in the pair label: 1 same class, 0 different "
                   "(`caffe2torch pairs` writes them from class folders)")


def _towers(layers, indices) -> set[int]:
    """The data layers (net indices) that feed a ContrastiveLoss of the state."""
    state = [layers[i] for i in indices]
    return {indices[d] for pos, lp in enumerate(state) if lp.type == "ContrastiveLoss"
            for d in feeding_data(state, list(lp.bottom), pos)}


def _check_lists(ctx: Context, view: NetView, data: list[int], towers: set[int]) -> None:
    layers = view.layers
    lists = []
    for i in data:
        src = layers[i].image_data_param.source
        found = _resolve(ctx, src)
        pos = view.pos(i, "image_data_param.source")
        if found is None:
            ctx.report("C2T323", f"data layer '{layers[i].name}': cannot open list file "
                       f"'{src}' (relative to the current folder or the net's folder)", *pos,
                       layer=layers[i].name, help="check the path; Caffe opens it relative "
                       "to the folder it runs in")
            continue
        rows, problems = _read_list(found, src)
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more lines)" if len(problems) > 1 else ""
            ctx.report("C2T323", f"data layer '{layers[i].name}': list '{src}' line "
                       f"{first.line}: {first.message}{more}", *pos, layer=layers[i].name,
                       help=first.hint or "every line is 'path label', split at the last space")
        _missing_images(ctx, view, i, src, rows)
        if not problems:  # rows compared by position only where every line was read
            lists.append((i, src, rows))
    if len(lists) < 2:
        return
    for i, src, rows in lists:
        if i in towers:
            _pair_labels(ctx, view, i, src, rows)
    if len({_batch_size(layers[i]) for i in data}) > 1:
        # of different batch sizes, the data layers are read each on its own (by the
        # DataFeeder as by Caffe): rows are not compared. Towers of one pairwise loss
        # with different sizes are C2T330 (ir.pairs).
        return
    i0, src0, rows0 = lists[0]
    for i, src, rows in lists[1:]:
        pos = view.pos(i, "image_data_param.source")
        name = layers[i].name
        if len(rows) != len(rows0):
            ctx.report("C2T321", f"list '{src}' of '{name}' has {len(rows)} lines but "
                       f"'{src0}' of '{layers[i0].name}' has {len(rows0)}: pairs misalign",
                       *pos, layer=name, help="write both lists from one list of pairs")
        bad = [n for n, (x, y) in enumerate(zip(rows0, rows), 1) if x.label != y.label]
        if bad:
            n = bad[0]
            more = f" (and {len(bad) - 1} more lines)" if len(bad) > 1 else ""
            ctx.report("C2T322", f"line {n}: '{src0}' gives label {rows0[n - 1].label} but "
                       f"'{src}' gives {rows[n - 1].label}{more}", *pos, layer=name,
                       help="both lists must carry the pair's label on the same line")
