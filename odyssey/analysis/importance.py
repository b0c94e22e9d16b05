"""fANOVA per task (and per variant) on a sweep's trial table, with a response cap.

The cap, in the spirit of the original fanova's `cutoffs`: a diverged trial (an NLL in the
thousands against a bulk near 15) would otherwise own most of the forest's variance, and the
fANOVA would explain "which hyperparameters diverge" rather than "which ones matter". Values
above Tukey's fence Q3 + k * IQR of the forest's own responses (k = 1.5 by default, the box
plot's outlier rule) are set to that fence. The fence needs no knowledge of the task and is
computed from the bulk; a capped trial keeps its rank at the top (it still counts as bad),
but not its size. On a constructed sweep with 3 diverged of 60 V trials, learning rate's share
is 0 % uncapped, about 50 ± 23 % at k = 3 and 70 ± 16 % at k = 1.5 (truth: it dominates); the
report says how many were capped.

The task's trivial baseline (e.g. the frequency model's NLL) is not used as the cap: it is
known for the validation split only (trials record `baseline_valid`), the fANOVA is on the
test metric, and capping there would flatten every trial that learnt little into one value,
erasing the slope from "barely trained" to "near the baseline" that the paper's low-learning-
rate marginals show. The fence only removes sizes far beyond the bulk.

When the variants the findings are judged on (V by default) have fewer than `min_trials`
complete trials but the task as a whole has enough (the quick sweep: 8 per variant), the task's
fit pools all its variants instead and says so (`FanovaResult.fallback`), unless
`pool_if_too_few` is off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .fanova import FanovaResult, fanova
from .load import order_tasks, order_variants, space_of, variant_name


@dataclass
class Skipped:
    """Why a task has no fANOVA (rendered in the report instead of a number)."""

    reason: str
    too_few: bool = False  # skipped for want of trials (not for a degenerate forest)


def cap_response(y: np.ndarray, iqr: float | None) -> tuple[np.ndarray, float | None, int]:
    """y with values above Q3 + iqr * IQR set to that bound: (capped y, bound, number capped)."""
    y = np.asarray(y, dtype=float)
    if iqr is None or y.size == 0:
        return y, None, 0
    if iqr < 0:
        raise ValueError(f"fanova cap_iqr must be >= 0 or null, got {iqr}")
    q1, q3 = np.percentile(y, [25, 75])
    bound = float(q3 + iqr * (q3 - q1))
    over = y > bound
    return np.minimum(y, bound), bound, int(over.sum())


def _fit(part: pd.DataFrame, metric: str, space, min_trials: int, cap_iqr: float | None,
         **forest) -> FanovaResult | Skipped:
    """One capped fANOVA of `part`, or the reason it cannot be computed."""
    missing = [hp.name for hp in space if hp.name not in part.columns]
    if missing:
        return Skipped(f"hyperparameters {missing} are not in the trial table")
    part = part[np.isfinite(part[metric].astype(float))].dropna(subset=[hp.name for hp in space])
    if len(part) < min_trials:
        return Skipped(f"too few trials for fANOVA: {len(part)} complete, {min_trials} needed",
                       too_few=True)
    y, bound, n_capped = cap_response(part[metric].to_numpy(float), cap_iqr)
    try:
        res = fanova(part, y, space, **forest)
    except ValueError as e:
        return Skipped(str(e))
    res.cap, res.n_capped = bound, n_capped
    return res


def fanova_by_variant(data: pd.DataFrame, *, metric: str = "test_metric", min_trials: int = 20,
                      n_trees: int = 100, seed: int = 0, min_samples_leaf: int = 1,
                      cap_iqr: float | None = 1.5, progress: bool = True
                      ) -> dict[tuple[str, str], FanovaResult | Skipped]:
    """One capped fANOVA of `metric` per (task, variant) present in `data`."""
    space = space_of(data)
    keys = [(t, v) for t in order_tasks(data["task"].unique())
            for v in order_variants(data.loc[data["task"] == t, "variant"].unique())]
    return {(t, v): _fit(data[(data["task"] == t) & (data["variant"] == v)], metric, space,
                         min_trials, cap_iqr, n_trees=n_trees, seed=seed,
                         min_samples_leaf=min_samples_leaf)
            for t, v in tqdm(keys, desc="fANOVA per variant", unit="cell",
                             disable=not progress)}


def fanova_by_task(data: pd.DataFrame, *, metric: str = "test_metric", min_trials: int = 20,
                   n_trees: int = 100, seed: int = 0, min_samples_leaf: int = 1,
                   variants: Sequence[str] | None = None, progress: bool = True,
                   tasks: Sequence[str] | None = None, cap_iqr: float | None = 1.5,
                   pool_if_too_few: bool = True) -> dict[str, FanovaResult | Skipped]:
    """fANOVA of `metric` for each task, pooling the trials of `variants` (default: all).

    `data` holds complete trials. A task with fewer than `min_trials` finite scores, or whose
    forest explains no variance, maps to a `Skipped` with the reason. `tasks` (default: the
    tasks in `data`) lets a task without any complete trial be reported as such. Responses
    are capped by `cap_response(y, cap_iqr)` (None: not capped). With `pool_if_too_few`, a
    task whose `variants` have too few trials is fitted on all its variants, and the result's
    `fallback` says why.
    """
    space = space_of(data)
    out: dict[str, FanovaResult | Skipped] = {}
    tasks = order_tasks(data["task"].unique()) if tasks is None else list(tasks)
    for task in tqdm(tasks, desc="fANOVA", unit="task", disable=not progress):
        part = data[data["task"] == task]
        chosen = part if variants is None else part[part["variant"].isin(
            [variant_name(v) for v in variants])]
        forest = {"n_trees": n_trees, "seed": seed, "min_samples_leaf": min_samples_leaf}
        res = _fit(chosen, metric, space, min_trials, cap_iqr, **forest)
        if (isinstance(res, Skipped) and res.too_few and pool_if_too_few
                and variants is not None and len(chosen) < len(part)):
            pooled = _fit(part, metric, space, min_trials, cap_iqr, **forest)
            if isinstance(pooled, FanovaResult):
                pooled.fallback = (f"{', '.join(variants)}: {res.reason.split(': ', 1)[1]}; "
                                   "all variants pooled instead")
                res = pooled
        out[task] = res
    return out
