"""Compose sweep configs on the toy task and run workers in child processes."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from optuna.storages import RDBStorage
from sqlalchemy.orm import Session

from odyssey.config import CONFIG_DIR
from odyssey.search.spec import SweepSpec, load_sweep_plugins
from odyssey.search.sweep import run_worker
from odyssey.store.storage import open_storage
from tests.toy import register

TOY_CONFIG = """name: toy
n_train: 16
n_valid: 6
n_test: 6
max_length: 10
seed: 0
sleep: {sleep}
barrier: null
parties: 0
"""


def toy_config(tmp: Path, *overrides: str, sleep: float = 0.0) -> DictConfig:
    """The sweep config with task=toy, results under `tmp`, then `overrides`; its plugins
    loaded, as the odyssey-sweep entry point loads them."""
    register()
    task_dir = tmp / "cfg" / "task"
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "toy.yaml").write_text(TOY_CONFIG.format(sleep=sleep))
    base = [f"hydra.searchpath=[file://{tmp / 'cfg'}]", "task=toy",
            f"results_dir={tmp / 'results'}", "sweep_name=t", "variants=[V,NP]",
            "trials_per_variant=2", "train.max_epochs=2", "train.batch_size=4"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*base, *overrides])
    load_sweep_plugins(cfg)
    return cfg


def run_toy_worker(tmp: str, overrides: list[str], worker: int, sleep: float = 0.0) -> None:
    """Child-process entry: compose the toy sweep and run one worker to the end."""
    logging.basicConfig(level=logging.INFO)
    cfg = toy_config(Path(tmp), *overrides, f"worker={worker}", sleep=sleep)
    run_worker(SweepSpec.from_config(cfg))


def studies(cfg: DictConfig) -> dict[str, optuna.Study]:
    """The sweep's studies by variant, from its store."""
    spec = SweepSpec.from_config(cfg)
    storage = open_storage(spec.storage_url)
    return {v: optuna.load_study(study_name=spec.study_name(v), storage=storage)
            for v in spec.variants}


def kill_when(p: mp.Process, cfg: DictConfig,
              ready: Callable[[list[optuna.trial.FrozenTrial]], bool], what: str,
              timeout: float = 240) -> None:
    """SIGKILL the worker process `p` as soon as the sweep's trials (all its studies)
    satisfy `ready`; the test fails, saying `what` never happened, after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            trials = [t for study in studies(cfg).values() for t in study.get_trials()]
        except Exception:  # the store or the studies do not exist yet
            continue
        if ready(trials):
            os.kill(p.pid, signal.SIGKILL)
            p.join()
            return
    p.kill()
    pytest.fail(f"the worker never {what}")


def running_trials(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """Trials that are running and have started training (their seed is recorded)."""
    return [t for t in trials
            if t.state == optuna.trial.TrialState.RUNNING and "seed" in t.user_attrs]


# -- the store's clock, moved by the test ---------------------------------------------------------
# Liveness is judged by ages (a trial's start, its last heartbeat) against a grace period. A test
# that waits for an age to pass races the machine's load; these move the ages in the store itself
# instead, so that each check is far on one side of the grace period or the other.

def backdate(storage: RDBStorage, trial_ids: list[int], seconds: float) -> None:
    """Move the start and the last heartbeat of the trials `seconds` into the past (an RDB
    store, through Optuna's own table models)."""
    from optuna.storages._rdb import models

    shift = timedelta(seconds=seconds)
    with Session(storage.engine) as session, session.begin():
        for t in session.query(models.TrialModel).filter(
                models.TrialModel.trial_id.in_(trial_ids)):
            t.datetime_start -= shift
        for beat in session.query(models.TrialHeartbeatModel).filter(
                models.TrialHeartbeatModel.trial_id.in_(trial_ids)):
            beat.heartbeat -= shift


def last_heartbeat(storage: RDBStorage, trial_id: int) -> datetime | None:
    """When the trial's last heartbeat reached the store (the store's clock); None if none."""
    from optuna.storages._rdb import models

    with Session(storage.engine) as session:
        beat = models.TrialHeartbeatModel.where_trial_id(trial_id, session)
        return None if beat is None else beat.heartbeat
