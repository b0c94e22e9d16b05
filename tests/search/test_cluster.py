"""Many workers on a shared store: start-up races, dead workers, secrets, damaged journals.

The PostgreSQL tests run against a real server the tests start themselves (conftest.py).
"""

from __future__ import annotations

import multiprocessing as mp
import time

import optuna
import pytest
from optuna.trial import TrialState

from odyssey.search.liveness import Heartbeat, WorkerId
from odyssey.search.spec import SweepSpec
from odyssey.search.sweep import fail_stale_trials, final_report, run_worker
from odyssey.store.storage import (
    JournalDamagedError,
    StorageURLError,
    mask_url,
    open_storage,
    unmask_url,
)
from odyssey.store.sweeps import storage_url
from tests.search.helpers import backdate, toy_config
from tests.search.pg import PASSWORD, open_and_create

SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=8"]


def test_mask_url_hides_only_the_password():
    assert mask_url("postgresql+psycopg2://odyssey:pw@db.lab:5432/sweeps") == \
        "postgresql+psycopg2://odyssey:***@db.lab:5432/sweeps"
    for url in ("postgresql://odyssey@db/sweeps", "sqlite:////tmp/a.db", "journal:///x.journal"):
        assert mask_url(url) == url


def test_a_masked_url_takes_its_password_from_the_environment_or_from_libpq(monkeypatch):
    masked = "postgresql+psycopg2://odyssey:***@db:5432/sweeps"
    monkeypatch.setenv("ODYSSEY_STORAGE_URL", "postgresql+psycopg2://odyssey:pw@db:5432/sweeps")
    assert unmask_url(masked) == "postgresql+psycopg2://odyssey:pw@db:5432/sweeps"
    # another database: no password, so PGPASSWORD or ~/.pgpass supply it
    monkeypatch.setenv("ODYSSEY_STORAGE_URL", "postgresql+psycopg2://odyssey:pw@db:5432/other")
    assert unmask_url(masked) == "postgresql+psycopg2://odyssey@db:5432/sweeps"


@pytest.mark.parametrize("how", ["PGPASSWORD", "pgpass"])
def test_a_url_without_its_password_connects_with_libpqs_own_mechanisms(pg_url, tmp_path,
                                                                        monkeypatch, how):
    """docs/clusters.md "Secrets": the password may come from $PGPASSWORD or ~/.pgpass
    instead of the URL."""
    monkeypatch.delenv("ODYSSEY_STORAGE_URL", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))  # not the user's own ~/.pgpass
    masked = mask_url(pg_url)
    with pytest.raises(StorageURLError, match="no password supplied") as e:  # refused
        open_storage(masked)
    assert "\n" not in str(e.value) and "odyssey@127.0.0.1" in str(e.value)
    if how == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", PASSWORD)
    else:  # libpq reads $PGPASSFILE (default ~/.pgpass), which must be private
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"127.0.0.1:*:*:odyssey:{PASSWORD}\n")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
    for url in (masked, masked.replace(":***", "")):  # masked, or given without one
        optuna.create_study(storage=open_storage(url), study_name="s", load_if_exists=True)


def test_a_missing_driver_is_one_line_naming_the_extra():
    with pytest.raises(StorageURLError, match=r"\.\[cluster\]") as e:
        open_storage("postgresql+nosuchdriver://u:secret@localhost/db")
    assert "\n" not in str(e.value) and "secret" not in str(e.value)


def _journal_with_trials(tmp_path, n=3):
    path = tmp_path / "s.journal"
    study = optuna.create_study(storage=open_storage(f"journal://{path}"), study_name="s")
    for _ in range(n):
        study.tell(study.ask(), 1.0)
    return path


