"""Packed training: the fused step equals autograd + torch.optim, and a trial trained in a
pack gives exactly the result it gives alone."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import torch

from odyssey.cells import ALL_VARIANTS, VARIANTS
from odyssey.networks import SequenceNetwork
from odyssey.tasks.base import SPLITS, Batch, SequenceSet
from odyssey.tasks.music import MusicTask
from odyssey.tasks.speech import IGNORE, SpeechTask
from odyssey.training import Hyperparameters, TrainSettings, TrialJob, packed, train, train_pack
from tests.toy import ToyTask, load


class BiToyTask(ToyTask):
    """The toy task with a bidirectional layer (the speech/handwriting network shape)."""

    bidirectional = True


class PythonLossToy(ToyTask):
    """The toy task with its loss in Python (as CTC or a user's own loss trains)."""

    def loss_terms(self, outputs, batch):
        return super().loss_terms(outputs, batch)


@pytest.fixture(scope="module")
def toy():
    return load(n_train=12, n_valid=6, n_test=6, max_length=9)


@pytest.fixture(scope="module")
def bitoy(toy):
    return BiToyTask(toy.splits, output_size=toy.output_size, standardize=False)


def settings(**kw) -> TrainSettings:
    return TrainSettings(**{"max_epochs": 3, "patience": 3, "batch_size": 1, **kw})


def _batch(seed: int, lengths: list[int], inputs: int, keys: int, dtype) -> Batch:
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    x = torch.randn(T, len(lengths), inputs, generator=g, dtype=dtype)
    targets = (torch.rand(T, len(lengths), keys, generator=g) > 0.5).to(dtype)
    return Batch(x, torch.tensor(lengths), targets)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_step_equals_autograd_and_torch_optim(toy, variant, bidirectional):
    """Two SGD-Nesterov steps on a padded batch: float64 parameters within 1e-10."""
    torch.manual_seed(1)
    net = SequenceNetwork(variant, 4, 5, 3, bidirectional=bidirectional, impl="cpp").double()
    twin = copy.deepcopy(net)
    lr, momentum = 0.05, 0.8
    opt = torch.optim.SGD(twin.parameters(), lr=lr, momentum=momentum, nesterov=True)
    params = packed.slot_tensors(net)
    buffers = [torch.zeros_like(t) for t in params]
    one_call = copy.deepcopy(net)  # trained by pack_train_step: the same numbers, bitwise
    params1 = packed.slot_tensors(one_call)
    buffers1 = [torch.zeros_like(t) for t in params1]
    pack = packed.FusedPack(2 if bidirectional else 1, packed.kernel_loss(toy))
    for step, lengths in enumerate(([7, 3, 5], [4, 6, 2])):
        batch = _batch(step, lengths, 4, 3, torch.float64)
        (loss1,) = pack.train_step([batch.x], [packed.lengths_of(batch.lengths)], [batch.targets],
                                   [params1], [buffers1], [lr], [momentum], [packed.kind(net)])
        (logits,), saved = pack.forward([batch.x], [packed.lengths_of(batch.lengths)], [params],
                                        [packed.kind(net)])
        reference = twin(batch.x, batch.lengths)
        torch.testing.assert_close(logits, reference.detach(), rtol=0, atol=1e-12)
        (loss,), (grad,) = pack.loss([logits], [batch.targets], [packed.lengths_of(batch.lengths)])
        assert loss == loss1
        with torch.no_grad():
            pack.backward_step([grad], [packed.lengths_of(batch.lengths)], saved, [params],
                               [buffers], [lr], [momentum], [packed.kind(net)])
        opt.zero_grad()
        toy.sequence_loss(reference, batch).backward()
        opt.step()
        for (name, p), q, r in zip(net.named_parameters(), twin.parameters(),
                                   one_call.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-10, msg=f"{name} step {step}")
            assert torch.equal(p, r), f"{name} step {step}: pack_train_step"


@pytest.mark.parametrize("lengths", [[6], [7, 3, 5]], ids=["one", "padded"])
def test_the_kernels_add_input_noise_as_the_trainer_does(toy, lengths):
    """Fused trials pass their noise draws to the kernels, which add them to the inputs;
    the result is bitwise what autograd trials get from `_noisy` (same draws, same ops)."""
    from odyssey.training.run import _noise, _noisy

    batch = _batch(5, lengths, 4, 3, torch.float32)
    torch.manual_seed(3)
    net = SequenceNetwork("V", 4, 6, 3, bidirectional=False, impl="cpp")
    twin = copy.deepcopy(net)
    pack = packed.FusedPack(1, packed.kernel_loss(toy))
    step_lengths = [packed.lengths_of(batch.lengths)]
    noise = _noise(batch, 0.3, torch.Generator().manual_seed(9))
    noisy_x = _noisy(batch, 0.3, torch.Generator().manual_seed(9))
    assert not torch.equal(noisy_x, batch.x)
    assert torch.equal(noisy_x[batch.lengths[-1]:, -1], batch.x[batch.lengths[-1]:, -1])
    (added,), _ = pack.forward([batch.x], step_lengths, [packed.slot_tensors(net)],
                               [packed.kind(net)], [noise])
    (given,), _ = pack.forward([noisy_x], step_lengths, [packed.slot_tensors(net)],
                               [packed.kind(net)])
    assert torch.equal(added, given)
    for model, x, noises in ((net, batch.x, [noise]), (twin, noisy_x, None)):
        params = packed.slot_tensors(model)
        pack.train_step([x], step_lengths, [batch.targets], [params],
                        [[torch.zeros_like(t) for t in params]], [0.1], [0.9],
                        [packed.kind(model)], noises)
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


def test_plain_sgd_without_momentum(toy):
    torch.manual_seed(2)
    net = SequenceNetwork("GRU", 4, 6, 3, bidirectional=False, impl="cpp").double()
    twin = copy.deepcopy(net)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    params = packed.slot_tensors(net)
    pack = packed.FusedPack(1)
    batch = _batch(3, [5, 2], 4, 3, torch.float64)
    (logits,), saved = pack.forward([batch.x], [packed.lengths_of(batch.lengths)], [params],
                                    [packed.kind(net)])
    out = logits.requires_grad_()
    (grad,) = torch.autograd.grad(toy.sequence_loss(out, batch), out)
    pack.backward_step([grad], [packed.lengths_of(batch.lengths)], saved, [params],
                       [[torch.zeros_like(t) for t in params]], [0.1], [0.0],
                       [packed.kind(net)])
    toy.sequence_loss(twin(batch.x, batch.lengths), batch).backward()
    opt.step()
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-10)


