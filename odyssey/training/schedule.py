"""Packed training (DESIGN §6): `train_pack` advances up to `capacity` trials together, one
batch each per step; a trial that ends hands its slot to the next at once. Each trial keeps
its own network, seed, sequence order, noise, optimizer state and early stopping
(odyssey.training.run), and its arithmetic is the same as alone: `train` is a pack of one.
LSTM-family, GRU and RNN networks on the CPU take the fused kernels (packed.py), two C++
calls per pack step; other cells and devices take the autograd step, one trial after the
other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..tasks.base import Batch, Task
from . import packed
from .run import Clock, Run
from .settings import Divergence, Hyperparameters, TrainResult, TrainSettings, TrialJob


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
    runs: list[Run] = []
    exhausted = False

    def refill() -> None:
        nonlocal exhausted
        while not exhausted and len(runs) < capacity:
            job = next_job()
            if job is None:
                exhausted = True
                return
            runs.append(Run(task, job, settings, device, fused_pack))

    def end(run: Run) -> None:
        runs.remove(run)
        on_result(run.job, run.finish())

    refill()
    while runs:
        step: list[tuple[Run, Batch]] = []
        pending = list(runs)
        while pending:
            run = pending.pop(0)
            with Clock() as clock:
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
                with Clock() as clock:
                    try:
                        run.autograd_step(batch)
                    except Divergence as e:
                        run.fail(e)
                run.charge(clock.wall, clock.cpu)
                if run.result.status == "failed":
                    end(run)
        if fused:
            with Clock() as clock:
                diverged = _fused_step(fused_pack, fused)
            for run, _ in fused:
                run.charge(clock.wall / len(fused), clock.cpu / len(fused))
            for run in diverged:
                end(run)
        refill()


def _fused_step(fused_pack: packed.FusedPack, step: list[tuple[Run, Batch]]) -> list[Run]:
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


def _recorded(run: Run, value: float) -> bool:
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
