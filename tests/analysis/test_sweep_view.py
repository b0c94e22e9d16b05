"""Trials per state, failures, time and best curves per cell of a sweep."""

from __future__ import annotations

import pytest

from odyssey.analysis import load_curves, load_sweep
from odyssey.analysis.sweep_view import (
    best_curves,
    failures,
    time_figure,
    time_per_cell,
    time_scatter,
    trial_states,
)


def test_states_failures_and_time_per_cell(sweep_factory):
    sweep_factory("sv", variants=["V", "NFG"], n_trials=4, n_failed=2)
    frame = load_sweep("sv", sweep_factory.results)
    states = trial_states(frame)
    assert states.loc[("music", "V"), "COMPLETE"] == 4
    assert states.loc[("music", "NFG"), "FAIL"] == 2
    assert (states["total"] == 6).all()
    fails = failures(frame)
    assert fails["trials"].tolist() == [2, 2]
    assert set(fails["fail_reason"]) == {"loss became nan at epoch 3"}
    times = time_per_cell(frame)
    v = frame[frame["variant"] == "V"]
    assert times.loc[("music", "V"), "train_seconds"] == v["train_seconds"].sum()
    assert len(time_figure(frame).axes) == 1


def test_best_curves_draws_the_k_best_trials_of_each_variant(sweep_factory):
    sweep_factory("sv", variants=["V", "NFG", "CIFG"], n_trials=5)
    frame = load_sweep("sv", sweep_factory.results)
    curves = load_curves("sv", sweep_factory.results)
    fig = best_curves(frame, curves, "music", k=2)
    drawn = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in drawn] == ["V", "NFG", "CIFG"]
    assert all(len(ax.lines) == 2 for ax in drawn)
    best = frame[(frame["variant"] == "V") & (frame["state"] == "COMPLETE")].nsmallest(
        2, "valid_metric")["trial"].tolist()
    assert [line.get_label() for line in drawn[0].lines] == [f"trial {t}" for t in best]


def test_time_scatter_has_one_series_per_variant_and_names_a_missing_column(sweep_factory):
    sweep_factory("sv", variants=["V", "NFG"], n_trials=4)
    frame = load_sweep("sv", sweep_factory.results)
    fig = time_scatter(frame, "music")
    assert len(fig.axes[0].collections) == 2
    with pytest.raises(KeyError, match="'depth'"):
        time_scatter(frame, "music", x="depth")
