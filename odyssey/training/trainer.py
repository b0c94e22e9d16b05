"""Trials of the paper protocol (DESIGN §4): train networks, early-stop, report.

SGD with Nesterov momentum, the learning rate scaled by (1 - momentum) so that the step
size in steady state does not depend on the momentum; one update per minibatch (per
sequence at batch size 1, as in the paper); Gaussian noise on the training inputs only;
at most `max_epochs` epochs, stopping after `patience` epochs without a validation gain
(`stopping`: under "metric_or_loss" an epoch gains when the validation metric improves, or
ties and the validation loss improves, so a CTC network still leaving its all-blank
plateau is not stopped; "metric" is the metric alone); the trial's result is the test
score at the best-validation epoch. A non-finite loss or
metric ends the trial as failed, with the reason.

Packed training (DESIGN §6): `train_pack` advances up to `capacity` trials together, one
batch each per step; a trial that ends hands its slot to the next at once. Each trial keeps
its own network, seed, sequence order, noise, optimizer state and early stopping, and its
arithmetic is the same as alone: `train` is a pack of one. LSTM-family, GRU and RNN networks
on the CPU take the fused kernels (packed.py), two C++ calls per pack step; other cells and
devices take the autograd step, one trial after the other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from ..cells import IMPLS, canonical, get_cell
from ..networks import hidden_size_for_budget
from ..tasks.base import Batch, Task
from . import packed

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
    number of recurrent layers (None: train.layers) and a parameter budget, which replaces
    the hidden size (None then): the trainer derives the largest hidden size whose network
    fits the budget (deep vs wide at equal size, `networks.hidden_size_for_budget`)."""

    hidden_size: int | None
    learning_rate: float
    momentum: float
    input_noise: float
    dropout: float = 0.0
    layers: int | None = None
    parameter_budget: int | None = None
    # searched cell options by cell, e.g. {"CW": {"modules": 5}}: over train.cell_options
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
    # the network's shape: hidden size (derived where a parameter budget was searched) and
    # recurrent layers
    hidden_size: int = 0
    layers: int = 1

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (the trial user attributes of the sweep contract)."""
        return asdict(self)


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


def _cell_options(settings: TrainSettings, variant: str) -> dict[str, Any]:
    """train.cell_options of `variant` (its key spelt in any case)."""
    for name, options in settings.cell_options.items():
        if canonical(name) == variant:
            return dict(options)
    return {}


class _Clock:
    """Wall and CPU time of a block, charged to trials."""

    def __enter__(self) -> _Clock:
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0


class _Run:
    """One trial's state inside a pack: its network, optimizer, RNGs, epoch and result."""

    def __init__(self, task: Task, job: TrialJob, settings: TrainSettings,
                 device: torch.device, fused_pack: packed.FusedPack) -> None:
        self.task, self.job, self.settings, self.device = task, job, settings, device
        self.fused_pack = fused_pack
        self.wall, self.cpu = 0.0, 0.0  # this trial's share of the pack's time
        with _Clock() as clock:
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