def _jobs(variants, hidden=(3, 9, 5, 12)):
    jobs = []
    for k, variant in enumerate(variants):
        hp = Hyperparameters(hidden[k % len(hidden)], 0.3 * (1 + k % 3), 0.5 + 0.1 * (k % 4),
                             0.2 * (k % 2))
        jobs.append(TrialJob(variant, hp, seed=100 + k, tag=f"{variant}#{k}"))
    return jobs


def _pack(task, jobs, capacity, **kw):
    queue = list(reversed(jobs))
    out = {}
    train_pack(task, settings(**kw), lambda: queue.pop() if queue else None,
               lambda job, result: out.__setitem__(job.tag, result), capacity=capacity)
    return out


def _same(a, b):
    """Trial results equal in every number (the arithmetic is the same alone and packed)."""
    assert (a.status, a.epochs_run, a.best_epoch) == (b.status, b.epochs_run, b.best_epoch)
    assert a.valid_metric == b.valid_metric and a.test_metric == b.test_metric
    assert a.curve == b.curve and a.extra_metrics == b.extra_metrics


@pytest.mark.parametrize("task_name", ["toy", "bitoy", "python-loss"])
def test_a_trial_in_a_pack_gives_its_result_alone(toy, bitoy, task_name):
    """All eleven cells (and the extra ones), mixed hidden sizes, packs of four."""
    task = {"toy": toy, "bitoy": bitoy,
            "python-loss": PythonLossToy(toy.splits, output_size=toy.output_size,
                                         standardize=False)}[task_name]
    jobs = _jobs(ALL_VARIANTS)
    alone = {j.tag: train(task, j.variant, j.hp, settings(), j.seed) for j in jobs}
    packed_results = _pack(task, jobs, capacity=4)
    assert set(packed_results) == set(alone)
    for tag, result in alone.items():
        _same(packed_results[tag], result)


