"""A small synthetic framewise task for the training and sweep tests.

Inputs are random +-1 vectors; the target at step t is whether each of the first `keys`
inputs was positive at step t - 1, so a network must carry one step of memory. The loss
and metric are music's: Bernoulli NLL summed over keys, averaged over real frames (so its
kernel loss, for packed training's C++ step, is music's too).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from odyssey.tasks import FramewiseTask, SequenceSet, register_task
from odyssey.tasks.base import Batch, KernelLoss

TOY = "toy"


class ToyTask(FramewiseTask):
    """Framewise multi-label prediction of the previous step's signs."""

    name = TOY
    metric = "nll"
    metric_label = "NLL per time step"
    kernel_loss = KernelLoss("bce_logits")

    def _per_frame(self, outputs: Tensor, batch: Batch) -> Tensor:
        nll = F.binary_cross_entropy_with_logits(outputs, batch.targets, reduction="none")
        return nll.sum(-1) * batch.mask

    def loss_terms(self, outputs: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        return self._per_frame(outputs, batch).sum(), batch.mask.sum()

    def score(self, outputs: Tensor, batch: Batch) -> dict[str, tuple[float, float]]:
        frames = float(batch.mask.sum())
        correct = ((outputs > 0).float() == batch.targets).all(-1) & batch.mask
        return {"nll": (float(self._per_frame(outputs, batch).sum()), frames),
                "frame_accuracy": (float(correct.sum()), frames)}


def _split(rng: np.random.Generator, n: int, inputs: int, keys: int, lengths: tuple[int, int]
           ) -> SequenceSet:
    xs, ys = [], []
    for _ in range(n):
        T = int(rng.integers(lengths[0], lengths[1] + 1))
        x = rng.choice([-1.0, 1.0], size=(T, inputs)).astype(np.float32)
        y = np.zeros((T, keys), np.float32)
        y[1:] = (x[:-1, :keys] > 0)
        xs.append(x)
        ys.append(y)
    return SequenceSet(xs, ys)


def load(n_train: int = 32, n_valid: int = 12, n_test: int = 12, inputs: int = 4,
         keys: int = 3, min_length: int = 5, max_length: int = 15, seed: int = 0,
         sleep: float = 0.0, barrier: str | None = None, parties: int = 0) -> ToyTask:
    """The toy task; `sleep` (seconds per training batch) makes trials last, for kill tests;
    `barrier` (a folder) holds each process's first training batch until `parties` processes
    have reached theirs, so that a test of several workers knows they all train at once."""
    rng = np.random.default_rng(seed)
    splits = {name: _split(rng, n, inputs, keys, (min_length, max_length))
              for name, n in (("train", n_train), ("valid", n_valid), ("test", n_test))}
    task = ToyTask(splits, output_size=keys, source="synthetic toy")
    if sleep or barrier:
        original = task.loss_terms
        met = []

        def slow_loss_terms(outputs: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
            if torch.is_grad_enabled():
                if barrier and not met:  # once per process, even if the others never come
                    met.append(True)
                    meet(Path(barrier), parties)
                if sleep:
                    time.sleep(sleep)
            return original(outputs, batch)

        task.loss_terms = slow_loss_terms  # type: ignore[method-assign]
    return task


def meet(folder: Path, parties: int, timeout: float = 300) -> None:
    """A barrier between processes: leave this process's file in `folder`, then wait until
    `parties` processes have left theirs (RuntimeError after `timeout` seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while (arrived := len(list(folder.iterdir()))) < parties:
        if time.monotonic() > deadline:
            raise RuntimeError(f"barrier {folder}: {arrived} of {parties} processes arrived "
                               f"within {timeout:.0f} s")
        time.sleep(0.05)


def register() -> None:
    """Make `load_task("toy", ...)` work (in this process)."""
    register_task(TOY, "tests.toy:load", origin="tests")
