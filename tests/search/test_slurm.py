"""Sweeps through real `sbatch`: the `slurm` launcher preset on a throwaway SLURM cluster.

The cluster (tests/search/slurm.py: slurmctld, slurmd, slurmdbd with MariaDB, all on
localhost) runs the preset `hydra/launcher=slurm` as a user would, each worker a task of
one job array, on a PostgreSQL store (the throwaway server of tests/search/pg.py). Faults
as a cluster deals them: a worker job cancelled mid-trial (scancel), a job stopped by its
time limit, the node drained while jobs run then resumed. Each ends with exactly
trials_per_variant finished trials per study once the same command has run again, the
trials the fault cut are failed with their kind, and the exit status is the documented
one (docs/sweeps.md "A killed worker": 0 complete, 1 unfinished with no worker left).
Every wait has a timeout that names what it waited for.

Run with `pytest -m slurm` (`make test-slurm`; CI runs it). The sweeps are tiny: the toy
task, two cells, a few trials of a few epochs, trials made long with a sleep per batch.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from odyssey.store.storage import open_storage
from tests.search.helpers import TOY_CONFIG, running_trials
from tests.search.pg import PASSWORD
from tests.search.slurm import PARTITION, Cluster, wait_for

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=8"]


def _args(tmp_path: Path, workers: int, *extra: str, sleep: float = 0.05) -> list[str]:
    """The multirun command line (after `odyssey-sweep`): the slurm preset, one array task
    per worker, the toy task on the PostgreSQL store of $ODYSSEY_STORAGE_URL."""
    cfg = tmp_path / "cfg" / "task"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "toy.yaml").write_text(TOY_CONFIG.format(sleep=sleep))
    return ["-m", "hydra/launcher=slurm", f"hydra.launcher.partition={PARTITION}",
            f"worker=range(0,{workers})", f"hydra.searchpath=[file://{tmp_path / 'cfg'}]",
            "task=toy", f"results_dir={tmp_path / 'results'}", "sweep_name=t",
            "variants=[V,NP]", "trials_per_variant=2", "train.max_epochs=2",
            "train.patience=8", "train.batch_size=4", "storage=postgresql",
            "storage.heartbeat_interval=1", "storage.grace_period=4", *SMALL, *extra]


class Multirun:
    """`odyssey-sweep -m ...` (the toy app) in the background, against the test cluster."""

    def __init__(self, cluster: Cluster, url: str, args: list[str]) -> None:
        env = {**cluster.env, "PYTHONPATH": str(ROOT), "PGPASSWORD": PASSWORD,
               # README's form: the URL without its password, which comes from PGPASSWORD
               "ODYSSEY_STORAGE_URL": url.replace(f":{PASSWORD}@", "@")}
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.search.toy_app", *args],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.cluster = cluster

    def wait(self, timeout: float, what: str = "the multirun to end",
             tick: Callable[[], None] | None = None) -> tuple[int, str]:
        """Its exit status and output; on timeout the multirun is killed and the test fails
        naming `what`, with the queue and the output's tail. `tick` is called every half
        second meanwhile."""
        try:
            deadline = time.monotonic() + timeout
            while tick is not None and self.proc.poll() is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(self.proc.args, timeout)
                tick()
                time.sleep(0.5)
            out, _ = self.proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; queue: "
                        f"{self.cluster.jobs()}\n{out[-4000:]}")
        self.seconds = time.monotonic() - self.started
        print(out[-3000:])  # what the user saw (pytest -s)
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _run(cluster: Cluster, url: str, args: list[str], timeout: float = 300
         ) -> tuple[int, str, float]:
    run = Multirun(cluster, url, args)
    status, out = run.wait(timeout)
    return status, out, run.seconds


def _trials(url: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = open_storage(url)
    return {s.study_name: storage.get_all_trials(s._study_id)
            for s in storage.get_all_studies()}


def _assert_exact(url: str, n: int = 2) -> list[optuna.trial.FrozenTrial]:
    """Every study holds exactly n complete trials and none running; the failed ones."""
    by_study = _trials(url)
    assert sorted(by_study) == ["t/toy/NP", "t/toy/V"]
    failed = []
    for name, trials in by_study.items():
        assert len([t for t in trials if t.state == TrialState.COMPLETE]) == n, name
        assert not [t for t in trials if t.state == TrialState.RUNNING], name
        failed += [t for t in trials if t.state == TrialState.FAIL]
    return failed


def _training(url: str, started_within: float | None = None) -> list[optuna.trial.FrozenTrial]:
    """Trials that have started training (seed recorded) and are running; with
    `started_within`, only those that started at most that many seconds ago."""
    try:
        trials = running_trials([t for trials in _trials(url).values() for t in trials])
    except Exception:  # no store or study yet
        return []
    if started_within is not None:  # Optuna stamps datetime_start with the local clock
        now = datetime.now()
        trials = [t for t in trials
                  if (now - t.datetime_start).total_seconds() <= started_within]
    return trials


def _slurm_job_of(pid: int) -> str:
    """The SLURM job id ('<array job>_<task>') a worker process runs in, from its environment."""
    env = dict(item.split(b"=", 1) for item in
               Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item)
    if b"SLURM_ARRAY_JOB_ID" in env:  # submitit submits one job alone, several as an array
        return f"{env[b'SLURM_ARRAY_JOB_ID'].decode()}_{env[b'SLURM_ARRAY_TASK_ID'].decode()}"
    return env[b"SLURM_JOB_ID"].decode()


def _states(cluster: Cluster, array_job: str) -> dict[str, str]:
    """sacct's state of each array task of `array_job` (the job allocation, not its steps)."""
    out = cluster.run("sacct", "-n", "-P", "-X", "-j", array_job, "-o", "JobID,State").stdout
    return {line.split("|")[0]: line.split("|")[1].split()[0] for line in out.splitlines()}


