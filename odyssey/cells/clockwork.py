"""The clockwork RNN (`CW`, Koutník et al. 2014): tanh units in modules that tick at their own rate.

The H hidden units form g modules of near-equal size (the first H mod g hold one more unit;
with fewer units than `modules`, each unit is a module, so that any searched hidden size works),
module i with period T_i = base^(i-1), i = 1..g, so the periods grow from 1. At step t
(t = 0, 1, ...; the state is zero before t = 0) the modules with t mod T_i = 0 update,

    h_t[i] = tanh(W_i x_t + b_i + R_i h_{t-1}[i:])

and every other module keeps its state exactly (h_t[i] = h_{t-1}[i], the same numbers). A
module reads the input and the modules of equal or longer period (h[i:], modules i..g): the
recurrent matrix is block upper triangular, and its zero blocks are not parameters. So one
direction holds W (H, I), b (H) and R_i (H_i, H_i + ... + H_g) per module.

The module count (`modules`, default 4) and the period base (`period_base`, default 2) are
cell options (`build_layer(..., cell_options={"modules": 6})`, the sweep's
`train.cell_options.CW`). There is no fast kernel: the readable loop below is the only path,
and it skips the modules that do not tick, which is the clockwork RNN's saving.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .dropout import VariationalDropout
from .registry import CellType, add_cell

OPTIONS: dict[str, Any] = {"modules": 4, "period_base": 2}


def _options(modules: Any, period_base: Any) -> tuple[int, int]:
    for key, value in (("modules", modules), ("period_base", period_base)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"CW cell option {key} must be an integer >= 1, got {value!r}")
    return modules, period_base


def module_sizes(hidden_size: int, modules: int = OPTIONS["modules"]) -> tuple[int, ...]:
    """Units per module: H split into min(`modules`, H) near-equal parts, larger ones first."""
    modules = min(modules, hidden_size)
    q, r = divmod(hidden_size, modules)
    return tuple(q + 1 if k < r else q for k in range(modules))


def periods(modules: int = OPTIONS["modules"],
            period_base: int = OPTIONS["period_base"]) -> tuple[int, ...]:
    """T_i = period_base^(i-1) for i = 1..modules."""
    return tuple(period_base ** k for k in range(modules))


def parameter_count(input_size: int, hidden_size: int, *, modules: int = OPTIONS["modules"],
                    period_base: int = OPTIONS["period_base"]) -> int:
    """I*H + H + sum_i H_i * (H_i + ... + H_g): the block-triangular R without its zeros."""
    modules, _ = _options(modules, period_base)
    sizes = module_sizes(hidden_size, modules)
    return input_size * hidden_size + hidden_size + sum(
        n * sum(sizes[k:]) for k, n in enumerate(sizes))


def clockwork_sequence(x: Tensor, weight_ih: Tensor, bias: Tensor,
                       recurrent: list[Tensor], sizes: tuple[int, ...],
                       module_periods: tuple[int, ...],
                       drop: VariationalDropout | None = None) -> Tensor:
    """Run the clockwork RNN over x (T, B, I); y (T, B, H) (see the module's equations).

    recurrent[i] is R_i (H_i, H_i + ... + H_g). With `drop`, the single gate "a" masks x and
    h_{t-1}, as for the plain RNN.
    """
    T, B, _ = x.shape
    H = sum(sizes)
    if drop is not None:
        x = drop.x("a", x)
    x_proj = nn.functional.linear(x, weight_ih, bias)  # every module's input term at once
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    h = x.new_zeros(B, H)
    outputs = []
    for t in range(T):
        h_in = h if drop is None else drop.h("a", h)
        parts = list(h.split(sizes, dim=1))  # modules that do not tick keep these tensors
        for k, (start, n) in enumerate(zip(starts, sizes, strict=True)):
            if t % module_periods[k] == 0:
                parts[k] = torch.tanh(x_proj[t, :, start:start + n]
                                      + h_in[:, start:] @ recurrent[k].t())
        h = torch.cat(parts, dim=1)
        outputs.append(h)
    return torch.stack(outputs) if outputs else x.new_zeros(0, B, H)


class ClockworkCell(nn.Module):
    """One direction of a clockwork RNN: weight_ih (H, I), bias (H), weight_hh_<i> per module.

    Every `impl` but "cpp" runs the readable loop; "cpp" is refused (no C++ kernel).
    """

    def __init__(self, input_size: int, hidden_size: int, *, init_std: float, impl: str,
                 modules: int = OPTIONS["modules"],
                 period_base: int = OPTIONS["period_base"]) -> None:
        super().__init__()
        if impl == "cpp":
            raise ValueError("CW has no C++ kernel; use impl='auto' or 'reference'")
        modules, period_base = _options(modules, period_base)
        self.input_size, self.hidden_size, self.init_std = input_size, hidden_size, init_std
        self.sizes = module_sizes(hidden_size, modules)
        self.periods = periods(len(self.sizes), period_base)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        for k, n in enumerate(self.sizes):
            self.register_parameter(f"weight_hh_{k}",
                                    nn.Parameter(torch.empty(n, sum(self.sizes[k:]))))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """All weights from N(0, init_std), as for every built-in cell."""
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, self.init_std)

    def recurrent(self) -> list[Tensor]:
        """R_i of each module, shortest period first."""
        return [getattr(self, f"weight_hh_{k}") for k in range(len(self.sizes))]

    def sequence(self, x: Tensor, drop: VariationalDropout | None = None) -> Tensor:
        """y (T, B, H) for x (T, B, I), all sequences starting at t = 0."""
        return clockwork_sequence(x, self.weight_ih, self.bias, self.recurrent(), self.sizes,
                                  self.periods, drop)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, periods={self.periods}"


def _build(input_size: int, hidden_size: int, *, forget_bias: float, init_std: float,
           impl: str, **options: Any) -> nn.Module:
    del forget_bias  # an LSTM-family option
    return ClockworkCell(input_size, hidden_size, init_std=init_std, impl=impl, **options)


CELL = add_cell(CellType(
    name="CW", build=_build, parameter_count=parameter_count, group="extra",
    options=OPTIONS,
    description="clockwork RNN (Koutník et al. 2014): tanh modules with periods base^(i-1)"))