@pytest.mark.parametrize("task_name", ["toy", "bitoy"])
def test_the_scoring_batch_size_does_not_change_a_result(toy, bitoy, task_name):
    """train.eval_batch_size only groups the validation and test sequences (sorted by
    length) for the fused forward kernel: every epoch's scores are the same for any value, up
    to float32 rounding (a batch's score is summed in float32)."""
    task = {"toy": toy, "bitoy": bitoy}[task_name]
    hp = Hyperparameters(hidden_size=7, learning_rate=0.05, momentum=0.9, input_noise=0.1)
    results = [train(task, variant, hp, settings(eval_batch_size=size), 3)
               for variant in ("V", "NOAF") for size in (1, 4, 128)]
    for first, *others in (results[:3], results[3:]):
        for other in others:
            assert other.best_epoch == first.best_epoch
            for a, b in zip(other.curve, first.curve, strict=True):
                assert a.keys() == b.keys()
                for key, value in b.items():  # the test score is None at epochs without a gain
                    assert a[key] == (value if value is None else pytest.approx(value, rel=1e-6))


def test_float64_arithmetic_is_the_same_packed(toy):
    """The per-trial arithmetic does not depend on the pack in float64 either (1e-10)."""
    params, kinds, xs, lengths = [], [], [], []
    nets = []
    for k, variant in enumerate(VARIANTS):
        torch.manual_seed(k)
        net = SequenceNetwork(variant, 4, 3 + k, 3, bidirectional=True, impl="cpp").double()
        nets.append(net)
        params.append(packed.slot_tensors(net))
        kinds.append(packed.kind(net))
        batch = _batch(k, [6, 2 + k % 4], 4, 3, torch.float64)
        xs.append(batch.x)
        lengths.append(packed.lengths_of(batch.lengths))
    pack = packed.FusedPack(2)
    together, _ = pack.forward(xs, lengths, params, kinds)
    for k in range(len(nets)):
        (one,), _ = pack.forward([xs[k]], [lengths[k]], [params[k]], [kinds[k]])
        torch.testing.assert_close(together[k], one, rtol=1e-10, atol=0)


def test_a_diverging_trial_leaves_its_pack_and_its_slot_is_refilled(toy):
    jobs = _jobs(["V", "NOAF", "GRU"])
    boom = jobs[1]
    jobs[1] = TrialJob("NOAF", Hyperparameters(8, 1e38, 0.9, 0.0), boom.seed, tag=boom.tag)
    started, ended = [], []
    queue = list(reversed(jobs))

    def next_job():
        if not queue:
            return None
        started.append((queue[-1].tag, list(ended)))
        return queue.pop()

    results = {}

    def on_result(job, result):
        ended.append(job.tag)
        results[job.tag] = result

    train_pack(toy, settings(), next_job, on_result, capacity=2)
    assert results[boom.tag].status == "failed"
    assert "diverged" in results[boom.tag].fail_reason
    # the third trial took the diverged trial's slot while the first was still training
    assert started[2] == ("GRU#2", ["NOAF#1"])
    for job in (jobs[0], jobs[2]):
        _same(results[job.tag], train(toy, job.variant, job.hp, settings(), job.seed))


def test_cells_without_fused_kernels_train_in_the_same_pack(toy):
    """MUT1 (autograd) beside V and GRU (fused); and impl=reference, fused=false."""
    jobs = _jobs(["MUT1", "V", "GRU", "MUT3"])
    together = _pack(toy, jobs, capacity=4)
    for job in jobs:
        _same(together[job.tag], train(toy, job.variant, job.hp, settings(), job.seed))
    for kw in ({"fused": False}, {"impl": "reference"}):
        autograd = _pack(toy, jobs[1:3], capacity=2, **kw)
        for job in jobs[1:3]:
            _same(autograd[job.tag], train(toy, job.variant, job.hp, settings(**kw), job.seed))


