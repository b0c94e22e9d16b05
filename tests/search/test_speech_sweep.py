"""A tiny `odyssey-sweep task=speech` on the embedded flite corpus beats the majority class."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from odyssey.store.storage import open_storage
from odyssey.tasks import load_task

SWEEP = str(Path(sys.executable).with_name("odyssey-sweep"))
TINY = {"utterances": {"train": 30, "valid": 10, "test": 10},
        "speakers": {"train": 5, "valid": 2, "test": 2}}


@pytest.mark.slow
@pytest.mark.requires("flite")
def test_tiny_speech_sweep_beats_the_majority_class(tmp_path, monkeypatch):
    monkeypatch.setenv("ODYSSEY_DATASETS", str(tmp_path / "datasets"))
    task = load_task("speech", source="flite", seed=0, **TINY)  # builds the tiny corpus
    counts = np.bincount(np.concatenate(task.splits["train"].targets),
                         minlength=task.output_size)
    test_targets = np.concatenate(task.splits["test"].targets)
    majority_error = float(np.mean(test_targets != counts.argmax()))

    overrides = [f"task.{group}.{split}={n}" for group, sizes in TINY.items()
                 for split, n in sizes.items()]
    # the paper's space, narrowed to learning rates that train within 4 epochs
    args = ["task=speech", *overrides, "variants=[V]", "trials_per_variant=2",
            "train.max_epochs=4", "train.batch_size=5", "search.params.learning_rate.low=1e-3",
            "search.params.hidden_size.high=40", f"results_dir={tmp_path}", "sweep_name=speech"]
    r = subprocess.run([SWEEP, *args], capture_output=True, text=True, timeout=1500,
                       env={**os.environ, "ODYSSEY_DATASETS": str(tmp_path / "datasets")})
    assert r.returncode == 0, r.stderr[-3000:]
    store = open_storage(f"journal://{tmp_path / 'speech' / 'optuna.journal'}")
    study = optuna.load_study(study_name="speech/speech/V", storage=store)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2 and study.user_attrs["metric"] == "frame_error"
    best = min(t.user_attrs["test_metric"] for t in trials)
    print(f"best test frame error {best:.3f}, majority class {majority_error:.3f}")
    assert best < majority_error - 0.1, (best, majority_error)
