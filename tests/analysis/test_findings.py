"""The paper's claims as the report judges them: hyperparameter claims on fANOVAs of
constructed responses and on hand-built per-tree fANOVAs, variant claims on hand-built test
tables whose answer is known (including "partly" and "disagrees", which no constructed sweep
reaches), and the exact text a reader acts on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from odyssey.analysis import (
    DEFAULT_SPACE,
    FanovaResult,
    Skipped,
    fanova,
    hyperparameter_findings,
    variant_findings,
)
from odyssey.analysis.findings import fmt, fmt_count, fmt_p
from odyssey.analysis.stats import BASELINE, BETTER, SAME, TOO_FEW, WORSE

COLUMNS = ["task", "subset", "variant", "n", "mean", "median", "std", "min", "max",
           "mean_parameters", "test", "difference", "t", "p", "p_adjusted", "verdict"]


def make_tests_table(cases: dict[tuple[str, str], tuple[str, float]]) -> pd.DataFrame:
    """variant_tests' table with (task, variant) -> (verdict on the best subset, mean
    parameters); V, the baseline, has 400 parameters on every task. The "all" rows carry the
    same verdicts (they never decide)."""
    rows = []
    tasks = sorted({task for task, _ in cases})
    for task in tasks:
        for (t, variant), (verdict, params) in {(task, "V"): (BASELINE, 400.0),
                                                **cases}.items():
            if t != task:
                continue
            for subset in ("best", "all"):
                rows.append({"task": task, "subset": subset, "variant": variant, "n": 20,
                             "mean": 1.0, "median": 1.0, "std": 0.1, "min": 0.8, "max": 1.2,
                             "mean_parameters": params,
                             "test": "welch" if subset == "best" else "mann-whitney",
                             "difference": 0.0, "t": 0.0, "p": 0.01, "p_adjusted": 0.02,
                             "verdict": verdict})
    return pd.DataFrame(rows, columns=COLUMNS)


def findings_by_variant(table: pd.DataFrame) -> dict[str, object]:
    """variant_findings keyed NFG, NOAF, CIFG, NP, FGR (their order)."""
    return dict(zip(["NFG", "NOAF", "CIFG", "NP", "FGR"], variant_findings(table), strict=True))


def test_a_claim_that_holds_on_some_tasks_is_partly_and_on_none_disagrees():
    table = make_tests_table({
        ("speech", "NFG"): (SAME, 300), ("music", "NFG"): (WORSE, 300),  # hurts on one
        ("speech", "NOAF"): (SAME, 400), ("music", "NOAF"): (BETTER, 400),  # hurts on none
        ("speech", "CIFG"): (SAME, 300), ("music", "CIFG"): (SAME, 300),  # neutral on both
        ("speech", "NP"): (BETTER, 380), ("music", "NP"): (TOO_FEW, 380),
    })
    f = findings_by_variant(table)
    assert f["NFG"].verdict == "partly"
    assert f["NFG"].by_task == "disagrees on speech; agrees on music"
    assert f["NOAF"].verdict == "disagrees"
    assert f["NOAF"].by_task == "disagrees on speech and music"
    assert f["CIFG"].verdict == "agrees"
    # a task too small to test is left out of the verdict: one tested task disagrees
    assert f["NP"].verdict == "disagrees"
    assert f["NP"].by_task == "disagrees on speech; not testable on music"
    assert "too few trials (n=20, V n=20)" in f["NP"].evidence
    assert "p_adj=0.02 (worse)" in f["NFG"].evidence


def test_fgr_must_add_parameters_and_never_be_significantly_better():
    table = make_tests_table({
        ("speech", "FGR"): (SAME, 1300),        # more parameters, no gain: holds
        ("handwriting", "FGR"): (BETTER, 1300),  # more parameters and better: fails
        ("music", "FGR"): (WORSE, 390),          # not better, but fewer parameters: fails
    })
    fgr = findings_by_variant(table)["FGR"]
    assert fgr.verdict == "partly"
    assert fgr.by_task == "agrees on speech; disagrees on handwriting and music"
    assert "speech — mean parameters 1,300 vs 400" in fgr.evidence
    assert "music — mean parameters 390 vs 400" in fgr.evidence
    worse = findings_by_variant(make_tests_table({("music", "FGR"): (WORSE, 1300)}))["FGR"]
    assert worse.verdict == "agrees"  # significantly worse is still "no gain"
    few = findings_by_variant(make_tests_table({("music", "FGR"): (TOO_FEW, 1300)}))["FGR"]
    assert few.verdict == "not testable"
    absent = findings_by_variant(make_tests_table({("music", "NP"): (SAME, 380)}))["FGR"]
    assert absent.verdict == "not testable" and absent.evidence == "no trials of FGR"


SPACE = tuple(hp for hp in DEFAULT_SPACE if hp.name != "input_noise")  # no noise marginal
PAIRS = [(0, 1), (0, 2), (1, 2)]


def fanova_result(main: list[float], pairs: list[float], trees: int = 4) -> FanovaResult:
    """A fANOVA whose every tree has these main-effect and pair fractions (learning_rate,
    hidden_size, one_minus_momentum; pairs lr x hidden, lr x momentum, hidden x momentum)."""
    return FanovaResult(space=SPACE, main_per_tree=np.tile(main, (trees, 1)),
                        pair_per_tree=np.tile(pairs, (trees, 1)), pairs=PAIRS,
                        n_samples=100, trees=[])


def interact_little(results: dict[str, FanovaResult]):
    (finding,) = [f for f in hyperparameter_findings(results)
                  if f.claim.startswith("Hyperparameters interact little")]
    return finding


def test_interact_little_needs_every_pair_small_and_all_pairs_below_the_largest_main():
    small = fanova_result([0.6, 0.2, 0.02], [0.05, 0.02, 0.01])
    strong_pair = fanova_result([0.6, 0.2, 0.02], [0.12, 0.01, 0.01])
    many_pairs = fanova_result([0.08, 0.05, 0.03], [0.06, 0.05, 0.04])  # each < 10 %, sum 15 %
    f = interact_little({"speech": small, "handwriting": strong_pair, "music": many_pairs})
    assert f.claim == ("Hyperparameters interact little (no pair above 10.0 %, all pairs "
                       "together less than the largest main effect)")
    assert f.verdict == "partly"
    assert f.by_task == "agrees on speech; disagrees on handwriting and music"
    assert ("speech — strongest pair learning_rate x hidden_size 5.0 %; all pairs together "
            "8.0 % vs largest main effect 60.0 %") in f.evidence
    assert interact_little({"music": many_pairs}).verdict == "disagrees"
    assert interact_little({"music": strong_pair}).verdict == "disagrees"
    assert interact_little({"music": small}).verdict == "agrees"
    # the thresholds are configuration: a 15 % bound lets the strong pair pass
    (loose,) = [f for f in hyperparameter_findings({"music": strong_pair},
                                                   interactions_little=0.15)
                if f.claim.startswith("Hyperparameters interact little")]
    assert loose.verdict == "agrees"


def test_interact_little_is_not_testable_with_one_hyperparameter():
    one = FanovaResult(space=SPACE[:1], main_per_tree=np.ones((4, 1)),
                       pair_per_tree=np.zeros((4, 0)), pairs=[], n_samples=100, trees=[])
    f = interact_little({"music": one})
    assert f.verdict == "not testable" and "fewer than two hyperparameters" in f.evidence


def finding(results: dict[str, FanovaResult], starts: str, **thresholds):
    (found,) = [f for f in hyperparameter_findings(results, **thresholds)
                if f.claim.startswith(starts)]
    return found


def per_tree(columns: list[list[float]]) -> FanovaResult:
    """A fANOVA whose trees give these main-effect fractions (one list per hyperparameter:
    learning_rate, hidden_size, one_minus_momentum), no interactions."""
    main = np.array(columns, dtype=float).T
    return FanovaResult(space=SPACE, main_per_tree=main,
                        pair_per_tree=np.zeros((len(main), 3)), pairs=PAIRS, n_samples=100,
                        trees=[])


def test_hidden_size_second_is_judged_tree_by_tree_against_its_strongest_rival():
    second = "Hidden size is the second most important"
    lr = [0.6, 0.6, 0.6, 0.6]
    behind = finding({"music": per_tree([lr, [0.1] * 4, [0.3] * 4])}, second)
    assert behind.verdict == "disagrees"  # momentum beats hidden size on every tree
    assert behind.evidence == "music — second: one_minus_momentum 30.0 % (hidden_size 10.0 %)"
    ahead = finding({"music": per_tree([lr, [0.3, 0.3, 0.3, 0.4], [0.1, 0.1, 0.1, 0.35]])},
                    second)
    assert ahead.verdict == "agrees"  # ahead on each tree (by 0.2, 0.2, 0.2, 0.05)
    assert ahead.evidence == "music — second: hidden_size 32.5 % (hidden_size 32.5 %)"
    tie = finding({"music": per_tree([lr, [0.3, 0.1, 0.3, 0.1], [0.1, 0.3, 0.1, 0.3]])},
                  second)
    assert tie.verdict == "inconclusive"
    assert tie.evidence.endswith(": a tie within the spread across trees")
    two = FanovaResult(space=(SPACE[0], SPACE[2]), main_per_tree=np.tile([0.6, 0.1], (4, 1)),
                       pair_per_tree=np.zeros((4, 1)), pairs=[(0, 1)], n_samples=100,
                       trees=[])
    unsearched = finding({"music": two}, second)
    assert unsearched.verdict == "not testable"
    assert unsearched.evidence == ("music — hidden_size not searched, or fewer than two "
                                   "hyperparameters")


def test_learning_rate_first_prints_every_main_effect_with_its_spread():
    first = finding({"music": per_tree([[0.5, 0.7, 0.5, 0.7], [0.2] * 4, [0.1] * 4])},
                    "Learning rate is the most important")
    assert first.verdict == "agrees"
    assert first.evidence == ("music — main effects: learning_rate 60.0 ± 10.0 %, "
                              "hidden_size 20.0 ± 0.0 %, one_minus_momentum 10.0 ± 0.0 %")
    tie = finding({"music": per_tree([[0.5, 0.1, 0.5, 0.1], [0.1, 0.5, 0.1, 0.5], [0.1] * 4])},
                  "Learning rate is the most important")
    assert tie.verdict == "inconclusive"
    assert tie.evidence.endswith(": a tie within the spread across trees")


def test_momentum_matters_little_below_five_percent_by_default():
    lr, hidden = [0.6] * 4, [0.2] * 4
    big = finding({"music": per_tree([lr, hidden, [0.3] * 4])}, "Momentum matters little")
    assert big.verdict == "disagrees"
    assert big.evidence == "music — momentum main effect 30.0 % ± 0.0 %"
    assert finding({"music": per_tree([lr, hidden, [0.04] * 4])},
                   "Momentum matters little").verdict == "agrees"
    assert finding({"music": per_tree([lr, hidden, [0.3] * 4])}, "Momentum matters little",
                   little=0.35).verdict == "agrees"


def test_each_task_is_one_line_of_evidence_and_no_task_says_so():
    lr, hidden = [0.6] * 4, [0.2] * 4
    two = finding({"speech": per_tree([lr, hidden, [0.3] * 4]),
                   "music": per_tree([lr, hidden, [0.01] * 4])}, "Momentum matters little")
    assert two.evidence == ("speech — momentum main effect 30.0 % ± 0.0 %<br>"
                            "music — momentum main effect 1.0 % ± 0.0 %")
    assert two.verdict == "partly"
    assert all(f.verdict == "not testable" and f.evidence == "no task with trials"
               for f in hyperparameter_findings({}))


def test_a_hyperparameter_not_searched_makes_its_claim_not_testable_saying_so():
    two = FanovaResult(space=(SPACE[0], SPACE[1]), main_per_tree=np.tile([0.6, 0.1], (4, 1)),
                       pair_per_tree=np.zeros((4, 1)), pairs=[(0, 1)], n_samples=100,
                       trees=[])
    noise = finding({"music": two}, "Input noise hurts")
    momentum = finding({"music": two}, "Momentum matters little")
    assert (noise.verdict, noise.evidence) == ("not testable",
                                               "music — input_noise not searched")
    assert (momentum.verdict, momentum.evidence) == ("not testable",
                                                     "music — momentum not searched")


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