def _array_job(tmp_path: Path) -> str:
    """The job id of the multirun's array (submitit's folder .submitit/<id>_<task>)."""
    folders = [p.name for p in tmp_path.rglob(".submitit/*")
               if re.fullmatch(r"\d+(_\d+)?", p.name)]
    assert folders, "no submitit job folder"
    return sorted(folders)[0].split("_")[0]


def _no_secret(tmp_path: Path) -> None:
    for p in (tmp_path / "results").rglob("*"):
        assert not p.is_file() or PASSWORD.encode() not in p.read_bytes(), p


def test_a_sweep_through_sbatch_fills_every_study_exactly(slurm, pg_url, tmp_path):
    status, out, seconds = _run(slurm, pg_url, _args(tmp_path, 2))
    assert status == 0, out[-4000:]
    assert "4/4 trials finished" in out and "best_valid" in out  # the final table
    assert _assert_exact(pg_url) == []
    array = _array_job(tmp_path)
    assert _states(slurm, array) == {f"{array}_0": "COMPLETED", f"{array}_1": "COMPLETED"}
    logs = "".join(p.read_text() for p in tmp_path.rglob(".submitit/*/*_log.out"))
    assert "start V trial" in logs or "start NP trial" in logs  # trained inside the jobs
    workers = {t.user_attrs["worker"]["pid"] for trials in _trials(pg_url).values()
               for t in trials}
    assert len(workers) == 2  # both array tasks trained
    _no_secret(tmp_path)
    print(f"sweep through sbatch: {seconds:.1f} s")


