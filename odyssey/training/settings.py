"""What a trial is given and what it gives back: the searched `Hyperparameters`, the
`TrainSettings` (the `train` config group), a pack's `TrialJob`, the `TrainResult`, and the
early-stopping rule `improves` (DESIGN §4)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from ..cells import IMPLS, canonical, get_cell

STOPPING_RULES = ("metric_or_loss", "metric")
# two validation metrics this close count as a tie (CER 1.0 == 1.0 on a blank plateau)
TIE_REL_TOL, TIE_ABS_TOL = 1e-9, 1e-12


def improves(metric: float, loss: float | None, best_metric: float, best_loss: float | None,
             rule: str = "metric_or_loss") -> bool:
    """Whether an epoch's validation (metric, loss) beats the best so far under `rule`.

    "metric": the metric is lower. "metric_or_loss": the metric is lower, or ties with the
    best (within TIE_REL_TOL / TIE_ABS_TOL) and the loss is lower than the best epoch's.
    """
    if rule not in STOPPING_RULES:
        raise ValueError(f"train.stopping must be one of {', '.join(STOPPING_RULES)}, "
                         f"got {rule!r}")
    if math.isclose(metric, best_metric, rel_tol=TIE_REL_TOL, abs_tol=TIE_ABS_TOL):
        return (rule == "metric_or_loss" and loss is not None and best_loss is not None
                and loss < best_loss)
    return metric < best_metric


class Divergence(RuntimeError):
    """Training produced a non-finite loss, metric or parameter (the trial has failed)."""


@dataclass(frozen=True)
class Hyperparameters:
    """The four searched hyperparameters of DESIGN §4, in their natural scale, and the
    optional ones: variational dropout's probability (0: off, the paper's protocol), the
    number of recurrent layers (None: train.layers), a parameter budget, which replaces
    the hidden size (None then): the trainer derives the largest hidden size whose network
    fits the budget (deep vs wide at equal size, `networks.hidden_size_for_budget`), and
    searched cell options by cell (over train.cell_options)."""

    hidden_size: int | None
    learning_rate: float
    momentum: float
    input_noise: float
    dropout: float = 0.0
    layers: int | None = None
    parameter_budget: int | None = None
    cell_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if (self.hidden_size is None) == (self.parameter_budget is None):
            raise ValueError("give exactly one of hidden_size and parameter_budget, got "
                             f"{self.hidden_size!r} and {self.parameter_budget!r}")
        for name in ("hidden_size", "parameter_budget", "layers"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | np.integer)
                                      or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not self.input_noise >= 0:
            raise ValueError(f"input_noise must be >= 0, got {self.input_noise!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")

    @classmethod
    def from_search(cls, params: Mapping[str, Any]) -> Hyperparameters:
        """From the search-space parameters (which sample 1 - momentum, not momentum)."""
        def integer(key: str) -> int | None:
            return None if params.get(key) is None else int(params[key])

        options: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            cell, dot, option = key.partition(".")  # "<cell>.<option>": a cell's own option
            if dot:
                options.setdefault(canonical(cell), {})[option] = value
        return cls(hidden_size=integer("hidden_size"),
                   learning_rate=float(params["learning_rate"]),
                   momentum=1.0 - float(params["one_minus_momentum"]),
                   input_noise=float(params["input_noise"]),
                   dropout=float(params.get("dropout", 0.0)), layers=integer("layers"),
                   parameter_budget=integer("parameter_budget"), cell_options=options)


def resolve_device(device: str) -> torch.device:
    """`train.device` as a torch.device: "auto" is CUDA when this PyTorch sees a GPU, else
    the CPU; any other value is PyTorch's own device string (cpu, cuda, cuda:1, ...)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str) -> None:
    """ValueError naming `train.device` when this PyTorch cannot train there, so that the
    sweep stops before its first trial (a CPU-only build asked for CUDA would otherwise fail
    inside the first trial with "Torch not compiled with CUDA enabled")."""
    if not isinstance(device, str):
        raise ValueError(f"train.device must be auto, cpu or cuda[:N], got {device!r}")
    try:
        dev = resolve_device(device)
    except RuntimeError as e:
        raise ValueError(f"train.device={device}: {e}; expected auto, cpu or cuda[:N]") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = ("a CPU-only build" if torch.version.cuda is None
                     else f"built for CUDA {torch.version.cuda}, but it sees no GPU")
            raise ValueError(f"train.device={device}: this PyTorch ({torch.__version__}) is "
                             f"{build}; use train.device=cpu or train.device=auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"train.device={device}: this machine has "
                             f"{torch.cuda.device_count()} GPU(s) (cuda:0 to "
                             f"cuda:{torch.cuda.device_count() - 1})")
    elif dev.type not in ("cpu", "cuda"):
        raise ValueError(f"train.device={device}: only cpu and cuda are supported "
                         "(or auto: cuda when present, else cpu)")


