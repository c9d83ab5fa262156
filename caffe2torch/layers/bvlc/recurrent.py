"""Caffe's recurrent layers: LSTM, RNN (RecurrentLayer) and LSTMUnit.

Caffe's RecurrentLayer unrolls a small net over T time steps; here the same computation runs
as one loop over time with vectorised torch ops, in the same order:

* bottoms ``x`` (T, N, ...), ``cont`` (T, N), optional static input ``x_static`` (N, ...), and
  with ``expose_hidden`` the initial state (LSTM: ``h0``, ``c0``; RNN: ``h0``, each (1, N, H));
* ``cont_t`` multiplies the previous hidden state before the recurrent InnerProduct (Scale
  layer) and, in LSTMUnit, the forget gate: 0 starts a new sequence;
* gate order i, f, o, g (LSTM), ``h_t = o * tanh(c_t)``; RNN ``h_t = tanh(W_hh (cont h) +
  W_xh x_t + b_h [+ W_xh_static x_static])``, ``o_t = tanh(W_ho h_t + b_o)``.

Caffe quirks reproduced:

* without ``expose_hidden`` the layer keeps h_T (and c_T) of the previous forward and starts
  the next forward from it (only ``cont = 0`` resets a stream). The module keeps that state
  in ``self.state`` (detached: no gradient crosses forwards); ``reset_state()`` is Caffe's
  ``RecurrentLayer::Reset``. A change of N starts again from zeros;
* with ``expose_hidden`` the extra bottoms/tops share only data with the unrolled net: the
  gradient on h_T/c_T is ignored and h_0/c_0 receive a zero gradient;
* ``cont`` never receives a gradient;
* LSTMUnit's backward uses ``f = cont * sigmoid(x_f)`` in ``f * (1 - f)``, which differs
  from the true derivative when cont is neither 0 nor 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.layers.emit import Emit, emitter
from caffe2torch.layers.fillers import fill
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, Shape, register_layer

# --------------------------------------------------------------------------- LSTMUnit


@portable
def caffe_tanh(x: torch.Tensor) -> torch.Tensor:
    """lstm_unit_layer.cpp's tanh: 2 sigmoid(2x) - 1."""
    return 2 * torch.sigmoid(2 * x) - 1


