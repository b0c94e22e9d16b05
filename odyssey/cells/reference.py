"""Readable per-step reference implementations of the cells (DESIGN §2).

These loops are the ground truth: every faster kernel is tested against them. They run
one direction over a batch whose sequences are aligned at t = 0; the layer in
`odyssey.cells.layer` handles lengths, masking and the reverse direction. Each takes an
optional `drop` (variational dropout masks, `odyssey.cells.dropout`): the mask of gate g
multiplies x where it enters g's input weights and y' where it enters g's recurrent
weights. With `drop=None` (dropout off, and always at evaluation) the code is exactly the
unmasked loop. Every loop is one `step(t, state) -> (y_t, state)` run by `unroll`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .dropout import VariationalDropout, masked_linear
from .variants import VariantSpec


def unroll(step: Callable[[int, Any], tuple[Tensor, Any]], state: Any, steps: int,
           empty: Tensor) -> Tensor:
    """The time loop of every reference cell: `step(t, state)` returns the output y_t (B, H)
    and the next state, from `state` at t = 0; the outputs stacked (steps, B, H), or
    `empty` for a sequence of no steps."""
    outputs = []
    for t in range(steps):
        y, state = step(t, state)
        outputs.append(y)
    return torch.stack(outputs) if outputs else empty


def lstm_step(
    s: VariantSpec,
    a: dict[str, Tensor],
    c_prev: Tensor,
    peep: dict[str, Tensor],
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One LSTM-family step from pre-activations `a` (W x + R y' + b [+ gate recurrence]).

    Returns the block output y, the cell state c and the gate activations {i, f, o}
    (ones where a gate is absent), which FGR feeds into the next step.
    """
    one = torch.ones_like(c_prev)

    def peephole(gate: str, c: Tensor) -> Tensor:
        return peep[gate] * c if gate in peep else torch.zeros_like(c)

    z = torch.tanh(a["z"]) if s.input_activation else a["z"]
    i = torch.sigmoid(a["i"] + peephole("i", c_prev)) if s.input_gate else one
    if s.coupled:
        f = 1.0 - i
    elif s.forget_gate:
        f = torch.sigmoid(a["f"] + peephole("f", c_prev))
    else:
        f = one
    c = z * i + c_prev * f
    o = torch.sigmoid(a["o"] + peephole("o", c)) if s.output_gate else one  # peeps at new c
    y = (torch.tanh(c) if s.output_activation else c) * o
    return y, c, {"i": i, "f": f, "o": o}


