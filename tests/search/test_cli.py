"""`odyssey-sweep` as a user runs it: config errors, and a two-worker multirun (slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from odyssey.store.storage import open_storage

SWEEP = str(Path(sys.executable).with_name("odyssey-sweep"))
DATA = str(Path(sys.executable).with_name("odyssey-data"))


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([SWEEP, *args], capture_output=True, text=True, timeout=timeout)


def test_config_errors_exit_2_with_the_key_before_training(tmp_path):
    # every bad value is tested in-process (test_sweep.py); this is the user's view of one
    message = "variants: unknown variant 'BOGUS'"
    r = run("variants=[V,BOGUS]", f"results_dir={tmp_path}", "sweep_name=bad")
    assert r.returncode == 2, r.stderr
    assert f"odyssey-sweep: config error: {message}" in r.stderr
    assert not (tmp_path / "bad" / "optuna.journal").exists()


@pytest.mark.slow
def test_two_worker_multirun_on_music_then_resume_and_report(tmp_path):
    subprocess.run([DATA, "build", "music"], check=True, timeout=1800)
    args = ["-m", "hydra/launcher=processes", "hydra.launcher.n_jobs=2", "worker=range(0,2)",
            "variants=[V,NP]", "trials_per_variant=2", "train.max_epochs=1",
            "search.params.hidden_size.high=40", f"results_dir={tmp_path}", "sweep_name=e2e"]
    r = run(*args, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "4/4 trials done" in out and "best_valid" in out
    folder = tmp_path / "e2e"
    assert (folder / "config.yaml").exists() and (folder / "summary.csv").exists()
    assert list((folder / "logs").glob("*/worker1/odyssey-sweep.log"))
    storage = open_storage(f"journal://{folder / 'optuna.journal'}")
    for v in ("V", "NP"):
        study = optuna.load_study(study_name=f"e2e/music/{v}", storage=storage)
        assert study.user_attrs["metric"] == "nll"
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    again = run(*args, timeout=600)  # the same command on a full sweep trains nothing
    assert again.returncode == 0 and "start V trial" not in again.stdout + again.stderr
    report = run("report_only=true", f"results_dir={tmp_path}", "sweep_name=e2e",
                 "variants=[V,NP]", "trials_per_variant=2", "train.max_epochs=1",
                 "search.params.hidden_size.high=40")
    assert report.returncode == 0 and "NP" in report.stdout
