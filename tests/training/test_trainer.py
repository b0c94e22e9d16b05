"""The trainer follows DESIGN §4: learns, early-stops, is seeded, fails on divergence."""

from __future__ import annotations

import math

import pytest
import torch

from odyssey.training import Hyperparameters, TrainSettings, effective_learning_rate, train
from tests.toy import load


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(1)
    return load()


def fast(**kw) -> TrainSettings:
    return TrainSettings(**{"max_epochs": 10, "patience": 20, "batch_size": 4, **kw})


def test_learns_the_toy_task(task):
    r = train(task, "V", Hyperparameters(16, 1.0, 0.9, 0.0), fast(), seed=0)
    assert r.status == "complete", r.fail_reason
    first, best = r.curve[0]["valid"], r.valid_metric
    assert best < 0.25 * first  # ln 2 * 3 keys = 2.08 at chance
    assert r.extra_metrics["valid_frame_accuracy"] > 0.9
    assert r.parameter_count > r.recurrent_parameter_count > 0


def test_best_epoch_gives_the_test_score(task):
    r = train(task, "NP", Hyperparameters(12, 1.0, 0.5, 0.1), fast(max_epochs=6), seed=3)
    valid = [c["valid"] for c in r.curve]
    k = valid.index(min(valid))
    assert r.best_epoch == r.curve[k]["epoch"] == k + 1
    assert r.valid_metric == valid[k] and r.test_metric == r.curve[k]["test"]
    assert [c["epoch"] for c in r.curve] == list(range(1, r.epochs_run + 1))
    assert all(math.isfinite(c["train_loss"]) for c in r.curve)


def test_early_stopping_after_patience(task):
    # a learning rate this small changes nothing measurable: no epoch improves much, and
    # training stops `patience` epochs after the best one
    r = train(task, "V", Hyperparameters(8, 1e-9, 0.0, 0.0),
              fast(max_epochs=50, patience=2), seed=1)
    assert r.status == "complete"
    assert r.epochs_run == r.best_epoch + 2 < 50


def test_same_seed_same_result_other_seed_not(task):
    hp = Hyperparameters(10, 0.3, 0.9, 0.3)
    a = train(task, "CIFG", hp, fast(max_epochs=3), seed=7)
    b = train(task, "CIFG", hp, fast(max_epochs=3), seed=7)
    c = train(task, "CIFG", hp, fast(max_epochs=3), seed=8)
    assert a.curve == b.curve
    assert a.curve != c.curve


def test_input_noise_only_in_training(task):
    # with a negligible step, the trained net is the initial one: the validation score
    # must not depend on the training noise (noise is never added when evaluating)
    quiet = train(task, "V", Hyperparameters(8, 1e-12, 0.0, 0.0), fast(max_epochs=1), seed=2)
    noisy = train(task, "V", Hyperparameters(8, 1e-12, 0.0, 1.0), fast(max_epochs=1), seed=2)
    assert noisy.valid_metric == pytest.approx(quiet.valid_metric, abs=1e-6)
    assert noisy.curve[0]["train_loss"] != pytest.approx(quiet.curve[0]["train_loss"])


def test_divergence_is_a_failed_trial_with_its_reason(task):
    # BCE with logits saturates gracefully, so only a float32-overflowing step gives inf
    r = train(task, "NOAF", Hyperparameters(32, 1e38, 0.9, 0.0), fast(max_epochs=5), seed=0)
    assert r.status == "failed"
    assert "diverged" in r.fail_reason and ("nan" in r.fail_reason or "inf" in r.fail_reason)
    assert r.parameter_count > 0 and r.train_seconds > 0


