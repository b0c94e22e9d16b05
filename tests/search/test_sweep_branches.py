"""The worker's rarer branches, each driven through run_worker on a real store: a claim lost
to a worker that asked at the same moment, a result overtaken by a worker that judged its
trial stale meanwhile, and a fault that ends the trials a worker holds (kind "error")."""

from __future__ import annotations

import json
import subprocess

import optuna
import pytest
from optuna.trial import TrialState

from odyssey.search import sweep
from odyssey.search.delivery import deliver_pending, pending_dir, result_record
from odyssey.search.liveness import WorkerId, _start_ticks
from odyssey.search.resilient import StoreUnavailableError
from odyssey.search.spec import SweepSpec
from odyssey.search.sweep import run_worker
from odyssey.search.trial import STALE, counts_toward_n, fail_trial
from odyssey.training.run import Run
from tests.search.helpers import studies, toy_config

SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=8",
         "variants=[V]", "train.max_epochs=1"]


def test_a_worker_that_loses_the_last_slot_closes_its_trial_untrained(tmp_path, monkeypatch):
    """Between this worker's count (one slot open) and its ask, a worker in another process
    asks too and takes the slot: this worker's trial is closed as claim_lost before any
    training; it then waits for the rival's trial, and replaces it when the rival dies."""
    cfg = toy_config(tmp_path, *SMALL, "trials_per_variant=1")
    spec = SweepSpec.from_config(cfg)
    run_worker(spec, max_trials=0)  # creates the study
    rival_study = studies(cfg)["V"]  # the rival's own handle on the store
    rival = subprocess.Popen(["sleep", "1"])  # the rival worker's process: it dies soon
    ask = optuna.Study.ask
    asked = []

    def racing_ask(self, *args, **kwargs):
        if not asked:  # the rival asks first, at the same moment
            t = ask(rival_study)
            me = WorkerId.current()
            t.set_user_attr("worker", WorkerId(me.host, me.boot_id, rival.pid,
                                               _start_ticks(rival.pid), 1).as_dict())
            asked.append(t.number)
        trial = ask(self, *args, **kwargs)
        asked.append(trial.number)
        return trial

    monkeypatch.setattr(optuna.Study, "ask", racing_ask)
    try:
        report = run_worker(spec)
    finally:
        rival.kill()
        rival.wait()
    assert asked == [0, 1, 2]  # the rival's, the lost claim, the replacement
    assert (report.claims_lost, report.stale_replaced, report.trials_run,
            report.complete) == (1, 1, 1, 1)
    rival_trial, lost, replacement = studies(cfg)["V"].get_trials()
    assert rival_trial.state == TrialState.FAIL and rival_trial.user_attrs["fail_kind"] == STALE
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_kind"] == "claim_lost"
    assert "another worker took the study's last slot" in lost.user_attrs["fail_reason"]
    assert lost.user_attrs["worker"]["pid"] == WorkerId.current().pid  # it was this worker's
    assert "seed" not in lost.user_attrs and not lost.params  # never started, never trained
    assert not counts_toward_n(lost)
    assert replacement.state == TrialState.COMPLETE
    assert [t.number for t in studies(cfg)["V"].get_trials() if counts_toward_n(t)] == [2]


@pytest.mark.parametrize("store", ["journal", "sqlite"])
def test_a_result_overtaken_by_another_worker_is_dropped_not_counted_twice(tmp_path,
                                                                           monkeypatch, store):
    """While this worker trains its trial, another worker judges the trial stale and fails
    it: this worker's result is dropped ("overtaken"), its pending copy removed, the stale
    verdict kept, and the slot filled by a new trial."""
    cfg = toy_config(tmp_path, *SMALL, f"storage={store}", "trials_per_variant=1")
    spec = SweepSpec.from_config(cfg)
    start = sweep.start_trial
    overtaken = []

    def start_then_overtaken(spec_, study, trial, variant):
        job = start(spec_, study, trial, variant)
        if not overtaken:  # another worker's handle: it fails the trial as stale
            other = studies(cfg)["V"]
            frozen = other.get_trials()[trial.number]
            assert fail_trial(other, frozen, STALE, "stale: judged by another worker")
            overtaken.append(trial.number)
        return job

    monkeypatch.setattr(sweep, "start_trial", start_then_overtaken)
    report = run_worker(spec)
    assert (report.overtaken, report.complete, report.trials_run) == (1, 1, 2)
    first, second = studies(cfg)["V"].get_trials()
    assert first.number == overtaken[0]
    assert first.state == TrialState.FAIL and first.value is None
    assert first.user_attrs["fail_reason"] == "stale: judged by another worker"
    assert first.user_attrs["valid_metric"] is None  # the dropped result wrote nothing
    assert second.state == TrialState.COMPLETE and second.user_attrs["valid_metric"] is not None
    assert [t.number for t in (first, second) if counts_toward_n(t)] == [second.number]
    assert not list(pending_dir(spec.sweep_dir).glob("*.json"))  # nothing left to deliver


