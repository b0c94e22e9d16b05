"""The paper's hyperparameter claims judged on fANOVAs of constructed responses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from odyssey.analysis import DEFAULT_SPACE, Skipped, fanova, hyperparameter_findings
from odyssey.analysis.findings import fmt, fmt_count, fmt_p
from odyssey.analysis.stats import SAME, TOO_FEW, WORSE
from tests.analysis.test_findings_branches import findings_by_variant, make_tests_table


def _params(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "learning_rate": 10 ** rng.uniform(-6, -2, n),
        "hidden_size": 10 ** rng.uniform(np.log10(20), np.log10(200), n),
        "one_minus_momentum": 10 ** rng.uniform(-2, 0, n),
        "input_noise": rng.uniform(0, 1, n)})


def _verdicts(noise_slope: float, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    p = _params(600, rng)
    y = ((np.log10(p["learning_rate"]) + 4) ** 2 - 0.8 * np.log10(p["hidden_size"])
         + noise_slope * p["input_noise"] + rng.normal(0, 0.05, len(p)))
    res = fanova(p, y.to_numpy(), DEFAULT_SPACE, n_trees=16)
    found = hyperparameter_findings({"music": res, "speech": Skipped("too few trials")})
    return {f.claim.split(" (")[0]: f.verdict for f in found}


def test_claims_on_a_response_like_the_paper():
    v = _verdicts(noise_slope=0.6)
    assert v["Learning rate is the most important hyperparameter"] == "agrees"
    assert v["Hidden size is the second most important"] == "agrees"
    assert v["Input noise hurts"] == "agrees"
    assert v["Momentum matters little"] == "agrees"


def test_noise_without_effect_is_inconclusive_and_helpful_noise_disagrees():
    assert _verdicts(noise_slope=0.0)["Input noise hurts"] == "inconclusive"
    assert _verdicts(noise_slope=-0.6)["Input noise hurts"] == "disagrees"


def test_only_skipped_tasks_are_not_testable():
    found = hyperparameter_findings({"music": Skipped("too few trials for fANOVA: 3 complete")})
    assert {f.verdict for f in found} == {"not testable"}
    assert all("3 complete" in f.evidence for f in found)


def test_by_task_names_each_outcome_with_its_tasks():
    from odyssey.analysis.findings import UNCLEAR, by_task
    assert (by_task(["speech", "handwriting", "music"], [True, False, True])
            == "agrees on speech and music; disagrees on handwriting")
    assert (by_task(["speech", "handwriting", "music"], [None, UNCLEAR, True])
            == "not testable on speech; inconclusive on handwriting; agrees on music")


def test_the_variant_findings_read_exactly_as_the_report_prints_them():
    """The whole text a reader acts on, on a two-task table: each task's evidence line (best
    subset first, which decides, then all), the separators, and the FGR parameter lines."""
    table = make_tests_table({("music", "NFG"): (WORSE, 300), ("speech", "NFG"): (TOO_FEW, 300),
                              ("music", "FGR"): (SAME, 1300), ("speech", "FGR"): (SAME, 1300)})
    nfg_best = (table["variant"] == "NFG") & (table["subset"] == "best")
    table.loc[nfg_best, "mean"], table.loc[nfg_best, "p_adjusted"] = 1.25, 3e-5
    f = findings_by_variant(table)
    assert (f["NFG"].claim, f["NFG"].verdict, f["NFG"].by_task) == (
        "Removing the forget gate (NFG) hurts on every task (significantly worse than V)",
        "agrees", "not testable on speech; agrees on music")
    assert f["NFG"].evidence == (
        "speech — best (Welch, decides): too few trials (n=20, V n=20); all (Mann-Whitney): "
        "too few trials (n=20, V n=20)<br>music — best (Welch, decides): mean 1.25 vs 1, "
        "p_adj=3.0e-05 (worse); all (Mann-Whitney): median 1 vs 1, p_adj=0.02 (worse)")
    assert (f["NOAF"].verdict, f["NOAF"].evidence) == ("not testable", "no trials of NOAF")
    same = "mean 1 vs 1, p_adj=0.02 (no significant difference)"
    both = f"best (Welch, decides): {same}; all (Mann-Whitney): {same.replace('mean', 'median')}"
    assert f["FGR"].claim == ("Full gate recurrence (FGR) adds parameters but no gain (more "
                              "parameters than V, never significantly better)")
    assert f["FGR"].evidence == "<br>".join([
        f"speech — {both}", f"music — {both}",
        "speech — mean parameters 1,300 vs 400", "music — mean parameters 1,300 vs 400"])


def test_a_missing_baseline_is_named_and_fgr_with_equal_parameters_adds_none():
    table = make_tests_table({("music", "FGR"): (SAME, 400)})  # as many parameters as V
    assert findings_by_variant(table)["FGR"].verdict == "disagrees"
    no_v = make_tests_table({("music", "NP"): (SAME, 380)})
    no_v = no_v[~((no_v["variant"] == "V") & (no_v["subset"] == "all"))]
    assert findings_by_variant(no_v)["NP"].evidence.endswith("all (Mann-Whitney): no trials of V")
    table = make_tests_table({("music", "NP"): (SAME, 380)})
    no_np = table[~((table["variant"] == "NP") & (table["subset"] == "all"))]
    evidence = findings_by_variant(no_np)["NP"].evidence
    assert evidence.startswith("music — best (Welch, decides): mean 1 vs 1, p_adj=0.02")
    assert evidence.endswith("; all (Mann-Whitney): no trials of NP")


def test_counts_and_p_values_for_prose():
    assert [fmt_count(x) for x in (None, float("nan"), 1234.4)] == ["n/a", "n/a", "1,234"]
    assert [fmt(x) for x in (None, float("nan"), 1.234567)] == ["n/a", "n/a", "1.235"]
    assert fmt(1.234567, 3) == "1.23"
    assert [fmt_p(p) for p in (None, float("inf"), 0.0123, 1e-4, 3e-5)] == [
        "n/a", "n/a", "0.012", "0.0001", "3.0e-05"]
