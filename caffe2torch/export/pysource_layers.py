"""Standalone source for the BVLC layers beyond the common ones: ArgMax, Embed, MVN, SPP,
Im2col, the recurrent layers (RNN, LSTM, LSTMUnit), DummyData and Parameter."""

from __future__ import annotations

from caffe2torch.export.pysource import Emit, emitter, num, pool_expr, tup
from caffe2torch.layers.bvlc import blob_ops, inputs, normalization, recurrent, vision


@emitter(blob_ops.CaffeArgMax)
def _argmax(e: Emit) -> list[str]:
    m = e.module
    return e.assign(e.call("caffe_argmax", f"{e.bottoms[0]}, {m.top_k}, {m.out_max_val}, {m.axis}"))


@emitter(vision.CaffeEmbed)
def _embed(e: Emit) -> list[str]:
    y = f"F.embedding({e.bottoms[0]}.long(), {e.param(0, 'weight')})"  # int(x): truncation
    if len(e.module.blobs) > 1:
        y = f"{y} + {e.param(1, 'bias')}"
    return e.assign(y)


@emitter(normalization.CaffeMVN)
def _mvn(e: Emit) -> list[str]:
    m = e.module
    args = f"{e.bottoms[0]}, {m.across_channels}, {m.normalize_variance}, {num(m.eps)}"
    return e.assign(e.call("caffe_mvn", args))


@emitter(vision.CaffeSPP)
def _spp(e: Emit) -> list[str]:
    """One Caffe pooling per pyramid level (kernel = stride = ceil(size / 2^level)),
    flattened and concatenated; the level sizes are fixed by the net's input shape."""
    m = e.module
    if m.method not in (vision.MAX, vision.AVE):
        raise e.unsupported("STOCHASTIC spatial pyramid pooling")
    method = "MAX" if m.method == vision.MAX else "AVE"
    x = e.bottoms[0]
    size = tuple(e.bottom_shapes[0][2:4])
    levels = []
    for level in range(m.pyramid_height):
        kernel, pad = vision.spp_level_geometry((size[0], size[1]), level)
        levels.append(pool_expr(e, x, method, kernel, kernel, pad))
    if m.pyramid_height == 1:
        return e.assign(levels[0])
    return e.assign(f"torch.cat([{', '.join(p + '.flatten(1)' for p in levels)}], dim=1)")


@emitter(vision.CaffeIm2col)
def _im2col(e: Emit) -> list[str]:
    m = e.module
    g = m.geometry
    if m.axis != 1 or len(g.kernel) != 2:
        raise e.unsupported(f"Im2col over axis {m.axis} with {len(g.kernel)} spatial axes")
    top = e.top_shapes[0]
    cols = (f"F.unfold({e.bottoms[0]}, {tup(g.kernel)}, dilation={tup(g.dilation)}, "
            f"padding={tup(g.pad)}, stride={tup(g.stride)})")
    return e.assign(f"{cols}.reshape({e.bottoms[0]}.shape[0], {', '.join(map(str, top[1:]))})")


def _recurrent(e: Emit, kind: str) -> list[str]:
    """The library's lstm_sequence / rnn_sequence; without exposed state bottoms the state
    between forwards is kept by a RecurrentState, as the library's layer keeps it."""
    m = e.module
    num_state = 2 if kind == "LSTM" else 1
    weights = [e.param(i, "") for i in range(len(m.blobs))]
    x, cont = e.bottoms[:2]
    x_static = e.bottoms[2] if m.static else "None"
    w_static = weights[2] if m.static else "None"
    names = [e.local(s) for s in ("h", "c")[:num_state]]
    lines = []
    if m.expose_hidden:
        exposed = e.bottoms[3:] if m.static else e.bottoms[2:]
        lines.append(f"{', '.join(names)}, = {', '.join(exposed)},")
    else:
        state = e.submodule("RecurrentState", f"{m.hidden}, {num_state}")
        lines.append(f"{', '.join(names)}, = {state}.kept_state({x})")
    if kind == "LSTM":
        args = [x, cont, *names, weights[0], weights[1], weights[-1], x_static, w_static]
        call = e.call("lstm_sequence", ", ".join(args))
    else:
        args = [x, cont, *names, weights[0], weights[1], *weights[-3:], x_static, w_static]
        call = e.call("rnn_sequence", ", ".join(args))
    lines.append(f"{e.tops[0]}, {', '.join(names)} = {call}")
    if m.expose_hidden:
        lines += [f"{top} = {name}" for top, name in zip(e.tops[1:], names)]
    else:
        lines.append(f"{state}.keep({x}, ({', '.join(names)},))")
    return lines


@emitter(recurrent.CaffeLSTM)
def _lstm(e: Emit) -> list[str]:
    return _recurrent(e, "LSTM")


@emitter(recurrent.CaffeRNN)
def _rnn(e: Emit) -> list[str]:
    return _recurrent(e, "RNN")


@emitter(recurrent.CaffeLSTMUnit)
def _lstm_unit(e: Emit) -> list[str]:
    call = e.call("lstm_unit_forward", ", ".join(e.bottoms))
    return [f"{', '.join(e.tops)} = {call}[:2]"]


@emitter(inputs.CaffeDummyData)
def _dummy_data(e: Emit) -> list[str]:
    """Constant fillers give the same tops at every forward; gaussian and uniform fillers
    draw new values each time, as Caffe's DummyData does."""
    lines = []
    for top, shape, filler in zip(e.tops, e.module.shapes, e.module.fillers):
        dims = ", ".join(map(str, shape))
        if filler.type == "constant":
            lines.append(f"{top} = torch.full(({dims},), {num(filler.value)})")
        elif filler.type == "uniform":
            lo, hi = num(filler.min), num(filler.max)
            lines.append(f"{top} = torch.empty({dims}).uniform_({lo}, {hi})")
        elif filler.type == "gaussian" and int(filler.sparse) < 0:
            lines.append(f"{top} = torch.empty({dims}).normal_({num(filler.mean)}, "
                         f"{num(filler.std)})")
        else:
            raise e.unsupported(f"a DummyData top with the {filler.type} filler")
    return lines


@emitter(inputs.CaffeParameter)
def _parameter(e: Emit) -> list[str]:
    return e.assign(e.param(0, "value"))
