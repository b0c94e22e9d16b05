"""Plugin files the tests write: a cell of one's own (MyCell), and broken variants of it."""

from __future__ import annotations

from pathlib import Path

# Zhou et al. (2016)'s minimal gated unit, as a user would write it: one forget gate f,
# h~ = tanh(W_h x + U_h (f * h') + b_h), h = (1 - f) * h' + f * h~.
MY_CELL = '''
import torch
from odyssey.cells import register_cell


def parameters(I, H):
    return {"W": (2 * H, I), "U": (2 * H, H), "b": (2 * H,)}


def step(p, x, h, drop):
    W_f, W_h = p["W"].chunk(2)
    U_f, U_h = p["U"].chunk(2)
    b_f, b_h = p["b"].chunk(2)
    f = torch.sigmoid(drop.x("f", x) @ W_f.T + drop.h("f", h) @ U_f.T + b_f)
    cand = torch.tanh(drop.x("h", x) @ W_h.T + (f * drop.h("h", h)) @ U_h.T + b_h)
    return (1 - f) * h + f * cand


register_cell("MyCell", parameters=parameters, step=step,
              parameter_count=lambda I, H: 2 * (I * H + H * H + H))
'''


def write_plugin(folder: Path, source: str = MY_CELL, name: str = "my_cells.py") -> Path:
    """`source` written to folder/name; returns the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(source)
    return path
