"""Compose tiny evolution configs and run workers, in this process or a child."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from odyssey.config import CONFIG_DIR
from odyssey.evolve.loop import EvolveSpec, run_worker
from odyssey.store.storage import open_storage

TINY = ["tasks.arith.n_train=24", "tasks.arith.n_valid=12", "tasks.arith.n_test=12",
        "tasks.arith.max_digits=3", "tasks.xml.n_train=24", "tasks.xml.n_valid=12",
        "tasks.xml.n_test=12", "tasks.xml.max_length=30", "tasks.lm.max_chars=600",
        "tasks.lm.length=30", "tasks.lm.min_count=3", "train.max_epochs=2",
        "train.batch_size=8", "evolve.seed_evaluations=1"]


def evolve_config(tmp: Path, *overrides: str) -> DictConfig:
    """configs/evolve.yaml with tiny tasks, results under `tmp`, then `overrides`."""
    base = [f"results_dir={tmp / 'results'}", "sweep_name=e", "evaluations=4", *TINY]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("evolve", overrides=[*base, *overrides])


def run_child(tmp: str, overrides: list[str]) -> None:
    """Child-process entry: one worker to the end."""
    logging.basicConfig(level=logging.INFO)
    run_worker(EvolveSpec.from_config(evolve_config(Path(tmp), *overrides)))


def study(cfg: DictConfig) -> optuna.Study:
    spec = EvolveSpec.from_config(cfg)
    return optuna.load_study(study_name=spec.study_name, storage=open_storage(spec.storage_url))
