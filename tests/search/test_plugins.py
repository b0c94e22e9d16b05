"""Plugins and variational dropout in the sweep: loaded and checked with the config, before
any training; a sweep over a plugin cell with dropout runs like any other."""

from __future__ import annotations

import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from odyssey.search.spec import SweepConfigError, SweepSpec
from odyssey.search.sweep import run_worker
from tests.plugin_files import MY_CELL, write_plugin
from tests.search.helpers import studies, toy_config

SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=8"]
DROPOUT = "+search.params.dropout={type:float,low:0.0,high:0.5}"


def test_plugins_are_loaded_and_resolved_with_the_config(tmp_path, monkeypatch):
    write_plugin(tmp_path / "lab")
    monkeypatch.chdir(tmp_path)
    spec = SweepSpec.from_config(toy_config(tmp_path, "plugins=[lab/my_cells.py]",
                                            "variants=[V,mycell]"))
    assert spec.variants == ("V", "MyCell")
    assert spec.plugins == (str(tmp_path / "lab" / "my_cells.py"),)
    assert spec.config["plugins"] == list(spec.plugins)  # what workers elsewhere load


def test_a_plugin_cell_is_unknown_without_its_plugin(tmp_path):
    with pytest.raises(SweepConfigError, match="variants: unknown variant 'MyCell'.*Your own "
                                               "cell"):
        SweepSpec.from_config(toy_config(tmp_path, "variants=[V,MyCell]"))


@pytest.mark.parametrize(("source", "message"), [
    ("raise RuntimeError('boom')\n", r"failed to import: RuntimeError: boom"),
    (MY_CELL.replace('"MyCell"', '"NP"'), "cell name 'NP' is already taken by a built-in"),
])
def test_a_broken_plugin_is_a_config_error(tmp_path, source, message):
    path = write_plugin(tmp_path, source, "broken.py")
    with pytest.raises(SweepConfigError, match=f"plugins: plugin '{path}'.*{message}"):
        SweepSpec.from_config(toy_config(tmp_path, f"plugins=[{path}]"))
    with pytest.raises(SweepConfigError, match="plugins must be a list"):
        SweepSpec.from_config(toy_config(tmp_path, "plugins=[1]"))


def test_what_a_cell_cannot_do_is_refused_before_training(tmp_path):
    with pytest.raises(SweepConfigError, match="train.impl=cpp: no fast kernel for MUT1"):
        SweepSpec.from_config(toy_config(tmp_path, "variants=[V,MUT1]", "train.impl=cpp"))
    with pytest.raises(SweepConfigError, match="train.impl=cpp cannot apply variational"):
        SweepSpec.from_config(toy_config(tmp_path, "train.impl=cpp", DROPOUT))
    deaf = MY_CELL.replace('drop.x("f", x)', "x").replace('drop.h("f", h)', "h") \
        .replace('drop.x("h", x)', "x").replace('drop.h("h", h)', "h")
    path = write_plugin(tmp_path, deaf)
    SweepSpec.from_config(toy_config(tmp_path, f"plugins=[{path}]", "variants=[V,MyCell]"))
    with pytest.raises(SweepConfigError, match="search.params.dropout: cell MyCell .* never "
                                               "applies the dropout masks"):
        SweepSpec.from_config(toy_config(tmp_path, f"plugins=[{path}]",
                                         "variants=[V,MyCell]", DROPOUT))


@pytest.mark.parametrize(("override", "message"), [
    ("search.params.dropout.high=1.0", r"dropout probability must lie in \[0, 1\)"),
    ("search.params.dropout.low=-0.1", r"dropout probability must lie in \[0, 1\)"),
    ("+search.params.dropot={type:float,low:0,high:1}", r"unknown \['dropot'\]"),
])
def test_dropout_ranges_are_checked(tmp_path, override, message):
    with pytest.raises(SweepConfigError, match=message):
        SweepSpec.from_config(toy_config(tmp_path, "search=dropout", override))


def test_a_sweep_searches_dropout_over_a_plugin_cell(tmp_path):
    path = write_plugin(tmp_path)
    cfg = toy_config(tmp_path, *SMALL, f"plugins=[{path}]", "variants=[V,MyCell,GRU]",
                     "search=dropout", "trials_per_variant=2")
    spec = SweepSpec.from_config(cfg)
    assert spec.distributions["dropout"] == FloatDistribution(0.0, 0.5)
    assert run_worker(spec).complete == 6
    for v, study in studies(cfg).items():
        trials = study.get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, v
        assert all(0 <= t.params["dropout"] <= 0.5 for t in trials)
        assert trials[0].user_attrs["config"]["plugins"] == [str(path)]
