"""One trial of the paper protocol (DESIGN §4): train a network, early-stop, report.

SGD with Nesterov momentum, the learning rate scaled by (1 - momentum) so that the step
size in steady state does not depend on the momentum; one update per minibatch (per
sequence at batch size 1, as in the paper); Gaussian noise on the training inputs only;
at most `max_epochs` epochs, stopping after `patience` epochs without a validation gain
(`stopping`: under "metric_or_loss" an epoch gains when the validation metric improves, or
ties and the validation loss improves, so a CTC network still leaving its all-blank
plateau is not stopped; "metric" is the metric alone); the trial's result is the test
score at the best-validation epoch. A non-finite loss or
metric ends the trial as failed, with the reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from ..cells import IMPLS, canonical
from ..tasks.base import Batch, Task

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
    """The four searched hyperparameters of DESIGN §4, in their natural scale."""

    hidden_size: int
    learning_rate: float
    momentum: float
    input_noise: float

    def __post_init__(self) -> None:
        if not isinstance(self.hidden_size, int | np.integer) or self.hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive integer, got {self.hidden_size!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not self.input_noise >= 0:
            raise ValueError(f"input_noise must be >= 0, got {self.input_noise!r}")

    @classmethod
    def from_search(cls, params: Mapping[str, Any]) -> Hyperparameters:
        """From the search-space parameters (which sample 1 - momentum, not momentum)."""
        return cls(hidden_size=int(params["hidden_size"]),
                   learning_rate=float(params["learning_rate"]),
                   momentum=1.0 - float(params["one_minus_momentum"]),
                   input_noise=float(params["input_noise"]))


@dataclass(frozen=True)
class TrainSettings:
    """Everything about training that is not searched (the `train` config group)."""

    max_epochs: int = 150
    patience: int = 15
    batch_size: int = 1
    eval_batch_size: int = 64
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

    def __post_init__(self) -> None:
        if self.stopping not in STOPPING_RULES:
            raise ValueError(f"train.stopping must be one of {', '.join(STOPPING_RULES)}, "
                             f"got {self.stopping!r}")
        if self.loss not in ("sequence", "step"):
            raise ValueError(f"train.loss must be 'sequence' or 'step', got {self.loss!r}")
        if not isinstance(self.scale_lr_with_batch, bool):
            raise ValueError("train.scale_lr_with_batch must be true or false, got "
                             f"{self.scale_lr_with_batch!r}")
        for name in ("max_epochs", "patience", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"train.{name} must be an integer >= 1, got {value!r}")
        if self.impl not in IMPLS:
            raise ValueError(f"train.impl must be one of {', '.join(IMPLS)}, got {self.impl!r}")
        if not self.init_std >= 0:
            raise ValueError(f"train.init_std must be >= 0, got {self.init_std!r}")
        try:
            torch.device(self.device)
        except RuntimeError as e:
            raise ValueError(f"train.device: {e}") from e

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

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (the trial user attributes of the sweep contract)."""
        return asdict(self)


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def _noisy(batch: Batch, std: float, generator: torch.Generator) -> torch.Tensor:
    """Training inputs with N(0, std^2) noise added at the real steps (padding untouched)."""
    if std == 0.0:
        return batch.x
    noise = torch.randn(batch.x.shape, generator=generator, device=batch.x.device)
    return batch.x + std * noise * batch.mask.unsqueeze(-1)


def effective_learning_rate(hp: Hyperparameters, settings: TrainSettings) -> float:
    """The SGD step size: the searched rate times (1 - momentum) [times the batch size]."""
    scale = settings.batch_size if settings.scale_lr_with_batch else 1
    return hp.learning_rate * scale * (1.0 - hp.momentum)


def train(task: Task, variant: str, hp: Hyperparameters, settings: TrainSettings, seed: int,
          *, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train `variant` on `task` with `hp` under `settings`; never raises on divergence.

    `seed` fixes the initial weights, the order of the training sequences and the input
    noise: on CPU (with the same number of threads) the same seed gives the same result.
    `on_epoch` is called after every epoch with that epoch's curve entry.
    """
    variant = canonical(variant)
    device = torch.device(settings.device)
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = task.build_network(variant, hp.hidden_size, forget_bias=settings.forget_bias,
                                 init_std=settings.init_std, impl=settings.impl)
    net.to(device)
    result = TrainResult(status="complete", parameter_count=net.parameter_count(),
                         recurrent_parameter_count=net.recurrent_parameter_count())
    optimizer = torch.optim.SGD(net.parameters(), lr=effective_learning_rate(hp, settings),
                                momentum=hp.momentum, nesterov=hp.momentum > 0)
    order_rng = np.random.default_rng(seed)
    noise_rng = torch.Generator(device=device)
    noise_rng.manual_seed(seed)
    best_valid, best_loss = math.inf, math.inf
    loss_key = task.valid_loss_key
    try:
        for epoch in range(1, settings.max_epochs + 1):
            net.train()
            losses: list[float] = []
            for k, batch in enumerate(task.batches("train", settings.batch_size, shuffle=True,
                                                   generator=order_rng)):
                batch = batch.to(device)
                objective = task.sequence_loss if settings.loss == "sequence" else task.loss
                loss = objective(net(_noisy(batch, hp.input_noise, noise_rng), batch.lengths),
                                 batch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise Divergence(f"training loss became {value} at epoch {epoch}, "
                                     f"batch {k + 1}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(value)
            valid = task.evaluate(net, "valid", settings.eval_batch_size, device)
            test = task.evaluate(net, "test", settings.eval_batch_size, device)
            v, t = valid[task.metric], test[task.metric]
            if not _finite(v) or not _finite(t):
                raise Divergence(f"validation/test {task.metric} became {v}/{t} at epoch "
                                 f"{epoch}")
            if loss_key not in valid:
                raise KeyError(f"task {task.name}: valid_loss_key {loss_key!r} is not among "
                               f"its evaluate() keys {sorted(valid)}")
            vl = float(valid[loss_key])
            entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "valid": v,
                     "test": t, "valid_loss": vl}
            result.curve.append(entry)
            result.epochs_run = epoch
            if improves(v, vl if _finite(vl) else None, best_valid, best_loss,
                        settings.stopping):
                best_valid, best_loss = v, vl
                result.valid_metric, result.test_metric, result.best_epoch = v, t, epoch
                result.extra_metrics = {f"{split}_{key}": float(val)
                                        for split, scores in (("valid", valid), ("test", test))
                                        for key, val in scores.items() if key != task.metric}
            if on_epoch is not None:
                on_epoch(entry)
            if epoch - result.best_epoch >= settings.patience:
                break
    except Divergence as e:
        result.status, result.fail_reason = "failed", f"diverged: {e}"
    result.train_seconds = time.perf_counter() - start
    result.cpu_seconds = time.process_time() - cpu_start
    return result
