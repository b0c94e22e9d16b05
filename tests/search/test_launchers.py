"""Multirun launchers under faults: one worker killed, the others finish the sweep.

`hydra/launcher=processes` (hydra_plugins/odyssey_launcher) and the keep-going submitit
launchers; the exit status of a worker or multirun read from the store (app.verdict).
"""

from __future__ import annotations

import logging
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
from odyssey.search.liveness import WorkerId, _start_ticks
from odyssey.search.running import EXIT_UNFINISHED
from odyssey.search.spec import SweepSpec
from odyssey.search.sweep import open_studies, run_worker
from odyssey.store.storage import open_storage
from odyssey.tasks import load_task
from tests.search.helpers import TOY_CONFIG, studies, toy_config

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=8"]

APP = """
import os, time, hydra
from omegaconf import DictConfig

@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> None:
    if cfg.x == 1:
        os.kill(os.getpid(), 9)
    if cfg.x == 2:
        raise ValueError("job two fails")
    time.sleep(0.5)
    print(f"job {cfg.x} done in pid {os.getpid()}", flush=True)

if __name__ == "__main__":
    main()
"""


def _tiny_multirun(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "app.py").write_text(APP)
    return subprocess.run([sys.executable, "app.py", "-m", "hydra/launcher=processes",
                           "+x=0,1,2,3", "hydra.launcher.n_jobs=2", *extra],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_processes_launcher_runs_every_job_when_one_is_killed_and_one_fails(tmp_path):
    r = _tiny_multirun(tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out  # keep_going: the application's callbacks decide
    assert "job 0 done" in out and "job 3 done" in out
    pids = {line.split()[-1] for line in out.splitlines() if " done in pid " in line}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # each job its own process
    assert "job #1 (+x=1) failed (the other jobs go on): killed by SIGKILL" in out
    assert "raised ValueError: job two fails" in out


def test_processes_launcher_without_keep_going_fails_the_multirun(tmp_path):
    r = _tiny_multirun(tmp_path, "hydra.launcher.keep_going=false")
    assert r.returncode == 1
    assert "job 3 done" in r.stdout  # every job still ran
    assert "killed by SIGKILL" in r.stderr


@pytest.mark.parametrize("launcher, target", [
    ("processes", "processes_launcher.ProcessesLauncher"),
    ("submitit_local", "keep_going_submitit.LocalLauncher"),
    ("slurm", "keep_going_submitit.SlurmLauncher"),
])
@pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/submitit_local' is validated")
def test_the_documented_launchers_are_odysseys_keep_going_ones(launcher, target):
    from hydra import compose, initialize_config_dir

    from odyssey.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == f"hydra_plugins.odyssey_launcher.{target}"
    makefile = (ROOT / "Makefile").read_text()
    assert "odyssey-sweep --multirun hydra/launcher=processes " in makefile


def _hold_slot(cfg, owner: WorkerId) -> optuna.trial.Trial:
    """Fill the sweep's only slot with a running trial owned by `owner`."""
    spec = SweepSpec.from_config(cfg)
    task = load_task(spec.task_name, **spec.task_options)
    study = open_studies(spec, task, open_storage(spec.storage_url))["V"]
    trial = study.ask()
    trial.set_user_attr("worker", owner.as_dict())
    return trial


def test_a_journal_worker_facing_a_remote_running_trial_exits_3_saying_what_is_left(tmp_path,
                                                                                     capsys):
    cfg = toy_config(tmp_path, *SMALL, "variants=[V]", "trials_per_variant=1")
    trial = _hold_slot(cfg, WorkerId("remote-host", None, 4242, None, 7))
    report = run_worker(SweepSpec.from_config(cfg))
    assert report.trials_run == 0
    assert f"t/toy/V#{trial.number} on remote-host (pid 4242)" in report.unfinished
    assert "run the same command again on remote-host" in report.unfinished
    with pytest.raises(SystemExit) as e:
        app.sweep(cfg)
    assert e.value.code == EXIT_UNFINISHED
    err = capsys.readouterr().err
    assert "exit status 3: the sweep is unfinished" in err
    status, message = app.verdict(SweepSpec.from_config(cfg))  # a multirun's end says so too
    assert status == EXIT_UNFINISHED and "remote-host (pid 4242)" in message


def test_a_worker_waits_for_a_local_workers_last_trial_and_replaces_it_when_it_dies(tmp_path,
                                                                                   caplog):
    """The other worker (a live local process holding the only slot) dies only once this
    worker has said it waits for it: the waiting is exercised whatever the machine's load."""
    import threading

    cfg = toy_config(tmp_path, *SMALL, "variants=[V]", "trials_per_variant=1")
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # lives until killed
    waited = threading.Event()

    class KillOnWait(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "every slot is taken; waiting for 1 trial(s)" in record.getMessage():
                waited.set()
                other.kill()
                other.wait()

    caplog.set_level(logging.INFO, logger="odyssey.sweep")
    handler = KillOnWait()
    logging.getLogger("odyssey.sweep").addHandler(handler)
    fallback = threading.Timer(300, other.kill)  # a worker that never waits still ends
    fallback.start()
    try:
        me = WorkerId.current()
        trial = _hold_slot(cfg, WorkerId(me.host, me.boot_id, other.pid,
                                         _start_ticks(other.pid), 1))
        report = run_worker(SweepSpec.from_config(cfg))
    finally:
        logging.getLogger("odyssey.sweep").removeHandler(handler)
        fallback.cancel()
        other.kill()
        other.wait()
    assert waited.is_set(), "the worker never said it waits for the other worker's trial"
    assert report.stale_replaced == 1 and report.complete == 1 and not report.unfinished
    by_number = {t.number: t for t in studies(cfg)["V"].get_trials()}
    assert by_number[trial.number].user_attrs["fail_kind"] == "stale"
    assert f":{other.pid} ended" in by_number[trial.number].user_attrs["fail_reason"]
    assert app.verdict(SweepSpec.from_config(cfg)) == (0, "")


def test_the_verdict_of_an_unfinished_sweep_without_workers_is_1_and_says_rerun(tmp_path):
    cfg = toy_config(tmp_path, *SMALL, "variants=[V,NP]", "trials_per_variant=1")
    run_worker(SweepSpec.from_config(cfg), max_trials=1)
    status, message = app.verdict(SweepSpec.from_config(cfg))
    assert status == 1
    assert "NP: 0 of 1 trials finished" in message and "run the same command again" in message


def test_job_lines_mask_a_password_given_on_the_command_line():
    from hydra_plugins.odyssey_launcher.keep_going import job_name

    line = job_name(3, ["worker=3", "storage.url=postgresql+psycopg2://u:Pw0rd@db/x"])
    assert line == "#3 (worker=3 storage.url=postgresql+psycopg2://u:***@db/x)"


def test_the_cluster_extra_installs_the_driver_and_the_submitit_launcher():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    names = {d.split(">")[0].split("=")[0] for d in extras["cluster"]}
    assert {"psycopg2-binary", "hydra-submitit-launcher"} <= names
    assert 'EXTRAS' in (ROOT / "Makefile").read_text()


def _toy_multirun(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    args = _toy_args(tmp_path, "processes", 1, *extra)
    return subprocess.run([sys.executable, "-m", "tests.search.toy_app", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_multiruns_exit_status_is_2_for_a_config_error_and_3_for_unwatched_trials(
        tmp_path):
    bad = _toy_multirun(tmp_path, "variants=[V,BOGUS]")
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert "variants: unknown variant 'BOGUS'" in bad.stderr
    cfg = toy_config(tmp_path, *SMALL, "variants=[V,NP]", "trials_per_variant=1",
                     "train.max_epochs=8", "train.patience=8", "train.batch_size=4")
    spec = SweepSpec.from_config(cfg)
    task = load_task(spec.task_name, **spec.task_options)
    held = open_studies(spec, task, open_storage(spec.storage_url))["V"].ask()
    held.set_user_attr("worker", WorkerId("remote-host", None, 4242, None, 5).as_dict())
    r = _toy_multirun(tmp_path, "trials_per_variant=1")
    out = r.stdout + r.stderr
    assert r.returncode == EXIT_UNFINISHED, out[-3000:]
    assert "1/2 trials finished" in out  # the final table, then what is left
    assert f"t/toy/V#{held.number} on remote-host (pid 4242)" in r.stderr


# -- end to end: a multirun with one worker killed mid-trial ---------------------------------

def _toy_args(tmp_path: Path, launcher: str, workers: int, *extra: str,
              sleep: float = 0.05) -> list[str]:
    cfg = tmp_path / "cfg" / "task"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "toy.yaml").write_text(TOY_CONFIG.format(sleep=sleep))
    return ["-m", f"hydra/launcher={launcher}", f"worker=range(0,{workers})",
            f"hydra.searchpath=[file://{tmp_path / 'cfg'}]", "task=toy",
            f"results_dir={tmp_path / 'results'}", "sweep_name=t", "variants=[V,NP]",
            "trials_per_variant=3", "train.max_epochs=8", "train.patience=8",
            "train.batch_size=4", *SMALL, *extra]


def _kill_one_worker_mid_trial(tmp_path: Path, args: list[str], url: str | None = None,
                               env: dict[str, str] | None = None) -> None:
    """Run the multirun; kill -9 the first worker seen training; check the outcome."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.search.toy_app", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    url = url or f"journal://{tmp_path / 'results' / 't' / 'optuna.journal'}"
    victim = None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            storage = open_storage(url)
            running = [t for s in storage.get_all_studies()
                       for t in storage.get_all_trials(s._study_id, states=(TrialState.RUNNING,))
                       if "seed" in t.user_attrs and "worker" in t.user_attrs]
        except Exception:  # no store or study yet
            continue
        if running:
            victim = running[0]
    if victim is None:
        proc.kill()
        pytest.fail("no worker was seen training:\n" + proc.communicate()[0][-3000:])
    pid = victim.user_attrs["worker"]["pid"]
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    out, _ = proc.communicate(timeout=600)
    print(out[-5000:])  # what the user saw (pytest -s)
    assert proc.returncode == 0, out[-4000:]
    assert "6/6 trials finished" in out and "best_valid" in out  # the final table
    assert "failed (the other jobs go on)" in out
    storage = open_storage(url)
    stale = None
    for s in storage.get_all_studies():
        trials = storage.get_all_trials(s._study_id)
        assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3, s.study_name
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        for t in trials:
            if t._trial_id == victim._trial_id:
                stale = t
    assert stale is not None and stale.state == TrialState.FAIL
    assert stale.user_attrs["fail_kind"] == "stale"
    assert f":{pid} ended while the trial was running" in stale.user_attrs["fail_reason"]
    print(f"killed worker's trial replaced {stale.datetime_complete.timestamp() - killed_at:.1f}"
          " s after the kill")


@pytest.mark.slow
def test_make_run_sweeps_launcher_survives_a_worker_killed_mid_trial(tmp_path):
    _kill_one_worker_mid_trial(tmp_path, _toy_args(tmp_path, "processes", 3,
                                                   "hydra.launcher.n_jobs=3"))


@pytest.mark.slow
@pytest.mark.requires("submitit")
def test_submitit_local_survives_a_worker_killed_mid_trial(tmp_path):
    _kill_one_worker_mid_trial(tmp_path, _toy_args(tmp_path, "submitit_local", 2))


@pytest.mark.slow
def test_local_workers_on_postgresql_survive_one_killed_mid_trial(tmp_path, pg_url):
    """The form docs/clusters.md "Secrets" shows: the URL without its password in
    $ODYSSEY_STORAGE_URL, the password in PGPASSWORD."""
    from tests.search.pg import PASSWORD

    args = _toy_args(tmp_path, "processes", 3, "storage=postgresql",
                     "storage.heartbeat_interval=1", "storage.grace_period=3")
    _kill_one_worker_mid_trial(tmp_path, args, url=pg_url, env={
        "ODYSSEY_STORAGE_URL": pg_url.replace(f":{PASSWORD}@", "@"), "PGPASSWORD": PASSWORD})
    for p in (tmp_path / "results").rglob("*"):
        assert not p.is_file() or PASSWORD.encode() not in p.read_bytes(), p


@pytest.mark.slow
@pytest.mark.requires("submitit")
def test_a_timed_out_submitit_job_is_requeued_and_its_trial_replaced(tmp_path):
    """The SLURM preset's requeue path, on submitit's local executor: the job gets its
    timeout signal 30 s before its 1-minute limit, checkpoints, and is started again; the
    trial it was training is failed (interrupted) and replaced, and the sweep ends exact."""
    args = _toy_args(tmp_path, "submitit_local", 1, "hydra.launcher.timeout_min=1",
                     "variants=[V]", sleep=0.4)  # about 14 s per trial: outlasts 30 s
    r = subprocess.run([sys.executable, "-m", "tests.search.toy_app", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "3/3 trials finished" in out
    logs = "".join(p.read_text() for p in tmp_path.rglob(".submitit/*/*_log.*"))
    assert "this job is timed-out" in logs and "Requeued" in out + logs
    trials = studies(toy_config(tmp_path, *SMALL, "variants=[V]", "trials_per_variant=3")
                     )["V"].get_trials()
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3
    cut = [t for t in trials if t.state == TrialState.FAIL]
    assert cut and all(t.user_attrs["fail_kind"] == "interrupted" for t in cut)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
