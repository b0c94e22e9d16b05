"""The verdicts no constructed sweep reaches: "partly" and "disagrees" on the variant claims,
the FGR claim (more parameters, never better) and "hyperparameters interact little", each
judged on hand-built test tables and fANOVA results whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from odyssey.analysis import DEFAULT_SPACE, FanovaResult, hyperparameter_findings, variant_findings
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
