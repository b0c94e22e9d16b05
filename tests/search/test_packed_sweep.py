"""Sweeps with packed workers (parallel_trials > 1): exact counts, the same trials and
results as one at a time, resume after a worker dies mid-pack."""

from __future__ import annotations

import multiprocessing as mp

import pytest
from optuna.trial import TrialState

from odyssey.search.spec import SweepConfigError, SweepSpec
from odyssey.search.sweep import run_worker
from odyssey.search.trial import counts_toward_n
from tests.search.helpers import (
    kill_when,
    run_toy_worker,
    running_trials,
    studies,
    toy_config,
)

SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=12",
         "trials_per_variant=3", "train.batch_size=1"]


def _values(cfg):
    return {(v, t.number): (t.state, t.value, t.params, t.user_attrs.get("curve"))
            for v, study in studies(cfg).items() for t in study.get_trials()}


def test_a_packed_worker_runs_the_same_trials_with_the_same_results(tmp_path):
    one = toy_config(tmp_path / "one", *SMALL)
    pack = toy_config(tmp_path / "pack", *SMALL, "parallel_trials=4")
    assert run_worker(SweepSpec.from_config(one)).complete == 6
    report = run_worker(SweepSpec.from_config(pack))
    assert report.trials_run == report.complete == 6
    assert _values(pack) == _values(one)
    # a rerun, with another pack size, trains nothing: parallel_trials may differ per run
    again = toy_config(tmp_path / "pack", *SMALL, "parallel_trials=2")
    assert run_worker(SweepSpec.from_config(again)).trials_run == 0


def test_a_packed_worker_stops_after_max_trials(tmp_path):
    cfg = toy_config(tmp_path, *SMALL, "parallel_trials=4")
    report = run_worker(SweepSpec.from_config(cfg), max_trials=2)
    assert report.trials_run == 2
    states = [t.state for s in studies(cfg).values() for t in s.get_trials()]
    assert states.count(TrialState.COMPLETE) == 2 and TrialState.RUNNING not in states


def test_parallel_trials_must_be_a_positive_integer(tmp_path):
    with pytest.raises(SweepConfigError, match="parallel_trials"):
        SweepSpec.from_config(toy_config(tmp_path, *SMALL, "parallel_trials=0"))


@pytest.mark.slow
def test_a_worker_killed_mid_pack_loses_nothing_and_ends_exact(tmp_path):
    overrides = [*SMALL, "variants=[V,NP]", "trials_per_variant=4", "parallel_trials=3",
                 "train.max_epochs=30", "train.patience=30"]
    cfg = toy_config(tmp_path, *overrides, sleep=0.01)
    p = mp.get_context("spawn").Process(target=run_toy_worker,
                                        args=(str(tmp_path), overrides, 0, 0.01))
    p.start()
    kill_when(p, cfg, lambda trials: len(running_trials(trials)) == 3,
              "had a full pack of three running trials")
    before = {(v, t.number): t.value for v, s in studies(cfg).items()
              for t in s.get_trials() if t.state == TrialState.COMPLETE}
    killed = [(v, t.number) for v, s in studies(cfg).items() for t in s.get_trials()
              if t.state == TrialState.RUNNING]
    assert len(killed) == 3

    report = run_worker(SweepSpec.from_config(cfg))  # the same command again
    assert report.stale_replaced == 3
    for v, study in studies(cfg).items():
        trials = study.get_trials()
        assert sum(counts_toward_n(t) for t in trials) == 4
        assert [t.state for t in trials].count(TrialState.COMPLETE) == 4
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        for t in trials:
            if (v, t.number) in killed:
                assert t.state == TrialState.FAIL and t.user_attrs["fail_kind"] == "stale"
    after = {(v, t.number): t.value for v, s in studies(cfg).items()
             for t in s.get_trials() if t.state == TrialState.COMPLETE}
    assert all(after[k] == v for k, v in before.items())
