"""Exact fANOVA: known decompositions, marginals, agreement with Optuna's evaluator."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.importance import FanovaImportanceEvaluator, get_param_importances

from odyssey.analysis import Hyperparameter, fanova

from .conftest import DISTRIBUTIONS

BOX = [Hyperparameter(f"x{i}", -1.0, 1.0) for i in (1, 2, 3)]


def _uniform(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 3))


def test_fractions_match_analytic_decomposition():
    a, b, c = 1.0, 2.0, 1.5
    X = _uniform(3000)
    y = a * X[:, 0] + b * X[:, 1] ** 2 + c * X[:, 0] * X[:, 2]
    # On U[-1, 1]: Var(a x1) = a²/3, Var(b x2²) = b² 4/45, Var(c x1 x3) = c²/9 (pure pair).
    parts = np.array([a**2 / 3, b**2 * 4 / 45, c**2 / 9])
    want = parts / parts.sum()
    res = fanova(X, y, BOX, n_trees=30, seed=0)
    main = res.main_effects()["mean"]
    pairs = res.interactions()["mean"]
    assert main["x1"] == pytest.approx(want[0], abs=0.03)
    assert main["x2"] == pytest.approx(want[1], abs=0.03)
    assert main["x3"] == pytest.approx(0.0, abs=0.03)
    assert pairs[("x1", "x3")] == pytest.approx(want[2], abs=0.03)
    assert pairs[("x1", "x2")] == pytest.approx(0.0, abs=0.03)
    assert pairs[("x2", "x3")] == pytest.approx(0.0, abs=0.03)
    f = res.fractions()
    assert f["mean"].sum() == pytest.approx(1.0)
    assert f.loc[f["kind"] == "rest", "mean"].item() == pytest.approx(0.0, abs=0.03)


def test_pure_interaction_has_no_main_effects():
    X = _uniform(2000, seed=1)
    y = np.sign(X[:, 0]) * np.sign(X[:, 1])
    res = fanova(X, y, BOX, n_trees=10, seed=0)
    assert res.main_effects()["mean"].max() < 0.02
    assert res.interactions()["mean"][("x1", "x2")] > 0.95


def test_marginal_curve_is_the_averaged_function():
    X = _uniform(3000, seed=2)
    y = 2.0 * X[:, 0] + X[:, 1] ** 2
    res = fanova(X, y, BOX, n_trees=30, seed=0)
    m = res.marginal("x1", 21)
    # a_1(x1) = 2 x1 + E[x2²] = 2 x1 + 1/3
    inner = m.iloc[2:-2]
    np.testing.assert_allclose(inner["mean"], 2 * inner["value"] + 1 / 3, atol=0.1)
    assert (m["std"] >= 0).all()
    xa, xb, mean, std = res.pair_marginal("x1", "x2", 11)
    assert mean.shape == (11, 11) and std.shape == (11, 11)
    # the joint marginal averaged over x2 is the marginal of x1
    np.testing.assert_allclose(mean[2:-2].mean(1), 2 * xa[2:-2] + 1 / 3, atol=0.15)


def test_log_scale_and_bounds():
    space = [Hyperparameter("lr", 1e-6, 1e-2, log=True), Hyperparameter("n", 0.0, 1.0)]
    rng = np.random.default_rng(3)
    X = np.column_stack([10 ** rng.uniform(-6, -2, 800), rng.uniform(0, 1, 800)])
    y = np.log10(X[:, 0])  # linear in the search scale only
    res = fanova(pd.DataFrame(X, columns=["lr", "n"]), y, space, n_trees=10)
    assert res.main_effects()["mean"]["lr"] > 0.97
    m = res.marginal("lr", 5)
    assert m["value"].iloc[0] == pytest.approx(1e-6) and m["value"].iloc[-1] == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="outside its search bounds"):
        fanova(X * 10, y, space, n_trees=2)
    with pytest.raises(ValueError, match="columns"):
        fanova(pd.DataFrame(X, columns=["a", "b"]), y, space, n_trees=2)
    with pytest.raises(ValueError, match="no variance"):
        fanova(X, np.ones(len(X)), space, n_trees=2)


def test_main_effect_ranking_agrees_with_optuna():
    rng = np.random.default_rng(4)
    study = optuna.create_study(direction="minimize")
    rows, ys = [], []
    for _ in range(250):
        p = {"hidden_size": int(round(10 ** rng.uniform(np.log10(20), np.log10(200)))),
             "learning_rate": float(10 ** rng.uniform(-6, -2)),
             "one_minus_momentum": float(10 ** rng.uniform(-2, 0)),
             "input_noise": float(rng.uniform(0, 1))}
        y = (1.0 * (np.log10(p["learning_rate"]) + 4) ** 2
             - 1.2 * np.log10(p["hidden_size"]) + 0.5 * p["input_noise"]
             + 0.05 * np.log10(p["one_minus_momentum"]) + rng.normal(0, 0.05))
        study.add_trial(optuna.trial.create_trial(params=p, distributions=DISTRIBUTIONS,
                                                  value=float(y)))
        rows.append(p)
        ys.append(y)
    theirs = list(get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0)))
    from odyssey.analysis import DEFAULT_SPACE
    ours = fanova(pd.DataFrame(rows), ys, DEFAULT_SPACE, n_trees=16, seed=0)
    assert list(ours.main_effects().index) == theirs
    assert theirs[0] == "learning_rate"


def test_one_tree_matches_brute_force_integration():
    """The per-tree decomposition equals integrating that tree's predictions on a fine grid."""
    from sklearn.ensemble import RandomForestRegressor
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, size=(60, 2))
    y = X[:, 0] + X[:, 0] * X[:, 1] + rng.normal(0, 0.1, 60)
    space = BOX[:2]
    res = fanova(X, y, space, n_trees=1, seed=7)
    tree = RandomForestRegressor(n_estimators=1, random_state=7, min_samples_leaf=1,
                                 max_features=1.0).fit(X, y)  # the same tree
    g = (np.arange(800) + 0.5) / 800 * 2 - 1  # cell midpoints of a fine grid
    f = tree.predict(np.column_stack([np.repeat(g, g.size), np.tile(g, g.size)]))
    f = f.reshape(g.size, g.size)
    total = f.var()
    v1, v2 = f.mean(1).var(), f.mean(0).var()
    assert res.main_per_tree[0] == pytest.approx([v1 / total, v2 / total], abs=5e-3)
    assert res.pair_per_tree[0, 0] == pytest.approx((total - v1 - v2) / total, abs=5e-3)
    m = res.marginal("x1", 9)
    np.testing.assert_allclose(m["std"], 0.0)  # one tree: no spread


def test_cap_response_lowers_only_far_out_values():
    from odyssey.analysis import cap_response
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1000.0])
    capped, bound, n = cap_response(y, 3.0)
    q1, q3 = np.percentile(y, [25, 75])
    assert bound == pytest.approx(q3 + 3 * (q3 - q1)) and n == 1
    assert capped[-1] == pytest.approx(bound) and (capped[:-1] == y[:-1]).all()
    same, none, zero = cap_response(y, None)
    assert none is None and zero == 0 and (same == y).all()
    with pytest.raises(ValueError, match="cap_iqr"):
        cap_response(y, -1.0)