@pytest.mark.parametrize("workers", [2, 1])
def test_a_worker_cancelled_mid_trial(slurm, pg_url, tmp_path, workers):
    """scancel of a worker job while it trains: with another worker the multirun ends 0
    (that worker replaces the trial); with none left it ends 1 saying to run the same
    command again, which completes the sweep. Either way, exactly 3 trials per study."""
    # ~7 s a trial (4 batches of 0.8 s per epoch, 2 epochs), and the victim taken within
    # 1.5 s of its trial's start: SIGKILL comes KillWait (2 s) after the cancel, so the
    # trial is still training then, however the checks and the signals are delayed
    args = _args(tmp_path, workers, "trials_per_variant=3", sleep=0.8)
    run = Multirun(slurm, pg_url, args)
    try:
        victim = wait_for(lambda: _training(pg_url, started_within=1.5),
                          "a worker job to start training a trial", 240, 0.2)[0]
        pid = victim.user_attrs["worker"]["pid"]
        job = _slurm_job_of(pid)
        slurm.run("scancel", job)
    except BaseException:
        run.kill()
        raise
    cancelled_at = time.time()
    status, out = run.wait(300, f"the multirun to end after scancel {job}")
    assert "failed (the other jobs go on)" in out and "UncompletedJobError" in out
    assert _states(slurm, job.split("_")[0])[job].startswith("CANCELLED")
    if workers == 2:
        assert status == 0, out[-4000:]  # the other worker finished the sweep
        assert "6/6 trials finished" in out
    else:
        assert status == 1, out[-4000:]
        assert "the sweep is unfinished" in out and "run the same command again" in out
    print(f"scancel with {workers} worker(s): multirun ended {status} after {run.seconds:.1f} s")
    before = _ids(pg_url)
    again, out2, seconds = _run(slurm, pg_url, args)
    assert again == 0, out2[-4000:]
    failed = _assert_exact(pg_url, 3)
    # submitit ignores SLURM's SIGTERM, so the worker trains on until SIGKILL (KillWait
    # later): the trial cut is whichever it was training then, failed as stale
    cut = [t for t in failed if t.user_attrs["worker"]["pid"] == pid]
    assert len(cut) == 1 and cut[0].user_attrs["fail_kind"] == "stale", failed
    assert f":{pid} ended while the trial was running" in cut[0].user_attrs["fail_reason"]
    if workers == 2:
        assert _ids(pg_url) == before  # the rerun found the sweep full: trained nothing
    replaced = cut[0].datetime_complete.timestamp() - cancelled_at
    print(f"scancel with {workers} worker(s): trial failed as stale {replaced:.1f} s after "
          f"the cancel; rerun {seconds:.1f} s")


def test_a_job_at_its_time_limit_is_requeued_and_its_trial_replaced(slurm, pg_url, tmp_path):
    """The preset's requeue path on real SLURM: a 1-minute limit and USR2 20 s before it
    (SLURM checks every 30 s, so it comes 10-40 s after the start, once submitit's handler
    is set); submitit checkpoints the worker (Hydra's launcher resubmits the same job) and
    requeues it with `scontrol requeue`, and the job starts again, as often as needed. The
    trial it was training is failed (interrupted) and replaced; the multirun ends 0 with
    exactly 5 trials per study.

    SLURM holds a requeued job for about two minutes (Reason=BeginTime); the test releases
    each one at once (`scontrol update jobid=... StartTime=now`) to keep the run short."""
    args = _args(tmp_path, 1, "trials_per_variant=5", "hydra.launcher.timeout_min=1",
                 "hydra.launcher.signal_delay_s=20", sleep=0.5)  # ~4 s a trial, 40 s all
    held: set[str] = set()
    released = 0

    def release() -> None:
        nonlocal released
        for job in slurm.jobs():
            if job["state"] == "PENDING" and job["reason"] == "BeginTime":
                held.add(job["id"])
                slurm.run("scontrol", "update", f"jobid={job['id']}", "StartTime=now")
                released += 1

    run = Multirun(slurm, pg_url, args)
    status, out = run.wait(480, "the multirun of a job requeued at its time limit", release)
    assert status == 0, out[-4000:]
    assert "10/10 trials finished" in out
    logs = "".join(p.read_text() for p in tmp_path.rglob(".submitit/*/*_log.out"))
    assert "Caught signal SIGUSR2" in logs and "this job is timed-out" in logs
    array = _array_job(tmp_path)
    assert _states(slurm, array)[array] == "COMPLETED"
    history = slurm.run("sacct", "-n", "-P", "-X", "-D", "-j", array, "-o",
                        "JobID,State").stdout.split()  # every run of the job: -D
    requeued = sum("REQUEUED" in line for line in history)
    assert requeued >= 1 and released >= requeued and len(held) == 1, history
    failed = _assert_exact(pg_url, 5)
    # each requeue cuts the trial in training (unless the signal fell between two trials)
    assert 1 <= len(failed) <= requeued, [t.user_attrs.get("fail_reason") for t in failed]
    assert all(t.user_attrs["fail_kind"] == "interrupted" for t in failed)
    assert all("SystemExit" in t.user_attrs["fail_reason"] for t in failed)
    print(f"time limit: {requeued} requeue(s), {len(failed)} trial(s) interrupted, multirun "
          f"{run.seconds:.1f} s")
    _rerun_trains_nothing(slurm, pg_url, args, "time limit")


