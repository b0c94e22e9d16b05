"""The one registry of recurrent cells: the built-in ones and those plugins register.

Every consumer (layers, the trainer, the sweep's config check, the analysis's ordering)
finds a cell here by its name. A `CellType` says how to build one direction of a layer and
how many parameters that direction has. The built-ins are registered below, in the order
of DESIGN §2; a user's module adds its own with `register_cell` (docs/extending.md
"Your own cell"), loaded by name through `odyssey.plugins`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from ..registry import BUILTIN, Registry, origin_or_current
from .layer import LSTMFamilyCell, MutCell, PluginCell, TorchParamCell
from .types import CellType, PluginDefinition
from .variants import (
    EXTRA_VARIANTS,
    LSTM_FAMILY,
    SPECS,
    VARIANTS,
    VariantSpec,
    builtin_parameter_count,
)

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# what a cell is in the study: the paper's LSTM variants (one multiple-testing family in
# the analysis), its two baselines, cells we add beside them, cells from plugins
GROUPS = ("paper", "baseline", "extra", "plugin")


class CellRegistrationError(ValueError):
    """A cell definition that cannot be registered; the message says what is wrong."""


def _same_definition(old: CellType, new: CellType) -> bool:
    """The same plugin registering the same definition again (a module imported twice)."""
    return (old.definition is not None and old.origin == new.origin
            and old.name == new.name and old.definition == new.definition)


# the cells by name (case-insensitive), in registration order: built-ins first
CELLS: Registry[CellType] = Registry("cell", error=CellRegistrationError,
                                     case_insensitive=True, same=_same_definition)


def add_cell(cell: CellType) -> CellType:
    """Register `cell`; a name taken by another cell (case-insensitive) is an error."""
    if not isinstance(cell.name, str) or not NAME_PATTERN.match(cell.name):
        raise CellRegistrationError(
            f"cell name {cell.name!r} must start with a letter and hold only letters, digits "
            "and '_' (it names studies, folders and table rows)")
    if cell.group not in GROUPS:
        raise CellRegistrationError(f"cell {cell.name}: group must be one of {GROUPS}, "
                                    f"got {cell.group!r}")
    return CELLS.add(cell)


def remove_cell(name: str) -> None:
    """Unregister a plugin cell (tests, notebooks reloading a plugin); built-ins stay."""
    cell = get_cell(name)
    if cell.origin == BUILTIN:
        raise ValueError(f"{cell.name} is a built-in cell and cannot be removed")
    CELLS.remove(cell.name)


def cell_names(group: str | None = None) -> tuple[str, ...]:
    """Registered cell names in registration order (built-ins first), of `group` if given."""
    return tuple(c.name for c in CELLS if group is None or c.group == group)


def get_cell(name: str) -> CellType:
    """The cell called `name` (case-insensitive); ValueError listing the valid names."""
    cell = CELLS.get(name)
    if cell is None:
        raise ValueError(
            f"unknown variant {name!r}; expected one of {', '.join(cell_names())} "
            "(case-insensitive; a cell of your own must be registered by a plugin, see "
            "docs/extending.md 'Your own cell')")
    return cell


def canonical(name: str) -> str:
    """The registered spelling of cell `name` (case-insensitive)."""
    return get_cell(name).name


def spec(name: str) -> VariantSpec:
    """The `VariantSpec` of a built-in cell (case-insensitive name)."""
    cell = get_cell(name)
    if cell.spec is None:
        raise ValueError(f"{cell.name} is a plugin cell; it has no VariantSpec")
    return cell.spec


def parameter_count(variant: str, input_size: int, hidden_size: int,
                    bidirectional: bool = False,
                    cell_options: Mapping[str, Any] | None = None) -> int:
    """The cell's formula for the number of trainable parameters of one layer (DESIGN §2)."""
    n = get_cell(variant).count(input_size, hidden_size, cell_options)
    return 2 * n if bidirectional else n


# -- cells from plugins ------------------------------------------------------------------