def test_fused_and_autograd_training_agree(toy):
    """The same trial on the fused kernels and through autograd: equal up to rounding (at a
    tame learning rate: at large ones, training amplifies any rounding difference)."""
    hp = Hyperparameters(7, 0.02, 0.5, 0.1)
    for variant in ("V", "FGR", "RNN"):
        a = train(toy, variant, hp, settings(), 5)
        b = train(toy, variant, hp, settings(fused=False), 5)
        assert a.epochs_run == b.epochs_run and a.best_epoch == b.best_epoch
        assert a.valid_metric == pytest.approx(b.valid_metric, rel=1e-4)


def test_the_trials_of_a_pack_are_charged_no_more_than_the_packs_measured_time(toy):
    jobs = _jobs(["V", "NP", "CIFG"])
    wall, cpu = time.perf_counter(), time.process_time()
    results = _pack(toy, jobs, capacity=3)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert all(r.train_seconds > 0 and r.cpu_seconds > 0 for r in results.values())
    assert sum(r.train_seconds for r in results.values()) <= wall
    assert sum(r.cpu_seconds for r in results.values()) <= cpu


def test_each_trial_is_charged_its_share_of_each_pack_step(toy, monkeypatch):
    """On a clock the test controls: each fused pack step lasts 1 s (0.5 s of CPU), nothing
    else takes time. Each trial is charged 1/k of every step it was in (k trials in that
    step), and the charges add up to the pack's total: charging a trial the whole step fails."""
    from odyssey.training import run, schedule

    now = {"wall": 0.0, "cpu": 0.0}

    class Clock:
        def __enter__(self):
            self.start = dict(now)
            return self

        def __exit__(self, *exc):
            self.wall = now["wall"] - self.start["wall"]
            self.cpu = now["cpu"] - self.start["cpu"]

    steps = []  # the trials (tags) in each fused step
    real_step = schedule._fused_step

    def fused_step(fused_pack, step):
        steps.append([r.job.tag for r, _ in step])
        now["wall"] += 1.0
        now["cpu"] += 0.5
        return real_step(fused_pack, step)

    monkeypatch.setattr(run, "Clock", Clock)
    monkeypatch.setattr(schedule, "Clock", Clock)
    monkeypatch.setattr(schedule, "_fused_step", fused_step)
    jobs = _jobs(["V", "NP", "CIFG"])
    results = _pack(toy, jobs, capacity=2)  # two trials, then the third alone
    assert {len(s) for s in steps} == {1, 2}
    for job in jobs:
        share = sum(1 / len(s) for s in steps if job.tag in s)
        assert results[job.tag].train_seconds == pytest.approx(share), job.tag
        assert results[job.tag].cpu_seconds == pytest.approx(share / 2), job.tag
    assert sum(r.train_seconds for r in results.values()) == pytest.approx(now["wall"])
    assert sum(r.cpu_seconds for r in results.values()) == pytest.approx(now["cpu"])


def test_the_test_split_is_scored_only_at_validation_gains(toy):
    r = train(toy, "V", Hyperparameters(6, 0.5, 0.9, 0.0), settings(max_epochs=6, patience=6),
              seed=4)
    best = 1e300
    for entry in r.curve:
        if entry["valid"] < best:
            best = entry["valid"]
            assert entry["test"] is not None
        else:
            assert entry["test"] is None
    assert r.test_metric == r.curve[r.best_epoch - 1]["test"]
    full = train(toy, "V", Hyperparameters(6, 0.5, 0.9, 0.0),
                 settings(max_epochs=6, patience=6, test_every_epoch=True), seed=4)
    assert all(entry["test"] is not None for entry in full.curve)
    assert [e["valid"] for e in full.curve] == [e["valid"] for e in r.curve]
    assert (full.test_metric, full.best_epoch) == (r.test_metric, r.best_epoch)
    assert len(r.curve) == 6 and any(e["test"] is None for e in r.curve)


