"""The study planner (`odyssey-sweep ... plan=true`): what a sweep will cost, before training.

A short calibration trains each cell of the sweep for CALIBRATION_EPOCHS epochs at the low,
middle and high hidden size of the search space (on this task, with these train settings
and threads) and times it; a quadratic in the hidden size through those three points,
averaged over the search space's hidden-size distribution, gives the mean seconds per
epoch of a trial. Calibrations are cached per machine and code version
(~/.cache/odyssey/calibration.json), so a second plan, and the estimate a sweep records at
its start (plan.json in the sweep folder), cost nothing. The final table shows that estimate
against the actual time from the first trial's start to the last trial's end.

Epochs per trial: trials that early stopping ends sooner are unknown before they run, so
the plan assumes `plan_epochs` (default: train.max_epochs, an upper bound) unless the
store already holds finished trials of this sweep, whose mean it then uses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import resource
import socket
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from ..cells import fast
from ..tasks import Task
from ..training import Hyperparameters, train
from .spec import SweepConfigError, SweepSpec

CALIBRATION_EPOCHS = 2
PLAN_FILE = "plan.json"


def cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "odyssey" / "calibration.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def code_version() -> str:
    """A hash of the package's sources (Python and C++): any edit, committed or not, is a
    new code version whose timings are calibrated anew."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".cpp", ".h") and path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def calibration_key(spec: SweepSpec, variant: str, hidden: int) -> str:
    """What a calibration's timing depends on: the machine, the code and package versions,
    the task and its options, the cell, the hidden size, threads and train settings."""
    parts = {"host": socket.gethostname(), "cpu": _cpu_model(), "cores": os.cpu_count(),
             "code": code_version(), "kernel": fast._name(fast._cflags()),
             "torch": torch.__version__, "task": spec.task_name,
             "options": spec.task_options, "variant": variant, "hidden": hidden,
             "threads": spec.threads, "train": asdict(spec.train)}
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _load_cache() -> dict[str, Any]:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict[str, Any]) -> None:
    path = cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    tmp.replace(path)


def hidden_sizes(spec: SweepSpec) -> tuple[int, int, int]:
    """Low, middle (geometric mean for a log range) and high hidden size of the space."""
    dist = spec.distributions.get("hidden_size")
    if not isinstance(dist, IntDistribution):
        raise SweepConfigError("plan=true needs search.params.hidden_size as an int range")
    low, high = dist.low, dist.high
    mid = round(float(np.sqrt(low * high))) if dist.log else (low + high) // 2
    return low, mid, high


def calibrate(spec: SweepSpec, task: Task, *, cached_only: bool = False
              ) -> dict[str, list[dict[str, float]]] | None:
    """Per cell, [{hidden, wall_s, cpu_s}] per epoch at low/middle/high hidden size, from
    the cache or measured now (None with `cached_only` when one is not cached)."""
    cache = _load_cache()
    out: dict[str, list[dict[str, float]]] = {}
    if cached_only and not isinstance(spec.distributions.get("hidden_size"), IntDistribution):
        return None  # a space the planner cannot calibrate: the sweep records no estimate
    settings = replace(spec.train, max_epochs=CALIBRATION_EPOCHS,
                       patience=CALIBRATION_EPOCHS + 1)
    changed = False
    for variant in spec.variants:
        rows = []
        for hidden in hidden_sizes(spec):
            key = calibration_key(spec, variant, hidden)
            if not {"wall_s", "cpu_s", "setup_s"} <= set(cache.get(key, {})):
                if cached_only:
                    return None
                torch.set_num_threads(spec.threads)
                started = time.perf_counter()
                result = train(task, variant, Hyperparameters(hidden, 1e-4, 0.9, 0.0),
                               settings, seed=0)
                call = time.perf_counter() - started
                epochs = max(result.epochs_run, 1)
                cache[key] = {"hidden": hidden, "wall_s": result.train_seconds / epochs,
                              "cpu_s": result.cpu_seconds / epochs,
                              # building the network and kernels, scoring the test split
                              "setup_s": max(0.0, call - result.train_seconds),
                              "at": datetime.now().isoformat(timespec="seconds")}
                changed = True
            rows.append(cache[key])
        out[variant] = rows
    if changed:
        _save_cache(cache)
    return out


def mean_over_space(spec: SweepSpec, rows: list[dict[str, float]], field: str) -> float:
    """The mean of `field` over the hidden-size distribution: a quadratic through the three
    calibration points (a layer's work grows with H and H^2), evaluated on every size the
    space can draw (log-uniform ranges weighted as Optuna draws them)."""
    hs = np.array([r["hidden"] for r in rows], dtype=float)
    ys = np.array([r[field] for r in rows], dtype=float)
    degree = min(2, len(set(hs)) - 1)
    coef = np.polyfit(hs, ys, degree) if degree > 0 else np.array([ys.mean()])
    dist = spec.distributions["hidden_size"]
    assert isinstance(dist, IntDistribution)
    grid = np.arange(dist.low, dist.high + 1, dist.step or 1, dtype=float)
    weights = 1.0 / grid if dist.log else np.ones_like(grid)
    values = np.maximum(np.polyval(coef, grid), ys.min())
    return float(np.sum(values * weights) / np.sum(weights))


