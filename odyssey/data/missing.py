"""Missing data for any task (Che et al. 2018): observations removed at a seeded rate.

A task loaded with `missing_rate` > 0 (task options, `odyssey.tasks.load_task`) keeps, per
sequence, three blocks of D features each, [x; m; delta]:

- m, the observation mask: each value (`missing: value`) or each whole frame (`missing:
  frame`) is removed with probability `missing_rate`, drawn from `missing_seed`, the split and
  the sequence's index, so every trial of a study sees the same gaps;
- x, each feature centred on the mean of its observed training values (so x-bar, the
  training mean, is 0) and 0 where m = 0;
- delta, the time since each feature was last observed, in steps: delta_0 = 0 and
  delta_t = 1 + (1 - m_{t-1}) delta_{t-1} (Che et al.'s definition with time stamps 0, 1, ...).

A cell that reads these blocks itself (GRU-D: `CellType.missing_inputs`) gets them as they
are; every other cell sees them through a `MissingView` chosen by `fill`, the seeds' three
baselines: `mean` (x, which is the training mean where missing), `last` (each missing value
replaced by the feature's last observation, the mean before the first) or `mixed` ([last; m;
delta], Che et al.'s GRU-simple). A task without missing data gives a GRU-D cell [x; 1;
delta] (`MissingView("complete")`). The views run inside the network, on the batch the
trainer hands it, so the trainer needs no case for them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

UNITS = ("value", "frame")
FILLS = ("mean", "last", "mixed")
VIEWS = ("mean", "last", "mixed", "complete")
# the task options this module reads (configs/task/*.yaml), with their defaults
OPTIONS: dict[str, Any] = {"missing_rate": 0.0, "missing": "value", "fill": "mean",
                           "missing_seed": 0}


@dataclass(frozen=True)
class MissingSpec:
    """The missing-data task options, checked (see the module)."""

    rate: float = 0.0
    unit: str = "value"
    fill: str = "mean"
    seed: int = 0
    native: bool = False  # the data came with gaps of their own (PhysioNet), none removed

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float) \
                or not 0.0 <= self.rate < 1.0:
            raise ValueError(f"task.missing_rate must be a number in [0, 1), got {self.rate!r}")
        if self.unit not in UNITS:
            raise ValueError(f"task.missing must be one of {', '.join(UNITS)}, got "
                             f"{self.unit!r}")
        if self.fill not in FILLS:
            raise ValueError(f"task.fill must be one of {', '.join(FILLS)}, got {self.fill!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"task.missing_seed must be an integer >= 0, got {self.seed!r}")

    @property
    def active(self) -> bool:
        """Whether the inputs have gaps: removed (missing_rate > 0) or their own."""
        return self.rate > 0 or self.native

    def describe(self) -> str:
        """One line for reports: "missing 30 % per value, fill mean" or "complete"."""
        if self.native:
            return f"gaps of its own, fill {self.fill}"
        if not self.active:
            return "complete"
        return f"missing {100 * self.rate:g} % per {self.unit}, fill {self.fill}"


def missing_spec(options: Mapping[str, Any]) -> MissingSpec:
    """A MissingSpec from task options (the keys of OPTIONS; others are ignored)."""
    return MissingSpec(rate=options.get("missing_rate", OPTIONS["missing_rate"]),
                       unit=options.get("missing", OPTIONS["missing"]),
                       fill=options.get("fill", OPTIONS["fill"]),
                       seed=options.get("missing_seed", OPTIONS["missing_seed"]))


def draw_mask(shape: tuple[int, int], spec: MissingSpec, split: str, index: int) -> np.ndarray:
    """(T, D) observation mask of sequence `index` of `split`: 1 observed, 0 removed."""
    rng = np.random.default_rng([spec.seed, zlib.crc32(split.encode()), index])
    T, D = shape
    keep = rng.random((T, 1) if spec.unit == "frame" else (T, D)) >= spec.rate
    return np.broadcast_to(keep, (T, D)).astype(np.float32)


def time_since_observed(m: np.ndarray) -> np.ndarray:
    """delta (T, D): delta_0 = 0, delta_t = 1 + (1 - m_{t-1}) delta_{t-1}."""
    delta = np.zeros(m.shape, np.float32)
    for t in range(1, len(m)):
        delta[t] = 1.0 + (1.0 - m[t - 1]) * delta[t - 1]
    return delta


def remove(splits_inputs: Mapping[str, Sequence[np.ndarray]], spec: MissingSpec
           ) -> dict[str, list[np.ndarray]]:
    """Each split's sequences (T, D) as [x; m; delta] (T, 3D), x centred on the mean of the
    observed training values and 0 where removed."""
    masks = {s: [draw_mask(x.shape, spec, s, k) for k, x in enumerate(seqs)]
             for s, seqs in splits_inputs.items()}
    return with_gaps(splits_inputs, masks)


def with_gaps(values: Mapping[str, Sequence[np.ndarray]],
              masks: Mapping[str, Sequence[np.ndarray]], *, scale: bool = False
              ) -> dict[str, list[np.ndarray]]:
    """Sequences `values` (T, D) with observation masks `masks` (T, D) per split as
    [x; m; delta]: x centred on the mean of the observed training values (and divided by
    their standard deviation when `scale`: data not standardised before), 0 where m = 0."""
    train_x = np.concatenate(list(values["train"]), axis=0).astype(np.float64)
    train_m = np.concatenate(list(masks["train"]), axis=0).astype(np.float64)
    seen = train_m.sum(0)
    mean = np.where(seen > 0, (train_x * train_m).sum(0) / np.maximum(seen, 1), 0.0)
    std = np.ones_like(mean)
    if scale:
        var = (((train_x - mean) * train_m) ** 2).sum(0) / np.maximum(seen, 1)
        std = np.where(var > 1e-16, np.sqrt(var), 1.0)
    out: dict[str, list[np.ndarray]] = {}
    for s, seqs in values.items():
        out[s] = [np.concatenate([np.where(m > 0, (x - mean) / std, 0.0).astype(np.float32),
                                  m.astype(np.float32), time_since_observed(m)], axis=1)
                  for x, m in zip(seqs, masks[s], strict=True)]
    return out


def forward_fill(x: Tensor, m: Tensor) -> Tensor:
    """x (T, B, D) with each value where m = 0 replaced by the last observed one (0 before
    any): a running index of the last observation, gathered."""
    steps = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1).expand_as(x)
    last = torch.where(m > 0, steps, -1).cummax(dim=0).values
    filled = x.gather(0, last.clamp(min=0))
    return torch.where(last >= 0, filled, torch.zeros_like(x))


class MissingView(nn.Module):
    """What a cell sees of the task's inputs (see the module): no parameters, time-major.

    "mean", "last", "mixed" read [x; m; delta] (3D features); "complete" reads plain x (D)
    and gives [x; 1; delta] with delta 0 at the first step and 1 after.
    """

    def __init__(self, mode: str, features: int) -> None:
        super().__init__()
        if mode not in VIEWS:
            raise ValueError(f"unknown missing-data view {mode!r}; expected one of {VIEWS}")
        self.mode, self.features = mode, features

    @property
    def output_size(self) -> int:
        """Features per step of what the cell reads."""
        return self.features if self.mode in ("mean", "last") else 3 * self.features

    def forward(self, inputs: Tensor) -> Tensor:
        D = self.features
        if self.mode == "complete":
            delta = torch.ones_like(inputs)
            delta[:1] = 0.0
            return torch.cat([inputs, torch.ones_like(inputs), delta], dim=-1)
        x, m, delta = inputs.split(D, dim=-1)
        if self.mode == "mean":
            return x
        last = forward_fill(x, m)
        return last if self.mode == "last" else torch.cat([last, m, delta], dim=-1)

    def extra_repr(self) -> str:
        return f"{self.mode}, features={self.features}"