def test_a_node_drained_while_jobs_run_then_resumed(slurm, pg_url, tmp_path):
    """Three workers on a node with two CPUs: two run, one waits. The node is drained while
    the two train: they finish the sweep, the third stays pending (the multirun waits for
    it); once the node is resumed it starts, finds the sweep full, and the multirun ends 0."""
    cpus = int(slurm.run("sinfo", "-h", "-n", "localhost", "-o", "%c").stdout)
    workers = cpus + 1
    args = _args(tmp_path, workers, "trials_per_variant=3", sleep=0.3)
    run = Multirun(slurm, pg_url, args)
    try:
        wait_for(lambda: len(_training(pg_url)) >= 2 and [j["state"] for j in slurm.jobs()]
                 .count("PENDING") == 1, f"{cpus} workers training and one job pending",
                 240, 0.3)
        slurm.run("scontrol", "update", "nodename=localhost", "state=drain",
                  "reason=odyssey test")
        assert slurm.node_state() in ("draining", "drained")
        wait_for(lambda: _full(pg_url, 3), "the running workers to fill the sweep", 300, 0.5)
        wait_for(lambda: slurm.node_state() == "drained", "the node to be drained (its "
                 "running jobs ended)", 120, 0.5)
        pending = slurm.jobs()
        assert [j["state"] for j in pending] == ["PENDING"], pending
        assert run.proc.poll() is None  # the multirun waits for its pending worker
        slurm.run("scontrol", "update", "nodename=localhost", "state=resume")
    except BaseException:
        run.kill()
        slurm.run("scontrol", "update", "nodename=localhost", "state=resume", check=False)
        raise
    status, out = run.wait(300, "the multirun to end after the node was resumed")
    assert status == 0, out[-4000:]
    assert "6/6 trials finished" in out
    assert _assert_exact(pg_url, 3) == []
    array = _array_job(tmp_path)
    assert set(_states(slurm, array).values()) == {"COMPLETED"}
    print(f"drain then resume: multirun {run.seconds:.1f} s")
    _rerun_trains_nothing(slurm, pg_url, args, "drain and resume")


def _full(url: str, n: int) -> bool:
    """Every study of the sweep holds n complete trials."""
    try:
        by_study = _trials(url)
    except Exception:
        return False
    return len(by_study) == 2 and all(
        len([t for t in trials if t.state == TrialState.COMPLETE]) >= n
        for trials in by_study.values())


def _ids(url: str) -> set[int]:
    return {t._trial_id for trials in _trials(url).values() for t in trials}


def _rerun_trains_nothing(cluster: Cluster, url: str, args: list[str], after: str) -> None:
    """The same command again on the full sweep: exit 0, not one new trial."""
    before = _ids(url)
    status, out, seconds = _run(cluster, url, args)
    assert status == 0, out[-4000:]
    assert _ids(url) == before
    print(f"rerun after {after}: {seconds:.1f} s")
