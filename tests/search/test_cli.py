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


def _gpu_this_build_lacks() -> str:
    """train.device=cuda on a CPU-only PyTorch (the case users meet); a GPU index beyond the
    machine's where CUDA is present."""
    import torch

    return "cuda:99" if torch.cuda.is_available() else "cuda"


@pytest.mark.parametrize("multirun", [False, True])
def test_a_device_this_pytorch_lacks_is_one_line_naming_train_device(tmp_path, multirun):
    device = _gpu_this_build_lacks()
    args = ["-m", "hydra/launcher=processes", "worker=range(0,2)"] if multirun else []
    r = run(*args, f"train.device={device}", f"results_dir={tmp_path}", "sweep_name=gpu")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"odyssey-sweep: config error: train.device={device}: ")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    folder = tmp_path / "gpu"  # stopped before any job, trial or store (Hydra's logs only)
    assert not (folder / "config.yaml").exists() and not (folder / "optuna.journal").exists()
    assert not list(folder.glob("logs/*/worker*"))


def test_a_missing_corpus_file_is_one_line_naming_task_path(tmp_path):
    r = run("task.source=jsb_pickle", f"task.path={tmp_path / 'nonexistent.pickle'}",
            f"results_dir={tmp_path}", "sweep_name=nofile")
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"odyssey-sweep: error: task.path: {tmp_path / 'nonexistent.pickle'}: "
                        "no such file (source jsb_pickle expects JSB_Chorales.pickle; set "
                        "path=...)\n")
    assert not (tmp_path / "nofile" / "config.yaml").exists()


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
