"""Where a sweep stands, formatted: counts, best so far and ETA per variant, read from the
store (what counts toward N is the trial contract's rule, odyssey.search.trial)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from .trial import counts_toward_n


@dataclass
class VariantStatus:
    """Counts and best trial of one study."""

    variant: str
    complete: int = 0
    diverged: int = 0
    running: int = 0
    replaced: int = 0  # failed for reasons other than divergence, not counted
    untrained: int = 0  # complete, but never beat the task's trivial baseline
    best: FrozenTrial | None = None
    durations: list[float] = field(default_factory=list)

    @property
    def finished(self) -> int:
        """Counted trials that are over (complete or diverged)."""
        return self.complete + self.diverged

    @property
    def best_valid(self) -> float:
        return self.best.value if self.best is not None else math.nan

    @property
    def best_test(self) -> float:
        if self.best is None:
            return math.nan
        return float(self.best.user_attrs.get("test_metric", math.nan))


def variant_status(variant: str, trials: list[FrozenTrial]) -> VariantStatus:
    """Summarise one study's trials."""
    s = VariantStatus(variant)
    for t in trials:
        if t.state == TrialState.COMPLETE:
            s.complete += 1
            s.untrained += bool(t.user_attrs.get("untrained", False))
            if t.value is not None and (s.best is None or t.value < s.best.value):
                s.best = t
        elif t.state == TrialState.RUNNING:
            s.running += 1
        elif counts_toward_n(t):
            s.diverged += 1
        else:
            s.replaced += 1
        if counts_toward_n(t) and t.state != TrialState.RUNNING and t.datetime_start \
                and t.datetime_complete:
            s.durations.append((t.datetime_complete - t.datetime_start).total_seconds())
    return s


def collect(studies: dict[str, optuna.Study]) -> dict[str, VariantStatus]:
    """The status of every variant's study."""
    return {v: variant_status(v, st.get_trials(deepcopy=False)) for v, st in studies.items()}


def eta_seconds(statuses: dict[str, VariantStatus], n: int, workers: int) -> float:
    """Remaining trials times the mean trial time, shared among the running workers."""
    remaining = sum(max(0, n - s.finished) for s in statuses.values())
    durations = [d for s in statuses.values() for d in s.durations]
    if not remaining:
        return 0.0
    if not durations:
        return math.nan
    return remaining * (sum(durations) / len(durations)) / max(1, workers)


def format_seconds(seconds: float) -> str:
    """'1h02m', '4m05s', '12s' or '?'."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def progress_line(statuses: dict[str, VariantStatus], n: int, workers: int) -> str:
    """'37/88 trials done (42%), 2 running, ETA 6m10s'."""
    total = n * len(statuses)
    done = sum(min(n, s.finished) for s in statuses.values())
    running = sum(s.running for s in statuses.values())
    pct = 100.0 * done / total if total else 100.0
    return (f"{done}/{total} trials done ({pct:.0f}%), {running} running, "
            f"ETA {format_seconds(eta_seconds(statuses, n, workers))}")


def best_so_far(statuses: dict[str, VariantStatus]) -> str:
    """'best valid: V 8.12, NP 8.30, ...' (variants without a result omitted)."""
    parts = [f"{v} {s.best_valid:.4g}" for v, s in statuses.items() if s.best is not None]
    return "best valid so far: " + (", ".join(parts) if parts else "none yet")


def summary_frame(statuses: dict[str, VariantStatus], metric_label: str = "") -> pd.DataFrame:
    """One row per variant: counts, best validation score, its test score and parameters."""
    rows: list[dict[str, Any]] = []
    for v, s in statuses.items():
        b = s.best
        p = b.params if b is not None else {}
        rows.append({
            "variant": v, "complete": s.complete, "untrained": s.untrained,
            "diverged": s.diverged,
            "running": s.running, "best_valid": s.best_valid, "test_at_best": s.best_test,
            "trial": b.number if b is not None else None,
            # searched, or derived from a searched parameter budget (then a trial attribute)
            "hidden_size": p.get("hidden_size", b.user_attrs.get("hidden_size")
                                 if b is not None else None),
            "learning_rate": p.get("learning_rate"),
            "momentum": (1.0 - p["one_minus_momentum"]) if "one_minus_momentum" in p else None,
            "input_noise": p.get("input_noise"),
            "dropout": p.get("dropout"),
            "layers": p.get("layers"),
            "best_epoch": b.user_attrs.get("best_epoch") if b is not None else None,
        })
    frame = pd.DataFrame(rows).set_index("variant")
    for col in ("dropout", "layers"):  # not searched (the paper's protocol): no column
        if frame[col].isna().all():
            frame = frame.drop(columns=col)
    frame.attrs["metric_label"] = metric_label
    return frame


def format_summary(frame: pd.DataFrame) -> str:
    """The summary table as fixed-width text."""
    fmt = {"best_valid": "{:.4f}".format, "test_at_best": "{:.4f}".format,
           "learning_rate": "{:.2e}".format, "momentum": "{:.3f}".format,
           "input_noise": "{:.3f}".format, "dropout": "{:.3f}".format}
    shown = frame.copy()
    for col, f in fmt.items():
        if col not in shown:
            continue
        shown[col] = [("-" if x is None or (isinstance(x, float) and math.isnan(x)) else f(x))
                      for x in shown[col]]
    for col in ("trial", "hidden_size", "best_epoch", "layers"):
        if col not in shown:
            continue
        shown[col] = ["-" if x is None or (isinstance(x, float) and math.isnan(x)) else
                      str(int(x)) for x in shown[col]]
    return shown.to_string()