def train_pack(task: Task, settings: TrainSettings, next_job: Callable[[], TrialJob | None],
               on_result: Callable[[TrialJob, TrainResult], None], *, capacity: int = 1
               ) -> None:
    """Train trials `capacity` at a time until `next_job` returns None and all have ended.

    `next_job` is asked for a trial whenever a slot is free; `on_result` gets each trial's
    result as it ends. Every trial trains exactly as `train` would train it alone. A pack
    step's time is shared equally among the trials in it (`train_seconds`, `cpu_seconds`).
    """
    if not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"parallel_trials must be an integer >= 1, got {capacity!r}")
    device = torch.device(settings.device)
    fused_pack = packed.FusedPack(2 if task.bidirectional else 1, packed.kernel_loss(task),
                                  per_step=settings.loss == "step")
    runs: list[_Run] = []
    exhausted = False

    def refill() -> None:
        nonlocal exhausted
        while not exhausted and len(runs) < capacity:
            job = next_job()
            if job is None:
                exhausted = True
                return
            runs.append(_Run(task, job, settings, device, fused_pack))

    def end(run: _Run) -> None:
        runs.remove(run)
        on_result(run.job, run.finish())

    refill()
    while runs:
        step: list[tuple[_Run, Batch]] = []
        pending = list(runs)
        while pending:
            run = pending.pop(0)
            with _Clock() as clock:
                try:
                    batch = run.next_batch()
                except Divergence as e:
                    run.fail(e)
                    batch = None
            run.charge(clock.wall, clock.cpu)
            if batch is not None:
                step.append((run, batch))
                continue
            end(run)
            before = len(runs)
            refill()
            pending.extend(runs[before:])
        fused = [(r, b) for r, b in step if r.fused]
        for run, batch in step:
            if not run.fused:
                with _Clock() as clock:
                    try:
                        run.autograd_step(batch)
                    except Divergence as e:
                        run.fail(e)
                run.charge(clock.wall, clock.cpu)
                if run.result.status == "failed":
                    end(run)
        if fused:
            with _Clock() as clock:
                diverged = _fused_step(fused_pack, fused)
            for run, _ in fused:
                run.charge(clock.wall / len(fused), clock.cpu / len(fused))
            for run in diverged:
                end(run)
        refill()


def _fused_step(fused_pack: packed.FusedPack, step: list[tuple[_Run, Batch]]) -> list[_Run]:
    """One update of every trial in `step` on the fused kernels; returns those that diverged.

    Each trial's loss is computed on its own logits: in C++, within one call for the whole
    step, where the task has a kernel loss; else the task's own loss in Python, between the
    trial's forward call and its backward-and-step call. Either way trial after trial, so
    that each backward pass finds its trial's activations still in cache.
    """
    runs = [r for r, _ in step]
    noises = [r.noise(b) for r, b in step]  # the kernels add them to the inputs
    lengths = [packed.lengths_of(b.lengths) for _, b in step]
    if fused_pack.kernel_loss is not None:  # (the kernels' tensors carry no autograd graph)
        values = fused_pack.train_step(
            [b.x for _, b in step], lengths, [b.targets for _, b in step],
            [r.params for r in runs], [r.buffers for r in runs], [r.lr for r in runs],
            [r.momentum for r in runs], [r.kind for r in runs], noises)
        return [run for run, value in zip(runs, values, strict=True) if not _recorded(run, value)]
    diverged = []
    for (run, batch), noise, length in zip(step, noises, lengths, strict=True):
        with torch.no_grad():
            (logits,), (saved,) = fused_pack.forward([batch.x], [length], [run.params],
                                                     [run.kind], [noise])
        out = logits.requires_grad_()
        loss = run.objective(out, batch)
        if not _recorded(run, float(loss.detach())):
            diverged.append(run)
            continue
        (grad,) = torch.autograd.grad(loss, out, allow_unused=True)
        with torch.no_grad():
            fused_pack.backward_step([torch.zeros_like(out) if grad is None else grad], [length],
                                     [saved], [run.params], [run.buffers], [run.lr],
                                     [run.momentum], [run.kind])
    return diverged


def _recorded(run: _Run, value: float) -> bool:
    """Record a trial's step loss; False (the trial failed) when it is not finite."""
    try:
        run.record_loss(value)
    except Divergence as e:
        run.fail(e)
        return False
    return True


def train(task: Task, variant: str, hp: Hyperparameters, settings: TrainSettings, seed: int,
          *, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train `variant` on `task` with `hp` under `settings`; never raises on divergence.

    `seed` fixes the initial weights, the order of the training sequences and the input
    noise: on CPU (with the same number of threads) the same seed gives the same result,
    alone or in a pack. `on_epoch` is called after every epoch with that epoch's curve entry.
    """
    jobs = [TrialJob(variant, hp, seed, on_epoch)]
    results: list[TrainResult] = []
    train_pack(task, settings, lambda: jobs.pop() if jobs else None,
               lambda job, result: results.append(result))
    return results[0]
