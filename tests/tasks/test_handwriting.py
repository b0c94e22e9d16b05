"""The handwriting task: CTC targets and loss, best-path decoding, CER, and that training
lowers the CER."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from odyssey.tasks import load_task
from odyssey.tasks.base import Batch, SequenceSet
from odyssey.tasks.handwriting import (
    BLANK,
    HandwritingTask,
    best_path,
    edit_distance,
    error_rate,
    trivial_baselines,
)

CHARSET = " abcdefghiklnorstwy"


def onehot(paths: list[list[int]], classes: int, length: int | None = None) -> torch.Tensor:
    """(T, B, C) scores whose argmax at each step follows paths[b] (padded with blanks)."""
    T = length or max(len(p) for p in paths)
    out = torch.zeros(T, len(paths), classes)
    for b, path in enumerate(paths):
        for t in range(T):
            out[t, b, path[t] if t < len(path) else BLANK] = 5.0
    return out


def encode(text: str) -> list[int]:
    return [CHARSET.index(c) + 1 for c in text]


def small_task(targets: list[str], lengths: list[int]) -> HandwritingTask:
    rng = np.random.default_rng(0)
    sets = {name: SequenceSet([rng.normal(size=(n, 4)).astype(np.float32) for n in lengths],
                              [np.array(encode(t), np.int16) for t in targets])
            for name in ("train", "valid", "test")}
    return HandwritingTask(sets, CHARSET)


# -- decoding and metric ------------------------------------------------------------------
def test_best_path_merges_repeats_drops_blanks_and_padding() -> None:
    a, b = encode("a")[0], encode("b")[0]
    paths = [[a, a, BLANK, a, b, b, BLANK, b], [b, BLANK, a, a, a, b, b, b]]
    scores = onehot(paths, len(CHARSET) + 1)
    assert best_path(scores, torch.tensor([8, 8])) == [[a, a, b, b], [b, a, b]]
    assert best_path(scores, torch.tensor([5, 3])) == [[a, a, b], [b, a]]


def test_edit_distance_and_cer_on_known_strings() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance(encode("flaw"), encode("lawn")) == 2
    assert edit_distance([], encode("abc")) == 3
    assert error_rate(["kitten", "abc"], ["sitting", "abc"]) == pytest.approx(3 / 10)
    assert error_rate([[]], [encode("word")]) == 1.0
    assert error_rate([["the", "cat"]], [["the", "hat", "sat"]]) == pytest.approx(2 / 3)


def test_score_gives_exact_cer_and_wer_over_batches() -> None:
    refs = ["sitting", "the cat sat", "abc"]
    hyps = ["kitten", "the hat sat", ""]
    task = small_task(refs, [20, 20, 20])
    paths = [[x for c in h for x in (encode(c)[0], BLANK)] for h in hyps]
    outputs = onehot(paths, len(CHARSET) + 1, length=24)
    targets, target_lengths = task.collate_targets([np.array(encode(r)) for r in refs])
    batch = Batch(torch.zeros(24, 3, 4), torch.tensor([24, 24, 24]), targets, target_lengths)
    s = task.score(outputs, batch)
    assert s["cer"] == (3 + 1 + 3, 7 + 11 + 3)
    assert s["wer"] == (1 + 1 + 1, 1 + 3 + 1)
    assert task.decode(outputs, batch.lengths) == hyps


def test_collate_targets_pads_with_lengths() -> None:
    task = small_task(["ab", "a"], [10, 10])
    padded, lengths = task.collate_targets([np.array([3, 4, 5], np.int16), np.array([7])])
    assert padded.dtype == torch.long and padded.tolist() == [[3, 4, 5], [7, 0, 0]]
    assert lengths.tolist() == [3, 1]


def test_ctc_loss_is_per_line_and_ignores_padding() -> None:
    torch.manual_seed(0)
    task = small_task(["ab", "cab", "a"], [9, 12, 6])
    batch = next(task.batches("train", 3))
    outputs = torch.randn(batch.x.shape[0], 3, len(CHARSET) + 1)
    expected = F.ctc_loss(outputs.log_softmax(-1), batch.targets, batch.lengths,
                          batch.target_lengths, reduction="none").mean()
    assert task.loss(outputs, batch).item() == pytest.approx(expected.item(), rel=1e-5)
    longer = torch.cat([outputs, torch.randn(7, 3, len(CHARSET) + 1)])
    padded = Batch(torch.zeros(longer.shape[0], 3, 4), batch.lengths, batch.targets,
                   batch.target_lengths)
    assert task.loss(longer, padded).item() == pytest.approx(expected.item(), rel=1e-5)
    assert task.score(longer, padded)["cer"] == task.score(outputs, batch)["cer"]
    # the trainer's per-sequence objective is the same number: CTC is already per line
    assert task.sequence_loss(outputs, batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_network_shape_and_metric_names() -> None:
    task = small_task(["ab", "cab"], [9, 12])
    net = task.build_network("V", 5)
    assert task.bidirectional and net.rnn.bidirectional
    assert task.output_size == len(CHARSET) + 1
    assert task.metric == "cer" and task.metric_label == "character error rate"
    result = task.evaluate(net, "valid", batch_size=1)
    assert set(result) == {"cer", "wer", "ctc_loss"}
    assert result == pytest.approx(task.evaluate(net, "valid", batch_size=2))


# -- on the synthetic corpus ---------------------------------------------------------------
def _tiny(folder: Path, **options) -> HandwritingTask:
    """A tiny Hershey corpus of short lines over a 4-letter alphabet, in `folder`."""
    words = folder / "words.txt"
    words.write_text("\n".join("".join(p) for n in (2, 3, 4)
                               for p in itertools.product("aclo", repeat=n)))
    mp = pytest.MonkeyPatch()
    mp.setenv("ODYSSEY_DATASETS", str(folder / "datasets"))
    try:
        return load_task("handwriting", hershey={
            "writers": {"train": 8, "valid": 2, "test": 2}, "lines_per_writer": 10,
            "workers": 1, "min_chars": 4, "max_chars": 8, "word_list": str(words),
            "fonts": ["futural"]}, **options)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> HandwritingTask:
    return _tiny(tmp_path_factory.mktemp("hw"))


def test_paper_features_are_the_full_lines_halved(tmp_path: Path) -> None:
    """The default (paper) inputs against every point with `feature=time subsample=1`:
    half the points, each move the sum of the two it spans, a pen lift where either of the
    two points it spans ended a stroke, and stroke time 0 where a stroke begins."""
    paper = _tiny(tmp_path, standardize=False)
    full = _tiny(tmp_path, standardize=False, feature="time", subsample=1)
    halved = _tiny(tmp_path, standardize=False, feature="time")
    assert paper.describe()["features"] == ["dx", "dy", "stroke_t", "pen_up"]
    assert (paper.describe()["subsample"], full.describe()["subsample"]) == (2, 1)
    checked = 0
    for split in ("train", "valid", "test"):
        rows = dict(zip(full.splits[split].ids, full.splits[split].inputs, strict=True))
        for line, p, h in zip(paper.splits[split].ids, paper.splits[split].inputs,
                              halved.splits[split].inputs, strict=True):
            f = rows[line]
            n = len(f)
            assert len(p) == len(h) == (n + 1) // 2
            move = np.cumsum(f[:, :2], axis=0)[::2]  # pen position at every second point
            np.testing.assert_allclose(h[1:, :2], np.diff(move, axis=0), atol=1e-4)
            np.testing.assert_allclose(h[1:, 2], np.add.reduceat(f[1:, 2], np.arange(
                0, n - 1, 2))[:len(h) - 1], rtol=1e-5, atol=1e-6)
            lift = np.maximum(f[::2, 3], np.append(f[1::2, 3], 0)[:len(h)])
            np.testing.assert_array_equal(h[:, 3], lift)
            np.testing.assert_array_equal(p[:, [0, 1, 3]], h[:, [0, 1, 3]])
            # stroke time: 0 exactly where a stroke starts at a kept point, else growing
            assert p[0, 2] == 0 and np.all(p[:, 2] >= 0)
            inside = (p[:-1, 3] == 0)  # consecutive kept points of one stroke
            np.testing.assert_allclose(p[1:, 2][inside], (p[:-1, 2] + h[1:, 2])[inside],
                                       rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked == 120


def test_load_task_standardises_and_describes(tiny: HandwritingTask) -> None:
    train = np.concatenate(tiny.splits["train"].inputs)
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-3)
    info = tiny.describe()
    assert info["task"] == "handwriting" and info["synthetic"] is True
    assert info["features"] == ["dx", "dy", "stroke_t", "pen_up"] and info["subsample"] == 2
    assert info["train"]["sequences"] == 80
    base = trivial_baselines(tiny, "valid")
    assert base["empty"] == 1.0 and 0.5 < base["most_frequent"] < 1.0
    # the sweep's untrained mark compares with the empty output, where CTC training starts
    assert tiny.baseline("valid") == base["empty"] == 1.0
    assert tiny.valid_loss_key == "ctc_loss"


def train(task: HandwritingTask, epochs: int, hidden: int = 24, lr: float = 0.01
          ) -> list[dict[str, float]]:
    """A hand-written Adam loop; the training-set metrics before and after each epoch."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest on a shared machine
    try:
        return _train(task, epochs, hidden, lr)
    finally:
        torch.set_num_threads(threads)


def _train(task: HandwritingTask, epochs: int, hidden: int, lr: float) -> list[dict[str, float]]:
    torch.manual_seed(0)
    net = task.build_network("NP", hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    history = [task.evaluate(net, "train")]
    for _ in range(epochs):
        for batch in task.batches("train", 4, shuffle=True, generator=rng):
            loss = task.loss(net(batch.x, batch.lengths), batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        history.append(task.evaluate(net, "train"))
    return history


def test_a_few_updates_lower_loss_and_cer(tiny: HandwritingTask) -> None:
    history = train(tiny, 1)
    assert history[-1]["ctc_loss"] < 0.5 * history[0]["ctc_loss"]
    assert history[-1]["cer"] < history[0]["cer"]


@pytest.mark.slow
def test_training_beats_the_trivial_baselines(tiny: HandwritingTask) -> None:
    history = train(tiny, 30)
    base = trivial_baselines(tiny, "train")
    assert history[-1]["cer"] < min(base["empty"], base["most_frequent"]) - 0.2


def test_unknown_task_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hershey.size"):
        load_task("handwriting", hershey={"size": 3})
