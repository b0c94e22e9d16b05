"""What a registered cell is: `CellType` (how to build one direction of a layer) and
`PluginDefinition` (what a plugin gave `register_cell`); held by odyssey.cells.registry,
built by odyssey.cells.layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from ..registry import BUILTIN
from .variants import VariantSpec


@dataclass(frozen=True)
class CellType:
    """A registered cell: how to build one direction of a layer, and its parameter count.

    `build(input_size, hidden_size, *, forget_bias, init_std, impl)` returns an nn.Module
    with `sequence(x, drop=None)` mapping x (T, B, I) to y (T, B, H), all sequences starting
    at t = 0 (the layer handles lengths and the reverse direction); `parameter_count(I, H)`
    is the formula for one direction. `has_fast`: a fast kernel exists (impl="cpp" works).
    """

    name: str
    build: Callable[..., nn.Module]
    parameter_count: Callable[[int, int], int]
    group: str
    origin: str = BUILTIN
    has_fast: bool = False
    spec: VariantSpec | None = None
    description: str = ""
    definition: Any = field(default=None, compare=False)  # the plugin's own definition


@dataclass(frozen=True)
class PluginDefinition:
    """What a plugin gave `register_cell` (see there)."""

    name: str
    parameters: Callable[[int, int], Mapping[str, tuple[int, ...]]]
    parameter_count: Callable[[int, int], int]
    step: Callable[..., Any] | None = None
    sequence: Callable[..., Tensor] | None = None
    fast: Callable[..., Tensor] | None = None
    states: int = 1
    init: Callable[[dict[str, Tensor], float], None] | None = None
