"""What a real sweep worker writes is what the analysis reads: a tiny toy sweep (two cells,
three trials each, one epoch, one trial replaced as stale) run by run_worker, then loaded by
odyssey.analysis and compared, trial by trial, with the store and the worker's report."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from odyssey.analysis import (
    complete,
    load_curves,
    load_runs,
    load_sweep,
    variant_findings,
    variant_tests,
)
from odyssey.search.liveness import WorkerId
from odyssey.search.spec import SweepSpec
from odyssey.search.sweep import run_worker
from tests.search.helpers import studies, toy_config
from tests.toy import ToyTask

OVERRIDES = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=8",
             "variants=[V,NP]", "trials_per_variant=3", "train.max_epochs=1"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep's config, the worker's report and the trials as the store holds them."""
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = toy_config(tmp, *OVERRIDES)
    spec = SweepSpec.from_config(cfg)
    with pytest.MonkeyPatch.context() as mp:  # chance level (3 keys at p = 1/2): `untrained`
        mp.setattr(ToyTask, "_baseline", lambda self, split: 3 * math.log(2))
        run_worker(spec, max_trials=0)  # the studies, empty
        gone = subprocess.Popen(["true"])
        gone.wait()
        orphan = studies(cfg)["NP"].ask()  # a dead worker's trial: the worker replaces it
        orphan.set_user_attr("worker", WorkerId.current().as_dict() | {"pid": gone.pid,
                                                                         "start_ticks": None})
        report = run_worker(spec)
    stored = {(v, t.number): t for v, study in studies(cfg).items() for t in study.get_trials()}
    return cfg, spec, report, stored


def test_the_trial_table_holds_every_stored_trial_with_its_values(swept):
    cfg, spec, report, stored = swept
    assert (report.trials_run, report.complete, report.stale_replaced) == (6, 6, 1)
    frame = load_sweep(spec.sweep_name, spec.results_dir)
    assert len(frame) == len(stored) == 7
    assert {"sweep", "task", "variant", "study", "trial", "state", "learning_rate",
            "hidden_size", "one_minus_momentum", "input_noise", "momentum", "value",
            "valid_metric", "test_metric", "best_epoch", "epochs_run", "parameter_count",
            "recurrent_parameter_count", "train_seconds", "duration_seconds", "seed",
            "batch_size", "fail_kind", "fail_reason", "git_commit", "run_id", "untrained",
            "metric", "metric_label"} <= set(frame.columns)
    assert set(frame["task"]) == {"toy"} and set(frame["sweep"]) == {spec.sweep_name}
    assert frame.groupby("variant")["state"].value_counts().to_dict() == {
        ("V", "COMPLETE"): 3, ("NP", "COMPLETE"): 3, ("NP", "FAIL"): 1}
    assert frame.attrs["metric_labels"] == {"toy": "NLL per time step"}
    space = {hp.name: (hp.low, hp.high, hp.log) for hp in frame.attrs["space"]}
    assert space == {name: (d.low, d.high, d.log) for name, d in spec.distributions.items()}
    assert space["hidden_size"][:2] == (4, 8)  # the sweep's override, as the store recorded it
    for row in frame.itertuples():
        t = stored[(row.variant, row.trial)]
        assert row.state == t.state.name
        assert row.study == spec.study_name(row.variant)
        for name, value in t.params.items():
            assert getattr(row, name) == value
        if t.state == TrialState.FAIL:
            assert row.fail_kind == "stale" and row.fail_reason == t.user_attrs["fail_reason"]
            assert np.isnan(row.value) and np.isnan(row.valid_metric)
            continue
        a = t.user_attrs
        assert row.value == t.value == row.valid_metric == a["valid_metric"]
        for key in ("test_metric", "best_epoch", "epochs_run", "parameter_count",
                    "recurrent_parameter_count", "train_seconds", "seed", "batch_size",
                    "git_commit", "run_id", "untrained"):
            assert getattr(row, key) == a[key], key
        assert row.momentum == a["momentum"] == pytest.approx(1 - t.params["one_minus_momentum"])
        assert a["extra_metrics"]  # each extra metric in its own column
        for key, value in a["extra_metrics"].items():
            assert getattr(row, f"extra_{key}") == value, key
        assert pd.isna(row.fail_kind) and row.epochs_run == 1


def test_runs_curves_and_tests_read_the_same_trials(swept):
    cfg, spec, report, stored = swept
    runs = load_runs(spec.sweep_name, spec.results_dir)
    assert set(runs) == {t.user_attrs["run_id"] for t in stored.values()
                         if "run_id" in t.user_attrs}
    (run,) = runs.values()
    assert run["config"]["trials_per_variant"] == 3 and run["config"]["variants"] == ["V", "NP"]
    curves = load_curves(spec.sweep_name, spec.results_dir)
    done = {k: t for k, t in stored.items() if t.state == TrialState.COMPLETE}
    assert len(curves) == sum(len(t.user_attrs["curve"]) for t in done.values()) == 6
    for row in curves.itertuples():
        (point,) = stored[(row.variant, row.trial)].user_attrs["curve"]
        assert (row.epoch, row.train_loss, row.valid) == (point["epoch"], point["train_loss"],
                                                           point["valid"])
    data = complete(load_sweep(spec.sweep_name, spec.results_dir))
    tests = variant_tests(data).set_index(["subset", "variant"])
    for variant in ("V", "NP"):
        values = sorted(t.user_attrs["test_metric"] for (v, _), t in done.items() if v == variant)
        row = tests.loc[("all", variant)]
        assert row["n"] == 3 and row["mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert row["median"] == pytest.approx(np.median(values), rel=1e-12)
    assert tests.loc[("all", "NP"), "verdict"] != "too few trials"  # three of each: tested
    assert tests.loc[("best", "NP"), "verdict"] == "too few trials"  # the best 10 %: one
    np_finding = variant_findings(tests.reset_index())[3]
    assert np_finding.claim.startswith("Removing the peepholes (NP)")
    assert np_finding.verdict == "not testable" and "n=1" in np_finding.evidence
