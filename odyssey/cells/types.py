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
    `options`: the cell's own options and their defaults (CW's module count); `build` and
    `parameter_count` take them as keyword arguments. `missing_inputs`: the cell reads its
    input as three equal blocks [x; m; delta] -- values, observation mask, time since the
    last observation -- (GRU-D, odyssey.data.missing) instead of plain features.
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
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    missing_inputs: bool = False

    def resolve_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """`options` checked against the cell's own (an unknown key is an error naming it)."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"cell {self.name}: unknown cell option(s) {unknown}; "
                             + (f"expected some of {sorted(self.options)}" if self.options
                                else "it takes none"))
        return options

    def count(self, input_size: int, hidden_size: int,
              options: Mapping[str, Any] | None = None) -> int:
        """`parameter_count` of one direction under `options` (none for most cells)."""
        options = self.resolve_options(options)
        return int(self.parameter_count(input_size, hidden_size, **options))


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
