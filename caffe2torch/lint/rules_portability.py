"""Portability: what BVLC Caffe itself would not read (fork layer types, fork fields and
enum values), and layers that need code outside the file (Python)."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

from caffe2torch.lint.context import Context
from caffe2torch.lint.parse import NetView
from caffe2torch.proto import forks


def fork_fields(msg, prefix: str = ""):
    """(dotted path, fork, what) for every fork-only field or enum value set in ``msg``."""
    name = msg.DESCRIPTOR.full_name.removeprefix("caffe.")
    for fd, value in msg.ListFields():
        path = f"{prefix}.{fd.name}" if prefix else fd.name
        fork = forks.fork_of_field(name, fd.name)
        if fork is not None:
            yield path, fork, f'field "{fd.name}" of {name}'
            continue
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            for v in (value if fd.is_repeated else [value]):
                yield from fork_fields(v, path)
        elif fd.type == FieldDescriptor.TYPE_ENUM:
            ename = fd.enum_type.full_name.removeprefix("caffe.")
            added = forks.FORK_ENUM_VALUES.get(ename, {})
            for v in (value if fd.is_repeated else [value]):
                vname = fd.enum_type.values_by_number[v].name
                if vname in added:
                    yield path, added[vname], f"value {vname} of {ename}"


def check_portability(ctx: Context, view: NetView) -> None:
    """One finding per fork type and per fork field (at its first use, with the count)."""
    types: dict[str, list[int]] = {}
    fields: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for i, lp in enumerate(view.layers):
        type_fork = forks.fork_of_layer_type(lp.type)
        if type_fork is not None:
            types.setdefault(lp.type, []).append(i)
        if lp.type == "Python":
            p = lp.python_param
            ctx.report("C2T603", f"layer '{lp.name}' runs Python code ({p.module or '?'}."
                       f"{p.layer or '?'})", *view.pos(i, "type"), layer=lp.name,
                       help="the module must be importable where the net runs")
        for path, fork, what in fork_fields(lp):
            if type_fork is not None and fork in type_fork:
                continue  # part of the fork type reported below
            fields.setdefault((what, fork), []).append((i, path))
    for type_, where in types.items():
        i = where[0]
        lp = view.layers[i]
        more = f" (and {len(where) - 1} more layers)" if len(where) > 1 else ""
        ctx.report("C2T601", f"layer '{lp.name}'{more}: type \"{type_}\" is defined by "
                   f"{forks.fork_of_layer_type(type_)}, not by BVLC Caffe",
                   *view.pos(i, "type"), layer=lp.name,
                   help="BVLC Caffe cannot read this net; caffe2torch can")
    for (what, fork), sites in fields.items():
        i, path = sites[0]
        lp = view.layers[i]
        more = f" (and {len(sites) - 1} more layers)" if len(sites) > 1 else ""
        ctx.report("C2T602", f"layer '{lp.name}'{more}: {what} is defined by {fork}, not by "
                   "BVLC Caffe", *view.pos(i, path), layer=lp.name,
                   help="BVLC Caffe rejects the file; caffe2torch reads it")
