"""Store outages without a server: which errors are retried, the bound, the lines logged,
a retried tell that had been committed, and results kept on disk until stored."""

from __future__ import annotations

import json
import logging

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError, ProgrammingError

from odyssey.search import resilient
from odyssey.search.delivery import deliver_pending, keep_until_stored, result_record
from odyssey.search.resilient import ResilientStorage, StoreUnavailableError, transient_reason
from odyssey.store.storage import open_storage


class PgError(Exception):
    """A driver error with a SQLSTATE, as psycopg2 raises them."""

    def __init__(self, message: str, pgcode: str | None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


def _op(message: str, pgcode: str | None = None) -> OperationalError:
    return OperationalError("SELECT 1", {}, PgError(message, pgcode))


def _wrapped(e: Exception) -> Exception:
    """As Optuna raises it: StorageInternalError from the SQLAlchemy error."""
    try:
        raise optuna.exceptions.StorageInternalError("An exception is raised during the "
                                                     "commit ... exceeding max length") from e
    except optuna.exceptions.StorageInternalError as wrapped:
        return wrapped


@pytest.mark.parametrize("error, transient", [
    (_op("the database system is shutting down"), True),  # no SQLSTATE from libpq
    (_op("connection to server failed: Connection refused"), True),
    (_op("terminating connection due to administrator command", "57P01"), True),
    (_op("could not serialize access", "40001"), True),
    (_op("canceling statement due to statement timeout", "57014"), True),
    (_op("server closed the connection unexpectedly", "08006"), True),
    (ProgrammingError("INSERT", {}, PgError("permission denied for table trials", "42501")),
     False),
    (ValueError("not a store error"), False),
])
def test_transient_errors_are_told_from_the_others_through_optunas_wrapping(error, transient):
    for e in (error, _wrapped(error)):
        assert (transient_reason(e) is not None) == transient


class Flaky:
    """A storage whose `get_all_trials` fails `failures` times, then answers."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures, self.calls = failures, 0
        self.error = error or _wrapped(_op("the database system is shutting down"))

    def get_all_trials(self, study_id: int) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return f"trials of {study_id}"


def test_an_outage_is_ridden_out_with_one_line_when_it_starts_and_one_when_it_ends(
        monkeypatch, caplog):
    monkeypatch.setattr(resilient, "FIRST_DELAY_S", 0.01)
    inner = Flaky(3)
    storage = ResilientStorage(inner, 5, "postgresql://u:***@h/db")
    with caplog.at_level(logging.WARNING, logger="odyssey.store"):
        assert storage.get_all_trials(7) == "trials of 7"
    assert inner.calls == 4
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("store postgresql://u:***@h/db unreachable since ")
    assert "the database system is shutting down" in lines[0]
    assert "retrying for up to 5 s" in lines[0]
    assert lines[1].startswith("store postgresql://u:***@h/db is back after ")


def test_past_the_bound_a_call_raises_one_line_and_a_permanent_error_at_once(monkeypatch):
    monkeypatch.setattr(resilient, "FIRST_DELAY_S", 0.05)
    storage = ResilientStorage(Flaky(10**6), 0.3, "pg")
    with pytest.raises(StoreUnavailableError, match="longer than storage.retry_seconds") as e:
        storage.get_all_trials(1)
    assert "\n" not in str(e.value)
    denied = Flaky(1, ProgrammingError("x", {}, PgError("permission denied", "42501")))
    with pytest.raises(ProgrammingError):
        ResilientStorage(denied, 60, "pg").get_all_trials(1)
    assert denied.calls == 1


def test_a_retried_tell_whose_first_try_was_committed_is_not_an_error(tmp_path, monkeypatch):
    """The answer to a commit is lost: the retry finds the trial finished as asked."""
    monkeypatch.setattr(resilient, "FIRST_DELAY_S", 0.01)
    inner = open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=inner, study_name="s")
    trial = study.ask()
    real = inner.set_trial_state_values
    lost = []

    def commit_then_lose_the_answer(*args, **kwargs):
        if not lost:
            lost.append(real(*args, **kwargs))
            raise _wrapped(_op("server closed the connection unexpectedly"))
        return real(*args, **kwargs)

    monkeypatch.setattr(inner, "set_trial_state_values", commit_then_lose_the_answer)
    storage = ResilientStorage(inner, 5, "db")
    assert storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [1.5]) is True
    assert inner.get_trial(trial._trial_id).value == 1.5
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # a real second tell
        storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [2.0])


def test_heartbeats_of_others_are_not_judged_right_after_an_outage(monkeypatch):
    monkeypatch.setattr(resilient, "FIRST_DELAY_S", 0.01)

    class Beating(Flaky):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            return [1, 2]

    storage = ResilientStorage(Beating(1), 5, "db", grace_period=60)
    assert storage._get_stale_trial_ids(0) == [1, 2]
    storage.get_all_trials(0)  # an outage, then back
    assert storage._get_stale_trial_ids(0) == []  # a grace period for the others to beat


def test_a_result_is_on_disk_until_the_store_has_it_and_the_next_run_delivers_it(tmp_path):
    storage = open_storage(f"journal://{tmp_path}/s.journal")
    study = optuna.create_study(storage=storage, study_name="sweep/toy/V")
    trial = study.ask()
    record = result_record(study.study_name, trial.number,
                           [("valid_metric", 0.25), ("curve", [{"epoch": 1}])], 0.25)
    pending = tmp_path / "pending"
    with pytest.raises(StoreUnavailableError), keep_until_stored(pending, record):
        raise StoreUnavailableError("store down")  # the send fails past the bound
    [left] = pending.glob("*.json")
    assert json.loads(left.read_text()) == record  # durable and complete
    assert deliver_pending({"V": study}, pending) == 1
    ft = study.get_trials()[0]
    assert ft.state == TrialState.COMPLETE and ft.value == 0.25
    assert ft.user_attrs["curve"] == [{"epoch": 1}]
    assert not list(pending.glob("*"))
    with keep_until_stored(pending, record):  # a send that succeeds leaves nothing
        pass
    assert not list(pending.glob("*.json"))


def test_the_retry_bound_and_the_timeout_are_checked_settings(tmp_path):
    from odyssey.search.spec import SweepConfigError, SweepSpec
    from tests.search.helpers import toy_config

    spec = SweepSpec.from_config(toy_config(tmp_path, "storage=sqlite"))
    assert (spec.retry_seconds, spec.timeout_seconds) == (300, 60)
    assert SweepSpec.from_config(toy_config(tmp_path)).retry_seconds == 300  # journal: default
    with pytest.raises(SweepConfigError, match="storage.retry_seconds must be an integer"):
        SweepSpec.from_config(toy_config(tmp_path, "storage=sqlite", "storage.retry_seconds=0"))
