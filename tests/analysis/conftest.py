"""Contract-shaped sweep stores (docs/results.md "Sweep store") made by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

DISTRIBUTIONS = {
    "hidden_size": IntDistribution(20, 200, log=True),
    "learning_rate": FloatDistribution(1e-6, 1e-2, log=True),
    "one_minus_momentum": FloatDistribution(0.01, 1.0, log=True),
    "input_noise": FloatDistribution(0.0, 1.0),
}
# Shift of each variant's metric (the synthetic "truth"): NFG and NOAF clearly worse.
EFFECTS = {"V": 0.0, "NFG": 0.25, "NOAF": 0.3, "CIFG": 0.0, "NP": 0.0, "FGR": 0.0}
ALL_EFFECTS = {**EFFECTS, "NIG": 0.03, "NOG": 0.05, "NIAF": 0.04, "GRU": 0.0, "RNN": 0.2}
PARAMS_PER_BLOCK = {"V": 4, "NFG": 3, "NOAF": 4, "CIFG": 3, "NP": 4, "FGR": 13, "NIG": 3,
                    "NOG": 3, "NIAF": 4, "GRU": 3, "RNN": 1}


def synthetic_metric(rng: np.random.Generator, p: dict, shift: float) -> float:
    """Error-like metric: a valley in log learning rate, better with more blocks, noise hurts."""
    lr = np.log10(p["learning_rate"])
    return float(0.5 + 0.08 * (lr + 3.0) ** 2 - 0.15 * np.log10(p["hidden_size"])
                 + 0.1 * p["input_noise"] + 0.01 * np.log10(p["one_minus_momentum"])
                 + shift + rng.normal(0, 0.03))


def make_sweep(results: Path, name: str = "toy", *, tasks=("music",), variants=None,
               n_trials: int = 30, seed: int = 0, store: str = "journal",
               n_failed: int = 1, n_untrained: int | None = None,
               n_diverged: int = 0) -> Path:
    """A sweep folder results/<name>/ with config.yaml and an Optuna store as the sweep writes.

    Returns the sweep folder. `store` is "journal" (a journal file) or "sqlite". With
    `n_untrained`, every complete trial carries `untrained`, True for the first n per study.
    The first `n_diverged` complete trials of each variant diverged without failing: their
    scores are in the thousands (as a run that blew up but stayed finite).
    """
    folder = results / name
    folder.mkdir(parents=True, exist_ok=True)
    if store == "journal":
        from optuna.storages.journal import JournalFileBackend
        path = folder / "optuna.journal"
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        url = str(path)
    else:
        path = folder / "optuna.db"
        url = f"sqlite:///{path}"
        storage = optuna.storages.RDBStorage(url)
    (folder / "config.yaml").write_text(f"sweep_name: {name}\nstorage:\n  url: {url}\n")
    rng = np.random.default_rng(seed)
    for task in tasks:
        for variant in variants if variants is not None else list(EFFECTS):
            study = optuna.create_study(storage=storage, study_name=f"{name}/{task}/{variant}",
                                        direction="minimize")
            for key, value in {"sweep_name": name, "task": task, "variant": variant,
                               "metric": "error", "metric_label": "frame error"}.items():
                study.set_user_attr(key, value)
            for i in range(n_trials + n_failed):
                p = {"hidden_size": int(round(10 ** rng.uniform(np.log10(20), np.log10(200)))),
                     "learning_rate": float(10 ** rng.uniform(-6, -2)),
                     "one_minus_momentum": float(10 ** rng.uniform(-2, 0)),
                     "input_noise": float(rng.uniform(0, 1))}
                H, blocks = p["hidden_size"], PARAMS_PER_BLOCK.get(variant.upper(), 2)
                attrs = {"parameter_count": blocks * H * (H + 10) + 50,
                         "recurrent_parameter_count": blocks * H * (H + 10),
                         "momentum": 1 - p["one_minus_momentum"], "seed": i, "batch_size": 1,
                         "train_seconds": float(rng.uniform(1, 5))}
                if i >= n_trials:
                    study.add_trial(optuna.trial.create_trial(
                        state=TrialState.FAIL, params=p, distributions=DISTRIBUTIONS,
                        user_attrs={**attrs, "fail_kind": "diverged",
                                    "fail_reason": "loss became nan at epoch 3"}))
                    continue
                valid = synthetic_metric(rng, p, ALL_EFFECTS.get(variant.upper(), 0.1))
                if i < n_diverged:
                    valid = float(10 ** rng.uniform(3, 4.5))
                test = valid + float(rng.normal(0, 0.01))
                curve = [{"epoch": e, "train_loss": 1.0 / (e + 1), "valid": valid + 0.1 / (e + 1),
                          "test": test + 0.1 / (e + 1)} for e in range(3)]
                study.add_trial(optuna.trial.create_trial(
                    state=TrialState.COMPLETE, value=valid, params=p, distributions=DISTRIBUTIONS,
                    user_attrs={**attrs, "valid_metric": valid, "test_metric": test,
                                "best_epoch": 2, "epochs_run": 3, "curve": curve,
                                "extra_metrics": {"accuracy": 1 - test},
                                **({} if n_untrained is None
                                   else {"untrained": i < n_untrained})}))
    return folder


@pytest.fixture
def sweep_factory(tmp_path):
    """make_sweep bound to a temporary results folder: factory(name, **kw) -> sweep folder."""
    results = tmp_path / "results"

    def factory(name: str = "toy", **kw) -> Path:
        return make_sweep(results, name, **kw)

    factory.results = results
    return factory
