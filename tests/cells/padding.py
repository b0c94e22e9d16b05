"""The padding check every cell's tests run: a padded batch gives each sequence's own outputs."""

from __future__ import annotations

import torch


def assert_padding_invariant(layer: torch.nn.Module, seqs: list[torch.Tensor]) -> None:
    """`layer` on a batch of `seqs` (each (T_i, I)) padded with 0, 1e3 or NaN to 7-10 steps
    gives, bit for bit up to 1e-12, each sequence's outputs alone and zeros past its end."""
    lengths = [len(s) for s in seqs]
    alone = [layer(s[:, None])[:, 0] for s in seqs]
    for T, fill in ((max(lengths), 0.0), (max(lengths) + 3, 1e3), (max(lengths) + 2,
                                                                     float("nan"))):
        x = torch.full((T, len(seqs), seqs[0].shape[1]), fill, dtype=seqs[0].dtype)
        for b, s in enumerate(seqs):
            x[: len(s), b] = s
        y = layer(x, torch.tensor(lengths))
        for b, s in enumerate(seqs):
            assert torch.allclose(y[: len(s), b], alone[b], atol=1e-12, rtol=0), (T, fill)
            assert torch.all(y[len(s):, b] == 0)
