"""The recurrent cells of DESIGN §2, the registry that finds them, and the one way to build a
layer from them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from . import clockwork, grud  # noqa: F401,E402  (they register CW and GRUD)
from .dropout import VariationalDropout
from .layer import IMPLS, RecurrentLayer
from .registry import (
    CellRegistrationError,
    CellType,
    canonical,
    cell_names,
    check_cell,
    get_cell,
    parameter_count,
    register_cell,
    remove_cell,
    spec,
)
from .variants import (
    ALL_VARIANTS,
    EXTRA_VARIANTS,
    LSTM_FAMILY,
    SPECS,
    VARIANTS,
    VariantSpec,
)

__all__ = [
    "VARIANTS", "EXTRA_VARIANTS", "ALL_VARIANTS", "LSTM_FAMILY", "SPECS", "VariantSpec",
    "RecurrentLayer", "build_layer", "VariationalDropout",
    "CellType", "CellRegistrationError", "register_cell", "remove_cell", "get_cell",
    "cell_names", "check_cell",
    "canonical", "parameter_count", "spec", "IMPLS",
]


def build_layer(variant: str, input_size: int, hidden_size: int, *, bidirectional: bool = False,
                forget_bias: float = 0.0, init_std: float = 0.1,
                impl: str = "auto", dropout: float = 0.0,
                cell_options: Mapping[str, Any] | None = None) -> nn.Module:
    """A recurrent layer of `variant` (case-insensitive name of a registered cell).

    Call it as `layer(x, lengths=None)` with x time-major (T, B, I); it returns (T, B, H),
    or (T, B, 2H) when bidirectional, with zeros at padded steps. `impl` picks the kernel:
    "auto" (the fastest available: the compiled C++ kernels for the LSTM family, PyTorch's
    own kernels for GRU/RNN; the reference loop, after one warning, where the C++ build
    fails), "cpp" (the fast kernels or an error) or "reference" (the readable per-step loop).
    `dropout` > 0: variational dropout while the layer is in training mode (one mask per
    sequence and gate on the inputs and the recurrent connections, odyssey.cells.dropout);
    those forward passes run the reference loop. `cell_options`: the cell's own options
    (CW's `modules` and `period_base`); an unknown key is an error.
    """
    cell = get_cell(variant)
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; expected one of {', '.join(IMPLS)}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if init_std < 0:
        raise ValueError(f"init_std must be >= 0, got {init_std}")
    return RecurrentLayer(cell, input_size, hidden_size, bidirectional=bidirectional,
                          forget_bias=forget_bias, init_std=init_std, impl=impl,
                          dropout=dropout, cell_options=cell_options)
