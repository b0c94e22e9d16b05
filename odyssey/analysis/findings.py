"""Each finding of the paper (DESIGN §5), checked against this sweep with its numbers.

A finding's verdict is "agrees", "partly" (holds on some tasks, not all), "disagrees",
"inconclusive" (the effect is within its spread across trees on every task) or "not testable"
(too few trials for the statistic it rests on); the evidence names the numbers.
The thresholds for "matters little" and "interact little" are configuration, stated in the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .fanova import FanovaResult
from .importance import Skipped
from .load import order_tasks
from .stats import BETTER, SAME, TOO_FEW, WORSE

AGREES, PARTLY, DISAGREES, UNTESTABLE = "agrees", "partly", "disagrees", "not testable"
INCONCLUSIVE = "inconclusive"


class _Inconclusive:
    """Per-task outcome of a claim whose effect is within the spread across trees."""


UNCLEAR = _Inconclusive()


@dataclass
class Finding:
    """One paper claim, what this sweep says about it, and the numbers."""

    claim: str
    verdict: str
    evidence: str
    by_task: str = ""  # per task, e.g. "agrees on music and handwriting; disagrees on speech"


def fmt(x: float, digits: int = 4) -> str:
    """A number for prose: significant digits, 'n/a' for NaN."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def fmt_count(x: float) -> str:
    """A (mean) parameter count for prose: a whole number with thousands separators."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:,.0f}"


def fmt_p(p: float) -> str:
    """A p-value for prose."""
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _overall(per_task: list) -> str:
    tested = [x for x in per_task if isinstance(x, bool)]
    if not tested:
        return INCONCLUSIVE if any(x is UNCLEAR for x in per_task) else UNTESTABLE
    if all(tested):
        return AGREES
    return PARTLY if any(tested) else DISAGREES


def _outcome(x) -> str:
    """One task's outcome of a claim, in the verdicts' words."""
    if x is UNCLEAR:
        return INCONCLUSIVE
    if x is None:
        return UNTESTABLE
    return AGREES if x else DISAGREES


def by_task(tasks: list[str], per_task: list) -> str:
    """'agrees on music and handwriting; disagrees on speech': each outcome with its tasks."""
    groups: dict[str, list[str]] = {}
    for task, x in zip(tasks, per_task, strict=True):
        groups.setdefault(_outcome(x), []).append(task)

    def names(ts: list[str]) -> str:
        return ts[0] if len(ts) == 1 else ", ".join(ts[:-1]) + " and " + ts[-1]
    return "; ".join(f"{outcome} on {names(ts)}" for outcome, ts in groups.items())


def _row(tests: pd.DataFrame, task: str, subset: str, variant: str) -> pd.Series | None:
    sel = tests[(tests["task"] == task) & (tests["subset"] == subset)
                & (tests["variant"] == variant)]
    return None if sel.empty else sel.iloc[0]


def _describe(tests: pd.DataFrame, task: str, variant: str, baseline: str) -> str:
    parts = []
    for subset, name in (("best", "best (Welch, decides)"), ("all", "all (Mann-Whitney)")):
        r, b = _row(tests, task, subset, variant), _row(tests, task, subset, baseline)
        if r is None or b is None:
            parts.append(f"{name}: no trials of {variant if r is None else baseline}")
            continue
        if r["verdict"] == TOO_FEW:
            parts.append(f"{name}: too few trials (n={r['n']}, {baseline} n={b['n']})")
            continue
        centre = "mean" if subset == "best" else "median"
        parts.append(f"{name}: {centre} {fmt(r[centre])} vs {fmt(b[centre])}, "
                     f"p_adj={fmt_p(r['p_adjusted'])} ({r['verdict']})")
    return f"{task} — " + "; ".join(parts)


def _variant_claim(tests: pd.DataFrame, variant: str, baseline: str, claim: str,
                   holds) -> Finding:
    """A claim about `variant` vs the baseline, judged per task on the best subset."""
    tasks = order_tasks(tests["task"].unique()) if not tests.empty else []
    per_task, lines = [], []
    for task in tasks:
        r = _row(tests, task, "best", variant)
        if r is None or r["verdict"] not in (BETTER, WORSE, SAME):
            per_task.append(None)
        else:
            per_task.append(bool(holds(task)))
        if r is not None:
            lines.append(_describe(tests, task, variant, baseline))
    if not lines:
        lines = [f"no trials of {variant}"]
    return Finding(claim, _overall(per_task), "<br>".join(lines), by_task(tasks, per_task))


def variant_findings(tests: pd.DataFrame, baseline: str = "V") -> list[Finding]:
    """The variant claims: NFG and NOAF hurt everywhere, CIFG and NP neutral, FGR no gain.

    As in the paper, each claim is judged on the best fraction of each variant by validation
    score (Welch's test, corrected); the all-trials rank test is shown beside, never deciding.
    """
    def best_verdict(task: str, variant: str) -> str:
        return _row(tests, task, "best", variant)["verdict"]

    out = []
    for variant, what in (("NFG", "the forget gate"), ("NOAF", "the output activation")):
        out.append(_variant_claim(
            tests, variant, baseline,
            f"Removing {what} ({variant}) hurts on every task (significantly worse than "
            f"{baseline})",
            lambda task, v=variant: best_verdict(task, v) == WORSE))
    for variant, what in (("CIFG", "Coupling input and forget gate"),
                          ("NP", "Removing the peepholes")):
        out.append(_variant_claim(
            tests, variant, baseline,
            f"{what} ({variant}) changes nothing significant",
            lambda task, v=variant: best_verdict(task, v) == SAME))

    def fgr_holds(task: str) -> bool:
        r, b = _row(tests, task, "all", "FGR"), _row(tests, task, "all", baseline)
        more = r["mean_parameters"] > b["mean_parameters"]
        return bool(more) and best_verdict(task, "FGR") != BETTER

    fgr = _variant_claim(tests, "FGR", baseline,
                         "Full gate recurrence (FGR) adds parameters but no gain (more "
                         f"parameters than {baseline}, never significantly better)", fgr_holds)
    extra = []
    for task in order_tasks(tests["task"].unique()) if not tests.empty else []:
        r, b = _row(tests, task, "all", "FGR"), _row(tests, task, "all", baseline)
        if r is not None and b is not None:
            extra.append(f"{task} — mean parameters {fmt_count(r['mean_parameters'])} vs "
                         f"{fmt_count(b['mean_parameters'])}")
    if extra:
        fgr.evidence += "<br>" + "<br>".join(extra)
    out.append(fgr)
    return out


def _fanova_claim(results: dict[str, FanovaResult | Skipped], claim: str, judge) -> Finding:
    tasks, per_task, lines = list(results), [], []
    for task, res in results.items():
        if isinstance(res, Skipped):
            per_task.append(None)
            lines.append(f"{task} — {res.reason}")
            continue
        ok, text = judge(res)
        per_task.append(ok)
        lines.append(f"{task}{' (all variants pooled)' if res.fallback else ''} — {text}")
    if not lines:
        lines = ["no task with trials"]
    return Finding(claim, _overall(per_task), "<br>".join(lines), by_task(tasks, per_task))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def hyperparameter_findings(results: dict[str, FanovaResult | Skipped], *,
                            little: float = 0.05, interactions_little: float = 0.10
                            ) -> list[Finding]:
    """The hyperparameter claims, judged on each task's fANOVA."""
    def ranking(res: FanovaResult) -> str:
        main = res.main_effects()
        return ", ".join(f"{n} {100 * m:.1f} ± {100 * sd:.1f} %"
                         for n, m, sd in zip(main.index, main["mean"], main["std"], strict=True))

    def outranks(res: FanovaResult, name: str, rivals: list[str]):
        """Whether `name`'s main effect beats every rival's, judged per tree (a tie: UNCLEAR)."""
        if name not in res.names or not rivals:
            return None
        per_tree = res.main_per_tree
        mine = per_tree[:, res.names.index(name)]
        best_rival = per_tree[:, [res.names.index(r) for r in rivals]].max(1)
        diff = mine - best_rival
        if abs(diff.mean()) <= diff.std():
            return UNCLEAR
        return bool(diff.mean() > 0)

    def lr_first(res: FanovaResult):
        rivals = [n for n in res.names if n != "learning_rate"]
        ok = outranks(res, "learning_rate", rivals)
        text = f"main effects: {ranking(res)}"
        return ok, text + (": a tie within the spread across trees" if ok is UNCLEAR else "")

    def hidden_second(res: FanovaResult):
        main = res.main_effects()
        if len(main) < 2 or "hidden_size" not in res.names:
            return None, "hidden_size not searched, or fewer than two hyperparameters"
        rivals = [n for n in res.names if n not in ("hidden_size", "learning_rate")]
        ok = outranks(res, "hidden_size", rivals)
        text = (f"second: {main.index[1]} {_pct(main['mean'].iloc[1])} (hidden_size "
                f"{_pct(main['mean'].get('hidden_size', float('nan')))})")
        return ok, text + (": a tie within the spread across trees" if ok is UNCLEAR else "")

    def noise_hurts(res: FanovaResult):
        if "input_noise" not in res.names:
            return None, "input_noise not searched"
        _, per_tree = res.marginal_per_tree("input_noise", 100)
        low, high = per_tree[:, :10].mean(1), per_tree[:, -10:].mean(1)  # the first / last 10 %
        diff = high - low
        frac = res.main_effects().loc["input_noise"]
        text = (f"predicted {fmt(low.mean())} at the lowest 10 % of noise vs {fmt(high.mean())} "
                f"at the highest (difference {fmt(diff.mean(), 3)} ± {fmt(diff.std(), 3)} over "
                f"trees; main effect {_pct(frac['mean'])})")
        if abs(diff.mean()) <= diff.std():
            return UNCLEAR, text + ": within the spread, inconclusive"
        return bool(diff.mean() > 0), text

    def momentum_little(res: FanovaResult) -> tuple[bool, str]:
        name = "one_minus_momentum"
        if name not in res.names:
            return None, "momentum not searched"
        frac = res.main_effects().loc[name]
        return (frac["mean"] < little,
                f"momentum main effect {_pct(frac['mean'])} ± {_pct(frac['std'])}")

    def interact_little(res: FanovaResult) -> tuple[bool, str]:
        pairs = res.interactions()
        if pairs.empty:
            return None, "fewer than two hyperparameters"
        total = float(pairs["mean"].sum())
        strongest = float(pairs["mean"].iloc[0])
        largest_main = float(res.main_effects()["mean"].iloc[0])
        return (strongest < interactions_little and total < largest_main,
                f"strongest pair {pairs.index[0][0]} x {pairs.index[0][1]} {_pct(strongest)}; "
                f"all pairs together {_pct(total)} vs largest main effect "
                f"{_pct(largest_main)}")

    judged = [
        ("Learning rate is the most important hyperparameter (largest main effect)", lr_first),
        ("Hidden size is the second most important (after learning rate, ahead of the others)",
         hidden_second),
        ("Input noise hurts (predicted metric higher at large noise than at none)",
         noise_hurts),
        (f"Momentum matters little (main effect below {_pct(little)})", momentum_little),
        (f"Hyperparameters interact little (no pair above {_pct(interactions_little)}, all pairs "
         "together less than the largest main effect)", interact_little),
    ]
    out = []
    for claim, judge in judged:
        def wrapped(res, judge=judge):
            ok, text = judge(res)
            return (ok if ok is None or ok is UNCLEAR else bool(ok)), text
        out.append(_fanova_claim(results, claim, wrapped))
    return out
