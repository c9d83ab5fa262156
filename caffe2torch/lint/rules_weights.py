"""Weights rules (--weights): does the caffemodel fit the net? Caffe copies blobs by layer
name and stops on a shape mismatch (Net::CopyTrainedLayersFrom)."""

from __future__ import annotations

from caffe2torch.errors import CaffeError
from caffe2torch.ir.shapes import Shape, param_shapes
from caffe2torch.lint.context import Context
from caffe2torch.lint.parse import NetView


def _strip(s: tuple) -> tuple:
    """Legacy 4-D blobs pad shapes with leading 1s (Blob::ShapeEquals)."""
    s = tuple(s)
    while len(s) > 1 and s[0] == 1:
        s = s[1:]
    return s


def _expected(lp, bottom: Shape | None) -> list[Shape | None] | None:
    """The param shapes of an InnerProduct or (De)Convolution (ir.shapes.param_shapes); an
    unknown bottom counts as 4-D (N, C, H, W) of unknown sizes, so that num_output and the
    kernel are still checked."""
    if lp.type not in ("InnerProduct", "Convolution", "Deconvolution"):
        return None
    return param_shapes(lp, [bottom if bottom is not None else (None,) * 4])


def check_weights(ctx: Context, view: NetView, bottoms: dict[int, list]) -> None:
    path = ctx.options.weights
    if not path:
        return
    from caffe2torch.io.binary import blob_shape, read_caffemodel  # numpy: only with --weights

    try:
        model = read_caffemodel(path)
    except CaffeError as e:
        ctx.report("C2T402", f"cannot read weights '{path}': {e.message}", None, None,
                   help=e.hint or "give a binary .caffemodel")
        return
    stored = {lp.name: lp for lp in model.layer if lp.blobs}
    for i, lp in enumerate(view.layers):
        src = stored.get(lp.name)
        if src is None:
            continue
        b = bottoms.get(i, [None])
        want = _expected(lp, b[0] if b else None)
        if want is None:
            continue
        for j, (w, blob) in enumerate(zip(want, src.blobs)):
            if w is None:  # the settings cannot be read (the build says why)
                continue
            have = blob_shape(blob)
            ws, hs = _strip(w), _strip(have)
            if len(ws) != len(hs) or any(x is not None and x != y for x, y in zip(ws, hs)):
                shown = "x".join("?" if x is None else str(x) for x in w)
                ctx.report(
                    "C2T401", f"{lp.type} '{lp.name}' param {j} should be {shown} here but "
                    f"the caffemodel has {'x'.join(map(str, have))}: Caffe stops ('Cannot "
                    "copy param ... shape mismatch')", *view.pos(i), layer=lp.name,
                    help="the net's input size or num_output differs from the one the "
                    "weights were trained with; rename the layer to train it from scratch")
                break
