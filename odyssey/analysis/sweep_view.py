"""The sweep itself: trials per state, failures and their reasons, time and curves per cell.

A cell is one (task, variant) study. Used by notebooks/sweep.ipynb; figures are matplotlib
`Figure` objects like those of `odyssey.analysis.figures`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .load import order_variants

CELL = ["task", "variant"]


def trial_states(frame: pd.DataFrame) -> pd.DataFrame:
    """Trials per task, variant (rows) and state (columns), with a total column."""
    counts = frame.groupby([*CELL, "state"], sort=False).size().unstack(fill_value=0)
    return counts.assign(total=counts.sum(axis=1))


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed trials grouped by task, variant, fail_kind and fail_reason, most frequent first."""
    failed = frame[frame["state"] == "FAIL"]
    cols = [*CELL, "fail_kind", "fail_reason"]
    if failed.empty:
        return pd.DataFrame(columns=[*cols, "trials"])
    return (failed.fillna({"fail_kind": "unknown", "fail_reason": "(no reason recorded)"})
            .groupby(cols, sort=False).size().rename("trials").reset_index()
            .sort_values("trials", ascending=False, kind="stable").reset_index(drop=True))


def time_per_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """Training and wall time per task and variant: trials, total and mean seconds."""
    return frame.groupby(CELL, sort=False).agg(
        trials=("trial", "size"), train_seconds=("train_seconds", "sum"),
        mean_train_seconds=("train_seconds", "mean"), wall_seconds=("duration_seconds", "sum"))


def time_figure(frame: pd.DataFrame) -> Figure:
    """Bar chart of the training hours spent per variant, one panel per task."""
    times = time_per_cell(frame).reset_index()
    tasks = list(dict.fromkeys(times["task"]))
    fig = Figure(figsize=(max(4.0, 0.6 * times["variant"].nunique()) + 1, 2.6 * len(tasks)),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(tasks), 1, squeeze=False)[:, 0])
    for ax, task in zip(axes, tasks, strict=True):
        rows = times[times["task"] == task].set_index("variant")
        rows = rows.loc[order_variants(rows.index)]
        ax.bar(rows.index, rows["train_seconds"] / 3600, color="#2e86c1")
        ax.set_ylabel("training hours")
        ax.set_title(task)
    return fig


def best_curves(frame: pd.DataFrame, curves: pd.DataFrame, task: str, *, k: int = 3,
                metric_label: str = "validation metric") -> Figure:
    """Validation curves of the k best trials (by valid_metric) of each variant of one task."""
    done = frame[(frame["task"] == task) & (frame["state"] == "COMPLETE")]
    variants = order_variants(done["variant"].unique())
    if not variants:
        raise ValueError(f"task {task!r} has no COMPLETE trials to draw curves for")
    cols = min(4, len(variants))
    rows = -(-len(variants) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    for ax, variant in zip(axes, variants, strict=False):
        best = done[done["variant"] == variant].nsmallest(k, "valid_metric")["trial"]
        cell = curves[(curves["task"] == task) & (curves["variant"] == variant)]
        for trial in best:
            curve = cell[cell["trial"] == trial].sort_values("epoch")
            ax.plot(curve["epoch"], curve["valid"], marker=".", label=f"trial {trial}")
        if cell.empty:
            ax.text(0.5, 0.5, "no curves recorded", ha="center", transform=ax.transAxes)
        ax.set_title(variant)
        ax.set_xlabel("epoch")
        ax.legend(fontsize="x-small")
    for ax in axes[len(variants):]:
        ax.set_visible(False)
    axes[0].set_ylabel(metric_label)
    fig.suptitle(f"{task}: best {k} trials per variant")
    return fig


def time_scatter(frame: pd.DataFrame, task: str, *, x: str = "hidden_size") -> Figure:
    """Training seconds of each trial of one task against a hyperparameter, one colour a variant."""
    part = frame[(frame["task"] == task) & np.isfinite(frame["train_seconds"].astype(float))]
    if part.empty:
        raise ValueError(f"task {task!r} has no trials with train_seconds")
    if x not in part.columns:
        raise KeyError(f"hyperparameter {x!r} is not in the trial table (columns: "
                       f"{', '.join(map(str, part.columns))})")
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    for variant in order_variants(part["variant"].unique()):
        rows = part[part["variant"] == variant]
        ax.scatter(rows[x], rows["train_seconds"], s=12, label=variant)
    ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("training seconds")
    ax.set_title(f"{task}: training time")
    ax.legend(fontsize="x-small", ncols=2)
    return fig
