"""An evolution's state, derived from its store: evaluations, architectures, their scores.

Nothing is kept in a worker's memory: every decision reads the trials again, so any number
of workers (and a rerun after a kill) see the same list. Scores (Jozefowicz et al. 2015):
per task, an architecture's best validation "goodness" over its evaluations, relative to
the baseline architecture's (the GRU's); its score is the minimum over the tasks. Goodness
is accuracy (1 - error) for arith and xml, 1 / perplexity = exp(-nll) for lm, 0 for an
evaluation that diverged. Before the baseline has a result, the raw goodness counts.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ..search.trial import counts_toward_n

ARCH_ATTR = "architecture"  # the canonical string (the name)
HASH_ATTR = "architecture_hash"


def goodness(metric: str, value: float | None) -> float:
    """Higher is better, 0 for nothing learnt: accuracy from an error, exp(-nll)."""
    if value is None or not math.isfinite(value):
        return 0.0
    if metric == "nll":
        return math.exp(-value)
    return max(0.0, 1.0 - value)


def task_goodness(result: dict[str, Any]) -> float:
    """The validation goodness of one task's entry in a trial's `tasks` attribute (0 when
    its training diverged)."""
    if result.get("status", "complete") != "complete":
        return 0.0
    return goodness(result["metric"], result.get("valid"))


def evaluations(trials: list[FrozenTrial]) -> pd.DataFrame:
    """One row per evaluation that counts (complete or running): its number, state,
    architecture, parent, kind, whether a task diverged, and per task the validation
    goodness (g/<task>) and test goodness (test/<task>)."""
    rows: list[dict[str, Any]] = []
    for t in trials:
        if ARCH_ATTR not in t.user_attrs or not counts_toward_n(t):
            continue
        row = {"number": t.number, "state": t.state.name, HASH_ATTR: t.user_attrs[HASH_ATTR],
               ARCH_ATTR: t.user_attrs[ARCH_ATTR], "parent": t.user_attrs.get("parent"),
               "kind": t.user_attrs.get("kind"), "mutation": t.user_attrs.get("mutation")}
        for name, r in (t.user_attrs.get("tasks") or {}).items():
            ok = r.get("status", "complete") == "complete"
            row[f"g/{name}"] = task_goodness(r)
            row[f"test/{name}"] = goodness(r["metric"], r.get("test")) if ok else 0.0
        row["diverged"] = bool(t.user_attrs.get("diverged"))
        rows.append(row)
    return pd.DataFrame(rows)


def architectures(frame: pd.DataFrame, tasks: list[str], baseline: str | None
                  ) -> pd.DataFrame:
    """Per architecture: evaluations (counted), finished, best goodness per task, relative
    per task and the score, sorted best first (unscored architectures last)."""
    cols = [HASH_ATTR, ARCH_ATTR, "evaluations", "finished", "first", "parent", "score",
            *(f"rel/{t}" for t in tasks)]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    done = frame[frame["state"] != "RUNNING"]
    out = frame.groupby(HASH_ATTR, sort=False).agg(
        **{ARCH_ATTR: (ARCH_ATTR, "first"), "evaluations": ("number", "size"),
           "first": ("number", "min"), "parent": ("parent", "first")})
    out["finished"] = done.groupby(HASH_ATTR).size().reindex(out.index).fillna(0).astype(int)
    best = {t: (done.groupby(HASH_ATTR)[f"g/{t}"].max() if f"g/{t}" in done else
                pd.Series(dtype=float)) for t in tasks}
    base = {t: float(best[t].get(baseline, math.nan)) if baseline else math.nan
            for t in tasks}
    for t in tasks:
        g = best[t].reindex(out.index)
        out[f"best/{t}"] = g
        denom = base[t] if base[t] and math.isfinite(base[t]) and base[t] > 0 else 1.0
        out[f"rel/{t}"] = g / denom
    rel = out[[f"rel/{t}" for t in tasks]]
    out["score"] = rel.min(axis=1, skipna=False)
    out = out.reset_index().sort_values(["score", "first"], ascending=[False, True],
                                        na_position="last")
    return out.reset_index(drop=True)


def history(frame: pd.DataFrame, tasks: list[str], baseline: str | None) -> pd.DataFrame:
    """Best score so far after each finished evaluation, in trial-number order: each
    architecture's score as `architectures` would give it from the evaluations up to that
    point (kept incrementally: an architecture's best goodness only grows, and all scores
    are recomputed when the baseline's does)."""
    done = frame[frame["state"] != "RUNNING"].sort_values("number") if not frame.empty \
        else frame
    best: dict[str, dict[str, float]] = {}
    score: dict[str, float] = {}
    base = dict.fromkeys(tasks, math.nan)

    def rel(h: str) -> float:
        values = []
        for t in tasks:
            g = best[h].get(t, math.nan)
            d = base[t] if math.isfinite(base[t]) and base[t] > 0 else 1.0
            values.append(g / d)
        return math.nan if any(math.isnan(v) for v in values) else min(values)

    rows = []
    for k, (_, row) in enumerate(done.iterrows(), start=1):
        h = row[HASH_ATTR]
        mine = best.setdefault(h, {})
        for t in tasks:
            g = row.get(f"g/{t}", math.nan)
            if g is not None and not (isinstance(g, float) and math.isnan(g)):
                mine[t] = max(mine.get(t, -math.inf), float(g))
        if h == baseline and any(mine.get(t, math.nan) != base[t] for t in tasks):
            base = {t: mine.get(t, math.nan) for t in tasks}
            score = {a: rel(a) for a in best}
        else:
            score[h] = rel(h)
        finite = [v for v in score.values() if not math.isnan(v)]
        rows.append({"evaluation": k, "number": int(row["number"]),
                     "best_score": max(finite) if finite else math.nan})
    return pd.DataFrame(rows, columns=["evaluation", "number", "best_score"])


def load(study: optuna.Study) -> pd.DataFrame:
    """`evaluations` of a study's trials."""
    return evaluations(study.get_trials(deepcopy=False,
                                        states=(TrialState.COMPLETE, TrialState.RUNNING,
                                                TrialState.FAIL)))
