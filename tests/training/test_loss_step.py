"""train.loss=step: the gradient of the per-step mean, not of the per-sequence sum (the
default), on both training paths (the fused kernels and autograd)."""

from __future__ import annotations

import pytest
import torch

from odyssey.training import Hyperparameters, TrainSettings, train
from odyssey.training.packed import fusable
from tests.toy import load


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(1)
    return load()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "autograd"])
def test_the_step_loss_is_the_sequence_loss_over_frames_per_sequence(task, fused):
    """One epoch of one batch (the whole training split) is one SGD step, without momentum.
    The sequence loss is the step loss times F/S (F real frames, S sequences), so the step
    loss at learning rate lr * F/S takes exactly the sequence loss's step at lr; at lr it
    takes a step S/F as long. Computing the step loss like the default breaks both."""
    split = task.splits["train"]
    (batch,) = task.batches("train", len(split))
    frames, sequences = float(batch.mask.sum()), len(split)
    assert frames / sequences > 5  # the two losses differ by far more than rounding

    def run(loss: str, lr: float):
        # impl=cpp: the fused path is taken or the test fails (never a silent fallback)
        settings = TrainSettings(max_epochs=1, patience=5, batch_size=sequences, loss=loss,
                                 fused=fused, impl="cpp" if fused else "auto")
        assert fusable(task.build_network("V", 8), torch.device("cpu"), settings.impl) \
            or not fused
        return train(task, "V", Hyperparameters(8, lr, 0.0, 0.0), settings, seed=0)

    lr = 0.05
    sequence, step = run("sequence", lr), run("step", lr * frames / sequences)
    assert sequence.status == step.status == "complete"
    # the loss recorded before the step: the same network, on the two scales
    assert step.curve[0]["train_loss"] == pytest.approx(
        sequence.curve[0]["train_loss"] * sequences / frames, rel=1e-5)
    # after the step: the same network again
    assert step.valid_metric == pytest.approx(sequence.valid_metric, rel=1e-5)
    # the step loss at the same rate takes a much shorter step: another network
    short = run("step", lr)
    assert abs(short.valid_metric - sequence.valid_metric) > 100 * abs(
        step.valid_metric - sequence.valid_metric) + 1e-4
