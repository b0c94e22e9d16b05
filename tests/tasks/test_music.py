"""The music task: alignment, loss and metrics over real frames, loading, and learning; the
compiled scores (`bce_scores`) against ATen and against a readable float64 loop."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from odyssey.cells import fast
from odyssey.data import music as corpus
from odyssey.tasks import load_task
from odyssey.tasks.base import Batch
from odyssey.tasks.music import MusicTask, frequency_model_logits, next_step_pairs, task_from_rolls
from tests.requirements import require


def random_rolls(rng: np.random.Generator, n: int, lo: int = 3, hi: int = 9) -> list[np.ndarray]:
    return [(rng.random((int(rng.integers(lo, hi)), 88)) < 0.05).astype(np.uint8)
            for _ in range(n)]


@pytest.fixture
def task() -> MusicTask:
    rng = np.random.default_rng(0)
    return task_from_rolls({s: random_rolls(rng, n) for s, n in
                            (("train", 6), ("valid", 3), ("test", 3))})


class ConstantLogits(torch.nn.Module):
    """A 'network' that predicts the same logits at every step (the trivial model)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x, lengths=None):
        return self.logits.expand(*x.shape[:2], -1)


def test_class_attributes_and_network_shape(task):
    assert (MusicTask.name, MusicTask.bidirectional, MusicTask.metric) == ("music", False, "nll")
    assert MusicTask.metric_label == "NLL per time step"
    assert task.input_size == task.output_size == 88
    net = task.build_network("V", 8)
    batch = next(task.batches("train", 4))
    assert net(batch.x, batch.lengths).shape == (batch.x.shape[0], 4, 88)
    assert not net.rnn.bidirectional


def test_inputs_are_the_previous_frame_and_targets_the_current():
    roll = np.zeros((3, 88), np.uint8)
    roll[0, 39], roll[1, 43], roll[2, 46] = 1, 1, 1
    x, y = next_step_pairs(roll)
    np.testing.assert_array_equal(x[0], 0)  # silence before the first frame
    np.testing.assert_array_equal(x[1:], roll[:-1])
    np.testing.assert_array_equal(y, roll)
    assert x.dtype == y.dtype == np.float32


def test_loss_is_bce_summed_over_keys_and_averaged_over_real_frames(task):
    batch = next(task.batches("train", 6))
    outputs = torch.randn(*batch.targets.shape)
    outputs[~batch.mask] = float("inf")  # whatever sits at padding must not count
    per_seq = [F.binary_cross_entropy_with_logits(outputs[:n, b], batch.targets[:n, b],
                                                  reduction="sum")
               for b, n in enumerate(batch.lengths.tolist())]
    expected = sum(per_seq) / batch.lengths.sum()
    assert torch.isclose(task.loss(outputs, batch), expected)
    nll, frames = task.score(outputs, batch)["nll"]
    assert frames == batch.lengths.sum().item()
    assert nll / frames == pytest.approx(expected.item(), rel=1e-5)


def test_frame_accuracy_is_tp_over_tp_fp_fn(task):
    batch = next(task.batches("valid", 3))
    y = batch.targets
    outputs = torch.where(y > 0, 5.0, -5.0)  # perfect
    assert task.score(outputs, batch)["frame_accuracy"][0] == y[batch.mask].sum().item()
    num, den = task.score(outputs, batch)["frame_accuracy"]
    assert num == den
    outputs[0, 0, :] = 5.0  # the first frame of sequence 0: every key on
    tp = y[batch.mask].sum().item()
    extra_fp = 88 - y[0, 0].sum().item()
    assert task.score(outputs, batch)["frame_accuracy"] == (tp, tp + extra_fp)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_scores_equal_atens(task, monkeypatch, dtype):
    """score's one-pass C++ sums (bce_scores) against its ATen path, on padded batches with
    large logits; skipped where no compiler exists (failed in CI), failed where the build
    fails."""
    require("c++")
    fast.extension(required=True)  # a failed build raises its error here
    g = torch.Generator().manual_seed(0)
    batches = list(task.batches("train", 4))
    assert any(int(b.lengths.min()) < b.x.shape[0] for b in batches)  # padding is there
    outputs = [torch.randn(b.targets.shape, generator=g, dtype=dtype) * 8 for b in batches]
    compiled = [task.score(o, b) for o, b in zip(outputs, batches, strict=True)]
    monkeypatch.setattr(fast, "extension", lambda required=False: None)
    for o, b, got in zip(outputs, batches, compiled, strict=True):
        expected = task.score(o, b)
        assert got["frame_accuracy"] == expected["frame_accuracy"]
        assert got["nll"][1] == expected["nll"][1]
        assert got["nll"][0] == pytest.approx(expected["nll"][0], rel=2e-6)


