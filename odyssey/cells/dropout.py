"""Variational dropout (Gal & Ghahramani 2016, DESIGN §2): one mask per sequence and gate.

For one forward call of one direction of a layer, a `VariationalDropout` holds a mask for
each (connection, gate) pair: "x" masks multiply the input x_t where it enters gate g's
input weights, "h" masks multiply the previous output h' where it enters gate g's recurrent
weights. A mask is drawn once per sequence of the batch (rows differ between sequences) and
reused at every time step; each gate has its own ("untied"). Masks are inverted-dropout
masks, Bernoulli(1 - p) / (1 - p), so nothing changes at evaluation, where the layer passes
no masks at all. Masks are drawn on first use, in the order a cell asks for them, from the
layer's own seeded generator, so a trial's masks depend only on its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class VariationalDropout:
    """The per-sequence masks of one layer direction for one forward call (see module)."""

    def __init__(self, p: float, batch: int, input_size: int, hidden_size: int, *,
                 generator: torch.Generator, device: torch.device, dtype: torch.dtype) -> None:
        if not 0.0 < p < 1.0:
            raise ValueError(f"dropout must lie in (0, 1) when masks are drawn, got {p!r}")
        self.p, self.batch = p, batch
        self.sizes = {"x": input_size, "h": hidden_size}
        self.generator, self.device, self.dtype = generator, device, dtype
        self._masks: dict[tuple[str, str], Tensor] = {}

    def mask(self, kind: str, gate: str) -> Tensor:
        """The (B, size) mask of connection `kind` ("x" or "h") into `gate`."""
        if kind not in self.sizes:
            raise ValueError(f"dropout connection must be 'x' or 'h', got {kind!r}")
        key = (kind, str(gate))
        if key not in self._masks:
            keep = torch.rand((self.batch, self.sizes[kind]), generator=self.generator,
                              device=self.device) >= self.p
            self._masks[key] = keep.to(self.dtype) / (1.0 - self.p)
        return self._masks[key]

    def x(self, gate: str, x: Tensor) -> Tensor:
        """x (B, I) with gate `gate`'s input mask applied (the same at every step)."""
        return x * self.mask("x", gate)

    def h(self, gate: str, h: Tensor) -> Tensor:
        """h (B, H) with gate `gate`'s recurrent mask applied (the same at every step)."""
        return h * self.mask("h", gate)

    def stacked(self, kind: str, gates: Sequence[str]) -> Tensor:
        """The masks of `gates` as one (B, G, size) tensor, for batched gate products."""
        return torch.stack([self.mask(kind, g) for g in gates], dim=1)

    @property
    def used(self) -> set[tuple[str, str]]:
        """The (connection, gate) masks drawn so far (a cell that draws none ignores dropout)."""
        return set(self._masks)


class NoDropout:
    """The `drop` argument of a plugin cell's step when dropout is off: every mask is 1.

    Returns its inputs unchanged (no multiplication), so results equal a cell without
    dropout bit for bit.
    """

    p = 0.0

    def x(self, gate: str, x: Tensor) -> Tensor:
        return x

    def h(self, gate: str, h: Tensor) -> Tensor:
        return h


NO_DROPOUT = NoDropout()


def masked_linear(x: Tensor, weight: Tensor, bias: Tensor | None, masks: Tensor) -> Tensor:
    """Rows of `weight` in G equal blocks, block g applied to x * masks[:, g]; (..., B, G*H).

    x (..., B, I), weight (G*H, I), masks (B, G, I): the per-gate product of a variational
    dropout layer in one einsum (the unmasked path is F.linear, kept apart for exactness).
    """
    g = masks.shape[1]
    w = weight.reshape(g, -1, weight.shape[-1])  # (G, H, I)
    out = torch.einsum("...bi,bgi,ghi->...bgh", x, masks, w)
    out = out.reshape(*out.shape[:-2], -1)
    return out if bias is None else out + bias