@dataclass
class Plan:
    """What the sweep will cost: per cell and in total."""

    sweep: str
    task: str
    workers: int
    threads: int
    epochs_per_trial: float
    epochs_from: str
    rows: dict[str, dict[str, float]]  # variant -> trials, s_per_epoch, setup_s, cpu_s_...
    memory_mb: float

    def seconds_per_trial(self, variant: str) -> float:
        r = self.rows[variant]
        return r["setup_s"] + r["s_per_epoch"] * self.epochs_per_trial

    @property
    def trial_seconds(self) -> float:
        return sum(r["trials"] * self.seconds_per_trial(v) for v, r in self.rows.items())

    @property
    def cpu_hours(self) -> float:
        return sum(r["trials"] * r["cpu_s_per_epoch"] for r in self.rows.values()) \
            * self.epochs_per_trial * self.threads / 3600

    @property
    def wall_seconds(self) -> float:
        trials = sum(r["trials"] for r in self.rows.values())
        return self.trial_seconds / max(1, min(self.workers, trials))


def make_plan(spec: SweepSpec, workers: int, epochs: float | None,
              calibration: dict[str, list[dict[str, float]]],
              studies: dict[str, optuna.Study] | None = None) -> Plan:
    """The plan from a calibration; finished trials of the sweep, if any, give the epochs."""
    done = [t.user_attrs.get("epochs_run") for st in (studies or {}).values()
            for t in st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    done = [e for e in done if isinstance(e, int | float)]
    if epochs is not None:
        per_trial, source = float(epochs), "plan_epochs"
    elif done:
        per_trial, source = float(np.mean(done)), f"mean of {len(done)} finished trials"
    else:
        per_trial, source = float(spec.train.max_epochs), "train.max_epochs (an upper bound)"
    rows = {v: {"trials": spec.trials_per_variant,
                "s_per_epoch": mean_over_space(spec, calibration[v], "wall_s"),
                "setup_s": mean_over_space(spec, calibration[v], "setup_s"),
                "cpu_s_per_epoch": mean_over_space(spec, calibration[v], "cpu_s")}
            for v in spec.variants}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return Plan(spec.sweep_name, spec.task_name, workers, spec.threads, per_trial, source,
                rows, rss)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: Plan) -> str:
    lines = [f"plan for sweep {plan.sweep} ({plan.task}): {plan.epochs_per_trial:.1f} epochs "
             f"per trial ({plan.epochs_from}), {plan.threads} thread(s) per worker",
             f"{'variant':8} {'trials':>6} {'s/epoch':>8} {'s/trial':>8} {'CPU-h':>7}  "
             "(s/trial: set-up and scoring, then the epochs)"]
    for v, r in plan.rows.items():
        per_trial = plan.seconds_per_trial(v)
        cpu_h = r["trials"] * r["cpu_s_per_epoch"] * plan.epochs_per_trial * plan.threads / 3600
        lines.append(f"{v:8} {r['trials']:>6.0f} {r['s_per_epoch']:>8.3g} {per_trial:>8.3g} "
                     f"{cpu_h:>7.3g}")
    lines.append(f"total: {plan.cpu_hours:.3g} CPU-hours; wall time on {plan.workers} "
                 f"worker(s): {_duration(plan.wall_seconds)} (trials only: not queue waits "
                 f"nor start-up); memory per worker: {plan.memory_mb:.0f} MB (peak while "
                 "calibrating)")
    return "\n".join(lines)


def record_estimate(spec: SweepSpec, plan: Plan) -> None:
    """plan.json in the sweep folder, once (the first worker's): the estimate at the start."""
    path = spec.sweep_dir / PLAN_FILE
    if path.exists():
        return
    data = {"trial_seconds": plan.trial_seconds, "cpu_hours": plan.cpu_hours,
            "epochs_per_trial": plan.epochs_per_trial,
            "recorded": datetime.now().isoformat(timespec="seconds")}
    tmp = path.with_name(f".{PLAN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def estimate_line(spec: SweepSpec, studies: dict[str, optuna.Study]) -> str | None:
    """'time: estimate 3.2 min on 2 workers, actual 3.5 min (+9 %)' when plan.json exists:
    the recorded trial-seconds over the workers that ran, against the time from the first
    trial's start to the last one's end."""
    try:
        est = json.loads((spec.sweep_dir / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None
    trials = [t for st in studies.values() for t in st.get_trials(deepcopy=False)
              if t.datetime_start and t.datetime_complete]
    if not trials:
        return None
    workers = {(t.user_attrs["worker"].get("host"), t.user_attrs["worker"].get("pid"))
               for t in trials if isinstance(t.user_attrs.get("worker"), dict)}
    wall = est["trial_seconds"] / max(1, len(workers))
    actual = (max(t.datetime_complete for t in trials)
              - min(t.datetime_start for t in trials)).total_seconds()
    off = 100 * (actual - wall) / wall if wall else float("nan")
    return (f"time: estimate {_duration(wall)} on the {len(workers)} worker(s) that ran (plan "
            f"recorded at the start), actual {_duration(actual)} from the first trial's start "
            f"to the last one's end ({off:+.0f} %)")
