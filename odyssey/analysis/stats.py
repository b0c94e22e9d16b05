"""Variants against the baseline: Welch's t-test per task, corrected for multiple comparisons.

As in the paper, each variant's best 10 % of trials by validation score are compared with V's
by Welch's t-test: that subset ("best") decides the paper's claims. All complete trials ("all")
are compared too, but by the Mann-Whitney U rank test: a handful of diverged trials (an NLL in
the thousands against a bulk near 15) would swamp the variances of a t-test, while a rank test
only sees them as the worst ranks. Within one (task, subset) the p-values of all variants that
could be tested are corrected together: Bonferroni by default (as the paper), Holm's step-down
method on request (same family-wise error control, never less powerful). Both from statsmodels.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ..cells import cell_names

CORRECTIONS = ("holm", "bonferroni")
SUBSETS = ("all", "best")

# Verdicts written into the table and the report.
BASELINE = "baseline"
BETTER = "better"
WORSE = "worse"
SAME = "no significant difference"
TOO_FEW = "too few trials"
NO_SPREAD = "no spread (test undefined)"


def best_fraction(frame: pd.DataFrame, fraction: float, select_by: str) -> pd.DataFrame:
    """The best `fraction` of each (task, variant) by `select_by` (lower is better; at least 1).

    ceil(fraction * n) trials are kept, so a small group keeps one trial rather than none.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"best fraction must lie in (0, 1], got {fraction}")
    parts = []
    for _, group in frame.groupby(["task", "variant"], sort=False):
        group = group.dropna(subset=[select_by])
        k = math.ceil(fraction * len(group))
        parts.append(group.nsmallest(k, select_by))
    return pd.concat(parts) if parts else frame.iloc[:0]


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Welch's unequal-variance t statistic and two-sided p-value of a against b."""
    res = stats.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mann-Whitney U statistic and two-sided p-value of a against b (a rank test)."""
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


TESTS = {"best": "welch", "all": "mann-whitney"}


def correct(pvalues: np.ndarray, method: str = "bonferroni") -> np.ndarray:
    """P-values adjusted for the number of comparisons (Holm or Bonferroni)."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(CORRECTIONS)}")
    pvalues = np.asarray(pvalues, dtype=float)
    if pvalues.size == 0:
        return pvalues
    return multipletests(pvalues, method=method)[1]


def variant_tests(frame: pd.DataFrame, *, metric: str = "test_metric",
                  select_by: str = "valid_metric", baseline: str = "V", fraction: float = 0.1,
                  alpha: float = 0.05, correction: str = "bonferroni", min_trials: int = 2,
                  ) -> pd.DataFrame:
    """Table of every (task, subset, variant): counts, mean, median, std, test and verdict.

    The "best" subset is tested by Welch's t-test, "all" by Mann-Whitney U (column `test`);
    a difference's sign is that of the means for Welch and of the medians for the rank test.

    `frame` holds complete trials (columns task, variant, `metric`, `select_by`,
    parameter_count). A group with fewer than `min_trials` finite scores (or a baseline with
    fewer) is not tested: its verdict says "too few trials" and its p-values stay empty.
    Multiple-testing families, per (task, subset): the paper's LSTM variants (its eight
    one-change variants, as Greff et al. corrected over eight), and every other variant
    (GRU, RNN, LSTMB, MUT1-3, plugins) apart, so adding cells to a sweep never weakens the
    tests of the paper's claims. Each family's size is the number of its variants tested.
    """
    if min_trials < 2:
        raise ValueError(f"Welch's test needs min_trials >= 2, got {min_trials}")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; expected one of "
                         f"{', '.join(CORRECTIONS)}")
    for column in ("task", "variant", metric, select_by):
        if column not in frame.columns:
            raise ValueError(f"variant_tests: column {column!r} missing from the trial table")
    scored = frame[np.isfinite(frame[metric].astype(float))]
    subsets = {"all": scored, "best": best_fraction(scored, fraction, select_by)}
    rows = []
    for subset, data in subsets.items():
        for task, tdata in data.groupby("task", sort=True):
            base = tdata.loc[tdata["variant"] == baseline, metric].to_numpy(float)
            block = []
            for variant, vdata in tdata.groupby("variant", sort=False):
                values = vdata[metric].to_numpy(float)
                row = {"task": task, "subset": subset, "variant": variant, "n": values.size,
                       "mean": values.mean(), "median": np.median(values),
                       "std": values.std(ddof=1) if values.size > 1 else np.nan,
                       "min": values.min(), "max": values.max(),
                       "mean_parameters": (vdata["parameter_count"].mean()
                                           if "parameter_count" in vdata else np.nan),
                       "test": TESTS[subset], "difference": np.nan, "t": np.nan, "p": np.nan,
                       "p_adjusted": np.nan,
                       "verdict": ""}
                if variant == baseline:
                    row["verdict"] = BASELINE
                elif values.size < min_trials or base.size < min_trials:
                    row["verdict"] = TOO_FEW
                else:
                    row["difference"] = (values.mean() - base.mean() if subset == "best"
                                         else np.median(values) - np.median(base))
                    if np.ptp(values) == 0 and np.ptp(base) == 0:
                        row["verdict"] = NO_SPREAD
                    elif subset == "best":
                        row["t"], row["p"] = welch(values, base)
                    else:
                        row["t"], row["p"] = mann_whitney(values, base)
                block.append(row)
            tested = [r for r in block if np.isfinite(r["p"])]
            for paper in (True, False):
                family = [r for r in tested if (r["variant"] in cell_names("paper")) == paper]
                adjusted = correct(np.array([r["p"] for r in family]), correction)
                for r, p_adj in zip(family, adjusted, strict=True):
                    r["p_adjusted"] = float(p_adj)
                    if p_adj < alpha:
                        r["verdict"] = BETTER if r["difference"] < 0 else WORSE
                    else:
                        r["verdict"] = SAME
            rows.extend(block)
    columns = ["task", "subset", "variant", "n", "mean", "median", "std", "min", "max",
               "mean_parameters", "test", "difference", "t", "p", "p_adjusted", "verdict"]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs.update(correction=correction, alpha=alpha, fraction=fraction, baseline=baseline,
                       metric=metric, select_by=select_by)
    return table
