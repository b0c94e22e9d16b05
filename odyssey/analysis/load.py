"""A sweep's Optuna store as tidy pandas tables: one row per trial, and learning curves long.

Columns of the trial table: sweep, task, variant, study, trial, state, the hyperparameters (as
searched, plus momentum = 1 - one_minus_momentum), value (the objective: best validation
metric), valid_metric, test_metric, best_epoch, epochs_run, parameter_count,
recurrent_parameter_count, train_seconds, duration_seconds (wall time Optuna recorded),
datetime_start, datetime_complete, seed, batch_size, fail_kind (the sweep's class of failure:
diverged, error, stale, claim_lost, ...), fail_reason, git_commit, run_id (the key of the run's
config and package versions in `load_runs`), untrained (True: a complete trial that
never beat its task's trivial baseline; NaN where the store does not say), metric,
metric_label, and one extra_<name> column per extra metric. `frame.attrs` holds sweep, space
(Hyperparameter tuple), metric_labels (task -> label) and storage_url.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from ..cells import canonical, cell_names
from ..store.provenance import RUN_PREFIX, run_record
from ..store.storage import mask_url
from ..store.sweeps import open_existing, storage_url, sweep_dir, sweep_studies
from .hyperparameters import DEFAULT_SPACE, Hyperparameter, space_from_distributions

SCALAR_ATTRS = ("valid_metric", "test_metric", "best_epoch", "epochs_run", "parameter_count",
                "recurrent_parameter_count", "train_seconds", "momentum", "seed", "batch_size",
                "fail_kind", "fail_reason", "git_commit", "run_id", "untrained")
TEXT_ATTRS = ("fail_kind", "fail_reason", "git_commit", "run_id")


def order_variants(names: Iterable[str]) -> list[str]:
    """Variant names in the cell registry's order (V, the eight LSTM changes, GRU, RNN, LSTMB,
    MUT1-3, then the cells of loaded plugins); names it does not know (a plugin cell whose
    plugin the analysis has not loaded: it needs none) sort after, alphabetically."""
    order = cell_names()
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def order_tasks(names: Iterable[str]) -> list[str]:
    """Task names in the paper's order (speech, handwriting, music), others after, sorted."""
    paper = ("speech", "handwriting", "music")
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (paper.index(n) if n in paper else len(paper), n))


def _study_keys(study, sweep: str) -> tuple[str, str]:
    """(task, variant) from the study's user_attrs, else from its name <sweep>/<task>/<variant>."""
    parts = study.study_name[len(sweep) + 1:].split("/")
    task = study.user_attrs.get("task") or (parts[0] if parts else "")
    variant = study.user_attrs.get("variant") or (parts[-1] if len(parts) > 1 else "")
    if not task or not variant:
        raise ValueError(f"study {study.study_name!r}: cannot tell task and variant (expected "
                         "user_attrs task/variant or a name <sweep>/<task>/<variant>)")
    return str(task), variant_name(str(variant))


def variant_name(name: str) -> str:
    """A registered cell's own spelling (case-insensitive: "np" -> "NP", "mgu" -> "MGU");
    a name the registry does not know (a plugin the analysis has not loaded) as it is."""
    try:
        return canonical(name)
    except ValueError:
        return name


def trials_frame(storage: optuna.storages.BaseStorage, sweep: str) -> pd.DataFrame:
    """The trial table of every study "<sweep>/..." in an opened storage."""
    rows, distributions, labels, settings = [], {}, {}, {}
    for study in sweep_studies(storage, sweep):
        task, variant = _study_keys(study, sweep)
        metric = study.user_attrs.get("metric", "")
        labels.setdefault(task, study.user_attrs.get("metric_label") or metric or "metric")
        if study.user_attrs.get("task_setting"):  # the missing-data setting, for reports
            settings.setdefault(task, study.user_attrs["task_setting"])
        for t in storage.get_all_trials(study._study_id, deepcopy=False):
            distributions.update(t.distributions)
            attrs = t.user_attrs
            row = {"sweep": sweep, "task": task, "variant": variant, "study": study.study_name,
                   "trial": t.number, "state": t.state.name}
            row.update({k: v for k, v in t.params.items()})
            if "hidden_size" not in t.params and attrs.get("hidden_size"):
                row["hidden_size"] = attrs["hidden_size"]  # derived from a parameter budget
            row["value"] = t.value if t.values else np.nan
            for key in SCALAR_ATTRS:
                row[key] = attrs.get(key, None if key in TEXT_ATTRS else np.nan)
            if row["run_id"] is None and isinstance(attrs.get("config"), dict):
                row["run_id"] = _legacy_run(attrs)[0]
            for key, value in (attrs.get("extra_metrics") or {}).items():
                row[f"extra_{key}"] = value
            row["datetime_start"] = t.datetime_start
            row["datetime_complete"] = t.datetime_complete
            row["duration_seconds"] = (
                (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_start and t.datetime_complete else np.nan)
            row["metric"] = metric
            row["metric_label"] = labels[task]
            rows.append(row)
    space = space_from_distributions(distributions) if distributions else DEFAULT_SPACE
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["sweep", "task", "variant", "study", "trial", "state",
                                      *[hp.name for hp in space], "value", *SCALAR_ATTRS])
    if "one_minus_momentum" in frame.columns:
        derived = 1.0 - frame["one_minus_momentum"].astype(float)
        frame["momentum"] = frame["momentum"].astype(float).fillna(derived) \
            if "momentum" in frame else derived
    for col in ("valid_metric", "test_metric", "value", "parameter_count",
                "recurrent_parameter_count", "train_seconds", "best_epoch", "epochs_run"):
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    if "valid_metric" in frame.columns:  # the objective is the best validation metric
        frame["valid_metric"] = frame["valid_metric"].fillna(frame["value"])
    order = {v: i for i, v in enumerate(order_variants(frame["variant"]))}
    frame = frame.sort_values(["task", "variant", "trial"],
                              key=lambda s: s.map(order) if s.name == "variant" else s,
                              kind="stable").reset_index(drop=True)
    frame.attrs.update(sweep=sweep, space=space, metric_labels=labels, task_settings=settings)
    return frame


