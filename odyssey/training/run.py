"""One trial of the paper protocol (DESIGN §4) inside a pack: its network, RNGs, epochs,
early stopping and result.

SGD with Nesterov momentum, the learning rate scaled by (1 - momentum) so that the step
size in steady state does not depend on the momentum; one update per minibatch (per
sequence at batch size 1, as in the paper); Gaussian noise on the training inputs only;
at most `max_epochs` epochs, stopping after `patience` epochs without a validation gain
(`stopping`: under "metric_or_loss" an epoch gains when the validation metric improves, or
ties and the validation loss improves, so a CTC network still leaving its all-blank
plateau is not stopped; "metric" is the metric alone); the trial's result is the test
score at the best-validation epoch. A non-finite loss or
metric ends the trial as failed, with the reason. The pack scheduler that steps trials is
odyssey.training.schedule; the value types are odyssey.training.settings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..cells import canonical
from ..networks import hidden_size_for_budget
from ..tasks.base import Batch, Task
from . import packed
from .settings import (
    Divergence,
    Hyperparameters,
    TrainResult,
    TrainSettings,
    TrialJob,
    effective_learning_rate,
    improves,
)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _noise(batch: Batch, std: float, generator: torch.Generator,
           features: int | None = None) -> packed.Noise:
    """A step's input noise: N(0, 1) draws of the input's shape and `std`; None when std 0.
    `features`: the noise goes on the first this many input features only (the task's
    `noise_features`: x, not the mask and delta of missing data); the others get zeros."""
    if std == 0.0:
        return None
    draws = torch.randn(batch.x.shape, generator=generator, device=batch.x.device)
    if features is not None:
        draws[..., features:] = 0.0
    return draws, std


def _noisy(batch: Batch, std: float, generator: torch.Generator,
           features: int | None = None) -> torch.Tensor:
    """Training inputs with N(0, std^2) noise added at the real steps (padding untouched).
    The fused kernels add the same draws by the same operations (noisy_input in C++)."""
    noise = _noise(batch, std, generator, features)
    if noise is None:
        return batch.x
    draws = noise[0]
    if batch.lengths.numel() == 1:  # one sequence: no padding to keep clean (same numbers)
        return draws.mul_(std).add_(batch.x)  # x + std * noise, in place
    return batch.x + std * draws * batch.mask.unsqueeze(-1)



def _cell_options(settings: TrainSettings, variant: str) -> dict[str, Any]:
    """train.cell_options of `variant` (its key spelt in any case)."""
    for name, options in settings.cell_options.items():
        if canonical(name) == variant:
            return dict(options)
    return {}

class Clock:
    """Wall and CPU time of a block, charged to trials."""

    def __enter__(self) -> Clock:
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0


class Run:
    """One trial's state inside a pack: its network, optimizer, RNGs, epoch and result."""

    def __init__(self, task: Task, job: TrialJob, settings: TrainSettings,
                 device: torch.device, fused_pack: packed.FusedPack) -> None:
        self.task, self.job, self.settings, self.device = task, job, settings, device
        self.fused_pack = fused_pack
        self.wall, self.cpu = 0.0, 0.0  # this trial's share of the pack's time
        with Clock() as clock:
            self._build(job.hp)
        self.charge(clock.wall, clock.cpu)

    def _build(self, hp: Hyperparameters) -> None:
        """The trial's network, optimizer state, RNGs and empty record, from its seed."""
        task, job, settings, device = self.task, self.job, self.settings, self.device
        variant = canonical(job.variant)
        layers = settings.layers if hp.layers is None else hp.layers
        options = {**_cell_options(settings, variant), **hp.cell_options.get(variant, {})}
        hidden = hp.hidden_size
        if hidden is None:  # deep vs wide: the largest network within the searched budget
            hidden = hidden_size_for_budget(
                hp.parameter_budget, variant, task.input_view_size(variant), task.output_size,
                bidirectional=task.bidirectional, layers=layers, cell_options=options)
        extra = {} if layers == 1 else {"layers": layers}  # a one-layer call as before
        if options:
            extra["cell_options"] = options
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(job.seed)
            net = task.build_network(variant, hidden, forget_bias=settings.forget_bias,
                                     init_std=settings.init_std, impl=settings.impl,
                                     dropout=hp.dropout, **extra)
        net.to(device)
        self.net = net
        self.result = TrainResult(status="complete", parameter_count=net.parameter_count(),
                                  recurrent_parameter_count=net.recurrent_parameter_count(),
                                  hidden_size=hidden, layers=layers)
        self.lr, self.momentum = effective_learning_rate(hp, settings), hp.momentum
        self.fused = (settings.fused and packed.fusable(net, device, settings.impl)
                      and not hp.dropout)  # the fused kernels have no dropout masks
        if self.fused:
            self.kind = packed.kind(net)
            self.params = packed.slot_tensors(net)
            self.buffers = [torch.zeros_like(t) for t in self.params]
        else:
            self.optimizer = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=hp.momentum,
                                             nesterov=hp.momentum > 0)
        self.order_rng = np.random.default_rng(job.seed)
        self.noise_rng = torch.Generator(device=device)
        self.noise_rng.manual_seed(job.seed)
        self.objective = task.sequence_loss if settings.loss == "sequence" else task.loss
        self.epoch, self.batch_index = 0, 0
        self.losses: list[float] = []
        self.best_valid, self.best_loss = math.inf, math.inf
        self._batches: Iterator[Batch] | None = None

    def charge(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu

    def next_batch(self) -> Batch | None:
        """The next training batch; None once the trial has ended (evaluating at each epoch's
        end, which may stop it). Raises Divergence on a non-finite validation score."""
        while True:
            if self._batches is None:
                self.epoch += 1
                self.batch_index, self.losses = 0, []
                self._batches = self.task.batches("train", self.settings.batch_size,
                                                  shuffle=True, generator=self.order_rng)
            batch = next(self._batches, None)
            if batch is not None:
                self.batch_index += 1
                return batch.to(self.device)
            self._batches = None
            if self._end_epoch():
                return None

    def noisy(self, batch: Batch) -> torch.Tensor:
        return _noisy(batch, self.job.hp.input_noise, self.noise_rng, self.task.noise_features)

    def noise(self, batch: Batch) -> packed.Noise:
        return _noise(batch, self.job.hp.input_noise, self.noise_rng, self.task.noise_features)

    def record_loss(self, value: float) -> None:
        if not math.isfinite(value):
            raise Divergence(f"training loss became {value} at epoch {self.epoch}, "
                             f"batch {self.batch_index}")
        self.losses.append(value)

    def autograd_step(self, batch: Batch) -> None:
        """One update through autograd and torch.optim (cells without fused kernels)."""
        loss = self.objective(self.net(self.noisy(batch), batch.lengths), batch)
        self.record_loss(float(loss.detach()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def _end_epoch(self) -> bool:
        """Score the epoch, record it, apply early stopping; True when the trial is over.

        The test split is scored only at epochs whose validation score is a gain (unless
        `test_every_epoch`): the result, the test score at the best epoch, is the same, for
        about half the evaluation cost.
        """
        task, settings, result, epoch = self.task, self.settings, self.result, self.epoch
        # a fused trial scores on the same kernels it trains on (one call per batch)
        forward = self.fused_logits if self.fused else None
        valid = task.evaluate(self.net, "valid", settings.eval_batch_size, self.device,
                              forward=forward)
        v = valid[task.metric]
        if not _finite(v):
            raise Divergence(f"validation {task.metric} became {v} at epoch {epoch}")
        loss_key = task.valid_loss_key
        if loss_key not in valid:
            raise KeyError(f"task {task.name}: valid_loss_key {loss_key!r} is not among "
                           f"its evaluate() keys {sorted(valid)}")
        vl = float(valid[loss_key])
        gain = improves(v, vl if _finite(vl) else None, self.best_valid, self.best_loss,
                        settings.stopping)
        t = None
        if gain or settings.test_every_epoch:
            test = task.evaluate(self.net, "test", settings.eval_batch_size, self.device,
                                 forward=forward)
            t = test[task.metric]
        if gain:
            if not _finite(t):
                raise Divergence(f"test {task.metric} became {t} at epoch {epoch}")
            self.best_valid, self.best_loss = v, vl
            result.valid_metric, result.test_metric, result.best_epoch = v, t, epoch
            result.extra_metrics = {f"{split}_{key}": float(val)
                                    for split, scores in (("valid", valid), ("test", test))
                                    for key, val in scores.items() if key != task.metric}
        entry = {"epoch": epoch, "train_loss": float(np.mean(self.losses)), "valid": v,
                 "test": t, "valid_loss": vl}
        result.curve.append(entry)
        result.epochs_run = epoch
        if self.job.on_epoch is not None:
            self.job.on_epoch(entry)
        return epoch >= settings.max_epochs or epoch - result.best_epoch >= settings.patience

    def fused_logits(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The network's outputs through the fused forward kernel (scoring)."""
        (logits,), _ = self.fused_pack.forward([x], [packed.lengths_of(lengths)],
                                               [self.params], [self.kind])
        return logits

    def fail(self, error: Divergence) -> None:
        self.result.status, self.result.fail_reason = "failed", f"diverged: {error}"

    def finish(self) -> TrainResult:
        self.result.train_seconds, self.result.cpu_seconds = self.wall, self.cpu
        return self.result


