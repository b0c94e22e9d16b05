"""The networks of DESIGN §3: one recurrent layer and a linear output head."""

from __future__ import annotations

from torch import Tensor, nn

from .cells import build_layer, parameter_count


class SequenceNetwork(nn.Module):
    """One recurrent layer (any variant) followed by a per-step linear head.

    Returns pre-activation scores (T, B, output_size); the task's loss applies the softmax
    or sigmoid, so that each loss can use its numerically stable fused form. `dropout`:
    the recurrent layer's variational dropout (training mode only).
    """

    def __init__(self, variant: str, input_size: int, hidden_size: int, output_size: int, *,
                 bidirectional: bool, forget_bias: float = 0.0, init_std: float = 0.1,
                 impl: str = "auto", dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = build_layer(variant, input_size, hidden_size, bidirectional=bidirectional,
                               forget_bias=forget_bias, init_std=init_std, impl=impl,
                               dropout=dropout)
        self.head = nn.Linear(self.rnn.output_size, output_size)
        nn.init.normal_(self.head.weight, 0.0, init_std)
        nn.init.normal_(self.head.bias, 0.0, init_std)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.rnn(x, lengths))

    def parameter_count(self) -> int:
        """Trainable parameters, recurrent layer and head together."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def recurrent_parameter_count(self) -> int:
        """Parameters of the recurrent layer alone (the DESIGN §2 formula)."""
        r = self.rnn
        return parameter_count(r.variant, r.input_size, r.hidden_size, r.bidirectional)