def lstm_sequence(
    s: VariantSpec,
    x: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias: Tensor,
    peep: dict[str, Tensor],
    weight_gg: Tensor | None = None,
    drop: VariationalDropout | None = None,
) -> Tensor:
    """Run an LSTM-family variant over x (T, B, I); returns y (T, B, H).

    Rows of weight_ih / weight_hh / bias are the blocks `s.blocks` in order, H each.
    weight_gg (3H, 3H), FGR only, maps the previous step's [i; f; o] to additions to the
    pre-activations of [i; f; o]: the nine H x H matrices R_{k->gate} as one. With `drop`,
    each block of `s.blocks` has its own input and recurrent mask (FGR's gate-to-gate
    recurrence is not dropped: it carries gate activations, not the block output).
    """
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    if drop is None:
        x_proj = torch.nn.functional.linear(x, weight_ih, bias)  # all steps in one product
    else:
        x_proj = masked_linear(x, weight_ih, bias, drop.stacked("x", s.blocks))
        mask_h = drop.stacked("h", s.blocks)  # (B, G, H)
        w_hh = weight_hh.reshape(len(s.blocks), H, H)

    def step(t: int, state: tuple[Tensor, Tensor, Tensor]
             ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        y, c, gates_prev = state
        if drop is None:
            pre = x_proj[t] + y @ weight_hh.t()
        else:
            pre = x_proj[t] + torch.einsum("bgj,ghj->bgh", y[:, None, :] * mask_h,
                                           w_hh).reshape(B, -1)
        a = dict(zip(s.blocks, pre.split(H, dim=1), strict=True))
        if s.gate_recurrence:
            extra = dict(zip(("i", "f", "o"), (gates_prev @ weight_gg.t()).split(H, dim=1),
                             strict=True))
            a = {k: v + extra[k] if k in extra else v for k, v in a.items()}
        y, c, g = lstm_step(s, a, c, peep)
        return y, (y, c, torch.cat([g["i"], g["f"], g["o"]], dim=1))

    # y, c and FGR's previous gates: zeros at t = 0
    start = (x.new_zeros(B, H), x.new_zeros(B, H), x.new_zeros(B, 3 * H))
    return unroll(step, start, T, x.new_zeros(0, B, H))


def _recurrent(h: Tensor, weight_hh: Tensor, bias_hh: Tensor,
               drop: VariationalDropout | None, gates: tuple[str, ...]) -> Tensor:
    """W_hh h' + b_hh, each gate's rows on h' times that gate's mask when `drop` is given."""
    if drop is None:
        return torch.nn.functional.linear(h, weight_hh, bias_hh)
    return masked_linear(h, weight_hh, bias_hh, drop.stacked("h", gates))


def gru_sequence(x: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                 bias_ih: Tensor, bias_hh: Tensor,
                 drop: VariationalDropout | None = None) -> Tensor:
    """GRU in PyTorch's parameterisation (gates r, z, n; two bias vectors), as `nn.GRU`."""
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    gates = ("r", "z", "n")
    x_proj = (torch.nn.functional.linear(x, weight_ih, bias_ih) if drop is None
              else masked_linear(x, weight_ih, bias_ih, drop.stacked("x", gates)))

    def step(t: int, h: Tensor) -> tuple[Tensor, Tensor]:
        xr, xz, xn = x_proj[t].split(H, dim=1)
        hr, hz, hn = _recurrent(h, weight_hh, bias_hh, drop, gates).split(H, dim=1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1.0 - z) * n + z * h
        return h, h

    return unroll(step, x.new_zeros(B, H), T, x.new_zeros(0, B, H))


def rnn_sequence(x: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                 bias_ih: Tensor, bias_hh: Tensor,
                 drop: VariationalDropout | None = None) -> Tensor:
    """Plain tanh RNN in PyTorch's parameterisation, as `nn.RNN`."""
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    gates = ("a",)
    x_proj = (torch.nn.functional.linear(x, weight_ih, bias_ih) if drop is None
              else masked_linear(x, weight_ih, bias_ih, drop.stacked("x", gates)))

    def step(t: int, h: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.tanh(x_proj[t] + _recurrent(h, weight_hh, bias_hh, drop, gates))
        return h, h

    return unroll(step, x.new_zeros(B, H), T, x.new_zeros(0, B, H))


def mut_sequence(s: VariantSpec, x: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                 bias: Tensor, drop: VariationalDropout | None = None) -> Tensor:
    """MUT1, MUT2 or MUT3 (Jozefowicz et al. 2015, DESIGN §2) over x (T, B, I); y (T, B, H).

    weight_ih (3H, I) holds W_xz, W_xr, W_xh; bias (3H) b_z, b_r, b_h; weight_hh holds
    W_hr, W_hh (MUT1) or W_hz, W_hr, W_hh (MUT2, MUT3). The raw-input terms, which assume
    inputs of hidden size, go through the learned projection of the same row block: MUT1's
    tanh(x) is tanh(W_xh x) and MUT2's x (in r) is W_xr x. With `drop`, gates z, r and the
    candidate h each mask x and every use of h that enters one of their weight matrices
    (MUT3's tanh(h) is masked after the tanh; r * h is r times the masked h).
    """
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    if drop is None:
        xz, xr, xh = torch.nn.functional.linear(x, weight_ih).split(H, dim=2)
    else:
        xz, xr, xh = masked_linear(x, weight_ih, None,
                                   drop.stacked("x", ("z", "r", "h"))).split(H, dim=2)

    def into(gate: str, h: Tensor) -> Tensor:
        return h if drop is None else drop.h(gate, h)

    b_z, b_r, b_h = bias.split(H)
    if s.name == "MUT1":
        w_hz = None
        w_hr, w_hh = weight_hh.split(H, dim=0)
    else:
        w_hz, w_hr, w_hh = weight_hh.split(H, dim=0)

    def step(t: int, h: Tensor) -> tuple[Tensor, Tensor]:
        if s.name == "MUT1":
            z = torch.sigmoid(xz[t] + b_z)
            r = torch.sigmoid(xr[t] + into("r", h) @ w_hr.t() + b_r)
            cand = torch.tanh((r * into("h", h)) @ w_hh.t() + torch.tanh(xh[t]) + b_h)
        else:
            h_in = torch.tanh(h) if s.name == "MUT3" else h
            z = torch.sigmoid(xz[t] + into("z", h_in) @ w_hz.t() + b_z)
            r = torch.sigmoid(xr[t] + into("r", h) @ w_hr.t() + b_r)
            cand = torch.tanh((r * into("h", h)) @ w_hh.t() + xh[t] + b_h)
        h = cand * z + h * (1.0 - z)
        return h, h

    return unroll(step, x.new_zeros(B, H), T, x.new_zeros(0, B, H))