@pytest.mark.parametrize("fused", [True, False])
def test_batch_one_is_one_update_per_sequence(task, monkeypatch, fused):
    """One SGD step per training sequence at batch 1, at lr x (1 - momentum)."""
    steps = []
    if fused:  # the fused kernels take the step in C++: count the kernel calls
        from odyssey.training import packed

        original = packed.FusedPack.train_step  # the toy task's loss is a kernel loss

        def counting(self, xs, lengths, targets, params, buffers, lrs, *rest):
            steps.extend(lrs)
            return original(self, xs, lengths, targets, params, buffers, lrs, *rest)

        monkeypatch.setattr(packed.FusedPack, "train_step", counting)
    else:
        original = torch.optim.SGD.step

        def counting_step(self, *a, **k):
            steps.append(self.param_groups[0]["lr"])
            return original(self, *a, **k)

        monkeypatch.setattr(torch.optim.SGD, "step", counting_step)
    hp = Hyperparameters(8, 1e-3, 0.75, 0.0)
    train(task, "GRU", hp, fast(max_epochs=1, batch_size=1, fused=fused), seed=0)
    assert len(steps) == len(task.splits["train"])
    assert steps[0] == pytest.approx(1e-3 * 0.25)  # learning rate scaled by (1 - momentum)


def test_effective_learning_rate():
    hp = Hyperparameters(20, 1e-3, 0.9, 0.0)
    assert effective_learning_rate(hp, TrainSettings(batch_size=8)) == pytest.approx(1e-4)
    scaled = TrainSettings(batch_size=8, scale_lr_with_batch=True)
    assert effective_learning_rate(hp, scaled) == pytest.approx(8e-4)


@pytest.mark.parametrize("kw, key", [({"max_epochs": 0}, "train.max_epochs"),
                                     ({"patience": -1}, "train.patience"),
                                     ({"batch_size": 1.5}, "train.batch_size"),
                                     ({"impl": "cuda-magic"}, "train.impl")])
def test_bad_settings_name_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        TrainSettings(**kw)
    with pytest.raises(ValueError, match="unknown key"):
        TrainSettings.from_mapping({"max_epoch": 3})


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="momentum"):
        Hyperparameters.from_search({"hidden_size": 20, "learning_rate": 1e-3,
                                     "one_minus_momentum": 0.0, "input_noise": 0.0})
    with pytest.raises(ValueError, match="hidden_size"):
        Hyperparameters(0, 1e-3, 0.5, 0.0)


def test_sequence_loss_sums_each_sequence_and_averages_the_batch(task):
    """train.loss=sequence: each sequence's loss summed over its steps (the paper's scale)."""
    net = task.build_network("V", 6)
    batch = next(task.batches("train", 5))
    out = net(batch.x, batch.lengths)
    per_sequence = [task.loss(out[:n, b:b + 1], _one(batch, b)) * n
                    for b, n in enumerate(batch.lengths.tolist())]
    expected = torch.stack(per_sequence).mean()
    assert torch.allclose(task.sequence_loss(out, batch), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="train.loss"):
        TrainSettings(loss="frames")


def _one(batch, b):
    """The b-th sequence of a batch as a batch of one, cut to its length."""
    from odyssey.tasks.base import Batch
    n = int(batch.lengths[b])
    return Batch(batch.x[:n, b:b + 1], batch.lengths[b:b + 1], batch.targets[:n, b:b + 1])


def test_device_auto_is_cuda_when_present_else_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert TrainSettings(device="auto").torch_device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert TrainSettings(device="auto").torch_device == torch.device("cuda")
    assert TrainSettings(device="cpu").torch_device == torch.device("cpu")


@pytest.mark.parametrize("device, message", [
    ("cuda", r"train.device=cuda: this PyTorch \(.*\) is a CPU-only build; use "
             "train.device=cpu or train.device=auto"),
    ("cuda:1", "train.device=cuda:1: this PyTorch"),
    ("gpu", "train.device=gpu: .* expected auto, cpu or cuda"),
    ("meta", "train.device=meta: only cpu and cuda"),
])
def test_a_device_this_pytorch_cannot_use_is_refused_naming_the_key(monkeypatch, device,
                                                                     message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ValueError, match=message) as e:
        TrainSettings(device=device)
    assert "\n" not in str(e.value)


def test_a_gpu_index_beyond_the_machines_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"train.device=cuda:3: this machine has 1 GPU"):
        TrainSettings(device="cuda:3")
    TrainSettings(device="cuda:0")  # accepted
