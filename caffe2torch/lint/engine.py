"""Run every rule family on one file and return its findings, sorted by place."""

from __future__ import annotations

import os

from caffe2torch.io.positions import scan
from caffe2torch.io.text import (
    is_solver_source,
    is_solver_text,
    normalize_newlines,
    read_text,
    refuse_file_list,
)
from caffe2torch.limits import check_text
from caffe2torch.lint.context import Context, Options
from caffe2torch.lint.diagnostic import Diagnostic
from caffe2torch.lint.parse import parse_net, parse_solver
from caffe2torch.lint.rules_graph import check_graph
from caffe2torch.lint.rules_init import check_net_init
from caffe2torch.lint.rules_layer import check_layers, check_shapes
from caffe2torch.lint.rules_metric import check_metric
from caffe2torch.lint.rules_portability import check_portability
from caffe2torch.lint.rules_weights import check_weights
from caffe2torch.lint.states import net_states


def lint_text(text: str, path: str | None = None, options: Options | None = None,
              ) -> list[Diagnostic]:
    """Findings for a net or solver prototxt given as text."""
    text = normalize_newlines(text)
    check_text(text, path)  # a million layers: refused before the work starts
    refuse_file_list(text, path)  # an image list: one message, not one per token
    ctx = Context(path, text, options)
    if ctx.options.proto:
        ctx.fork_fields = _fork_fields(text, path, ctx.options.proto)
    source = scan(ctx.src.text, path)  # the net's layer positions too, when it parses as is
    if is_solver_source(source):
        from caffe2torch.lint.rules_solver import check_solver  # nets, the most linted, skip it

        check_solver(ctx, parse_solver(ctx))
    else:
        view = parse_net(ctx, source)
        states = net_states(view.layers)
        broken = check_net_init(ctx, view, states)
        check_graph(ctx, view, states, broken)
        check_layers(ctx, view)
        bottoms = check_shapes(ctx, view, states)
        check_metric(ctx, view, states)
        check_portability(ctx, view)
        check_weights(ctx, view, bottoms)
    return sorted(ctx.diagnostics, key=Diagnostic.sort_key)


def _fork_fields(text: str, path: str | None, proto: str) -> set[tuple[int, int]]:
    """Where the fields that only the fork's schema defines are written (a .proto that
    does not compile raises ParseError)."""
    from caffe2torch.errors import CaffeError
    from caffe2torch.io.fork_schema import load_schema
    from caffe2torch.io.text import net_from_text

    schema = load_schema(proto)
    if is_solver_text(text):
        return set()
    try:
        _, source, _ = net_from_text(text, path, schema)
    except CaffeError:
        return set()  # the file has errors of its own: the rules below report them
    return {(e.line, e.col) for e in source.extras if e.typed and e.line is not None}


def lint_file(path: str | os.PathLike[str], options: Options | None = None,
              ) -> list[Diagnostic]:
    """Findings for a prototxt file; a file that cannot be read raises ParseError."""
    p = os.fspath(path)
    return lint_text(read_text(p), p, options)


def lint(
    path: str | os.PathLike[str],
    *,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    check_data: bool = False,
    weights: str | None = None,
    proto: str | os.PathLike[str] | None = None,
) -> list[Diagnostic]:
    """``caffe2torch.lint(path)``: the findings for one net or solver prototxt; ``proto``:
    the caffe.proto of the fork the net was written for."""
    opts = Options(select=list(select or []), ignore=list(ignore or []),
                   check_data=check_data, weights=weights,
                   proto=os.fspath(proto) if proto is not None else None)
    return lint_file(path, opts)
