"""Loading a contract-shaped sweep store into the trial table."""

from __future__ import annotations

import numpy as np
import pytest

from odyssey.analysis import (
    UnknownSweepError,
    complete,
    list_sweeps,
    load_curves,
    load_sweep,
    space_of,
)


@pytest.mark.parametrize("store", ["journal", "sqlite"])
def test_trial_table_from_store(sweep_factory, store):
    sweep_factory("toy", tasks=("music", "speech"), variants=["NFG", "V"], n_trials=4,
                  store=store)
    frame = load_sweep("toy", sweep_factory.results)
    assert len(frame) == 2 * 2 * 5
    assert frame["variant"].tolist()[:5] == ["V"] * 5  # V first, then the DESIGN order
    assert set(frame["state"]) == {"COMPLETE", "FAIL"}
    for col in ("task", "variant", "state", "hidden_size", "learning_rate", "one_minus_momentum",
                "input_noise", "momentum", "valid_metric", "test_metric", "parameter_count",
                "train_seconds", "duration_seconds", "fail_reason", "extra_accuracy",
                "metric_label"):
        assert col in frame.columns, col
    np.testing.assert_allclose(frame["momentum"], 1 - frame["one_minus_momentum"])
    ok = complete(frame)
    assert len(ok) == 16 and ok["test_metric"].notna().all()
    failed = frame[frame["state"] == "FAIL"]
    assert failed["fail_reason"].str.contains("nan").all() and failed["test_metric"].isna().all()
    assert frame.attrs["metric_labels"] == {"music": "frame error", "speech": "frame error"}
    space = {hp.name: hp for hp in space_of(frame)}
    assert space["learning_rate"].log and space["learning_rate"].low == 1e-6
    assert not space["input_noise"].log
    curves = load_curves("toy", sweep_factory.results)
    assert len(curves) == 16 * 3 and {"epoch", "valid", "test"} <= set(curves.columns)


def test_other_sweeps_in_the_same_store_are_not_mixed_in(sweep_factory):
    sweep_factory("a", variants=["V"], n_trials=2)
    frame = load_sweep("a", sweep_factory.results)
    assert set(frame["sweep"]) == {"a"} and len(frame) == 3


def test_unknown_sweep_lists_the_known_ones(sweep_factory):
    sweep_factory("alpha", variants=["V"], n_trials=1)
    sweep_factory("beta", variants=["V"], n_trials=1)
    hydra_run = sweep_factory.results / "beta" / "logs" / "2026-01-01" / ".hydra"
    hydra_run.mkdir(parents=True)
    (hydra_run / "config.yaml").write_text("sweep_name: beta\n")  # a Hydra run, not a sweep
    assert list_sweeps(sweep_factory.results) == ["alpha", "beta"]
    with pytest.raises(UnknownSweepError, match="alpha, beta"):
        load_sweep("gamma", sweep_factory.results)


def test_bad_config_and_missing_store(sweep_factory):
    folder = sweep_factory("toy", variants=["V"], n_trials=1)
    (folder / "config.yaml").write_text("sweep_name: toy\n")
    with pytest.raises(ValueError, match="storage.url"):
        load_sweep("toy", sweep_factory.results)
    (folder / "config.yaml").write_text("storage:\n  url: sqlite:///nowhere/x.db\n")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_sweep("toy", sweep_factory.results)


def test_relative_store_path_is_found_in_the_sweep_folder(sweep_factory):
    folder = sweep_factory("toy", variants=["V"], n_trials=2)
    (folder / "config.yaml").write_text("storage:\n  url: results/toy/optuna.journal\n")
    assert len(load_sweep("toy", sweep_factory.results)) == 3


def test_several_sweeps_load_as_one_table(sweep_factory):
    from odyssey.analysis import load_sweeps
    sweep_factory("q-music", tasks=("music",), variants=["V"], n_trials=2)
    sweep_factory("q-speech", tasks=("speech",), variants=["V", "NP"], n_trials=2)
    frame = load_sweeps(["q-music", "q-speech"], sweep_factory.results)
    assert len(frame) == 3 + 6 and set(frame["task"]) == {"music", "speech"}
    assert frame.attrs["sweep"] == "q-music+q-speech"
    assert set(frame.attrs["metric_labels"]) == {"music", "speech"}
    with pytest.raises(UnknownSweepError, match="q-music, q-speech"):
        load_sweeps(["q-music", "q-handwriting"], sweep_factory.results)
