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


def test_a_plugin_task_that_fails_to_load_stops_the_worker_with_its_name(tmp_path):
    path = write_plugin(tmp_path, "from odyssey.tasks import register_task\n\n"
                        "def load(size=1):\n    raise OSError('corpus not found')\n\n"
                        "register_task('fragile', load)\n", "fragile.py")
    write_plugin(tmp_path / "cfg" / "task", "name: fragile\nsize: 3\n", "fragile.yaml")
    spec = SweepSpec.from_config(toy_config(tmp_path, f"plugins=[{path}]", "task=fragile"))
    with pytest.raises(SweepConfigError, match=f"task: task 'fragile' of plugin '{path}' failed "
                                               "to load with options {'size': 3}: OSError: "
                                               "corpus not found"):
        run_worker(spec)


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
        run = study.user_attrs[f"run/{trials[0].user_attrs['run_id']}"]  # provenance record
        assert run["config"]["plugins"] == [str(path)]


TOY_PLUGIN = """
from tests.toy import register

register()  # the toy task of tests/toy.py, as a plugin a worker process can load
"""


@pytest.mark.slow
def test_a_plugin_cell_beside_v_and_the_muts_runs_resumes_and_is_analysed(tmp_path):
    """Done-when of issue 15: variants=[V,MUT1,MUT2,MUT3,MyCell], MyCell from a plugin file:
    two workers in other processes (Hydra's joblib launcher) load the plugins from the
    config, a second run resumes the sweep, and the analysis (which loads no plugin)
    reports MyCell like any other cell."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.search.helpers import TOY_CONFIG

    write_plugin(tmp_path)
    write_plugin(tmp_path, TOY_PLUGIN, "toy_task.py")
    (tmp_path / "cfg" / "task").mkdir(parents=True)
    (tmp_path / "cfg" / "task" / "toy.yaml").write_text(TOY_CONFIG.format(sleep=0.0))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}  # the toy plugin imports tests.toy
    bin_dir = Path(sys.executable).parent
    names = ["V", "MUT1", "MUT2", "MUT3", "MyCell"]
    common = ["plugins=[my_cells.py,toy_task.py]", "hydra.searchpath=[file://cfg]", "task=toy",
              f"variants=[{','.join(names)}]", "train.max_epochs=2", "train.batch_size=4",
              "search=dropout", *SMALL, "sweep_name=t", f"results_dir={tmp_path / 'results'}"]

    def sweep(*args):
        r = subprocess.run([str(bin_dir / "odyssey-sweep"), *args, *common], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout + r.stderr

    first = sweep("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "worker=range(0,2)",
                  "trials_per_variant=1")
    assert "5/5 trials" in first
    assert list((tmp_path / "results" / "t" / "logs").glob("*/worker1/odyssey-sweep.log"))
    resumed = sweep("trials_per_variant=2")  # resume: one more trial per cell
    assert "10/10 trials finished" in resumed and "MyCell" in resumed
    cfg = toy_config(tmp_path, *common[3:], f"plugins=[{tmp_path / 'my_cells.py'}]",
                     "trials_per_variant=2")
    by_variant = studies(cfg)
    assert set(by_variant) == set(names)
    for v, study in by_variant.items():
        trials = study.get_trials()
        # two trials count per cell; when both workers reach for a study's last slot at
        # once, the loser records a claim_lost trial that never ran and does not count
        counted = [t for t in trials if t.user_attrs.get("fail_kind") != "claim_lost"]
        assert len(counted) == 2, v
        assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials), v
        assert all(t.user_attrs.get("fail_kind", "diverged") == "diverged" for t in counted), v
    mine = [t for t in by_variant["MyCell"].get_trials() if t.state == TrialState.COMPLETE]
    assert mine and mine[0].user_attrs["recurrent_parameter_count"] == \
        2 * (4 * mine[0].params["hidden_size"] + mine[0].params["hidden_size"] ** 2
             + mine[0].params["hidden_size"])
    r = subprocess.run([str(bin_dir / "odyssey-analyze"), "sweep_name=t",
                        f"results_dir={tmp_path / 'results'}", "progress=false",
                        "fanova.min_trials=1000"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)  # no PYTHONPATH, no plugins: none needed
    assert r.returncode == 0, r.stderr[-3000:]
    report = (tmp_path / "results" / "t" / "report.md").read_text()
    assert "| MyCell |" in report and "| MUT3 |" in report
    tests = (tmp_path / "results" / "t" / "tables" / "variant_tests.csv").read_text()
    assert all(v in tests for v in names)