def test_evaluate_is_exact_whatever_the_batch_size_and_matches_the_numpy_floor(task):
    net = ConstantLogits(frequency_model_logits(task))
    by_one = task.evaluate(net, "test", batch_size=1)
    by_all = task.evaluate(net, "test", batch_size=3)
    assert by_one["nll"] == pytest.approx(by_all["nll"], rel=1e-6)
    train = [y.astype(np.uint8) for y in task.splits["train"].targets]
    test = [y.astype(np.uint8) for y in task.splits["test"].targets]
    floor = corpus.frequency_baseline(train, test)
    assert by_all["nll"] == pytest.approx(floor["nll"], rel=1e-5)
    assert by_all["frame_accuracy"] == pytest.approx(floor["frame_accuracy"])


def test_load_task_from_a_jsb_pickle(tmp_path, monkeypatch):
    monkeypatch.setenv("ODYSSEY_DATASETS", str(tmp_path / "datasets"))
    data = {"train": [[(60, 64), (62,), (64, 67)], [(48,), (50, 53)]],
            "valid": [[(60,), (62,)]], "test": [[(67,), (65,), (64,), (62,)]]}
    path = tmp_path / "JSB_Chorales.pickle"
    path.write_bytes(pickle.dumps(data))
    task = load_task("music", source="jsb_pickle", path=str(path), transpose=True, seed=0,
                     fractions=[0.6, 0.2, 0.2], workers=2, standardize=False)
    assert task.source == "jsb_pickle"
    assert [len(task.splits[s]) for s in ("train", "valid", "test")] == [2, 1, 1]
    y = task.splits["test"].targets[0]
    assert [int(np.flatnonzero(f)[0]) + 21 for f in y] == [67, 65, 64, 62]
    np.testing.assert_array_equal(task.splits["test"].inputs[0][1:], y[:-1])
    standardized = load_task("music", source="jsb_pickle", path=str(path))
    x = np.concatenate(standardized.splits["train"].inputs)
    played = x.std(0) > 0
    np.testing.assert_allclose(x.mean(0)[played], 0, atol=1e-6)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['sauce'\]"):
        load_task("music", source="jsb_pickle", path=str(path), sauce=1)


def test_a_tiny_network_learns_a_few_chorales_in_an_epoch():
    from music21 import corpus as m21

    names = ["bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6", "bach/bwv267"]
    rolls = [corpus.score_to_roll(m21.parse(n, forceSource=True)) for n in names]
    task = task_from_rolls({"train": rolls[:4], "valid": rolls[4:], "test": rolls[4:]})
    torch.manual_seed(0)
    net = task.build_network("V", 16)
    before = task.evaluate(net, "train")["nll"]
    before_test = task.evaluate(net, "test")["nll"]
    gen = np.random.default_rng(0)
    for batch in task.batches("train", 1, shuffle=True, generator=gen):  # one epoch, SGD
        net.zero_grad()
        task.loss(net(batch.x, batch.lengths), batch).backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.5 * p.grad
    after = task.evaluate(net, "train")
    assert after["nll"] < 0.8 * before, (before, after)
    assert task.evaluate(net, "test")["nll"] < 0.8 * before_test  # an unseen chorale too
    assert np.isfinite(after["frame_accuracy"])


def test_baseline_is_the_frequency_model_nll(task):
    net = ConstantLogits(frequency_model_logits(task))
    for split in ("valid", "test"):
        assert task.baseline(split) == pytest.approx(task.evaluate(net, split)["nll"], rel=1e-5)
    assert task.valid_loss_key == "nll"
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        task.baseline("dev")


# -- the compiled scores against a readable reference: a loop over each sequence's real frames

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


@pytest.mark.requires("c++")
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


@pytest.mark.requires("c++")
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
