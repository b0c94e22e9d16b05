"""The speech task: loss, metrics and folding on a TIMIT tree written here; training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from odyssey.data import timit
from odyssey.data.phones import FOLDED39, TIMIT61, fold_table
from odyssey.tasks import load_task
from odyssey.tasks.speech import IGNORE, SpeechTask

RATE = 16000


def make_tree(root: Path) -> Path:
    """A small TIMIT tree: 2 training, 1 development and 1 core-test speaker."""
    rng = np.random.default_rng(0)
    phones = ["h#", "sh", "iy", "q", "ae", "dcl", "d", "h#"]
    for part, dr, spk in [("TRAIN", "DR1", "FCJF0"), ("TRAIN", "DR3", "MRCZ0"),
                          ("TEST", "DR1", "FAKS0"), ("TEST", "DR2", "MWEW0")]:
        for k, sent in enumerate(["SA1", "SI648", "SX18", "SX288"]):
            n = 5 + k
            seg = 800 + 400 * k
            x = np.concatenate([rng.normal(0, 30 + 500 * (p != "h#"), seg)
                                for p in phones[:n]])
            folder = root / part / dr / spk
            timit.write_sphere(folder / f"{sent}.WAV", x)
            timit.write_phn(folder / f"{sent}.PHN",
                            [(i * seg, (i + 1) * seg, p) for i, p in enumerate(phones[:n])])
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("timit"))


@pytest.fixture(autouse=True)
def datasets(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ODYSSEY_DATASETS", str(tmp_path / "datasets"))
    return tmp_path / "datasets"


def options(tree: Path, **extra) -> dict:
    return {"source": "timit", "path": str(tree), "workers": 1, **extra}


class Constant(torch.nn.Module):
    """A 'network' that scores one class highest at every step."""

    def __init__(self, classes: int, winner: int) -> None:
        super().__init__()
        self.scores = torch.zeros(classes)
        self.scores[winner] = 1.0

    def forward(self, x, lengths=None):
        return self.scores.expand(x.shape[0], x.shape[1], -1).clone()


def test_the_task_from_timit(tree):
    task = load_task("speech", **options(tree))
    assert isinstance(task, SpeechTask)
    assert task.bidirectional and task.metric == "frame_error"
    assert task.input_size == 39 and task.output_size == 61 and task.classes == TIMIT61
    assert [len(task.splits[s]) for s in ("train", "valid", "test")] == [6, 3, 3]
    train = np.concatenate(task.splits["train"].inputs)
    assert np.allclose(train.mean(0), 0, atol=1e-4) and np.allclose(train.std(0), 1, atol=1e-3)
    assert task.splits["test"].ids[0] == "mwew0_si648"
    net = task.build_network("v", 8, impl="reference")
    batch = next(task.batches("train", 4))
    assert net(batch.x, batch.lengths).shape == (batch.x.shape[0], 4, 61)
    assert task.describe()["fold39"] is False


def test_loss_and_metrics_are_exact_over_real_frames(tree):
    task = load_task("speech", **options(tree))
    hsh = TIMIT61.index("h#")
    y = np.concatenate(task.splits["valid"].targets)
    want = float(np.mean(y != hsh))
    for bs in (1, 2, 3):  # padding never changes a number
        res = task.evaluate(Constant(61, hsh), "valid", batch_size=bs)
        assert res["frame_error"] == pytest.approx(want)
    # folded: h# -> sil; q frames are not scored
    table = fold_table(TIMIT61)
    scored = table[y] >= 0
    want39 = float(np.mean(table[y][scored] != FOLDED39.index("sil")))
    assert res["frame_error39"] == pytest.approx(want39) and want39 != pytest.approx(want)
    # the loss is the mean cross-entropy over real frames only
    torch.manual_seed(0)
    net = task.build_network("np", 4, impl="reference")
    batch = next(task.batches("train", 3))
    out = net(batch.x, batch.lengths)
    manual = torch.cat([F.cross_entropy(out[: n, b], batch.targets[: n, b], reduction="none")
                        for b, n in enumerate(batch.lengths.tolist())]).mean()
    assert torch.allclose(task.loss(out, batch), manual)
    # the trainer's per-sequence scale: the sum over each sequence, averaged over sequences
    assert torch.allclose(task.sequence_loss(out, batch),
                          manual * batch.lengths.sum() / len(batch.lengths))
    assert res["cross_entropy"] > 0


def test_fold39_trains_on_39_classes(tree):
    task = load_task("speech", **options(tree, fold39=True))
    assert task.output_size == 39 and task.classes == FOLDED39
    y = np.concatenate(task.splits["train"].targets)
    assert (y == IGNORE).sum() > 0 and y.max() < 39  # the q frames are ignored
    sil = FOLDED39.index("sil")
    res = task.evaluate(Constant(39, sil), "train", batch_size=2)
    scored = y[y != IGNORE]
    assert res["frame_error"] == pytest.approx(float(np.mean(scored != sil)))
    assert "frame_error39" not in res
    batch = next(task.batches("train", 6))
    loss = task.loss(torch.zeros(*batch.targets.shape, 39, requires_grad=True), batch)
    assert loss.item() == pytest.approx(np.log(39))  # finite despite the ignored frames
    scored = int((batch.targets[batch.mask] != IGNORE).sum())
    seq = task.sequence_loss(torch.zeros(*batch.targets.shape, 39), batch)
    assert seq.item() == pytest.approx(np.log(39) * scored / 6)  # q frames out of the sum


def test_unknown_option_is_named(tree):
    with pytest.raises(ValueError, match="unknown key.*'hidden'"):
        load_task("speech", **options(tree, hidden=3))


@pytest.mark.slow
@pytest.mark.requires("flite")
def test_training_beats_the_majority_class_on_the_flite_corpus():
    """A small bidirectional LSTM, a few epochs of Nesterov SGD, on 30 synthetic utterances."""
    task = load_task("speech", source="flite",
                     utterances={"train": 30, "valid": 10, "test": 10},
                     speakers={"train": 5, "valid": 2, "test": 2}, seed=0)
    counts = np.bincount(np.concatenate(task.splits["train"].targets), minlength=41)
    majority = int(counts.argmax())
    baseline = task.evaluate(Constant(task.output_size, majority), "test")["frame_error"]
    torch.manual_seed(0)
    net = task.build_network("v", 24)
    opt = torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the per-step loop is latency-bound; threads only contend
    try:
        for _ in range(5):
            for batch in task.batches("train", 5, shuffle=True, generator=rng):
                opt.zero_grad()
                task.loss(net(batch.x, batch.lengths), batch).backward()
                opt.step()
        res = task.evaluate(net, "test")
    finally:
        torch.set_num_threads(threads)
    assert np.isfinite(res["cross_entropy"])
    assert res["frame_error"] < baseline - 0.2, (res, baseline)


@pytest.mark.parametrize("fold39", [False, True])
def test_baseline_is_the_majority_class_frame_error(tree, fold39):
    task = load_task("speech", **options(tree, fold39=fold39))
    train = np.concatenate(task.splits["train"].targets)
    majority = int(np.bincount(train[train != IGNORE]).argmax())
    for split in ("valid", "test"):
        expected = task.evaluate(Constant(task.output_size, majority), split)["frame_error"]
        assert task.baseline(split) == pytest.approx(expected)
    assert task.valid_loss_key == "cross_entropy"
