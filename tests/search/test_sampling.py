"""The search space and its samplers: random (the paper), Sobol' (quasi-random) and TPE."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from odyssey.search.sampling import (
    PARAMETERS,
    SearchSpaceError,
    TrialSeededRandomSampler,
    TrialSeededSobolSampler,
    distributions,
    from_unit,
    make_sampler,
)
from odyssey.search.spec import SweepConfigError, check_search
from odyssey.store.storage import open_storage

GREFF = {"hidden_size": {"type": "int", "low": 20, "high": 200, "log": True},
         "learning_rate": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
         "one_minus_momentum": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
         "input_noise": {"type": "float", "low": 0.0, "high": 1.0, "log": False}}


def test_the_contract_distributions():
    d = distributions(GREFF)
    assert d["hidden_size"] == optuna.distributions.IntDistribution(20, 200, log=True)
    assert d["learning_rate"] == optuna.distributions.FloatDistribution(1e-6, 1e-2, log=True)
    assert d["one_minus_momentum"] == optuna.distributions.FloatDistribution(0.01, 1.0,
                                                                             log=True)
    assert d["input_noise"] == optuna.distributions.FloatDistribution(0.0, 1.0)


def _points(storage, sampler, n):
    study = optuna.create_study(storage=storage, study_name="x", sampler=sampler,
                                load_if_exists=True)
    dists = distributions(GREFF)
    out = []
    for _ in range(n):
        t = study.ask(dists)
        out.append(dict(t.params))
        study.tell(t, 0.0)
    return out


def test_random_points_depend_only_on_trial_number(tmp_path):
    a = _points(open_storage(f"journal://{tmp_path}/a.journal"),
                TrialSeededRandomSampler(5), 6)
    # a second "worker" with its own sampler object continues the same sequence
    store = open_storage(f"journal://{tmp_path}/b.journal")
    b = _points(store, TrialSeededRandomSampler(5), 3) + \
        _points(store, TrialSeededRandomSampler(5), 3)
    assert a == b
    assert len({p["learning_rate"] for p in a}) == 6
    c = _points(open_storage(f"journal://{tmp_path}/c.journal"),
                TrialSeededRandomSampler(6), 6)
    assert c != a
    for p in a:
        assert 20 <= p["hidden_size"] <= 200 and 1e-6 <= p["learning_rate"] <= 1e-2


def test_tpe_is_selectable():
    assert isinstance(make_sampler("tpe", 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("random", 0), optuna.samplers.RandomSampler)



def _unit(value: float, d: FloatDistribution) -> float:
    if d.log:
        return (math.log(value) - math.log(d.low)) / (math.log(d.high) - math.log(d.low))
    return (value - d.low) / (d.high - d.low)


def test_sobol_points_depend_only_on_trial_number(tmp_path):
    a = _points(open_storage(f"journal://{tmp_path}/a.journal"),
                make_sampler("sobol", 5, names=PARAMETERS), 6)
    store = open_storage(f"journal://{tmp_path}/b.journal")
    b = _points(store, make_sampler("sobol", 5, names=PARAMETERS), 2) + \
        _points(store, TrialSeededSobolSampler(5, PARAMETERS), 4)
    assert a == b
    c = _points(open_storage(f"journal://{tmp_path}/c.journal"),
                make_sampler("sobol", 6, names=PARAMETERS), 6)
    assert c != a
    random = _points(open_storage(f"journal://{tmp_path}/d.journal"),
                     TrialSeededRandomSampler(5), 6)
    assert random != a


def test_sobol_covers_every_axis_evenly(tmp_path):
    """The first 2^m trials put one point in each of 2^m equal slices of every axis (in
    log space where the axis is logarithmic); random search leaves gaps and doubles."""
    dists = distributions(GREFF)
    points = _points(open_storage(f"journal://{tmp_path}/s.journal"),
                     make_sampler("sobol", 3, names=tuple(dists)), 32)
    for name in ("learning_rate", "one_minus_momentum", "input_noise"):
        slices = sorted(int(_unit(p[name], dists[name]) * 32) for p in points)
        assert slices == list(range(32)), name
    random = _points(open_storage(f"journal://{tmp_path}/r.journal"),
                     TrialSeededRandomSampler(3), 32)
    slices = {int(_unit(p["learning_rate"], dists["learning_rate"]) * 32) for p in random}
    assert len(slices) < 32
    for p in points:
        assert 20 <= p["hidden_size"] <= 200 and isinstance(p["hidden_size"], int)
        assert 1e-6 <= p["learning_rate"] <= 1e-2


def test_sobol_studies_are_scrambled_apart(tmp_path):
    store = open_storage(f"journal://{tmp_path}/s.journal")
    sampler = make_sampler("sobol", 0, names=PARAMETERS)
    dists = distributions(GREFF)
    lrs = {}
    for name in ("V", "NOAF"):
        study = optuna.create_study(storage=store, study_name=name, sampler=sampler)
        lrs[name] = [study.ask(dists).params["learning_rate"] for _ in range(4)]
    assert lrs["V"] != lrs["NOAF"]


def test_a_parameter_outside_the_axes_is_drawn_at_random(tmp_path):
    sampler = make_sampler("sobol", 1, names=("learning_rate",))
    study = optuna.create_study(storage=open_storage(f"journal://{tmp_path}/s.journal"),
                                study_name="x", sampler=sampler)
    seen = {study.ask({"learning_rate": FloatDistribution(1e-6, 1e-2, log=True),
                       "dropout": FloatDistribution(0.0, 0.5)}).params["dropout"]
            for _ in range(8)}
    assert len(seen) == 8 and all(0 <= d <= 0.5 for d in seen)


@pytest.mark.parametrize("dist", [IntDistribution(20, 200, log=True), IntDistribution(1, 8),
                                  IntDistribution(0, 10, step=5)])
def test_integers_take_the_share_of_the_range_random_search_gives_them(dist):
    """from_unit over an even grid of quantiles gives each integer the probability that
    Optuna's RandomSampler gives it (its slice of the range, in log space if logarithmic)."""
    grid = (np.arange(200_000) + 0.5) / 200_000
    values = np.array([from_unit(float(u), dist) for u in grid])
    ints = list(range(dist.low, dist.high + 1, dist.step))
    assert set(values) == set(ints)
    for k in ints:
        if dist.log:
            lo, hi = math.log(dist.low - 0.5), math.log(dist.high + 0.5)
            share = (math.log(min(k + 0.5, dist.high + 0.5)) - math.log(k - 0.5)) / (hi - lo)
        else:
            share = 1 / len(ints)
        assert abs(np.mean(values == k) - share) < 1e-4, k


def test_floats_map_the_unit_interval_onto_the_range():
    lr = FloatDistribution(1e-6, 1e-2, log=True)
    assert from_unit(0.0, lr) == pytest.approx(1e-6)
    assert from_unit(0.5, lr) == pytest.approx(1e-4)
    assert from_unit(0.25, FloatDistribution(0.0, 1.0)) == 0.25
    assert from_unit(0.99, FloatDistribution(0.0, 1.0, step=0.25)) == 1.0


def test_the_sampler_is_checked_by_name():
    assert check_search({"params": GREFF, "sampler": "sobol"})[1] == "sobol"
    with pytest.raises(SweepConfigError, match="search.sampler must be one of random, sobol"):
        check_search({"params": GREFF, "sampler": "qmc"})
    with pytest.raises(SearchSpaceError, match="random, sobol, tpe, got 'grid'"):
        make_sampler("grid", 0)
