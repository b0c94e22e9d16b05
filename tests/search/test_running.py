"""classify_running: every running trial of a sweep's studies, judged once, with its age."""

from __future__ import annotations

import subprocess
import time

import optuna
import pytest

from odyssey.search.liveness import WorkerId, silent_trial_ids
from odyssey.search.running import UNOWNED_GRACE_S, classify_running
from odyssey.store.storage import open_storage
from tests.search.helpers import backdate


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
def test_each_running_trial_is_judged_with_its_age_and_the_grace_period(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/r.db")  # no heartbeats: the 300 s default
    study = optuna.create_study(storage=storage, study_name="s")
    me = WorkerId.current()
    gone = subprocess.Popen(["true"])
    gone.wait()
    done = study.ask()
    study.tell(done, 1.0)  # finished: not listed
    mine, dead, young, old = (study.ask() for _ in range(4))
    mine.set_user_attr("worker", me.as_dict())
    dead.set_user_attr("worker", WorkerId(me.host, me.boot_id, gone.pid, None).as_dict())
    backdate(storage, [old._trial_id], 2 * UNOWNED_GRACE_S)
    assert silent_trial_ids(study) == set()  # a store without heartbeats: none silent
    before = time.time()
    running = {r.trial.number: r for r in classify_running({"V": study}, me)}
    assert sorted(running) == [mine.number, dead.number, young.number, old.number]
    states = {n: r.verdict.state for n, r in running.items()}
    assert states == {mine.number: "alive", dead.number: "stale", young.number: "elsewhere",
                      old.number: "stale"}
    assert all(r.unowned_grace_s == UNOWNED_GRACE_S for r in running.values())
    assert 0 <= running[young.number].age_s < 60 + time.time() - before
    assert 2 * UNOWNED_GRACE_S <= running[old.number].age_s < 2 * UNOWNED_GRACE_S + 60
    assert running[old.number].verdict.reason.startswith("stale: running for 6")
    # a store's own grace period replaces the default
    short = {r.trial.number: r for r in classify_running({"V": study}, me, grace_period=1)}
    assert all(r.unowned_grace_s == 1 for r in short.values())
    assert short[young.number].name == f"s#{young.number}"
