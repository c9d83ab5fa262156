"""Weights rules (--weights): does the caffemodel fit the net? Caffe copies blobs by layer
name and stops on a shape mismatch (Net::CopyTrainedLayersFrom)."""

from __future__ import annotations

from caffe2torch.errors import CaffeError
from caffe2torch.ir.shapes import Shape, prod
from caffe2torch.lint.context import Context
from caffe2torch.lint.parse import NetView


def _strip(s: tuple) -> tuple:
    """Legacy 4-D blobs pad shapes with leading 1s (Blob::ShapeEquals)."""
    s = tuple(s)
    while len(s) > 1 and s[0] == 1:
        s = s[1:]
    return s


def _expected(lp, bottom: Shape | None) -> list[tuple[int | None, ...]] | None:
    t = lp.type
    if t == "InnerProduct":
        p = lp.inner_product_param
        k = None
        if bottom is not None:
            axis = p.axis if p.axis >= 0 else len(bottom) + p.axis
            k = prod(bottom[axis:])
        w = (k, p.num_output) if p.transpose else (p.num_output, k)
        return [w, (p.num_output,)] if p.bias_term else [w]
    if t in ("Convolution", "Deconvolution"):
        p = lp.convolution_param
        c = bottom[1] if bottom is not None and len(bottom) > 1 else None
        g = p.group or 1
        kk = list(p.kernel_size) or [p.kernel_h, p.kernel_w]
        if len(kk) == 1:
            kk = kk * 2
        if t == "Convolution":
            w = (p.num_output, None if c is None else c // g, *kk)
        else:
            w = (c, p.num_output // g, *kk)
        return [w, (p.num_output,)] if p.bias_term else [w]
    return None


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
