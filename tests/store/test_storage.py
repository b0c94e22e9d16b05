"""Store URLs and heartbeats."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

from odyssey.search.liveness import Heartbeat, WorkerId
from odyssey.search.sweep import fail_stale_trials
from odyssey.store.storage import StorageURLError, open_storage, resolve_url
from tests.search.helpers import backdate, last_heartbeat
from tests.search.slurm import wait_for


def test_journal_and_sqlite_urls(tmp_path, monkeypatch):
    journal = open_storage(f"journal://{tmp_path}/a/optuna.journal")
    assert isinstance(journal, JournalStorage)
    optuna.create_study(storage=journal, study_name="s")
    assert (tmp_path / "a" / "optuna.journal").exists()
    sqlite = open_storage(f"sqlite:///{tmp_path}/b/optuna.db", heartbeat_interval=5,
                          grace_period=10)
    assert isinstance(sqlite, RDBStorage) and sqlite.get_heartbeat_interval() == 5
    monkeypatch.chdir(tmp_path)
    assert resolve_url("journal://rel/x.journal") == f"journal://{tmp_path}/rel/x.journal"
    assert resolve_url("sqlite:///rel/x.db") == f"sqlite:///{tmp_path}/rel/x.db"
    assert resolve_url("postgresql://u:p@h/db") == "postgresql://u:p@h/db"


@pytest.mark.parametrize("url", ["", "journal://", "redis://host", "/tmp/no-scheme"])
def test_bad_urls(url):
    with pytest.raises(StorageURLError):
        open_storage(url)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
def test_the_sweep_fails_a_trial_whose_heartbeat_went_silent_and_keeps_a_beating_one(tmp_path):
    """Odyssey's fail_stale_trials (the sweep's) on an SQLite store with heartbeats, trials of
    a worker on another machine (judged by heartbeat alone): the one whose last beat is older
    than the grace period is failed stale, saying so; the one whose Heartbeat still beats runs
    on. Ages are moved in the store (helpers.backdate), not waited for: every check is an
    hour or a few seconds from the 60 s grace period, whatever the machine's load."""
    storage = open_storage(f"sqlite:///{tmp_path}/h.db", heartbeat_interval=1, grace_period=60)
    study = optuna.create_study(storage=storage, study_name="h")
    remote = WorkerId("other-host", None, 4242, None, 1)
    alive, silent = study.ask(), study.ask()
    for t in (alive, silent):
        t.set_user_attr("worker", remote.as_dict())
    with Heartbeat(storage, silent._trial_id):
        pass  # one beat, then its worker vanishes
    with Heartbeat(storage, alive._trial_id):
        assert fail_stale_trials({"V": study}, WorkerId.current()) == 0  # both beat just now
        backdate(storage, [alive._trial_id, silent._trial_id], 3600)
        aged = last_heartbeat(storage, alive._trial_id)
        # the live trial's Heartbeat thread beats again (every second)
        wait_for(lambda: last_heartbeat(storage, alive._trial_id) > aged,
                 "the Heartbeat thread to beat again", 120)
        assert fail_stale_trials({"V": study}, WorkerId.current()) == 1
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[alive.number].state == TrialState.RUNNING
    failed = by_number[silent.number]
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_kind"] == "stale"
    assert "other-host:4242 sent no heartbeat" in failed.user_attrs["fail_reason"]