def _legacy_run(attrs: dict) -> tuple[str, dict]:
    """A trial of a sweep run before the config moved to the study: its own config/versions."""
    return run_record(attrs["config"], attrs.get("versions") or {})


def _open(sweep_name: str, results_dir: str | Path, url: str | None
          ) -> optuna.storages.BaseStorage:
    base = None
    if url is None:
        base = sweep_dir(sweep_name, results_dir)
        url = storage_url(sweep_name, results_dir)
    return open_existing(url, base=base)


def load_runs(sweep_name: str, results_dir: str | Path = "results",
              url: str | None = None) -> dict[str, dict]:
    """The sweep's runs: run_id -> {"config": resolved sweep config, "versions": packages}.

    A trial's `run_id` column (trial table) names its run. The records are the studies' user
    attributes `run/<id>`; a store written before they existed keeps them on each trial
    (`config`, `versions`), and those are returned under the same kind of id.
    """
    storage = _open(sweep_name, results_dir, url)
    runs: dict[str, dict] = {}
    for study in sweep_studies(storage, sweep_name):
        for key, value in study.user_attrs.items():
            if key.startswith(RUN_PREFIX):
                runs.setdefault(key[len(RUN_PREFIX):], value)
        for t in storage.get_all_trials(study._study_id, deepcopy=False):
            if "run_id" not in t.user_attrs and isinstance(t.user_attrs.get("config"), dict):
                run_id, record = _legacy_run(t.user_attrs)
                runs.setdefault(run_id, record)
    return runs


def load_sweep(sweep_name: str, results_dir: str | Path = "results",
               url: str | None = None) -> pd.DataFrame:
    """Load sweep `sweep_name` from results/<sweep_name>/ (or from `url`) as a trial table.

    An unknown sweep raises UnknownSweepError listing the sweeps in `results_dir`.
    """
    base = None
    if url is None:
        base = sweep_dir(sweep_name, results_dir)
        url = storage_url(sweep_name, results_dir)
    storage = open_existing(url, base=base)
    frame = trials_frame(storage, sweep_name)
    frame.attrs["storage_url"] = mask_url(url)
    return frame


def load_sweeps(sweep_names: Sequence[str], results_dir: str | Path = "results"
                ) -> pd.DataFrame:
    """Several sweeps (e.g. one per task: paper-music, paper-speech, ...) as one trial table.

    The sweeps must share a search space; the table's `sweep` column tells them apart.
    """
    names = list(dict.fromkeys(sweep_names))
    if not names:
        raise ValueError("load_sweeps: no sweep names given")
    frames = [load_sweep(name, results_dir) for name in names]
    spaces = {name: space_of(f) for name, f in zip(names, frames, strict=True) if not f.empty}
    if len(set(spaces.values())) > 1:
        raise ValueError("load_sweeps: the sweeps searched different spaces: " + "; ".join(
            f"{n}: {', '.join(f'{hp.name} [{hp.low:g}, {hp.high:g}]' for hp in sp)}"
            for n, sp in spaces.items()))
    frame = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
    labels: dict[str, str] = {}
    settings: dict[str, list[str]] = {}
    for f in frames:
        labels.update(f.attrs.get("metric_labels", {}))
        for task, setting in f.attrs.get("task_settings", {}).items():
            if setting not in settings.setdefault(task, []):
                settings[task].append(setting)
    frame.attrs.update(sweep="+".join(names),
                       space=next(iter(spaces.values()), DEFAULT_SPACE),
                       metric_labels=labels,
                       task_settings={t: " / ".join(s) for t, s in settings.items()},
                       storage_url=", ".join(f.attrs.get("storage_url", "?") for f in frames))
    return frame


def load_curves(sweep_name: str, results_dir: str | Path = "results",
                url: str | None = None) -> pd.DataFrame:
    """Learning curves, long: task, variant, trial, epoch, train_loss, valid, test, valid_loss."""
    storage = _open(sweep_name, results_dir, url)
    rows = []
    for study in sweep_studies(storage, sweep_name):
        task, variant = _study_keys(study, sweep_name)
        for t in storage.get_all_trials(study._study_id, deepcopy=False):
            for point in t.user_attrs.get("curve") or []:
                rows.append({"task": task, "variant": variant, "trial": t.number,
                             "state": t.state.name, **point})
    return pd.DataFrame(rows, columns=None if rows else
                        ["task", "variant", "trial", "state", "epoch", "train_loss", "valid",
                         "test"])


def complete(frame: pd.DataFrame, metric: str = "test_metric") -> pd.DataFrame:
    """COMPLETE trials with a finite `metric` (what every statistic is computed on)."""
    ok = (frame["state"] == "COMPLETE") & np.isfinite(pd.to_numeric(frame[metric],
                                                                    errors="coerce"))
    out = frame[ok].copy()
    out.attrs.update(frame.attrs)
    return out


def space_of(frame: pd.DataFrame) -> tuple[Hyperparameter, ...]:
    """The search space recorded with a trial table (the default protocol if none)."""
    return tuple(frame.attrs.get("space") or DEFAULT_SPACE)
