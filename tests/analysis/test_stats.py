"""Welch's tests, the best-fraction subset and the multiple-comparison corrections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from odyssey.analysis import best_fraction, correct, variant_tests
from odyssey.analysis.stats import BASELINE, BETTER, NO_SPREAD, SAME, TOO_FEW, WORSE


def _frame(groups: dict[str, np.ndarray], task: str = "speech") -> pd.DataFrame:
    rows = []
    for variant, values in groups.items():
        for i, v in enumerate(values):
            rows.append({"task": task, "variant": variant, "test_metric": v,
                         "valid_metric": v + 0.001 * i, "parameter_count": 100 * len(variant)})
    return pd.DataFrame(rows)


def test_corrections_on_known_pvalues():
    p = np.array([0.01, 0.04, 0.03])
    np.testing.assert_allclose(correct(p, "bonferroni"), [0.03, 0.12, 0.09])
    np.testing.assert_allclose(correct(p, "holm"), [0.03, 0.06, 0.06])
    assert correct(np.array([]), "holm").size == 0
    with pytest.raises(ValueError, match="holm"):
        correct(p, "sidak-ish")


def test_best_fraction_keeps_ceil_of_each_group():
    frame = _frame({"V": np.arange(25.0), "NP": np.arange(3.0)})
    best = best_fraction(frame, 0.1, "valid_metric")
    assert (best["variant"] == "V").sum() == 3 and (best["variant"] == "NP").sum() == 1
    assert best.loc[best["variant"] == "V", "test_metric"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError):
        best_fraction(frame, 0.0, "valid_metric")


def test_welch_verdicts_on_constructed_data():
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 1.0, 60)
    groups = {"V": base, "NFG": rng.normal(2.0, 3.0, 60), "CIFG": rng.normal(0.0, 1.0, 60),
              "FGR": rng.normal(-1.5, 0.5, 60), "NIG": np.array([1.0])}
    # fraction 1: the "best" subset (Welch's test) holds every trial
    table = variant_tests(_frame(groups), correction="holm", fraction=1.0)
    best = table[table["subset"] == "best"].set_index("variant")
    assert (best["test"] == "welch").all()
    assert best.loc["V", "verdict"] == BASELINE
    assert best.loc["NFG", "verdict"] == WORSE
    assert best.loc["FGR", "verdict"] == BETTER
    assert best.loc["CIFG", "verdict"] == SAME
    assert best.loc["NIG", "verdict"] == TOO_FEW and np.isnan(best.loc["NIG", "p"])
    # raw p is scipy's Welch test; Holm over the three variants that could be tested
    raw = {v: stats.ttest_ind(groups[v], base, equal_var=False).pvalue
           for v in ("NFG", "CIFG", "FGR")}
    for v, p in raw.items():
        assert best.loc[v, "p"] == pytest.approx(p)
    np.testing.assert_allclose(best.loc[list(raw), "p_adjusted"],
                               correct(np.array(list(raw.values())), "holm"))
    assert best.loc["NFG", "mean_parameters"] == 300
    assert best.loc["NFG", "median"] == pytest.approx(np.median(groups["NFG"]))
    bonf = variant_tests(_frame(groups), fraction=1.0)  # Bonferroni is the default
    b = bonf[bonf["subset"] == "best"].set_index("variant")
    assert b.loc["CIFG", "p_adjusted"] == pytest.approx(min(1.0, 3 * raw["CIFG"]))
    # all trials: Mann-Whitney U, scipy's two-sided p
    all_ = table[table["subset"] == "all"].set_index("variant")
    assert (all_["test"] == "mann-whitney").all()
    assert all_.loc["NFG", "p"] == pytest.approx(
        stats.mannwhitneyu(groups["NFG"], base, alternative="two-sided").pvalue)
    assert all_.loc["NFG", "verdict"] == WORSE and all_.loc["FGR", "verdict"] == BETTER
    # best 10 %: 6 trials per full group, NIG keeps its single trial -> too few
    tenth = variant_tests(_frame(groups))
    tenth = tenth[tenth["subset"] == "best"].set_index("variant")
    assert tenth.loc["V", "n"] == 6 and tenth.loc["NIG", "verdict"] == TOO_FEW


def test_a_few_diverged_trials_cannot_swamp_the_all_trials_rank_test():
    rng = np.random.default_rng(1)
    worse = rng.normal(16.0, 0.5, 40)
    worse[:3] = [5_000.0, 9_000.0, 30_000.0]          # diverged trials
    table = variant_tests(_frame({"V": rng.normal(15.0, 0.5, 40), "NOAF": worse}))
    row = table.set_index(["subset", "variant"]).loc[("all", "NOAF")]
    assert row["verdict"] == WORSE
    # Welch's test on the same values would not see it
    assert stats.ttest_ind(worse, rng.normal(15.0, 0.5, 40), equal_var=False).pvalue > 0.05


def test_no_spread_and_missing_baseline():
    table = variant_tests(_frame({"V": np.ones(5), "NP": np.ones(5)}))
    assert table.set_index(["subset", "variant"]).loc[("all", "NP"), "verdict"] == NO_SPREAD
    table = variant_tests(_frame({"NP": np.arange(5.0), "NFG": np.arange(5.0)}))
    assert set(table["verdict"]) == {TOO_FEW}
    with pytest.raises(ValueError, match="column"):
        variant_tests(pd.DataFrame({"task": [], "variant": []}))


def test_other_cells_do_not_enlarge_the_paper_variants_family():
    """Bonferroni over the paper's LSTM variants only: adding GRU, RNN or MUTs to a sweep
    leaves NFG's adjusted p-value as it is; the other cells form their own family."""
    rng = np.random.default_rng(0)

    def group(variant, mean, n=20):
        return pd.DataFrame({"task": "music", "variant": variant,
                             "test_metric": rng.normal(mean, 0.1, n),
                             "valid_metric": rng.normal(mean, 0.1, n)})

    paper = [group("V", 1.0), group("NFG", 1.08), group("CIFG", 1.0)]
    extra = [group("GRU", 1.0), group("RNN", 1.3), group("MUT1", 1.0), group("MUT2", 1.0)]
    alone = variant_tests(pd.concat(paper), fraction=1.0).set_index(["subset", "variant"])
    mixed = variant_tests(pd.concat(paper + extra), fraction=1.0).set_index(
        ["subset", "variant"])
    assert mixed.loc[("best", "NFG"), "p_adjusted"] == alone.loc[("best", "NFG"), "p_adjusted"]
    p = mixed.loc[("best", "RNN"), "p"]
    assert mixed.loc[("best", "RNN"), "p_adjusted"] == pytest.approx(min(1.0, 4 * p))


