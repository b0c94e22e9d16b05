"""fANOVA per task on a sweep's trial table, with the too-few-trials case made explicit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .fanova import FanovaResult, fanova
from .load import order_tasks, space_of


@dataclass
class Skipped:
    """Why a task has no fANOVA (rendered in the report instead of a number)."""

    reason: str


def fanova_by_task(data: pd.DataFrame, *, metric: str = "test_metric", min_trials: int = 20,
                   n_trees: int = 100, seed: int = 0, min_samples_leaf: int = 1,
                   variants: Sequence[str] | None = None, progress: bool = True,
                   tasks: Sequence[str] | None = None) -> dict[str, FanovaResult | Skipped]:
    """fANOVA of `metric` for each task, pooling the trials of `variants` (default: all).

    `data` holds complete trials. A task with fewer than `min_trials` finite scores, or whose
    forest explains no variance, maps to a `Skipped` with the reason. `tasks` (default: the
    tasks in `data`) lets a task without any complete trial be reported as such.
    """
    space = space_of(data)
    out: dict[str, FanovaResult | Skipped] = {}
    tasks = order_tasks(data["task"].unique()) if tasks is None else list(tasks)
    for task in tqdm(tasks, desc="fANOVA", unit="task", disable=not progress):
        part = data[data["task"] == task]
        if variants is not None:
            part = part[part["variant"].isin([v.upper() for v in variants])]
        part = part[np.isfinite(part[metric].astype(float))]
        missing = [hp.name for hp in space if hp.name not in part.columns]
        if missing:
            out[task] = Skipped(f"hyperparameters {missing} are not in the trial table")
            continue
        part = part.dropna(subset=[hp.name for hp in space])
        if len(part) < min_trials:
            out[task] = Skipped(f"too few trials for fANOVA: {len(part)} complete, "
                                f"{min_trials} needed")
            continue
        try:
            out[task] = fanova(part, part[metric].to_numpy(float), space, n_trees=n_trees,
                               seed=seed, min_samples_leaf=min_samples_leaf)
        except ValueError as e:
            out[task] = Skipped(str(e))
    return out