@dataclass(frozen=True)
class TrainSettings:
    """Everything about training that is not searched (the `train` config group)."""

    max_epochs: int = 150
    patience: int = 15
    batch_size: int = 1
    eval_batch_size: int = 16
    device: str = "cpu"
    impl: str = "auto"
    forget_bias: float = 0.0
    init_std: float = 0.1
    # minibatch runs: multiply the learning rate by batch_size (the linear scaling rule,
    # Goyal et al. 2017), so that an epoch makes about the progress of batch-1 training
    scale_lr_with_batch: bool = False
    # "sequence": gradient of the loss summed over each sequence's steps (the paper, whose
    # learning-rate range assumes it); "step": of the per-step mean
    loss: str = "sequence"
    # when an epoch counts as a validation gain (see `improves`): "metric_or_loss" or
    # "metric" (the literal reading of the paper's rule)
    stopping: str = "metric_or_loss"
    # the LSTM family, GRU and RNN on the CPU train on the fused kernels (forward, backward
    # and SGD step in C++, packed.py); false: autograd and torch.optim for every cell, the
    # path before packed training (same results up to float rounding)
    fused: bool = True
    # score the test split after every epoch (a full test curve) instead of only at the
    # epochs whose validation score is a gain; the result is the same either way
    test_every_epoch: bool = False
    # stacked recurrent layers per network (1: the paper); search.params.layers overrides it
    layers: int = 1
    # each cell's own options by cell name, e.g. {"CW": {"modules": 4, "period_base": 2}}
    cell_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.stopping not in STOPPING_RULES:
            raise ValueError(f"train.stopping must be one of {', '.join(STOPPING_RULES)}, "
                             f"got {self.stopping!r}")
        if self.loss not in ("sequence", "step"):
            raise ValueError(f"train.loss must be 'sequence' or 'step', got {self.loss!r}")
        for name in ("fused", "test_every_epoch"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"train.{name} must be true or false, got "
                                 f"{getattr(self, name)!r}")
        if not isinstance(self.scale_lr_with_batch, bool):
            raise ValueError("train.scale_lr_with_batch must be true or false, got "
                             f"{self.scale_lr_with_batch!r}")
        if not isinstance(self.cell_options, Mapping) or not all(
                isinstance(v, Mapping) for v in self.cell_options.values()):
            raise ValueError("train.cell_options must map cell names to option mappings, got "
                             f"{self.cell_options!r}")
        for cell, options in self.cell_options.items():
            try:
                get_cell(cell).resolve_options(options)
            except ValueError as e:
                raise ValueError(f"train.cell_options.{cell}: {e}") from e
        for name in ("max_epochs", "patience", "batch_size", "eval_batch_size", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"train.{name} must be an integer >= 1, got {value!r}")
        if self.impl not in IMPLS:
            raise ValueError(f"train.impl must be one of {', '.join(IMPLS)}, got {self.impl!r}")
        if not self.init_std >= 0:
            raise ValueError(f"train.init_std must be >= 0, got {self.init_std!r}")
        check_device(self.device)

    @property
    def torch_device(self) -> torch.device:
        """The device trials train on: `device` itself, or for "auto" CUDA when this
        PyTorch sees a GPU, else the CPU."""
        return resolve_device(self.device)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> TrainSettings:
        """From the `train` config section; an unknown key is an error naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"train: unknown key(s) {unknown}; expected some of "
                             f"{sorted(known)}")
        return cls(**dict(cfg))


@dataclass
class TrainResult:
    """What one trial produced; `status` is "complete" or "failed" (with `fail_reason`)."""

    status: str
    valid_metric: float | None = None
    test_metric: float | None = None
    best_epoch: int | None = None
    epochs_run: int = 0
    curve: list[dict[str, float | int | None]] = field(default_factory=list)
    extra_metrics: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time: the cost on an unloaded machine
    parameter_count: int = 0
    recurrent_parameter_count: int = 0
    fail_reason: str | None = None
    # the network's shape: hidden size (derived where a parameter budget was searched) and
    # recurrent layers
    hidden_size: int = 0
    layers: int = 1

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (the trial user attributes of the sweep contract)."""
        return asdict(self)


def effective_learning_rate(hp: Hyperparameters, settings: TrainSettings) -> float:
    """The SGD step size: the searched rate times (1 - momentum) [times the batch size]."""
    scale = settings.batch_size if settings.scale_lr_with_batch else 1
    return hp.learning_rate * scale * (1.0 - hp.momentum)


@dataclass
class TrialJob:
    """One trial for a pack: what `train` takes, and the caller's handle `tag`."""

    variant: str
    hp: Hyperparameters
    seed: int
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    tag: Any = None
