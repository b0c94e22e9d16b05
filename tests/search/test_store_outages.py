"""Store outages against a real throwaway PostgreSQL server (conftest.py, pg.py).

A two-worker toy multirun (tests.search.toy_app, hydra/launcher=processes) meets each fault
once it has finished a trial: restart -m fast, stop and start, stop -m immediate, backends
terminated, the server frozen (SIGSTOP/SIGCONT); each outage shorter than the retry bound,
so the same run ends with exit 0 and exact counts. Then: a worker that cannot deliver past
the bound (exit 4, its result delivered by the next run, not trained again), roles without
privileges (exit 2 at once, one line), and no server at all (non-zero, no traceback). No
password in any output or file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from odyssey.search import app
from odyssey.search.delivery import pending_dir
from odyssey.search.resilient import EXIT_STORE
from odyssey.search.spec import SweepSpec
from odyssey.search.sweep import run_worker
from odyssey.search.trial import counts_toward_n
from odyssey.store.storage import open_storage
from tests.search.helpers import toy_config
from tests.search.pg import PASSWORD, USER, Server
from tests.search.test_launchers import ROOT, SMALL, _toy_args

N = 4  # trials per variant
PG = ["storage=postgresql", "storage.heartbeat_interval=1", "storage.grace_period=15",
      "storage.retry_seconds=60", f"trials_per_variant={N}",
      "train.impl=reference", "train.fused=false"]  # (no C++ build in each worker)


def _trials(url: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = open_storage(url)
    return {s.study_name.rsplit("/", 1)[-1]: storage.get_all_trials(s._study_id)
            for s in storage.get_all_studies()}


def _complete(url: str) -> int:
    try:
        return sum(t.state == TrialState.COMPLETE for ts in _trials(url).values() for t in ts)
    except Exception:  # the tables or studies do not exist yet
        return 0


def _assert_exact(url: str, n: int = N) -> None:
    trials = _trials(url)
    assert set(trials) == {"V", "NP"}
    for variant, ts in trials.items():
        assert sum(counts_toward_n(t) for t in ts) == n, variant
        assert not [t for t in ts if t.state == TrialState.RUNNING], variant


def _no_password(out: str, tmp_path: Path) -> None:
    assert PASSWORD not in out
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert PASSWORD.encode() not in p.read_bytes(), p


def _multirun_with(fault, tmp_path: Path, url: str, *extra: str) -> tuple[int, str, float]:
    """The two-worker multirun; `fault()` once a trial is complete. (exit, output, wall s)."""
    args = _toy_args(tmp_path, "processes", 2, *PG, *extra, sleep=0.05)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tests.search.toy_app", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "ODYSSEY_STORAGE_URL": url})
    deadline = time.monotonic() + 300
    while proc.poll() is None and _complete(url) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before the fault:\n" + proc.stdout.read()
    fault_at = time.monotonic() - started
    fault()
    out, _ = proc.communicate(timeout=600)
    wall = time.monotonic() - started
    print(out[-6000:])
    print(f"fault at {fault_at:.1f} s, exit {proc.returncode} after {wall:.1f} s, load "
          f"{os.getloadavg()[0]:.2f}")
    return proc.returncode, out, wall


def _freeze(server: Server, seconds: float) -> None:
    pids = server.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        _thaw(pids)


def _thaw(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def _down(server: Server, mode: str, seconds: float) -> None:
    server.halt(mode)
    time.sleep(seconds)
    server.start()


def _terminate(server: Server, db: str) -> None:
    server.psql(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND pid <> pg_backend_pid()")


FAULTS = {
    "restart": lambda server, db: server.restart("fast"),
    "stop-start": lambda server, db: _down(server, "fast", 6),
    "immediate": lambda server, db: _down(server, "immediate", 3),
    "terminate": _terminate,
    "freeze": lambda server, db: _freeze(server, 10),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_sweep_rides_out_a_store_outage_in_the_same_run(pg_server, pg_url, tmp_path, fault):
    db = pg_url.rsplit("/", 1)[1]
    # the frozen server: a store call unanswered for 2 s (+2) is an outage line, not a hang
    extra = ["storage.timeout_seconds=2"] if fault == "freeze" else []
    rc, out, wall = _multirun_with(lambda: FAULTS[fault](pg_server, db), tmp_path, pg_url,
                                   *extra)
    assert rc == 0, out[-4000:]
    _assert_exact(pg_url)
    assert "Traceback" not in out
    assert f"{2 * N}/{2 * N} trials finished" in out
    assert "failed (the other jobs go on)" not in out  # no worker lost
    if fault != "terminate":  # (an idle connection terminated is replaced silently)
        assert "unreachable since" in out and "is back after" in out
    _no_password(out, tmp_path)


@pytest.mark.slow
def test_a_result_that_cannot_be_delivered_is_kept_and_delivered_by_the_next_run(
        pg_server, pg_url, tmp_path, monkeypatch):
    """The store is down for longer than the bound while a trial trains: the worker finishes
    the trial, keeps its result on disk, exits 4; the next run delivers it without training
    it again."""
    monkeypatch.setenv("ODYSSEY_STORAGE_URL", pg_url)
    overrides = [*SMALL, *PG, "storage.retry_seconds=2", "variants=[V,NP]",
                 "train.max_epochs=30", "train.patience=30"]
    from tests.search.pg import run_app_worker

    p = mp.get_context("spawn").Process(target=run_app_worker,
                                        args=(str(tmp_path), overrides, 0, 0.03))
    p.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        trials = _trials(pg_url) if _complete(pg_url) >= 0 else {}
        if any(t.state == TrialState.RUNNING and "seed" in t.user_attrs
               for ts in trials.values() for t in ts):
            break
        time.sleep(0.2)
    pg_server.halt("fast")
    try:
        p.join(300)
        assert p.exitcode == EXIT_STORE
    finally:
        pg_server.start()
    cfg = toy_config(tmp_path, *overrides, sleep=0.03)
    spec = SweepSpec.from_config(cfg)
    [kept] = pending_dir(spec.sweep_dir).glob("*.json")
    before = _trials(pg_url)
    finished_before = sum(counts_toward_n(t) and t.state != TrialState.RUNNING
                          for ts in before.values() for t in ts)
    running = [t for ts in before.values() for t in ts if t.state == TrialState.RUNNING]
    assert len(running) == 1
    report = run_worker(spec)  # the next run, on this machine
    assert not kept.exists()
    after = {t.number: t for t in _trials(pg_url)[kept.name.split("#")[0].rsplit("_", 1)[-1]]}
    delivered = after[running[0].number]
    assert delivered.state == TrialState.COMPLETE and "curve" in delivered.user_attrs
    assert delivered.params == running[0].params
    assert report.trials_run == 2 * N - finished_before - 1  # that trial not trained again
    _assert_exact(pg_url)


def _role(server: Server, db: str, name: str, grants: str) -> str:
    server.psql(db, f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'; {grants}")
    return server.url(db).replace(f"{USER}:", f"{name}:")


def test_roles_without_privileges_stop_before_any_trial_with_one_line(pg_server, pg_url,
                                                                      tmp_path, monkeypatch,
                                                                      capsys):
    db = pg_url.rsplit("/", 1)[1]
    reader = _role(pg_server, db, f"ro_{db}", f"GRANT CONNECT ON DATABASE {db} TO ro_{db}")
    monkeypatch.setenv("ODYSSEY_STORAGE_URL", reader)
    cfg = toy_config(tmp_path, *SMALL, *PG)
    with pytest.raises(SystemExit) as e:  # read-only on an empty database
        app.sweep(cfg)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"role 'ro_{db}' may not create Optuna's tables in database '{db}'" in err
    assert "permission denied for schema public" in err
    open_storage(pg_url)  # the owner creates the tables
    writer = _role(pg_server, db, f"w_{db}",
                   f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO w_{db}; "
                   f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO w_{db}; "
                   f"REVOKE INSERT ON trial_user_attributes FROM w_{db}")
    monkeypatch.setenv("ODYSSEY_STORAGE_URL", writer)
    with pytest.raises(SystemExit) as e:
        app.sweep(toy_config(tmp_path, *SMALL, *PG))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert (f"role 'w_{db}' lacks INSERT on table trial_user_attributes in database '{db}'"
            in err)
    assert "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public" in err
    assert not _trials(pg_url)  # no study, no trial
    _no_password(err, tmp_path)


def test_no_server_at_the_url_exits_non_zero_with_one_line_per_worker(pg_server, tmp_path):
    url = pg_server.url("nowhere").replace(f":{pg_server.port}/", ":9/")
    args = _toy_args(tmp_path, "processes", 2, *PG)
    r = subprocess.run([sys.executable, "-m", "tests.search.toy_app", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "ODYSSEY_STORAGE_URL": url})
    out = r.stdout + r.stderr
    assert r.returncode == EXIT_STORE, out[-3000:]
    assert "Traceback" not in out
    assert out.count("odyssey-sweep: error: cannot open the store") == 2  # one per worker
    assert "final table written" not in out
    assert f"exit status {EXIT_STORE}: cannot read the final state" in out
    _no_password(out, tmp_path)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
@pytest.mark.parametrize("fault", ["terminate", "freeze"])
def test_a_worker_store_call_rides_out_a_terminated_backend_and_a_frozen_server(
        pg_server, pg_url, fault, caplog):
    """The store calls themselves (fast): a terminated backend (57P01) and a frozen server
    (no answer within the statement timeout + its margin) are outage lines, then back."""
    from odyssey.search.resilient import open_worker_storage

    storage = open_worker_storage(pg_url, retry_seconds=60, timeout_seconds=1,
                                  heartbeat_interval=1, grace_period=5)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    if fault == "terminate":
        _terminate(pg_server, pg_url.rsplit("/", 1)[1])
        trial.set_user_attr("after", 1)
    else:  # frozen before the call (not by a thread that may start late), thawed after 8 s
        pids = pg_server.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        thaw = __import__("threading").Timer(8, _thaw, (pids,))
        thaw.start()
        try:
            started = time.monotonic()
            trial.set_user_attr("after", 1)  # blocks no longer than the server stays frozen
            assert time.monotonic() - started < 30
        finally:
            thaw.join()
    study.tell(trial, 1.0)
    assert study.trials[0].user_attrs["after"] == 1
    text = caplog.text
    if fault == "freeze":
        assert "unreachable since" in text and "no answer within 2 s" in text
    assert ("unreachable since" in text) == ("is back after" in text)
    assert PASSWORD not in text
