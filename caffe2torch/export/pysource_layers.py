"""Standalone source for the BVLC layers beyond the common ones: ArgMax, Embed, MVN, SPP,
Im2col, the recurrent layers (RNN, LSTM, LSTMUnit), DummyData and Parameter."""

from __future__ import annotations

from caffe2torch.export.pysource import Emit, emitter, num, tup
from caffe2torch.export.snippets import add_snippets
from caffe2torch.layers.bvlc import blob_ops, inputs, normalization, recurrent, vision

ARGMAX = '''
class CaffeArgMax(nn.Module):
    """Caffe's ArgMax: the top_k largest values per item (over `axis`, or over everything
    after the batch axis), larger indices first among equal values. Without an axis the top
    is (N, 1 or 2, top_k[, 1]): the indices, then (out_max_val) the values."""

    def __init__(self, top_k: int, out_max_val: bool, axis: int | None) -> None:
        super().__init__()
        self.top_k, self.out_max_val, self.axis = top_k, out_max_val, axis

    @staticmethod
    def _top(x: torch.Tensor, k: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        # a stable descending sort of the reversed axis puts the larger index first
        vals, idx = torch.sort(x.flip(dim), dim=dim, descending=True, stable=True)
        return vals.narrow(dim, 0, k), (x.shape[dim] - 1) - idx.narrow(dim, 0, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis is not None:
            vals, idx = self._top(x, self.top_k, self.axis)
            return vals if self.out_max_val else idx.to(x.dtype)
        vals, idx = self._top(x.reshape(x.shape[0], -1), self.top_k, 1)
        parts = [idx.to(x.dtype), vals] if self.out_max_val else [idx.to(x.dtype)]
        out = torch.stack(parts, dim=1)
        return out.reshape(*out.shape, *([1] * (max(x.dim(), 3) - 3)))
'''

MVN = '''
class CaffeMVN(nn.Module):
    """Caffe's MVN: each (num, channel) plane (each num: across_channels) minus its mean,
    divided by (its standard deviation + eps) with normalize_variance."""

    def __init__(self, across_channels: bool, normalize_variance: bool, eps: float) -> None:
        super().__init__()
        self.across_channels = across_channels
        self.normalize_variance = normalize_variance
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (*x.shape, 1, 1, 1)[:4]  # Caffe's legacy 4-D shape
        rows = shape[0] if self.across_channels else shape[0] * shape[1]
        flat = x.reshape(rows, -1)
        centred = flat - flat.mean(dim=1, keepdim=True)
        if self.normalize_variance:
            std = centred.square().mean(dim=1, keepdim=True).sqrt() + self.eps
            centred = centred / std
        return centred.reshape(shape)
'''

RECURRENT = '''
class CaffeRecurrent(nn.Module):
    """Caffe's LSTM and RNN layers over x (T, N, ...) and cont (T, N): cont_t multiplies the
    previous hidden state (0 starts a new sequence). LSTM gates are i, f, o, g with
    h_t = o * tanh(c_t); RNN h_t = tanh(W_hh (cont h) + W_xh x_t + b_h) and
    o_t = tanh(W_ho h_t + b_o). Without exposed state bottoms the layer starts each forward
    from the h_T (c_T) of the previous one, as Caffe does; reset_state() forgets it."""

    def __init__(self, kind: str, hidden: int, static: bool, expose_hidden: bool) -> None:
        super().__init__()
        self.kind, self.hidden = kind, hidden
        self.static, self.expose_hidden = static, expose_hidden
        self.state: tuple[torch.Tensor, ...] | None = None

    def reset_state(self) -> None:
        self.state = None

    def forward(self, x: torch.Tensor, cont: torch.Tensor, *rest: torch.Tensor,
                weights: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        steps, n = x.shape[0], x.shape[1]
        x_static = rest[0] if self.static else None
        exposed = rest[1:] if self.static else rest
        w_in, b_in = weights[0], weights[1]
        w_static = weights[2] if self.static else None
        cont = cont.to(x.dtype)
        x_in = F.linear(x.reshape(steps, n, -1), w_in, b_in)
        extra = None
        if w_static is not None:
            extra = F.linear(x_static.reshape(n, -1), w_static).reshape(1, n, -1)
        count = 2 if self.kind == "LSTM" else 1
        if self.expose_hidden:
            state = tuple(exposed)
        elif self.state is not None and self.state[0].shape[1] == n:
            state = self.state
        else:
            state = tuple(x.new_zeros(1, n, self.hidden) for _ in range(count))
        outputs = []
        for t in range(steps):
            cont_t = cont[t:t + 1]
            pre = F.linear(state[0] * cont_t.unsqueeze(-1), weights[-1 if count == 2 else -3])
            pre = pre + x_in[t:t + 1]
            if extra is not None:
                pre = pre + extra
            if self.kind == "LSTM":
                c, h = lstm_unit(state[1], pre, cont_t)
                state = (h, c)
            else:
                state = (torch.tanh(pre),)
            outputs.append(state[0])
        if not self.expose_hidden:
            self.state = tuple(s.detach() for s in state)
        top = torch.cat(outputs, dim=0)
        if self.kind == "RNN":
            top = torch.tanh(F.linear(top, weights[-2], weights[-1]))
        return (top, *state) if self.expose_hidden else (top,)
'''

