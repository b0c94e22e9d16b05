"""Early stopping (train.stopping): the rule, and a CTC plateau the trial must not stop on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from odyssey.tasks.base import SequenceSet
from odyssey.tasks.handwriting import HandwritingTask
from odyssey.training import Hyperparameters, TrainSettings, train
from odyssey.training.settings import improves


# -- the rule -------------------------------------------------------------------------------
def test_a_lower_metric_improves_under_both_rules_whatever_the_loss() -> None:
    for rule in ("metric", "metric_or_loss"):
        assert improves(0.5, 9.0, 0.6, 1.0, rule)
        assert not improves(0.7, 0.1, 0.6, 1.0, rule)


def test_a_tie_improves_only_under_metric_or_loss_and_only_with_a_lower_loss() -> None:
    assert improves(1.0, 2.9, 1.0, 3.0, "metric_or_loss")
    assert not improves(1.0, 3.0, 1.0, 3.0, "metric_or_loss")
    assert not improves(1.0, 3.1, 1.0, 3.0, "metric_or_loss")
    assert not improves(1.0, 2.9, 1.0, 3.0, "metric")


def test_a_tie_is_equality_within_rounding_not_a_worse_metric() -> None:
    assert improves(1.0 + 1e-13, 2.0, 1.0, 3.0, "metric_or_loss")
    assert not improves(1.0 + 1e-6, 2.0, 1.0, 3.0, "metric_or_loss")


def test_the_first_epoch_always_improves_and_a_missing_loss_never_breaks_a_tie() -> None:
    assert improves(1.0, None, math.inf, math.inf, "metric_or_loss")
    assert not improves(1.0, None, 1.0, 3.0, "metric_or_loss")
    assert not improves(1.0, 2.0, 1.0, None, "metric_or_loss")


def test_an_unknown_rule_is_an_error_naming_the_key() -> None:
    with pytest.raises(ValueError, match="train.stopping"):
        improves(1.0, 1.0, 2.0, 2.0, "loss")
    with pytest.raises(ValueError, match="train.stopping"):
        TrainSettings(stopping="loss")


# -- a CTC task that sits on the all-blank plateau while its loss falls ---------------------
def _lines(rng: np.random.Generator, n: int) -> SequenceSet:
    """Lines of 3 labels from {a, b}; each label is one marked step in 12 (the rest idle)."""
    xs, ys = [], []
    for _ in range(n):
        labels = rng.integers(1, 3, size=3)
        x = np.zeros((12, 3), np.float32)
        x[:, 2] = 1.0
        for k, c in enumerate(labels):
            x[1 + 4 * k] = 0.0
            x[1 + 4 * k, c - 1] = 1.0
        xs.append(x)
        ys.append(labels.astype(np.int16))
    return SequenceSet(xs, ys)


@pytest.fixture(scope="module")
def plateau_task() -> HandwritingTask:
    rng = np.random.default_rng(0)
    splits = {s: _lines(rng, n) for s, n in (("train", 32), ("valid", 16), ("test", 16))}
    return HandwritingTask(splits, "ab", standardize=False)


def _run(task: HandwritingTask, rule: str):
    torch.set_num_threads(1)
    hp = Hyperparameters(hidden_size=8, learning_rate=0.2, momentum=0.9, input_noise=0.0)
    settings = TrainSettings(max_epochs=20, patience=2, batch_size=4, eval_batch_size=16,
                             impl="reference", stopping=rule)
    return train(task, "V", hp, settings, seed=0)


def test_metric_or_loss_trains_through_the_ctc_plateau(plateau_task: HandwritingTask) -> None:
    result = _run(plateau_task, "metric_or_loss")
    assert result.status == "complete"
    plateau = [e for e in result.curve if e["valid"] == 1.0]
    # the premise: CER 1.0 (only blanks) for far longer than the patience, loss falling
    assert len(plateau) > 3 * 2, result.curve
    assert plateau[-1]["valid_loss"] < plateau[0]["valid_loss"] - 0.3
    assert plateau_task.baseline("valid") == 1.0
    assert result.valid_metric < 0.5, result.curve  # it left the plateau
    assert result.curve[result.best_epoch - 1]["valid"] == result.valid_metric


def test_the_literal_metric_rule_stops_on_the_plateau(plateau_task: HandwritingTask) -> None:
    result = _run(plateau_task, "metric")
    assert result.epochs_run == 1 + 2  # epoch 1, then `patience` epochs without a gain
    assert result.valid_metric == 1.0 and result.best_epoch == 1
    losses = [e["valid_loss"] for e in result.curve]
    assert min(losses[1:]) < losses[0]  # stopped although the loss had fallen