def test_bad_capacity_is_refused(toy):
    with pytest.raises(ValueError, match="parallel_trials"):
        train_pack(toy, settings(), lambda: None, lambda j, r: None, capacity=0)


def _kernel_loss_tasks():
    """A small music and speech task (real classes, made here), and a speech batch whose
    frames are all ignored."""
    rng = np.random.default_rng(3)

    def sset(n, make):
        xs, ys = zip(*(make(int(rng.integers(2, 9))) for _ in range(n)), strict=True)
        return SequenceSet(list(xs), list(ys))

    def roll(T):
        r = (rng.random((T, 88)) < 0.1).astype(np.float32)
        return r, r
    music = MusicTask({s: sset(5, roll) for s in SPLITS}, 88, standardize=False)

    def frames(T):
        y = rng.integers(0, 5, T)
        y[rng.random(T) < 0.3] = IGNORE
        return rng.standard_normal((T, 4)).astype(np.float32), y
    speech = SpeechTask({s: sset(5, frames) for s in SPLITS}, ("a", "b", "c", "d", "e"),
                        standardize=False)
    return music, speech


@pytest.mark.parametrize("per_step", [False, True], ids=["sequence", "step"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kernel_loss_equals_the_task_loss_and_its_autograd_gradient(per_step, dtype):
    """pack_loss (C++) against the task's own loss_terms through autograd, on padded
    batches: music's BCE, speech's cross-entropy with ignored frames (and a batch with
    every frame ignored), large logits included."""
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    for task in _kernel_loss_tasks():
        spec = packed.kernel_loss(task)
        assert spec is task.kernel_loss is not None
        batches = list(task.batches("train", 3))
        empty = copy.copy(batches[0])
        empty.targets = torch.full_like(batches[0].targets, IGNORE)
        if isinstance(task, SpeechTask):
            batches.append(empty)
        g = torch.Generator().manual_seed(0)
        logits = [torch.randn(b.targets.shape[:2] + (task.output_size,), generator=g,
                              dtype=dtype) * 8 for b in batches]
        targets = [b.targets.to(dtype) if isinstance(task, MusicTask) else b.targets
                   for b in batches]
        lengths = [packed.lengths_of(b.lengths) for b in batches]
        values, grads = packed.FusedPack(1, spec, per_step).loss(logits, targets, lengths)
        objective = task.loss if per_step else task.sequence_loss
        for z, b, y, value, grad in zip(logits, batches, targets, values, grads, strict=True):
            out = z.clone().requires_grad_()
            loss = objective(out, Batch(b.x, b.lengths, y))
            (expected,) = torch.autograd.grad(loss, out, allow_unused=True)
            assert value == pytest.approx(float(loss.detach()), rel=tol, abs=tol)
            torch.testing.assert_close(grad, torch.zeros_like(z) if expected is None
                                       else expected, rtol=tol, atol=tol)


def test_a_task_that_overrides_its_loss_trains_through_its_own_loss(toy):
    """kernel_loss is only trusted where the class that declares it defines loss_terms."""
    music, speech = _kernel_loss_tasks()

    class Weighted(MusicTask):
        def loss_terms(self, outputs, batch):
            total, count = super().loss_terms(outputs, batch)
            return 2 * total, count

    assert packed.kernel_loss(Weighted(music.splits, 88, standardize=False)) is None
    patched = copy.copy(speech)
    patched.loss_terms = lambda outputs, batch: speech.loss_terms(outputs, batch)
    assert packed.kernel_loss(patched) is None


def test_training_without_the_compiled_kernels_falls_back_to_autograd(toy, monkeypatch):
    """No compiler: impl=auto trains through the reference loops and autograd (a pack never
    asks for the kernels unless one of its trials is fused)."""
    from odyssey.cells import fast

    monkeypatch.setattr(fast, "_state", {"tried": True, "ops": None,
                                         "error": RuntimeError("no compiler here")})
    result = train(toy, "V", Hyperparameters(5, 0.1, 0.5, 0.0), settings(max_epochs=2), seed=0)
    assert result.status == "complete" and result.epochs_run == 2