LSTM_UNIT = '''
def lstm_unit(c_prev: torch.Tensor, x: torch.Tensor,
              cont: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's LSTMUnit: gates x = (i, f, o, g) pre-activations; the forget gate is
    cont * sigmoid(x_f); tanh is computed as 2 sigmoid(2 x) - 1. Returns (c, h)."""
    xi, xf, xo, xg = x.split(c_prev.shape[-1], dim=-1)
    cont = cont.unsqueeze(-1).to(x.dtype)
    f = torch.where(cont == 0, torch.zeros_like(xf), cont * torch.sigmoid(xf))
    g = 2 * torch.sigmoid(2 * xg) - 1
    c = f * c_prev + torch.sigmoid(xi) * g
    return c, torch.sigmoid(xo) * (2 * torch.sigmoid(2 * c) - 1)
'''

add_snippets(
    {"CaffeArgMax": ARGMAX, "CaffeMVN": MVN, "CaffeRecurrent": RECURRENT,
     "lstm_unit": LSTM_UNIT},
    {"CaffeRecurrent": ("lstm_unit",)},
)


@emitter(blob_ops.CaffeArgMax)
def _argmax(e: Emit) -> list[str]:
    m = e.module
    module = e.submodule("CaffeArgMax", f"{m.top_k}, {m.out_max_val}, {m.axis}")
    return e.assign(f"{module}({e.bottoms[0]})")


@emitter(vision.CaffeEmbed)
def _embed(e: Emit) -> list[str]:
    y = f"F.embedding({e.bottoms[0]}.long(), {e.param(0, 'weight')})"  # int(x): truncation
    if len(e.module.blobs) > 1:
        y = f"{y} + {e.param(1, 'bias')}"
    return e.assign(y)


@emitter(normalization.CaffeMVN)
def _mvn(e: Emit) -> list[str]:
    m = e.module
    module = e.submodule(
        "CaffeMVN", f"{m.across_channels}, {m.normalize_variance}, {num(m.eps)}"
    )
    return e.assign(f"{module}({e.bottoms[0]})")


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
        pool = e.submodule("CaffePool2d", f"{method!r}, {kernel}, {kernel}, {pad}")
        levels.append(f"{pool}({x})")
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
    m = e.module
    weights = [e.param(i, "") for i in range(len(m.blobs))]
    module = e.submodule(
        "CaffeRecurrent", f"{kind!r}, {m.hidden}, {m.static}, {m.expose_hidden}"
    )
    call = f"{module}({', '.join(e.bottoms)}, weights=({', '.join(weights)}))"
    return [f"{', '.join(e.tops)}, = {call}" if len(e.tops) == 1 else
            f"{', '.join(e.tops)} = {call}"]


@emitter(recurrent.CaffeLSTM)
def _lstm(e: Emit) -> list[str]:
    return _recurrent(e, "LSTM")


@emitter(recurrent.CaffeRNN)
def _rnn(e: Emit) -> list[str]:
    return _recurrent(e, "RNN")


@emitter(recurrent.CaffeLSTMUnit)
def _lstm_unit(e: Emit) -> list[str]:
    e.use("lstm_unit")
    return [f"{', '.join(e.tops)} = lstm_unit({', '.join(e.bottoms)})"]


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