def test_a_torn_last_journal_line_is_dropped_keeping_the_trials_before(tmp_path, caplog):
    path = _journal_with_trials(tmp_path)
    with open(path, "a") as f:
        f.write('{"op_code": 5, "worker_id": "x", "trial_id"')  # killed mid-write
    study = optuna.load_study(study_name="s", storage=open_storage(f"journal://{path}"))
    assert len(study.get_trials()) == 3
    assert "torn last line" in caplog.text
    study.tell(study.ask(), 2.0)  # and the journal goes on
    study = optuna.load_study(study_name="s", storage=open_storage(f"journal://{path}"))
    assert len(study.get_trials()) == 4


def test_a_damaged_journal_line_names_the_file_the_line_and_what_to_do(tmp_path):
    path = _journal_with_trials(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "garbage\n"
    path.write_text("".join(lines))
    with pytest.raises(JournalDamagedError, match=rf"{path} is damaged at line 3 .*sed -i"):
        open_storage(f"journal://{path}")


def _race(url: str, workers: int = 4) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=open_and_create, args=(url, f"s{i % 2}"))
             for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_four_workers_start_at_once_on_an_empty_file_store(tmp_path, kind):
    for attempt in range(3):
        url = (f"sqlite:///{tmp_path}/{attempt}.db" if kind == "sqlite"
               else f"journal://{tmp_path}/{attempt}.journal")
        _race(url)
        assert {s.study_name for s in optuna.get_all_study_summaries(open_storage(url))} \
            == {"s0", "s1"}


@pytest.mark.slow
def test_four_workers_start_at_once_on_an_empty_postgresql_database(pg_server):
    for attempt in range(3):
        url = pg_server.create_db(f"race_{attempt}")
        _race(url)
        assert {s.study_name for s in optuna.get_all_study_summaries(open_storage(url))} \
            == {"s0", "s1"}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
def test_a_remote_worker_gone_silent_is_failed_stale_with_a_reason(pg_url, caplog):
    """A remote worker's trial whose heartbeat went silent, and a trial that never recorded
    its worker, both older than the grace period. Their ages are moved in the store
    (helpers.backdate), not waited for: each check is seconds or an hour from the 60 s grace
    period, whatever the machine's load."""
    storage = open_storage(pg_url, heartbeat_interval=1, grace_period=60)
    study = optuna.create_study(storage=storage, study_name="s")
    me = WorkerId.current()
    remote = WorkerId("other-host", None, 4242, None, 1)
    silent, unowned = study.ask(), study.ask()
    with Heartbeat(storage, silent._trial_id):
        silent.set_user_attr("worker", remote.as_dict())  # then its machine dies
    assert fail_stale_trials({"V": study}, me, grace_period=60) == 0  # not yet
    backdate(storage, [silent._trial_id, unowned._trial_id], 3600)
    # the one that died before its first heartbeat too (no worker recorded)
    assert fail_stale_trials({"V": study}, me, grace_period=60) == 2
    by_number = {t.number: t for t in study.get_trials()}
    for t in (silent, unowned):
        ft = by_number[t.number]
        assert ft.state == TrialState.FAIL and ft.user_attrs["fail_kind"] == "stale"
    assert "other-host:4242 sent no heartbeat" in by_number[silent.number].user_attrs[
        "fail_reason"]
    assert "without recording a worker" in by_number[unowned.number].user_attrs["fail_reason"]
    assert "no heartbeat" in caplog.text