@portable
def lstm_unit_forward(
    c_prev: torch.Tensor, x: torch.Tensor, cont: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """(c, h, i, f, o, g, tanh_c) of lstm_unit_layer.cpp's forward: gates x = (i, f, o, g)
    pre-activations, the forget gate cont * sigmoid(x_f) (0 where cont is 0)."""
    hidden = c_prev.shape[-1]
    xi, xf, xo, xg = x.split(hidden, dim=-1)
    cont_b = cont.detach().unsqueeze(-1).to(x.dtype)
    i = torch.sigmoid(xi)
    f = torch.where(cont_b == 0, torch.zeros_like(xf), cont_b * torch.sigmoid(xf))
    o = torch.sigmoid(xo)
    g = caffe_tanh(xg)
    c = f * c_prev + i * g
    tanh_c = caffe_tanh(c)
    return c, o * tanh_c, i, f, o, g, tanh_c


class _LSTMUnitFunction(torch.autograd.Function):
    """One LSTM step: (c_prev (1,N,H), gates (1,N,4H), cont (1,N)) -> (c, h)."""

    @staticmethod
    def forward(
        ctx: Any, c_prev: torch.Tensor, x: torch.Tensor, cont: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        c, h, i, f, o, g, tanh_c = lstm_unit_forward(c_prev, x, cont)
        ctx.save_for_backward(c_prev, i, f, o, g, tanh_c)
        return c, h

    @staticmethod
    def backward(
        ctx: Any, c_diff: torch.Tensor, h_diff: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        c_prev, i, f, o, g, tanh_c = ctx.saved_tensors
        c_term = c_diff + h_diff * o * (1 - tanh_c * tanh_c)
        i_diff = c_term * g * i * (1 - i)
        f_diff = c_term * c_prev * f * (1 - f)  # Caffe's f includes cont
        o_diff = h_diff * tanh_c * o * (1 - o)
        g_diff = c_term * i * (1 - g * g)
        x_diff = torch.cat([i_diff, f_diff, o_diff, g_diff], dim=-1)
        return c_term * f, x_diff, None


def lstm_unit(
    c_prev: torch.Tensor, x: torch.Tensor, cont: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's LSTMUnit forward (and backward): returns (c, h). Without gradients it is plain
    torch ops (nothing custom for tracers and exporters to handle)."""
    if torch.is_grad_enabled() and (c_prev.requires_grad or x.requires_grad):
        return _LSTMUnitFunction.apply(c_prev, x, cont)
    c, h = lstm_unit_forward(c_prev, x, cont)[:2]
    return c, h


class CaffeLSTMUnit(nn.Module):
    """LSTMUnit: bottoms c_prev (1, N, H), x (1, N, 4H) gate pre-activations (i, f, o, g),
    cont (1, N); tops c, h."""

    def forward(
        self, c_prev: torch.Tensor, x: torch.Tensor, cont: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return lstm_unit(c_prev, x, cont)


@register_layer("LSTMUnit", bottoms=3, tops=2)
def build_lstm_unit(ctx: BuildContext) -> nn.Module:
    c_prev, x, cont = ctx.bottom_shapes
    ok = (
        len(c_prev) == 3
        and len(x) == 3
        and len(cont) == 2
        and c_prev[0] == x[0] == cont[0] == 1
        and c_prev[1] == x[1] == cont[1]
        and x[2] == 4 * c_prev[2]
    )
    if not ok:
        raise ctx.error(
            f"bottoms must be c_prev (1, N, H), x (1, N, 4H), cont (1, N); got "
            f"{list(c_prev)}, {list(x)}, {list(cont)}"
        )
    return CaffeLSTMUnit()


# --------------------------------------------------------------------------- shared


class _ZeroGrad(torch.autograd.Function):
    """Identity forward; zero gradient (Caffe's exposed h_0/c_0 share data but not diff)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad)


def _layout(ctx: BuildContext, num_state: int) -> tuple[bool, bool]:
    """(static_input, expose_hidden), checked against the bottom and top counts as Caffe's
    RecurrentLayer::LayerSetUp does."""
    param = ctx.layer.recurrent_param
    expose = bool(param.expose_hidden)
    n_bottom = len(ctx.bottom_shapes)
    exposed = num_state if expose else 0
    static = n_bottom > 2 + exposed
    if n_bottom not in (2 + exposed, 3 + exposed):
        names = ["x", "cont", "[x_static]"] + (["h0", "c0"][:num_state] if expose else [])
        raise ctx.error(
            f"takes {', '.join(names)} as bottoms, got {n_bottom}",
            hint="expose_hidden adds the initial state bottoms" if not expose else None,
        )
    if ctx.num_tops != 1 + exposed:
        raise ctx.error(f"needs {1 + exposed} top(s) (expose_hidden: {expose}), got {ctx.num_tops}")
    if param.num_output <= 0:
        raise ctx.error("recurrent_param.num_output must be positive")
    x, cont = ctx.bottom_shapes[0], ctx.bottom_shapes[1]
    if len(x) < 2:
        raise ctx.error(f"bottom x must have at least 2 axes (T, N, ...), got {list(x)}")
    if len(cont) != 2 or tuple(cont) != tuple(x[:2]):
        raise ctx.error(f"bottom cont must be (T, N) = {list(x[:2])}, got {list(cont)}")
    if static and (not ctx.bottom_shapes[2] or ctx.bottom_shapes[2][0] != x[1]):
        raise ctx.error(
            f"static input must be (N, ...) with N = {x[1]}, got {list(ctx.bottom_shapes[2])}"
        )
    if expose:
        want = (1, x[1], int(param.num_output))
        for shape in ctx.bottom_shapes[2 + static :]:
            if tuple(shape) != want:
                raise ctx.error(f"exposed state bottoms must be {list(want)}, got {list(shape)}")
    return static, expose


def _param(filler: Any, shape: Shape) -> nn.Parameter:
    return nn.Parameter(fill(filler, shape))


@portable
class RecurrentState(nn.Module):
    """The h_T (c_T) that a recurrent layer without exposed state bottoms keeps and starts
    its next forward from, as Caffe's RecurrentLayer does (detached: no gradient crosses
    forwards); a change of N starts from zeros; reset_state() is RecurrentLayer::Reset."""

    def __init__(self, hidden: int, num_state: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.num_state = num_state
        self.state: tuple[torch.Tensor, ...] | None = None

    def reset_state(self) -> None:
        """Forget the kept h_T (c_T): the next forward starts from zeros (Caffe's Reset)."""
        self.state = None

    def kept_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = x.shape[1]
        state = self.state
        if state is None or state[0].shape[1] != n:
            zeros = x.new_zeros((1, n, self.hidden))
            return tuple(zeros for _ in range(self.num_state))
        return tuple(s.to(device=x.device, dtype=x.dtype) for s in state)

    def keep(self, x: torch.Tensor, final: tuple[torch.Tensor, ...]) -> None:
        if x.device.type != "meta":
            self.state = tuple(s.detach() for s in final)


@portable
def lstm_sequence(
    x: torch.Tensor,
    cont: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    w_xc: torch.Tensor,
    b_c: torch.Tensor,
    w_hc: torch.Tensor,
    x_static: torch.Tensor | None = None,
    w_static: torch.Tensor | None = None,
    unit: object = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Caffe's unrolled LSTM over x (T, N, ...) from (h, c): x_transform is one
    InnerProduct over all steps; each step's gates W_hc (cont_t h) + W_xc x_t + b_c
    [+ W_xc_static x_static] go through LSTMUnit (``unit``: one with a custom backward).
    Returns (h for every step, h_T, c_T)."""
    steps, n = x.shape[0], x.shape[1]
    cont = cont.detach().to(x.dtype)
    x_gates = F.linear(x.reshape(steps, n, -1), w_xc, b_c)
    static_gates = None
    if x_static is not None and w_static is not None:
        static_gates = F.linear(x_static.reshape(n, -1), w_static).reshape(1, n, -1)
    outputs = []
    for t in range(steps):
        cont_t = cont[t : t + 1]
        gates = F.linear(h * cont_t.unsqueeze(-1), w_hc) + x_gates[t : t + 1]
        if static_gates is not None:
            gates = gates + static_gates
        if callable(unit):
            c, h = unit(c, gates, cont_t)
        else:
            c, h = lstm_unit_forward(c, gates, cont_t)[:2]
        outputs.append(h)
    return torch.cat(outputs, dim=0), h, c


@portable
def rnn_sequence(
    x: torch.Tensor,
    cont: torch.Tensor,
    h: torch.Tensor,
    w_xh: torch.Tensor,
    b_h: torch.Tensor,
    w_hh: torch.Tensor,
    w_ho: torch.Tensor,
    b_o: torch.Tensor,
    x_static: torch.Tensor | None = None,
    w_static: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's unrolled RNN over x (T, N, ...) from h: h_t = tanh(W_hh (cont_t h) + W_xh x_t
    + b_h [+ W_xh_static x_static]), o_t = tanh(W_ho h_t + b_o). Returns (o, h_T)."""
    steps, n = x.shape[0], x.shape[1]
    cont = cont.detach().to(x.dtype)
    x_in = F.linear(x.reshape(steps, n, -1), w_xh, b_h)
    static_in = None
    if x_static is not None and w_static is not None:
        static_in = F.linear(x_static.reshape(n, -1), w_static).reshape(1, n, -1)
    hiddens = []
    for t in range(steps):
        pre = F.linear(h * cont[t : t + 1].unsqueeze(-1), w_hh) + x_in[t : t + 1]
        if static_in is not None:
            pre = pre + static_in
        h = torch.tanh(pre)
        hiddens.append(h)
    # W_ho_h_t and o_neuron_t act on each step independently: one call for all steps.
    return torch.tanh(F.linear(torch.cat(hiddens, dim=0), w_ho, b_o)), h


class _Recurrent(RecurrentState):
    """Common state handling of Caffe's RecurrentLayer."""

    num_state: int = 1

    def __init__(self, hidden: int, static: bool, expose_hidden: bool) -> None:
        super().__init__(hidden, type(self).num_state)
        self.static = static
        self.expose_hidden = expose_hidden

    def _initial_state(
        self, x: torch.Tensor, exposed: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        if self.expose_hidden:
            if not torch.is_grad_enabled():
                return tuple(s.to(x.dtype) for s in exposed)
            return tuple(_ZeroGrad.apply(s.to(x.dtype)) for s in exposed)
        return self.kept_state(x)

    def _keep(self, x: torch.Tensor, final: tuple[torch.Tensor, ...]) -> None:
        if not self.expose_hidden:
            self.keep(x, final)

    def _split_bottoms(
        self, rest: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
        static = rest[0] if self.static else None
        return static, tuple(rest[1:] if self.static else rest)


# --------------------------------------------------------------------------- LSTM


class CaffeLSTM(_Recurrent):
    """Caffe's LSTM layer. Blobs: W_xc (4H, I), b_c (4H), [W_xc_static (4H, S)], W_hc (4H, H).
    Tops: h (T, N, H) [, h_T (1, N, H), c_T (1, N, H) with expose_hidden]."""

    num_state = 2

    def __init__(
        self,
        hidden: int,
        input_dim: int,
        static_dim: int | None,
        expose_hidden: bool,
        weight_filler: Any,
        bias_filler: Any,
    ) -> None:
        super().__init__(hidden, static_dim is not None, expose_hidden)
        gates = 4 * hidden
        blobs = [_param(weight_filler, (gates, input_dim)), _param(bias_filler, (gates,))]
        if static_dim is not None:
            blobs.append(_param(weight_filler, (gates, static_dim)))
        blobs.append(_param(weight_filler, (gates, hidden)))
        self.blobs = nn.ParameterList(blobs)

    def forward(
        self, x: torch.Tensor, cont: torch.Tensor, *rest: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x_static, exposed = self._split_bottoms(rest)
        w_static = self.blobs[2] if x_static is not None else None
        h, c = self._initial_state(x, exposed)
        h_all, h, c = lstm_sequence(
            x, cont, h, c, self.blobs[0], self.blobs[1], self.blobs[-1], x_static, w_static,
            unit=lstm_unit,
        )
        self._keep(x, (h, c))
        if not self.expose_hidden:
            return h_all
        return h_all, h.detach(), c.detach()


@register_layer(
    "LSTM",
    param="recurrent_param",
    bottoms=(2, 5),
    tops=(1, 3),
    blobs=("W_xc", "b_c", "W_hc"),  # W_xc_static goes before W_hc with a static input
)
def build_lstm(ctx: BuildContext) -> nn.Module:
    return _build_recurrent(ctx, CaffeLSTM)


# --------------------------------------------------------------------------- RNN


class CaffeRNN(_Recurrent):
    """Caffe's RNN layer. Blobs: W_xh (H, I), b_h (H), [W_xh_static (H, S)], W_hh (H, H),
    W_ho (H, H), b_o (H). Tops: o (T, N, H) [, h_T (1, N, H) with expose_hidden]."""

    num_state = 1

    def __init__(
        self,
        hidden: int,
        input_dim: int,
        static_dim: int | None,
        expose_hidden: bool,
        weight_filler: Any,
        bias_filler: Any,
    ) -> None:
        super().__init__(hidden, static_dim is not None, expose_hidden)
        blobs = [_param(weight_filler, (hidden, input_dim)), _param(bias_filler, (hidden,))]
        if static_dim is not None:
            blobs.append(_param(weight_filler, (hidden, static_dim)))
        blobs += [
            _param(weight_filler, (hidden, hidden)),
            _param(weight_filler, (hidden, hidden)),
            _param(bias_filler, (hidden,)),
        ]
        self.blobs = nn.ParameterList(blobs)

    def forward(
        self, x: torch.Tensor, cont: torch.Tensor, *rest: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x_static, exposed = self._split_bottoms(rest)
        w_static = self.blobs[2] if x_static is not None else None
        (h,) = self._initial_state(x, exposed)
        o, h = rnn_sequence(
            x, cont, h, self.blobs[0], self.blobs[1], self.blobs[-3], self.blobs[-2],
            self.blobs[-1], x_static, w_static,
        )
        self._keep(x, (h,))
        if not self.expose_hidden:
            return o
        return o, h.detach()


@register_layer(
    "RNN",
    param="recurrent_param",
    bottoms=(2, 4),
    tops=(1, 2),
    blobs=("W_xh", "b_h", "W_hh", "W_ho", "b_o"),  # W_xh_static goes before W_hh if static
)
def build_rnn(ctx: BuildContext) -> nn.Module:
    return _build_recurrent(ctx, CaffeRNN)


def _build_recurrent(ctx: BuildContext, cls: type[CaffeLSTM] | type[CaffeRNN]) -> nn.Module:
    """RecurrentLayer::LayerSetUp: the layout checks, then the layer with its blobs."""
    static, expose = _layout(ctx, cls.num_state)
    param = ctx.param
    shapes = ctx.bottom_shapes
    return cls(
        int(param.num_output),
        math.prod(shapes[0][2:]),
        math.prod(shapes[2][1:]) if static else None,
        expose,
        param.weight_filler,
        param.bias_filler,
    )


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


def _emit_recurrent(e: Emit, kind: str) -> list[str]:
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


@emitter(CaffeLSTM)
def _emit_lstm(e: Emit) -> list[str]:
    return _emit_recurrent(e, "LSTM")


@emitter(CaffeRNN)
def _emit_rnn(e: Emit) -> list[str]:
    return _emit_recurrent(e, "RNN")


@emitter(CaffeLSTMUnit)
def _emit_lstm_unit(e: Emit) -> list[str]:
    call = e.call("lstm_unit_forward", ", ".join(e.bottoms))
    return [f"{', '.join(e.tops)} = {call}[:2]"]
