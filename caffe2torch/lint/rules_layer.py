"""Layer rules: known type, bottom/top counts (the registry's arity), required settings,
parameter blocks the type ignores, and the shape checks (kernel vs input, Concat/Eltwise)."""

from __future__ import annotations

from caffe2torch.ir import shapes as _shapes
from caffe2torch.ir.settings import missing_settings
from caffe2torch.layers.typeinfo import find_type_info
from caffe2torch.lint.context import Context
from caffe2torch.lint.parse import NetView
from caffe2torch.lint.states import StateView, phases_text
from caffe2torch.proto import forks

# Parameter blocks a type reads besides the registry's ``param``.
_ALSO_READS = {
    "SoftmaxWithLoss": {"softmax_param"},
    "Accuracy": {"loss_param"},
    "Scale": {"bias_param"},
}


def check_layers(ctx: Context, view: NetView) -> None:
    """Settings rules of each known type (its type and blob counts are ir's: rules_init)."""
    for i, lp in enumerate(view.layers):
        spec = find_type_info(lp.type)
        if spec is None or lp.type == "Python":
            continue
        nb, nt = len(lp.bottom), len(lp.top)
        if spec.tops.accepts(nt) and lp.type in ("Convolution", "Deconvolution") \
                and nt != nb and nb:
            ctx.report("C2T303", f"{lp.type} layer '{lp.name}' makes one top per bottom: "
                       f"{nb} bottom(s) but {nt} top(s)", *view.pos(i), layer=lp.name)
        _required(ctx, view, i, lp)
        _ignored_params(ctx, view, i, lp, spec)


def _required(ctx: Context, view: NetView, i: int, lp) -> None:
    blk = view.positions[i] if i < len(view.positions) else None
    if blk is not None and ctx.repaired_within(blk.start_line, blk.end_line):
        return
    for found in missing_settings(lp):  # C2T307: the rule the builder raises too
        ctx.report(found.code, found.summary, *view.pos(i), layer=lp.name, help=found.hint)


def _ignored_params(ctx: Context, view: NetView, i: int, lp, spec) -> None:
    reads = {spec.param} | _ALSO_READS.get(lp.type, set())
    if spec.data:
        reads.add("transform_param")
    if spec.loss:
        reads.add("loss_param")
    for fd, _ in lp.ListFields():
        name = fd.name
        if not name.endswith("_param") or name in reads or (name == "transform_param" and \
                lp.type in ("Data", "ImageData", "WindowData", "MemoryData")):
            continue
        if forks.fork_of_field("LayerParameter", name) is not None:
            continue  # a fork's extra block: reported as portability, not here
        ctx.report("C2T308", f"{lp.type} layer '{lp.name}' has a {name} block, which "
                   f"{lp.type} ignores", *view.pos(i, name), layer=lp.name,
                   help=(f"{lp.type} reads `{spec.param} {{ }}`: move the settings there or "
                         "delete the block") if spec.param else "delete the block")


def check_shapes(ctx: Context, view: NetView, states: list[StateView]) -> dict[int, list]:
    """Shape findings of every state (reported once, naming the phases); returns the
    bottom shapes of each layer (the TEST state's where a layer is in both)."""
    layers = view.layers
    found: dict[tuple[str, int, str], tuple[_shapes.ShapeIssue, list[str]]] = {}
    bottoms: dict[int, list] = {}
    for sv in states:
        res = _shapes.infer(layers, sv.indices)
        for i, b in res.bottoms.items():
            if i not in bottoms or sv.state.phase == "TEST":
                bottoms[i] = b
        for issue in res.issues:
            key = (issue.code, issue.layer, issue.message)
            found.setdefault(key, (issue, []))[1].append(sv.label)
    for issue, phases in found.values():
        lp = layers[issue.layer]
        ctx.report(issue.code, f"{issue.message} in {phases_text(phases)}",
                   *view.pos(issue.layer, issue.field), layer=lp.name, phases=tuple(phases),
                   severity=issue.severity, help=_shape_help(issue.code))
    return bottoms


def _shape_help(code: str) -> str | None:
    return {
        "C2T304": "reduce the kernel or add padding, or check the input size",
        "C2T305": "make the bottoms agree on every axis except the concat axis",
        "C2T306": "make the bottoms the same shape (a Crop or Reshape before the Eltwise?)",
    }.get(code)