def test_a_left_result_whose_trial_was_closed_meanwhile_is_dropped(tmp_path):
    """A result a dead worker left on disk, for a trial another worker has since failed as
    stale: the next worker drops it (not delivered, not counted) and removes the file."""
    cfg = toy_config(tmp_path, *SMALL, "trials_per_variant=1")
    spec = SweepSpec.from_config(cfg)
    run_worker(spec, max_trials=0)
    study = studies(cfg)["V"]
    trial = study.ask()
    fail_trial(study, study.get_trials()[trial.number], STALE, "stale: its worker died")
    folder = pending_dir(spec.sweep_dir)
    folder.mkdir(parents=True)
    record = result_record(study.study_name, trial.number, [("valid_metric", 0.5)], 0.5)
    (folder / "left.json").write_text(json.dumps(record))
    assert deliver_pending(studies(cfg), folder) == 0
    assert not (folder / "left.json").exists()
    (t,) = studies(cfg)["V"].get_trials()
    assert t.state == TrialState.FAIL and t.value is None and "valid_metric" not in t.user_attrs


def _fault_on_call(monkeypatch, error: BaseException, call: int) -> None:
    """Make the `call`-th training batch of the worker raise `error`."""
    next_batch = Run.next_batch
    calls = []

    def faulty(self):
        calls.append(1)
        if len(calls) == call:
            raise error
        return next_batch(self)

    monkeypatch.setattr(Run, "next_batch", faulty)


def test_a_fault_in_training_fails_every_held_trial_with_kind_error(tmp_path, monkeypatch):
    """A pack of two trials; a fault (not a store error) in training ends the worker with
    that error, and both trials it held are closed as failed, kind "error", with the
    traceback; a rerun replaces them."""
    cfg = toy_config(tmp_path, *SMALL, "trials_per_variant=2", "parallel_trials=2")
    spec = SweepSpec.from_config(cfg)
    _fault_on_call(monkeypatch, RuntimeError("kernel exploded"), call=3)  # both have started
    with pytest.raises(RuntimeError, match="kernel exploded"):
        run_worker(spec)
    monkeypatch.undo()
    trials = studies(cfg)["V"].get_trials()
    assert len(trials) == 2
    for t in trials:
        assert t.state == TrialState.FAIL and t.user_attrs["fail_kind"] == "error"
        assert t.user_attrs["fail_reason"] == "error: RuntimeError: kernel exploded"
        assert "kernel exploded" in t.user_attrs["traceback"]
        assert "seed" in t.user_attrs and not counts_toward_n(t)
    report = run_worker(spec)
    assert (report.trials_run, report.complete) == (2, 2)


def test_a_store_outage_past_the_bound_leaves_the_held_trial_running(tmp_path, monkeypatch):
    """The store is gone (past storage.retry_seconds): there is no store to tell the failure
    to, so the trial stays RUNNING (a later worker judges it stale) and the worker stops
    with the outage."""
    cfg = toy_config(tmp_path, *SMALL, "trials_per_variant=1")
    _fault_on_call(monkeypatch, StoreUnavailableError("store down for 60 s"), call=2)
    with pytest.raises(StoreUnavailableError, match="store down"):
        run_worker(SweepSpec.from_config(cfg))
    monkeypatch.undo()
    (t,) = studies(cfg)["V"].get_trials()
    assert t.state == TrialState.RUNNING and "fail_kind" not in t.user_attrs
