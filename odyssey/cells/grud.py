"""GRU-D (`GRUD`, Che et al. 2018): a GRU for time series with missing values.

The cell reads its input as three equal blocks [x_t; m_t; delta_t] of D features each (its
input size is 3D): the values x (anything where not observed), the observation mask m (1:
observed) and delta, the time since each feature was last observed (odyssey.data.missing
builds them; a task without missing data gives m = 1, delta = 1). With x' the last observed
value of each feature (x-bar, the training mean, before the first observation):

    gamma_x = exp(-max(0, w_gx * delta_t + b_gx))         (w_gx diagonal: a vector)
    gamma_h = exp(-max(0, W_gh delta_t + b_gh))
    x^      = m x + (1 - m) (gamma_x x' + (1 - gamma_x) x-bar)
    h       = gamma_h * h_{t-1}                            (the decayed state)
    r       = sigma(W_r x^ + U_r h + V_r m + b_r)
    z       = sigma(W_z x^ + U_z h + V_z m + b_z)
    h~      = tanh(W_h x^ + U_h (r * h) + V_h m + b_h)
    h_t     = (1 - z) * h + z * h~

x-bar is 0: the missing-data option centres every feature on the mean of its observed
training values (odyssey.data.missing), so the training mean is the origin. Parameters of
one direction: weight_ih (3H, 2D) = [W | V] acting on [x^; m], weight_hh (3H, H) = U,
bias (3H), decay_x (D) and decay_x_bias (D), decay_h (H, D) and decay_h_bias (H): 3H(2D + H + 1)
+ 2D + HD + H in all. No fast kernel: the readable loop is the only path.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .dropout import VariationalDropout
from .registry import CellType, add_cell


def features(input_size: int) -> int:
    """D, the features per block of an input [x; m; delta] of `input_size` = 3D columns."""
    if input_size % 3:
        raise ValueError(f"GRUD reads [x; m; delta] (three equal blocks), so its input size "
                         f"must be a multiple of 3, got {input_size}")
    return input_size // 3


def parameter_count(input_size: int, hidden_size: int) -> int:
    """3H(2D + H + 1) + 2D + HD + H for D = input_size / 3 (see the module)."""
    d, h = features(input_size), hidden_size
    return 3 * h * (2 * d + h + 1) + 2 * d + h * d + h


def decay(delta: Tensor, weight: Tensor, bias: Tensor, diagonal: bool) -> Tensor:
    """exp(-max(0, W delta + b)): a decay rate in (0, 1] per feature or hidden unit."""
    a = delta * weight + bias if diagonal else nn.functional.linear(delta, weight, bias)
    return torch.exp(-torch.relu(a))


def grud_sequence(inputs: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor,
                  decay_x: Tensor, decay_x_bias: Tensor, decay_h: Tensor, decay_h_bias: Tensor,
                  drop: VariationalDropout | None = None) -> Tensor:
    """Run GRU-D over inputs (T, B, 3D) = [x; m; delta]; y (T, B, H) (the module's equations).

    With `drop`, gates r, z and h~ each mask [x^; m] where it enters their input weights (the
    first 2D entries of their input mask) and h where it enters their recurrent weights.
    """
    T, B, _ = inputs.shape
    D, H = features(inputs.shape[2]), weight_hh.shape[1]
    x, m, delta = inputs.split(D, dim=2)
    gamma_x = decay(delta, decay_x, decay_x_bias, diagonal=True)  # (T, B, D), all steps
    gamma_h = decay(delta, decay_h, decay_h_bias, diagonal=False)  # (T, B, H)
    w_r, w_z, w_h = weight_ih.split(H, dim=0)
    u_r, u_z, u_h = weight_hh.split(H, dim=0)
    b_r, b_z, b_h = bias.split(H)

    def into(gate: str, u: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        if drop is None:
            return u, h
        return u * drop.mask("x", gate)[:, :2 * D], drop.h(gate, h)

    h = inputs.new_zeros(B, H)
    x_last = inputs.new_zeros(B, D)  # x-bar = 0 until a feature is first observed
    outputs = []
    for t in range(T):
        x_hat = m[t] * x[t] + (1.0 - m[t]) * (gamma_x[t] * x_last)  # + (1 - gamma_x) * 0
        x_last = m[t] * x[t] + (1.0 - m[t]) * x_last
        h = gamma_h[t] * h
        u = torch.cat([x_hat, m[t]], dim=1)
        ur, hr = into("r", u, h)
        uz, hz = into("z", u, h)
        uh, hh = into("h", u, h)
        r = torch.sigmoid(ur @ w_r.t() + hr @ u_r.t() + b_r)
        z = torch.sigmoid(uz @ w_z.t() + hz @ u_z.t() + b_z)
        cand = torch.tanh(uh @ w_h.t() + (r * hh) @ u_h.t() + b_h)
        h = (1.0 - z) * h + z * cand
        outputs.append(h)
    return torch.stack(outputs) if outputs else inputs.new_zeros(0, B, H)


class GRUDCell(nn.Module):
    """One direction of GRU-D (parameters as in the module docstring).

    Every `impl` but "cpp" runs the readable loop; "cpp" is refused (no C++ kernel).
    """

    def __init__(self, input_size: int, hidden_size: int, *, init_std: float,
                 impl: str) -> None:
        super().__init__()
        if impl == "cpp":
            raise ValueError("GRUD has no C++ kernel; use impl='auto' or 'reference'")
        d, h = features(input_size), hidden_size
        self.input_size, self.hidden_size, self.init_std = input_size, hidden_size, init_std
        self.weight_ih = nn.Parameter(torch.empty(3 * h, 2 * d))
        self.weight_hh = nn.Parameter(torch.empty(3 * h, h))
        self.bias = nn.Parameter(torch.empty(3 * h))
        self.decay_x = nn.Parameter(torch.empty(d))
        self.decay_x_bias = nn.Parameter(torch.empty(d))
        self.decay_h = nn.Parameter(torch.empty(h, d))
        self.decay_h_bias = nn.Parameter(torch.empty(h))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """All weights from N(0, init_std), as for every built-in cell."""
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, self.init_std)

    def sequence(self, x: Tensor, drop: VariationalDropout | None = None) -> Tensor:
        """y (T, B, H) for x (T, B, 3D) = [x; m; delta], all sequences starting at t = 0."""
        return grud_sequence(x, self.weight_ih, self.weight_hh, self.bias, self.decay_x,
                             self.decay_x_bias, self.decay_h, self.decay_h_bias, drop)


def _build(input_size: int, hidden_size: int, *, forget_bias: float, init_std: float,
           impl: str) -> nn.Module:
    del forget_bias  # an LSTM-family option
    return GRUDCell(input_size, hidden_size, init_std=init_std, impl=impl)


CELL = add_cell(CellType(
    name="GRUD", build=_build, parameter_count=parameter_count, group="extra",
    missing_inputs=True,
    description="GRU-D (Che et al. 2018): a GRU with input and state decay for missing data"))
