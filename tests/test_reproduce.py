"""`make reproduce` end to end: three quick sweeps (tiny here) and one cross-task report."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("music", "speech", "handwriting")


@pytest.mark.slow
def test_a_tiny_make_reproduce_writes_one_cross_task_report(tmp_path):
    results = tmp_path / "results"
    sweep = (f"results_dir={results} trials_per_variant=2 train.max_epochs=1 "
             "train.eval_batch_size=64 'variants=[V,NFG]'")
    tiny = {  # small corpora, each built into the test's own datasets folder
        "SWEEP_ARGS_speech": "task.utterances.train=24 task.utterances.valid=8 "
                             "task.utterances.test=8 task.speakers.train=4 "
                             "task.speakers.valid=2 task.speakers.test=2",
        "SWEEP_ARGS_handwriting": "task.hershey.writers.train=4 task.hershey.writers.valid=2 "
                                  "task.hershey.writers.test=2 task.hershey.lines_per_writer=4",
    }
    args = ["make", "--no-print-directory", "reproduce", f"SWEEP_ARGS={sweep}",
            f"ANALYZE_ARGS=results_dir={results} progress=false figure_formats=[png]",
            *(f"{k}={v}" for k, v in tiny.items())]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1500,
                       env={**os.environ, "ODYSSEY_DATASETS": str(tmp_path / "datasets")})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    for task in TASKS:
        assert f"== make reproduce: the quick study on {task}" in out
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
            str(results / f"quick-{task}" / "optuna.journal")))
        for variant in ("V", "NFG"):
            study = optuna.load_study(study_name=f"quick-{task}/{task}/{variant}",
                                      storage=storage)
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            assert len(done) == 2, (task, variant, [t.state for t in study.trials])
    report_dir = results / "quick-music+quick-speech+quick-handwriting"
    text = (report_dir / "report.md").read_text()
    assert "## Across tasks: the paper's table and Fig. 3" in text
    assert (report_dir / "figures" / "paper_fig3.png").is_file()
    header = next(line for line in text.splitlines() if line.startswith("| variant | speech"))
    assert [c.split(":")[0].strip() for c in header.strip("|").split("|")[1:]] == [
        "speech", "speech", "handwriting", "handwriting", "music", "music"]
    # every finding says how it went on each of the three tasks
    nfg = next(line for line in text.splitlines() if line.startswith("| Removing the forget"))
    assert all(task in nfg.split("|")[2] for task in TASKS), nfg
