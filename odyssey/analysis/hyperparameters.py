"""The search space as the analysis sees it: names, bounds and whether each is searched in log.

fANOVA integrates over the box the search sampled from, in the scale it sampled in (log10 for
log-uniform hyperparameters), so the analysis needs the bounds, not just the observed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hyperparameter:
    """One searched hyperparameter: its bounds in natural units and whether it is log-uniform."""

    name: str
    low: float
    high: float
    log: bool = False
    label: str = ""

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"hyperparameter {self.name!r}: high ({self.high}) must exceed "
                             f"low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError(f"hyperparameter {self.name!r}: a log-scale search needs low > 0, "
                             f"got {self.low}")

    @property
    def bounds(self) -> tuple[float, float]:
        """Bounds in the search scale (log10 when the search is log-uniform)."""
        return float(self.to_search(self.low)), float(self.to_search(self.high))

    def to_search(self, values: np.ndarray | float) -> np.ndarray:
        """Natural units -> search scale (log10 for log hyperparameters, identity otherwise)."""
        values = np.asarray(values, dtype=float)
        return np.log10(values) if self.log else values

    def from_search(self, values: np.ndarray | float) -> np.ndarray:
        """Search scale -> natural units."""
        values = np.asarray(values, dtype=float)
        return 10.0 ** values if self.log else values

    @property
    def display(self) -> str:
        """Axis label."""
        return self.label or self.name.replace("_", " ")


# The paper protocol (DESIGN §4, docs/results.md "Trial params"): the space used when a store
# does not say otherwise.
DEFAULT_SPACE: tuple[Hyperparameter, ...] = (
    Hyperparameter("learning_rate", 1e-6, 1e-2, log=True, label="learning rate"),
    Hyperparameter("hidden_size", 20, 200, log=True, label="hidden size (blocks)"),
    Hyperparameter("one_minus_momentum", 0.01, 1.0, log=True, label="1 - momentum"),
    Hyperparameter("input_noise", 0.0, 1.0, log=False, label="input noise std"),
)

LABELS: Mapping[str, str] = {**{hp.name: hp.label for hp in DEFAULT_SPACE},
                             "dropout": "variational dropout p",
                             "layers": "recurrent layers",
                             "parameter_budget": "parameter budget"}


def space_from_distributions(distributions: Mapping[str, object]) -> tuple[Hyperparameter, ...]:
    """The space of Optuna distributions (Int/FloatDistribution), in the default order."""
    order = [hp.name for hp in DEFAULT_SPACE]
    names = sorted(distributions, key=lambda n: (order.index(n) if n in order else len(order), n))
    space = []
    for name in names:
        dist = distributions[name]
        for attr in ("low", "high"):
            if not hasattr(dist, attr):
                raise ValueError(f"parameter {name!r}: distribution {dist!r} is not numeric "
                                 "(expected Int/FloatDistribution)")
        space.append(Hyperparameter(name, float(dist.low), float(dist.high),
                                    log=bool(getattr(dist, "log", False)),
                                    label=LABELS.get(name, "")))
    return tuple(space)
