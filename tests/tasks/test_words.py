"""The words task: a many-to-one task on spoken words synthesised with flite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from odyssey.data.words import plan, words_options
from odyssey.tasks import load_task
from odyssey.tasks.base import Batch, SequenceSet
from odyssey.tasks.words import WordsTask
from odyssey.training import Hyperparameters, TrainSettings, train

SMALL = {"vocabulary": ["yes", "no", "stop"], "speakers": {"train": 3, "valid": 1, "test": 1},
         "repeats": 1, "voices": ["kal", "slt"], "workers": 2}


def toy_task(bidirectional: bool = False) -> WordsTask:
    rng = np.random.default_rng(0)

    def split(n):
        return SequenceSet([rng.normal(size=(int(rng.integers(3, 9)), 2)).astype(np.float32)
                            for _ in range(n)], [np.array([k % 3]) for k in range(n)])

    return WordsTask({s: split(6) for s in ("train", "valid", "test")}, ["a", "b", "c"],
                     bidirectional=bidirectional)


def test_the_answer_is_read_at_each_sequence_last_step():
    task = toy_task()
    batch = next(task.batches("train", 6))
    assert batch.targets.shape == (6,)
    out = torch.randn(batch.x.shape[0], 6, 3)
    scores = task.sequence_scores(out, batch)
    for b in range(6):
        assert torch.equal(scores[b], out[batch.lengths[b] - 1, b])
    total, count = task.loss_terms(out, batch)
    assert count == 6
    assert torch.allclose(total, F.cross_entropy(scores, batch.targets, reduction="sum"))
    errors, n = task.score(out, batch)["error"]
    assert n == 6 and errors == float((scores.argmax(-1) != batch.targets).sum())


def test_padding_never_changes_the_answer():
    task = toy_task()
    sset = task.splits["valid"]
    out_alone = []
    for k in range(len(sset)):
        b = task._collate(sset, [k])
        out = torch.arange(len(sset.inputs[k]) * 3.0).view(-1, 1, 3)
        out_alone.append(task.sequence_scores(out, b)[0])
    batch = task._collate(sset, list(range(len(sset))))
    padded = torch.full((batch.x.shape[0], len(sset), 3), 1e6)
    for k in range(len(sset)):
        n = len(sset.inputs[k])
        padded[:n, k] = torch.arange(n * 3.0).view(-1, 3)
    both = task.sequence_scores(padded, batch)
    for k in range(len(sset)):
        assert torch.equal(both[k], out_alone[k])


def test_a_bidirectional_network_answers_with_the_mean_over_real_steps():
    task = toy_task(bidirectional=True)
    batch = Batch(torch.zeros(4, 2, 2), torch.tensor([4, 2]), torch.tensor([0, 1]))
    out = torch.randn(4, 2, 3)
    scores = task.sequence_scores(out, batch)
    assert torch.allclose(scores[0], out[:, 0].mean(0))
    assert torch.allclose(scores[1], out[:2, 1].mean(0))
    assert task.build_network("V", 4).rnn.bidirectional


def test_options_are_checked_and_the_plan_is_seeded():
    with pytest.raises(ValueError, match="words config: unknown key\\(s\\) \\['vocab'\\]"):
        words_options({"vocab": ["a"]})
    with pytest.raises(ValueError, match="vocabulary must be at least two distinct words"):
        words_options({"vocabulary": ["yes", "yes"]})
    with pytest.raises(ValueError, match="speakers.valid must be an integer >= 1"):
        words_options({"speakers": {"valid": 0}})
    opts = words_options(SMALL)
    speakers, jobs = plan(opts)
    assert [len(jobs[s]) for s in ("train", "valid", "test")] == [9, 3, 3]
    assert {j[2] for j in jobs["train"]} == {"yes", "no", "stop"}
    names = {s: {p.name for p in speakers[s]} for s in speakers}
    assert not names["train"] & names["test"]
    assert plan(opts)[1] == jobs


@pytest.mark.slow
@pytest.mark.requires("flite")
def test_built_from_flite_and_trained(tmp_path, monkeypatch):
    monkeypatch.setenv("ODYSSEY_DATASETS", str(tmp_path / "datasets"))
    task = load_task("words", **SMALL)
    assert task.input_size == 39 and task.output_size == 3
    d = task.describe()
    assert d["train"]["sequences"] == 9 and d["test"]["sequences"] == 3
    assert 10 < d["train"]["mean_length"] < 200
    assert task.baseline("test") == pytest.approx(2 / 3)
    again = load_task("words", **SMALL)  # from the cache, the same numbers
    assert np.array_equal(again.splits["train"].inputs[0], task.splits["train"].inputs[0])
    settings = TrainSettings(max_epochs=2, patience=3, batch_size=3)
    for variant in ("V", "CW"):
        r = train(task, variant, Hyperparameters(8, 1e-2, 0.9, 0.0), settings, seed=0)
        assert r.status == "complete" and 0 <= r.test_metric <= 1
    missing = load_task("words", **SMALL, missing_rate=0.3, missing="frame")
    assert missing.input_size == 3 * 39
    r = train(missing, "GRUD", Hyperparameters(8, 1e-2, 0.9, 0.0), settings, seed=0)
    assert r.status == "complete"
