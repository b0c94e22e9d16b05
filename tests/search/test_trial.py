"""The trial contract: a trial this worker runs is never left RUNNING when something fails,
and each failure carries its kind."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState
from sqlalchemy.exc import ProgrammingError

from odyssey.search.spec import SweepSpec
from odyssey.search.sweep import run_worker
from odyssey.search.trial import ActiveTrials, counts_toward_n, fail_trial
from odyssey.training import Hyperparameters, TrialJob
from tests.search.helpers import studies, toy_config

SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=8"]


@pytest.mark.parametrize(("store", "storage_class"), [("journal", JournalStorage),
                                                      ("sqlite", RDBStorage)])
def test_a_store_error_while_finishing_fails_the_trial_with_its_kind(tmp_path, monkeypatch,
                                                                      store, storage_class):
    """The store refuses the first COMPLETE with an error that is not an outage (a revoked
    privilege: resilient.py retries outages, not this): the worker stops with that error, and
    the trial it was finishing is closed as failed, kind "error", not left RUNNING with its
    heartbeat stopped until another worker reaps it as stale."""
    tell = storage_class.set_trial_state_values
    refused = []

    def flaky(self, trial_id, state, values=None):
        if state == TrialState.COMPLETE and not refused:
            refused.append(trial_id)
            raise ProgrammingError("UPDATE trials SET state=...", {},
                                   Exception("permission denied for table trials"))
        return tell(self, trial_id, state, values)

    monkeypatch.setattr(storage_class, "set_trial_state_values", flaky)
    cfg = toy_config(tmp_path, *SMALL, f"storage={store}", "variants=[V]",
                     "trials_per_variant=2")
    with pytest.raises(ProgrammingError, match="permission denied"):
        run_worker(SweepSpec.from_config(cfg))
    monkeypatch.undo()
    trials = studies(cfg)["V"].get_trials()
    assert refused and not [t for t in trials if t.state == TrialState.RUNNING]
    (failed,) = [t for t in trials if t._trial_id == refused[0]]
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_kind"] == "error"
    assert "ProgrammingError" in failed.user_attrs["fail_reason"]
    assert "permission denied" in failed.user_attrs["traceback"]
    assert failed.user_attrs["valid_metric"] is not None  # what was written before stays
    assert not counts_toward_n(failed)  # replaced by the next run
    assert run_worker(SweepSpec.from_config(cfg)).complete == 2  # the same command again


def _job(study: optuna.Study) -> TrialJob:
    return TrialJob("V", Hyperparameters(4, 0.1, 0.9, 0.0), 0, tag=(study, study.ask()))


def test_leaving_the_block_fails_held_trials_with_their_kind():
    study = optuna.create_study()
    with pytest.raises(KeyboardInterrupt), ActiveTrials() as active:
        held = active.start(_job(study))
        raise KeyboardInterrupt
    assert len(active) == 0
    (t,) = study.get_trials()
    assert t.state == TrialState.FAIL and t.user_attrs["fail_kind"] == "interrupted"
    assert held.tag[1].number == t.number
    with ActiveTrials() as active:  # a block left normally fails nothing it let go
        active.start(_job(study))
    assert study.get_trials()[-1].state == TrialState.RUNNING


def test_fail_kinds_are_checked_and_a_finished_trial_stays_as_it_is():
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="unknown fail kind 'oops'"):
        fail_trial(study, trial, "oops", "")
    study.tell(trial, 1.0)
    assert not fail_trial(study, study.get_trials()[0], "stale", "too late")
    assert study.get_trials()[0].state == TrialState.COMPLETE
