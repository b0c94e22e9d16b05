"""Sweeps of the other recurrent models: deep vs wide (layers, parameter budget) and missing
data with GRU-D and the clockwork RNN, end to end on the toy task."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from odyssey.analysis.load import load_sweep, space_of
from odyssey.cells import parameter_count
from odyssey.networks import hidden_size_for_budget
from odyssey.search.spec import SweepConfigError, SweepSpec
from odyssey.search.sweep import run_worker
from tests.search.helpers import studies, toy_config


def test_deep_vs_wide_searches_layers_at_a_parameter_budget(tmp_path):
    cfg = toy_config(tmp_path, "experiment=deep_vs_wide", "variants=[V,GRU]",
                     "trials_per_variant=3", "train.max_epochs=1", "train.batch_size=8",
                     "search.params.parameter_budget.low=300",
                     "search.params.parameter_budget.high=3000")
    spec = SweepSpec.from_config(cfg)
    assert set(spec.distributions) >= {"parameter_budget", "layers"}
    assert "hidden_size" not in spec.distributions
    report = run_worker(spec)
    assert report.complete == 6
    for variant, study in studies(cfg).items():
        trials = study.get_trials(states=(TrialState.COMPLETE,))
        assert len(trials) == 3
        for t in trials:
            h = hidden_size_for_budget(t.params["parameter_budget"], variant, 4, 3,
                                       bidirectional=False, layers=t.params["layers"])
            assert t.user_attrs["hidden_size"] == h
            assert t.user_attrs["layers"] == t.params["layers"]
            assert t.user_attrs["parameter_count"] <= t.params["parameter_budget"] or h == 1
    frame = load_sweep("t", tmp_path / "results")
    names = [hp.name for hp in space_of(frame)]
    assert "layers" in names and "parameter_budget" in names  # what fANOVA integrates over
    assert frame["hidden_size"].notna().all()


def test_missing_data_sweep_with_grud_and_clockwork(tmp_path):
    cfg = toy_config(tmp_path, "+task.missing_rate=0.3", "+task.fill=last",
                     "variants=[V,GRUD,CW]", "trials_per_variant=2", "train.max_epochs=1",
                     "search.params.hidden_size.low=4", "search.params.hidden_size.high=8")
    report = run_worker(SweepSpec.from_config(cfg))
    assert report.complete == 6
    for study in studies(cfg).values():
        assert study.user_attrs["task_setting"] == "missing 30 % per value, fill last"
    frame = load_sweep("t", tmp_path / "results")
    assert frame.attrs["task_settings"] == {"toy": "missing 30 % per value, fill last"}


def test_cells_without_a_kernel_are_refused_with_impl_cpp(tmp_path):
    cfg = toy_config(tmp_path, "variants=[V,CW,GRUD]", "train.impl=cpp")
    with pytest.raises(SweepConfigError, match="no fast kernel for CW, GRUD"):
        SweepSpec.from_config(cfg)
    bad = toy_config(tmp_path, "+train.cell_options.CW.blocks=2")
    with pytest.raises(SweepConfigError, match="train.cell_options.CW"):
        SweepSpec.from_config(bad)


def test_a_cell_option_is_searched_like_any_hyperparameter(tmp_path):
    cfg = toy_config(tmp_path, "variants=[CW,V]", "trials_per_variant=2", "train.max_epochs=1",
                     "search.params.hidden_size.low=4", "search.params.hidden_size.high=8",
                     "+search.params.CW.modules={type:int,low:1,high:6}")
    spec = SweepSpec.from_config(cfg)
    assert "CW.modules" in spec.distributions
    assert run_worker(spec).complete == 4
    for t in studies(cfg)["CW"].get_trials(states=(TrialState.COMPLETE,)):
        h, g = t.params["hidden_size"], t.params["CW.modules"]
        expected = parameter_count("CW", 4, h, cell_options={"modules": g})
        assert t.user_attrs["recurrent_parameter_count"] == expected
    names = [hp.name for hp in space_of(load_sweep("t", tmp_path / "results"))]
    assert "CW.modules" in names
    bad = toy_config(tmp_path, "+search.params.CW.blocks={type:int,low:1,high:6}")
    with pytest.raises(SweepConfigError, match="search.params.CW.blocks: cell CW: unknown"):
        SweepSpec.from_config(bad)
    bad = toy_config(tmp_path, "+search.params.GRU.modules={type:int,low:1,high:6}")
    with pytest.raises(SweepConfigError, match="cell GRU: unknown cell option"):
        SweepSpec.from_config(bad)
