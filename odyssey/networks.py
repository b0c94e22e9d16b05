"""The networks of DESIGN §3: recurrent layers (one by default) and a linear output head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from .cells import build_layer, get_cell, parameter_count
from .data.missing import MissingView


class SequenceNetwork(nn.Module):
    """`layers` recurrent layers of one variant (one: the paper) and a per-step linear head.

    Returns pre-activation scores (T, B, output_size); the task's loss applies the softmax
    or sigmoid, so that each loss can use its numerically stable fused form. `dropout`:
    the recurrent layers' variational dropout (training mode only). `layers` > 1 stacks
    layers of the same variant and hidden size, each reading the previous one's output
    (deep vs wide). `input_view`: a parameter-free module applied to the inputs first (what a
    cell reads of a task with missing data, odyssey.data.missing); its `output_size` is the
    first layer's input size. `cell_options`: the cell's own options (CW's modules). A cell
    that reads [x; m; delta] (GRU-D) above the first layer reads [y; 1; delta] of the layer
    below, whose outputs are all observed.
    """

    def __init__(self, variant: str, input_size: int, hidden_size: int, output_size: int, *,
                 bidirectional: bool, forget_bias: float = 0.0, init_std: float = 0.1,
                 impl: str = "auto", dropout: float = 0.0, layers: int = 1,
                 cell_options: Mapping[str, Any] | None = None,
                 input_view: nn.Module | None = None) -> None:
        super().__init__()
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers must be an integer >= 1, got {layers!r}")
        self.input_view = input_view
        size = input_size if input_view is None else int(input_view.output_size)
        options = dict(forget_bias=forget_bias, init_std=init_std, impl=impl, dropout=dropout,
                       cell_options=cell_options)
        self.rnn = build_layer(variant, size, hidden_size, bidirectional=bidirectional,
                               **options)
        # layers 2.. (empty for one layer, so a one-layer network is the paper's, unchanged)
        width = self.rnn.output_size
        self.between = (MissingView("complete", width)
                        if layers > 1 and get_cell(variant).missing_inputs else None)
        self.deeper = nn.ModuleList(
            build_layer(variant, _deeper_input(variant, width), hidden_size,
                        bidirectional=bidirectional, **options) for _ in range(layers - 1))
        self.head = nn.Linear(self.rnn.output_size, output_size)
        nn.init.normal_(self.head.weight, 0.0, init_std)
        nn.init.normal_(self.head.bias, 0.0, init_std)

    @property
    def layers(self) -> int:
        """Recurrent layers in the stack."""
        return 1 + len(self.deeper)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.input_view is not None:
            x = self.input_view(x)
        y = self.rnn(x, lengths)
        for layer in self.deeper:
            y = layer(y if self.between is None else self.between(y), lengths)
        return self.head(y)

    def parameter_count(self) -> int:
        """Trainable parameters, recurrent layers and head together."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def recurrent_parameter_count(self) -> int:
        """Parameters of the recurrent layers alone (the cell's formula, DESIGN §2)."""
        return sum(parameter_count(r.variant, r.input_size, r.hidden_size, r.bidirectional,
                                   r.cell_options) for r in (self.rnn, *self.deeper))


def _deeper_input(variant: str, width: int) -> int:
    """Input size of a layer above the first: the output width, or [y; 1; delta] (GRU-D)."""
    return 3 * width if get_cell(variant).missing_inputs else width


def network_parameter_count(variant: str, input_size: int, hidden_size: int, output_size: int,
                            *, bidirectional: bool, layers: int = 1,
                            cell_options: Mapping[str, Any] | None = None) -> int:
    """What `SequenceNetwork(...).parameter_count()` will be, from the formulas alone."""
    width = hidden_size * (2 if bidirectional else 1)
    n = parameter_count(variant, input_size, hidden_size, bidirectional, cell_options)
    n += (layers - 1) * parameter_count(variant, _deeper_input(variant, width), hidden_size,
                                        bidirectional, cell_options)
    return n + width * output_size + output_size


def hidden_size_for_budget(budget: int, variant: str, input_size: int, output_size: int, *,
                           bidirectional: bool, layers: int = 1,
                           cell_options: Mapping[str, Any] | None = None,
                           smallest: int = 1) -> int:
    """The largest hidden size whose network has at most `budget` parameters (at least
    `smallest`): deep and wide networks of one budget compared at equal size. The count
    grows with the hidden size, so a bisection finds it."""
    def count(h: int) -> int:
        return network_parameter_count(variant, input_size, h, output_size,
                                       bidirectional=bidirectional, layers=layers,
                                       cell_options=cell_options)

    for _ in range(1024):  # the smallest size the cell accepts (CW: one unit per module)
        try:
            below = count(smallest) > budget
            break
        except ValueError:
            smallest += 1
    else:
        raise ValueError(f"{variant}: no hidden size up to {smallest} can be built")
    if below:
        return smallest
    lo, hi = smallest, max(smallest, 2)
    while count(hi) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # count(lo) <= budget < count(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) <= budget else (lo, mid)
    return lo
