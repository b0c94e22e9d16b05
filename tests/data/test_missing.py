"""Missing data for any task (odyssey.data.missing): masks, delta, centring, the views, the
task option and training on it."""

import numpy as np
import pytest
import torch

from odyssey.data.missing import (
    MissingSpec,
    MissingView,
    draw_mask,
    forward_fill,
    missing_spec,
    remove,
    time_since_observed,
)
from odyssey.tasks import load_task
from odyssey.training import Hyperparameters, TrainSettings, train
from odyssey.training.run import _noise
from tests import toy


@pytest.fixture(autouse=True, scope="module")
def _toy():
    toy.register()


def test_masks_are_seeded_per_split_and_sequence_and_follow_the_unit():
    spec = MissingSpec(rate=0.3, unit="value", seed=4)
    a = draw_mask((400, 5), spec, "train", 2)
    assert np.array_equal(a, draw_mask((400, 5), spec, "train", 2))
    assert not np.array_equal(a, draw_mask((400, 5), spec, "train", 3))
    assert not np.array_equal(a, draw_mask((400, 5), spec, "valid", 2))
    assert abs(1 - a.mean() - 0.3) < 0.03
    frames = draw_mask((400, 5), MissingSpec(rate=0.3, unit="frame", seed=4), "train", 2)
    assert np.all(frames == frames[:, :1])  # whole frames
    assert 0 < frames[:, 0].mean() < 1


def test_time_since_observed_follows_che_et_al():
    m = np.array([[1, 0], [0, 0], [1, 1], [0, 1]], np.float32)
    expected = np.array([[0, 0], [1, 1], [2, 2], [1, 1]], np.float32)
    np.testing.assert_array_equal(time_since_observed(m), expected)


def test_remove_centres_on_the_observed_training_mean_and_zeroes_the_gaps():
    rng = np.random.default_rng(0)
    splits = {s: [rng.normal(3.0, 1.0, (n, 2)).astype(np.float32) for n in (20, 30)]
              for s in ("train", "valid", "test")}
    spec = MissingSpec(rate=0.4, seed=1)
    out = remove(splits, spec)
    x, m, delta = np.split(np.concatenate(out["train"]), 3, axis=1)
    assert np.all(x[m == 0] == 0)
    np.testing.assert_allclose((x * m).sum(0) / m.sum(0), 0.0, atol=1e-5)  # x-bar = 0
    raw = np.concatenate(splits["train"])
    np.testing.assert_allclose(x[m == 1] + (raw * m).sum(0)[np.where(m == 1)[1]]
                               / m.sum(0)[np.where(m == 1)[1]], raw[m == 1], atol=1e-5)
    np.testing.assert_array_equal(delta[:20], time_since_observed(m[:20]))


def test_forward_fill_is_the_last_observation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 2, 3, generator=g)
    m = (torch.rand(9, 2, 3, generator=g) > 0.5).float()
    got = forward_fill(x, m)
    for b in range(2):
        for d in range(3):
            last = 0.0
            for t in range(9):
                if m[t, b, d]:
                    last = x[t, b, d]
                assert got[t, b, d] == last


def test_views():
    x = torch.randn(4, 2, 3)
    m = torch.ones(4, 2, 3)
    m[1] = 0
    inputs = torch.cat([x * m, m, torch.zeros_like(x)], dim=-1)
    assert torch.equal(MissingView("mean", 3)(inputs), x * m)
    last = MissingView("last", 3)(inputs)
    assert torch.equal(last[1], x[0]) and torch.equal(last[2], x[2])
    mixed = MissingView("mixed", 3)
    assert mixed.output_size == 9 and torch.equal(mixed(inputs)[..., 3:6], m)
    complete = MissingView("complete", 3)(x)
    assert torch.equal(complete[..., :3], x) and torch.all(complete[..., 3:6] == 1)
    assert torch.all(complete[0, :, 6:] == 0) and torch.all(complete[1:, :, 6:] == 1)


@pytest.mark.parametrize(("options", "message"), [
    ({"missing_rate": 1.0}, "task.missing_rate must be a number in \\[0, 1\\)"),
    ({"missing_rate": 0.2, "missing": "row"}, "task.missing must be one of value, frame"),
    ({"missing_rate": 0.2, "fill": "zero"}, "task.fill must be one of mean, last, mixed"),
])
def test_bad_options_name_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        missing_spec(options)


def test_rate_zero_leaves_the_task_as_it_was():
    plain = load_task("toy", seed=3)
    same = load_task("toy", seed=3, missing_rate=0.0, fill="last")
    assert same.input_size == plain.input_size and not same.missing.active
    for a, b in zip(plain.splits["train"].inputs, same.splits["train"].inputs, strict=True):
        assert np.array_equal(a, b)
    assert same.input_view("V") is None and same.noise_features is None
    view = same.input_view("GRUD")  # a GRU-D on complete data reads [x; 1; delta]
    assert view.mode == "complete" and view.output_size == 3 * plain.input_size


def test_the_task_option_gives_each_cell_its_view():
    task = load_task("toy", seed=3, missing_rate=0.3, fill="mixed", missing_seed=2)
    assert task.input_size == 12 and task.features == 4 and task.noise_features == 4
    assert task.input_view("GRUD") is None
    assert task.input_view("V").mode == "mixed"
    assert task.describe()["missing"] == "missing 30 % per value, fill mixed"
    again = load_task("toy", seed=3, missing_rate=0.3, fill="mean", missing_seed=2)
    for a, b in zip(task.splits["valid"].inputs, again.splits["valid"].inputs, strict=True):
        assert np.array_equal(a, b)  # the same gaps whatever the fill
    net = task.build_network("V", 5)
    assert net.rnn.input_size == 12 and net.input_view is not None


def test_noise_never_touches_mask_or_delta():
    task = load_task("toy", seed=3, missing_rate=0.3)
    batch = next(task.batches("train", 4))
    g = torch.Generator().manual_seed(0)
    draws, std = _noise(batch, 0.5, g, task.noise_features)
    assert torch.all(draws[..., 4:] == 0) and torch.all(draws[..., :4] != 0)
    g = torch.Generator().manual_seed(0)
    plain, _ = _noise(batch, 0.5, g)  # the same stream as without missing data
    assert torch.equal(plain[..., :4], draws[..., :4])


@pytest.mark.parametrize(("variant", "fill"), [("V", "mean"), ("GRU", "last"),
                                               ("CW", "mixed"), ("GRUD", "mean")])
def test_cells_train_on_a_task_with_missing_values(variant, fill):
    task = load_task("toy", seed=1, missing_rate=0.25, missing="frame", fill=fill)
    settings = TrainSettings(max_epochs=2, patience=5, batch_size=8)
    r = train(task, variant, Hyperparameters(6, 0.5, 0.9, 0.2), settings, seed=0)
    assert r.status == "complete" and np.isfinite(r.test_metric) and r.epochs_run == 2
    again = train(task, variant, Hyperparameters(6, 0.5, 0.9, 0.2), settings, seed=0)
    assert again.test_metric == r.test_metric  # seeded: the same trial twice