def test_every_column_of_the_table_against_numpy_and_scipy():
    """Each row's statistics recomputed independently: counts, mean, median, sample std,
    min, max, parameters, the test's statistic and two-sided p-value, Bonferroni over the
    tested paper variants of each (task, subset), the verdict; tasks in sorted order."""
    rng = np.random.default_rng(3)
    frames = []
    for task, shift in (("speech", 0.0), ("music", 0.5)):
        groups = {"V": rng.normal(1.0, 0.1, 20), "NP": rng.normal(1.0 + shift, 0.1, 20),
                  "NFG": rng.normal(1.3, 0.1, 20), "CIFG": rng.normal(1.0, 0.1, 1)}
        frames.append(_frame(groups, task=task))
    frame = pd.concat(frames, ignore_index=True)
    frame["parameter_count"] = frame["variant"].map({"V": 400, "NP": 380, "NFG": 300,
                                                     "CIFG": 330})
    table = variant_tests(frame, fraction=0.5)
    assert list(table.columns) == ["task", "subset", "variant", "n", "mean", "median", "std",
                                   "min", "max", "mean_parameters", "test", "difference", "t",
                                   "p", "p_adjusted", "verdict"]
    assert list(dict.fromkeys(table["task"])) == ["music", "speech"]  # sorted within a subset
    for (task, subset), rows in table.groupby(["task", "subset"]):
        data = frame[frame["task"] == task]
        if subset == "best":
            data = best_fraction(data, 0.5, "valid_metric")
        values = {v: g["test_metric"].to_numpy() for v, g in data.groupby("variant")}
        tested = 0
        for row in rows.itertuples():
            x, base = values[row.variant], values["V"]
            assert row.n == x.size and row.mean == pytest.approx(x.mean())
            assert row.median == pytest.approx(np.median(x))
            assert row.min == x.min() and row.max == x.max()
            assert (np.isnan(row.std) if x.size == 1 else row.std == pytest.approx(x.std(ddof=1)))
            assert row.mean_parameters == {"V": 400, "NP": 380, "NFG": 300,
                                           "CIFG": 330}[row.variant]
            assert row.test == ("welch" if subset == "best" else "mann-whitney")
            if row.variant == "V":
                assert row.verdict == BASELINE and np.isnan(row.p)
                continue
            if x.size < 2:
                assert row.verdict == TOO_FEW and np.isnan(row.p) and np.isnan(row.t)
                continue
            tested += 1
            if subset == "best":
                ref = stats.ttest_ind(x, base, equal_var=False)
                assert row.difference == pytest.approx(x.mean() - base.mean())
            else:
                ref = stats.mannwhitneyu(x, base, alternative="two-sided")
                assert row.difference == pytest.approx(np.median(x) - np.median(base))
            assert (row.t, row.p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
        assert tested == 2  # NP and NFG: CIFG's single trial is too few
        for row in rows[rows["variant"].isin(["NP", "NFG"])].itertuples():
            assert row.p_adjusted == pytest.approx(min(1.0, 2 * row.p))
            expected = SAME if row.p_adjusted >= 0.05 else (WORSE if row.difference > 0
                                                             else BETTER)
            assert row.verdict == expected
    assert table.attrs == {"correction": "bonferroni", "alpha": 0.05, "fraction": 0.5,
                           "baseline": "V", "metric": "test_metric", "select_by": "valid_metric"}
    verdicts = table.set_index(["task", "subset", "variant"])["verdict"]
    assert verdicts[("music", "best", "NP")] == WORSE and verdicts[("speech", "best", "NP")] == SAME
    assert verdicts[("music", "all", "NFG")] == WORSE


def test_two_trials_are_enough_to_test_and_one_p_value_is_left_as_it_is():
    table = variant_tests(_frame({"V": np.array([1.0, 1.1]), "NP": np.array([2.0, 2.2])}),
                          fraction=1.0)
    row = table[(table["subset"] == "best") & (table["variant"] == "NP")].iloc[0]
    assert row["verdict"] != TOO_FEW and row["p_adjusted"] == pytest.approx(row["p"])
    np.testing.assert_allclose(correct(np.array([0.02])), [0.02])
    np.testing.assert_allclose(correct([0.01, 0.04]), [0.02, 0.08])  # a list, Bonferroni
    with pytest.raises(ValueError, match="unknown correction 'sidak'; expected one of holm, "
                                         "bonferroni"):
        correct([0.1], "sidak")
    with pytest.raises(ValueError, match="unknown correction 'sidak'; expected one of holm, "
                                         "bonferroni"):
        variant_tests(_frame({"V": np.ones(3)}), correction="sidak")
    for fraction in (0, 1.5):
        with pytest.raises(ValueError, match=rf"must lie in \(0, 1\], got {fraction}"):
            best_fraction(_frame({"V": np.ones(3)}), fraction, "valid_metric")
    with pytest.raises(ValueError, match="Welch's test needs min_trials >= 2, got 1"):
        variant_tests(_frame({"V": np.ones(3)}), min_trials=1)
