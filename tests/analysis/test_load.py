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


def test_runs_from_study_records_and_from_legacy_trial_attributes(tmp_path):
    """A trial's run_id names its run's config and versions: the study's `run/<id>` record
    (sweeps now) or, for a store written before, the trial's own config/versions."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from odyssey.analysis import load_runs
    from odyssey.store.provenance import run_record

    folder = tmp_path / "results" / "r"
    folder.mkdir(parents=True)
    path = folder / "optuna.journal"
    (folder / "config.yaml").write_text(f"sweep_name: r\nstorage:\n  url: {path}\n")
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    config = {"sweep_name": "r", "worker": 3, "task": {"name": "music"}}
    run_id, record = run_record(config, {"torch": "2.13.0"})
    assert run_id == run_record({**config, "worker": 0}, {"torch": "2.13.0"})[0]
    assert run_id != run_record(config, {"torch": "2.12.0"})[0]
    new = optuna.create_study(storage=storage, study_name="r/music/V")
    new.set_user_attr(f"run/{run_id}", record)
    new.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"run_id": run_id}))
    old = optuna.create_study(storage=storage, study_name="r/music/NP")
    legacy = {**config, "seed": 7}
    old.add_trial(optuna.trial.create_trial(
        value=2.0, user_attrs={"config": legacy, "versions": {"torch": "2.12.0"}}))
    frame = load_sweep("r", tmp_path / "results")
    runs = load_runs("r", tmp_path / "results")
    by_variant = dict(zip(frame["variant"], frame["run_id"], strict=True))
    assert runs[by_variant["V"]] == record
    assert runs[by_variant["NP"]] == {"config": {k: v for k, v in legacy.items()
                                                 if k != "worker"},
                                      "versions": {"torch": "2.12.0"}}
    assert len(runs) == 2


def test_plugin_cells_keep_their_spelling_and_sort_after_the_builtins(sweep_factory):
    """The analysis loads no plugin: a cell it does not know keeps its stored name."""
    from odyssey.analysis import order_variants

    sweep_factory("p", variants=["MyCell", "mut1", "V", "GRU"], n_trials=2)
    frame = load_sweep("p", sweep_factory.results)
    assert order_variants(frame["variant"]) == ["V", "GRU", "MUT1", "MyCell"]