def register_cell(name: str, *, parameters: Callable[[int, int], Mapping[str, tuple[int, ...]]],
                  parameter_count: Callable[[int, int], int],
                  step: Callable[..., Any] | None = None,
                  sequence: Callable[..., Tensor] | None = None,
                  fast: Callable[..., Tensor] | None = None, states: int = 1,
                  init: Callable[[dict[str, Tensor], float], None] | None = None,
                  description: str = "", origin: str | None = None) -> CellType:
    """Register a cell of your own under `name` (docs/extending.md "Your own cell").

    parameters(I, H): {name: shape} of one direction's parameters (each starts from
        N(0, init_std) like the built-ins, unless `init(params, init_std)` is given).
    parameter_count(I, H): the formula for that number (checked against the shapes).
    step(p, x, state, drop) -> state: one time step; p the parameters by name, x (B, I),
        state the previous state, zeros at t = 0: a (B, H) tensor, or a tuple of `states`
        of them; the block output is the state (or its first element). `drop` applies
        variational dropout: use drop.x(gate, x) and drop.h(gate, h) wherever x or the
        previous output enters gate `gate`'s weights (identity when dropout is off).
    sequence(p, x, drop) -> y: instead of `step`, the whole loop over x (T, B, I).
    fast(p, x) -> y: optional faster equivalent of the loop without dropout, used unless
        impl="reference" (and while dropout masks are drawn).
    """
    where = f"cell {name!r}"
    for key, fn in (("parameters", parameters), ("parameter_count", parameter_count)):
        if not callable(fn):
            raise CellRegistrationError(f"{where}: {key} must be a function of (input_size, "
                                        f"hidden_size), got {fn!r}")
    if (step is None) == (sequence is None):
        raise CellRegistrationError(f"{where}: give exactly one of step(p, x, state, drop) "
                                    "or sequence(p, x, drop)")
    for key, fn in (("step", step), ("sequence", sequence), ("fast", fast), ("init", init)):
        if fn is not None and not callable(fn):
            raise CellRegistrationError(f"{where}: {key} must be a function, got {fn!r}")
    if isinstance(states, bool) or not isinstance(states, int) or states < 1:
        raise CellRegistrationError(f"{where}: states must be an integer >= 1, got {states!r}")
    definition = PluginDefinition(name, parameters, parameter_count, step, sequence, fast,
                                  states, init)
    return add_cell(CellType(
        name=name, build=partial(_build_plugin_cell, definition),
        parameter_count=parameter_count, group="plugin", origin=origin_or_current(origin),
        has_fast=fast is not None, description=description, definition=definition))


def _build_plugin_cell(definition: PluginDefinition, input_size: int, hidden_size: int, *,
                       forget_bias: float, init_std: float, impl: str) -> nn.Module:
    del forget_bias  # an LSTM-family option; a plugin cell initialises itself
    return PluginCell(definition, input_size, hidden_size, init_std, impl)


def check_cell(name: str, *, dropout: bool = False) -> None:
    """Build a small layer of `name` and run it forward and backward, both directions.

    Catches a broken cell before anything trains: shapes that do not match
    `parameter_count`, a step that fails or returns the wrong shape, and (with `dropout`)
    a cell that never applies the dropout masks. Raises ValueError saying what is wrong.
    """
    from .layer import RecurrentLayer

    cell = get_cell(name)
    who = f"cell {cell.name}" + ("" if cell.origin == BUILTIN else f" (plugin {cell.origin})")
    i, h, T, B = (6 if cell.missing_inputs else 3), 4, 5, 2
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
            layer = RecurrentLayer(cell, i, h, bidirectional=True, impl="reference",
                                   dropout=0.5 if dropout else 0.0)
            n = sum(p.numel() for p in layer.parameters())
            expected = 2 * int(cell.parameter_count(i, h))
            if n != expected:
                raise ValueError(f"its parameters hold {n // 2} numbers per direction at "
                                 f"I={i}, H={h}, but parameter_count({i}, {h}) says "
                                 f"{expected // 2}")
            x = torch.randn(T, B, i)
            y = layer(x, torch.tensor([T, T - 2]))
            if y.shape != (T, B, 2 * h):
                raise ValueError(f"a layer returned shape {tuple(y.shape)}, expected "
                                 f"{(T, B, 2 * h)}")
            y.sum().backward()
        if dropout and not layer.dropout_used:
            raise ValueError("it never applies the dropout masks, so it cannot take "
                             "search.params.dropout: call drop.x(gate, x) and "
                             "drop.h(gate, h) where x and the previous output enter a gate")
    except Exception as e:
        raise ValueError(f"{who} is broken: {type(e).__name__}: {e}") from e


# -- the built-in cells, in the order of DESIGN §2 ---------------------------------------

def _lstm(spec: VariantSpec, input_size: int, hidden_size: int, *, forget_bias: float,
          init_std: float, impl: str) -> nn.Module:
    return LSTMFamilyCell(spec, input_size, hidden_size, forget_bias, init_std, impl)


def _torch_params(spec: VariantSpec, input_size: int, hidden_size: int, *, forget_bias: float,
                  init_std: float, impl: str) -> nn.Module:
    return TorchParamCell(spec, input_size, hidden_size, init_std, impl)


def _mut(spec: VariantSpec, input_size: int, hidden_size: int, *, forget_bias: float,
         init_std: float, impl: str) -> nn.Module:
    return MutCell(spec, input_size, hidden_size, init_std, impl)


_BUILDERS = {"lstm": _lstm, "gru": _torch_params, "rnn": _torch_params, "mut": _mut}

for _name in (*VARIANTS, *EXTRA_VARIANTS):
    _spec = SPECS[_name]
    add_cell(CellType(
        name=_name, build=partial(_BUILDERS[_spec.family], _spec),
        parameter_count=partial(builtin_parameter_count, _spec),
        group=("paper" if _name in LSTM_FAMILY else "baseline" if _name in VARIANTS
               else "extra"),
        has_fast=_spec.family != "mut", spec=_spec))

__all__ = ["CELLS", "CellType", "CellRegistrationError", "GROUPS", "add_cell", "canonical",
           "cell_names", "check_cell", "get_cell", "parameter_count", "register_cell",
           "remove_cell", "spec"]
