"""The compiled music scores (`bce_scores`, one C++ pass over a batch) against a readable
reference: a loop over each sequence's real frames in float64. Runs wherever a C++ compiler
is installed (always under CI), and fails, never skips, when the kernels do not build."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import torch

from odyssey.cells import fast
from odyssey.tasks.base import Batch
from odyssey.tasks.music import task_from_rolls

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None,
    reason="no C++ compiler to build the kernels (Debian: apt-get install g++)")


def reference_scores(logits: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor
                     ) -> tuple[float, float, float, float, float]:
    """(summed BCE-with-logits NLL, real frames, true positives, predicted on, truly on),
    frame by frame over each sequence's first lengths[b] steps, in float64."""
    z, y = logits.double().numpy(), targets.double().numpy()
    nll = frames = tp = predicted = on = 0.0
    for b, n in enumerate(lengths.tolist()):
        for t in range(n):
            a, target = z[t, b], y[t, b]
            # log(1 + exp(-a)) for target 1, log(1 + exp(a)) for 0, stably
            nll += float(np.sum(np.maximum(a, 0) - a * target + np.log1p(np.exp(-np.abs(a)))))
            pred, truth = a > 0, target > 0.5
            frames += 1
            tp += float(np.sum(pred & truth))
            predicted += float(np.sum(pred))
            on += float(np.sum(truth))
    return nll, frames, tp, predicted, on


def padded_batch(rng: np.random.Generator, lengths: list[int], dtype: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (T, B, 88) with large, zero and ordinary values, 0/1 targets, and NaN at every
    padded step (which must not count)."""
    T, B = max(lengths), len(lengths)
    logits = torch.tensor(rng.normal(0, 6, (T, B, 88)), dtype=dtype)
    logits[0, 0, :4] = torch.tensor([0.0, 1000.0, -1000.0, 40.0], dtype=dtype)
    targets = torch.tensor(rng.random((T, B, 88)) < 0.1, dtype=dtype)
    for b, n in enumerate(lengths):
        logits[n:, b] = math.nan
        targets[n:, b] = math.nan
    return logits, targets, torch.tensor(lengths)


@pytest.mark.parametrize(("dtype", "rel"), [(torch.float32, 2e-6), (torch.float64, 1e-12)])
def test_the_compiled_scores_equal_the_reference_loop(dtype, rel):
    ops = fast.extension(required=True)  # a failed build is this test's failure
    rng = np.random.default_rng(0)
    for lengths in ([7], [5, 9, 1, 9], [3, 1, 2]):
        logits, targets, lens = padded_batch(rng, lengths, dtype)
        got = ops.bce_scores(logits, targets, lens).tolist()
        want = reference_scores(logits, targets, lens)
        assert got[1:] == list(want[1:])  # the counts are exact
        assert got[0] == pytest.approx(want[0], rel=rel)


def test_music_scores_go_through_the_kernel_and_equal_the_reference(monkeypatch):
    """MusicTask.score on the CPU takes the compiled pass; its numbers are the reference's."""
    ops = fast.extension(required=True)
    rng = np.random.default_rng(1)
    rolls = [(rng.random((int(n), 88)) < 0.05).astype(np.uint8) for n in (4, 8, 6)]
    task = task_from_rolls({"train": rolls, "valid": rolls, "test": rolls})
    (batch,) = task.batches("valid", 3)
    assert isinstance(batch, Batch) and int(batch.lengths.min()) < batch.x.shape[0]
    logits = torch.tensor(rng.normal(0, 4, batch.targets.shape), dtype=torch.float32)
    calls = []

    class Counting:  # the compiled ops, bce_scores counted: the test knows the kernel ran
        def bce_scores(self, *args):
            calls.append(1)
            return ops.bce_scores(*args)

    monkeypatch.setattr(fast, "extension", lambda required=False: Counting())
    scores = task.score(logits, batch)
    monkeypatch.undo()
    assert calls == [1]
    nll, frames, tp, predicted, on = reference_scores(logits, batch.targets, batch.lengths)
    assert scores["nll"][1] == frames == float(batch.lengths.sum())
    assert scores["nll"][0] == pytest.approx(nll, rel=2e-6)
    assert scores["frame_accuracy"] == (tp, predicted + on - tp)
