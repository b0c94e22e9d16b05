"""The paper's hyperparameter claims judged on fANOVAs of constructed responses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from odyssey.analysis import DEFAULT_SPACE, Skipped, fanova, hyperparameter_findings


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
