"""The study planner: plan=true prints the cost from a cached calibration; a sweep records
the estimate at its start and its final table shows estimate against actual."""

from __future__ import annotations

import json

import numpy as np
import pytest

from odyssey.search import app, plan
from odyssey.search.spec import SweepSpec
from odyssey.search.sweep import final_report, run_worker
from tests.search.helpers import studies, toy_config

SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=12",
         "variants=[V,NP]", "trials_per_variant=2"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_plan_prints_trials_time_and_memory_and_trains_nothing(tmp_path, capsys):
    cfg = toy_config(tmp_path, *SMALL, "plan=true", "plan_workers=2")
    app.sweep(cfg)
    out = capsys.readouterr().out
    assert "plan for sweep t (toy): 2.0 epochs per trial (train.max_epochs (an upper bound))" \
        in out
    assert "\nV             2 " in out and "\nNP            2 " in out
    assert "CPU-hours; wall time on 2 worker(s)" in out and "MB (peak while calibrating)" in out
    assert not (tmp_path / "results" / "t").exists()  # no store, no config.yaml, no trial
    cache = json.loads(plan.cache_file().read_text())
    assert len(cache) == 6  # two cells x low, middle, high hidden size
    # the search space's hidden size is log-uniform: its middle is the geometric mean
    assert sorted(e["hidden"] for e in cache.values()) == [4, 4, 7, 7, 12, 12]


def test_a_second_plan_reads_the_cache_and_a_code_change_calibrates_anew(tmp_path, capsys,
                                                                         monkeypatch):
    cfg = toy_config(tmp_path, *SMALL, "plan=true")
    app.sweep(cfg)
    first = capsys.readouterr().out

    def no_training(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(plan, "train", no_training)
    app.sweep(cfg)
    assert capsys.readouterr().out.split("\n")[:4] == first.split("\n")[:4]
    spec = SweepSpec.from_config(cfg)
    key = plan.calibration_key(spec, "V", 4)
    assert key != plan.calibration_key(spec, "V", 8) != plan.calibration_key(spec, "NP", 8)
    monkeypatch.setattr(plan, "code_version", lambda: "edited")
    assert plan.calibration_key(spec, "V", 4) != key
    with pytest.raises(AssertionError, match="calibrated again"):
        app.sweep(cfg)


def test_the_mean_over_the_space_is_exact_for_a_quadratic_cost(tmp_path):
    spec = SweepSpec.from_config(toy_config(tmp_path, *SMALL))
    rows = [{"hidden": h, "wall_s": 0.5 + 0.01 * h * h} for h in plan.hidden_sizes(spec)]
    grid = np.arange(4, 13)
    weights = 1.0 / grid  # log-uniform: Optuna draws H with probability ~ 1/H
    assert plan.mean_over_space(spec, rows, "wall_s") == pytest.approx(
        float(np.sum((0.5 + 0.01 * grid * grid) * weights) / weights.sum()))


def test_a_sweep_records_the_estimate_and_its_table_shows_it_against_the_actual(tmp_path,
                                                                              capsys):
    cfg = toy_config(tmp_path, *SMALL, "plan=true")
    app.sweep(cfg)  # calibrates; the sweep then finds the calibration cached
    capsys.readouterr()
    spec = SweepSpec.from_config(toy_config(tmp_path, *SMALL))
    run_worker(spec)
    recorded = json.loads((spec.sweep_dir / plan.PLAN_FILE).read_text())
    assert recorded["trial_seconds"] > 0 and recorded["epochs_per_trial"] == 2
    text = final_report(spec)
    assert "time: estimate " in text and "on the 1 worker(s) that ran" in text
    assert "actual " in text and " %)" in text
    # a plan of a begun sweep takes its epochs per trial from the finished trials
    app.sweep(cfg)
    assert "2.0 epochs per trial (mean of 4 finished trials)" in capsys.readouterr().out
    assert len(studies(cfg)["V"].get_trials()) == 2  # the plan trained nothing


def test_a_sweep_without_a_cached_calibration_records_nothing(tmp_path):
    spec = SweepSpec.from_config(toy_config(tmp_path, *SMALL))
    run_worker(spec)
    assert not (spec.sweep_dir / plan.PLAN_FILE).exists()
    assert "time: estimate" not in final_report(spec)


@pytest.mark.parametrize("override, message", [
    ("plan_workers=0", "plan_workers must be an integer >= 1"),
    ("plan_epochs=-1", "plan_epochs must be null or a number > 0"),
])
def test_bad_plan_settings_name_the_key(tmp_path, capsys, override, message):
    with pytest.raises(SystemExit) as e:
        app.sweep(toy_config(tmp_path, *SMALL, "plan=true", override))
    assert e.value.code == 2 and message in capsys.readouterr().err