def test_a_postgresql_sweep_writes_and_stores_no_password(pg_url, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.setenv("ODYSSEY_STORAGE_URL", pg_url)
    cfg = toy_config(tmp_path, *SMALL, "storage=postgresql", "storage.heartbeat_interval=1",
                     "storage.grace_period=3", "trials_per_variant=2")
    spec = SweepSpec.from_config(cfg)
    assert run_worker(spec).complete == 4
    print(final_report(spec))
    from odyssey.analysis import analyze

    recorded = storage_url("t", tmp_path / "results")
    assert recorded == mask_url(pg_url) and PASSWORD not in recorded
    analyze(["t"], tmp_path / "results")  # opens the masked URL: password from the env
    written = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert any(p.name == "report.md" for p in written)
    for p in written:
        assert PASSWORD.encode() not in p.read_bytes(), p
    storage = open_storage(pg_url)
    for s in storage.get_all_studies():
        for t in storage.get_all_trials(s._study_id):
            assert PASSWORD not in repr(t.user_attrs)
        assert PASSWORD not in repr(s.user_attrs)
    assert PASSWORD not in capsys.readouterr().out


def test_the_slurm_preset_sizes_jobs_for_paper_length_workers(tmp_path):
    from hydra import compose, initialize_config_dir

    from odyssey.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "threads=3"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    # Hydra's SLURM launcher with the keep-going rule (hydra_plugins/odyssey_launcher)
    assert launcher._target_ == "hydra_plugins.odyssey_launcher.keep_going_submitit.SlurmLauncher"
    assert launcher.cpus_per_task == 3
    assert launcher.timeout_min >= 1440 and launcher.max_num_timeout >= 1
    assert launcher.signal_delay_s > 0 and launcher.mem_gb > 0


@pytest.mark.slow
def test_a_killed_remote_worker_is_replaced_after_the_grace_period(pg_url, tmp_path,
                                                                   monkeypatch, caplog):

    from odyssey.analysis import analyze
    from odyssey.search.trial import counts_toward_n
    from tests.search.helpers import kill_when, running_trials, studies
    from tests.search.pg import run_remote_worker

    monkeypatch.setenv("ODYSSEY_STORAGE_URL", pg_url)
    overrides = [*SMALL, "variants=[V]", "trials_per_variant=3", "train.max_epochs=30",
                 "train.patience=30", "storage=postgresql", "storage.heartbeat_interval=1",
                 "storage.grace_period=3"]
    cfg = toy_config(tmp_path, *overrides, sleep=0.02)
    p = mp.get_context("spawn").Process(target=run_remote_worker,
                                        args=(str(tmp_path), overrides, 1, 0.02))
    p.start()
    kill_when(p, cfg, running_trials, "had a running trial")
    killed = {t.number for t in studies(cfg)["V"].get_trials(states=(TrialState.RUNNING,))}
    assert killed
    killed_at = time.time()
    report = run_worker(SweepSpec.from_config(cfg))  # a worker on this host finishes it
    assert report.stale_replaced == len(killed)
    trials = studies(cfg)["V"].get_trials()
    replaced_after = min(t.datetime_complete.timestamp() for t in trials
                         if t.number in killed) - killed_at
    print(f"remote trial replaced {replaced_after:.1f} s after the kill (grace 3 s)")
    assert replaced_after >= 1.5  # not before its heartbeat went silent
    assert sum(counts_toward_n(t) for t in trials) == 3
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3
    for t in trials:
        if t.number in killed:
            assert t.user_attrs["fail_kind"] == "stale"
            assert "remote-host" in t.user_attrs["fail_reason"]
    assert "remote-host" in caplog.text
    report_md = analyze(["t"], tmp_path / "results")
    assert PASSWORD not in report_md.read_text()


def test_a_password_on_the_command_line_is_masked_in_hydras_saved_files(tmp_path):
    """Hydra saves the command line and the composed config under logs/.../.hydra/; a URL
    password given there is masked as soon as the worker starts."""
    import subprocess
    import sys

    secret = "Cmd-l1ne-secret"
    cmd = [sys.executable, "-m", "odyssey.search.app", f"results_dir={tmp_path}",
           "report_only=true", f"+note=postgresql+psycopg2://odyssey:{secret}@dbhost/db"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    saved = list(tmp_path.rglob(".hydra/*.yaml"))
    assert saved, "Hydra saved no files"
    for path in saved:
        assert secret not in path.read_text(), path
    assert "odyssey:***@dbhost" in (saved[0].parent / "overrides.yaml").read_text()
