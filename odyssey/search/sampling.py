"""The search space of DESIGN §4 as Optuna distributions, and the samplers over it."""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial
from scipy.stats import qmc

from ..cells import get_cell

# the trainer reads exactly these (odyssey.training.Hyperparameters.from_search)
PARAMETERS = ("hidden_size", "learning_rate", "one_minus_momentum", "input_noise")
# searched only when search.params names them (off in the paper's protocol): variational
# dropout's p (Gal & Ghahramani 2016), 0 when not searched; the number of stacked recurrent
# layers (train.layers when not searched); a parameter budget, which replaces hidden_size
# (the trainer derives the hidden size that fits it: deep vs wide at equal size)
OPTIONAL_PARAMETERS = ("dropout", "layers", "parameter_budget")
# search.params holds exactly one of these: the hidden size, or the budget it is derived from
SIZE_PARAMETERS = ("hidden_size", "parameter_budget")
# a cell's own option, searched: "<cell>.<option>" (e.g. CW.modules); cells without it ignore it
CELL_OPTION = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


def cell_option(name: str) -> tuple[str, str] | None:
    """(cell, option) of a searched cell option "<cell>.<option>"; None for other names."""
    match = CELL_OPTION.match(name)
    return (match.group(1), match.group(2)) if match else None
SAMPLERS = ("random", "sobol", "tpe")


class SearchSpaceError(ValueError):
    """A search-space config that cannot be searched (the message names the key)."""


def distributions(params: Mapping[str, Mapping[str, Any]],
                  where: str = "search.params") -> dict[str, BaseDistribution]:
    """Optuna distributions from `search.params` (name -> {type, low, high, log}).

    A cell's own options are searched under the cell's name, `CW: {modules: {type, ...}}`
    (on the command line `+search.params.CW.modules={type:int,low:1,high:8}`), and named
    "<cell>.<option>" in the store; cells without that option ignore it.
    """
    flat: dict[str, Any] = {}
    for name, spec in params.items():
        if (name not in (*PARAMETERS, *OPTIONAL_PARAMETERS) and isinstance(spec, Mapping)
                and spec and "type" not in spec
                and all(isinstance(v, Mapping) for v in spec.values())):
            flat.update({f"{name}.{option}": sub for option, sub in spec.items()})
        else:
            flat[name] = spec
    params = flat
    names = set(params)
    known = (*PARAMETERS, *OPTIONAL_PARAMETERS)
    required = set(PARAMETERS) - ({"hidden_size"} if "parameter_budget" in names else set())
    options = {n for n in names if cell_option(n)}
    for name in sorted(options):
        cell, option = cell_option(name)  # type: ignore[misc]
        try:
            get_cell(cell).resolve_options({option: None})
        except ValueError as e:
            raise SearchSpaceError(f"{where}.{name}: {e}") from e
    missing, unknown = sorted(required - names), sorted(names - set(known) - options)
    if set(SIZE_PARAMETERS) <= names:
        raise SearchSpaceError(f"{where}: give hidden_size or parameter_budget, not both (the "
                               "budget fixes the hidden size)")
    if missing or unknown:
        raise SearchSpaceError(f"{where}: expected the parameters {', '.join(PARAMETERS)} "
                               f"(and optionally {', '.join(OPTIONAL_PARAMETERS)}); missing "
                               f"{missing}, unknown {unknown}")
    out: dict[str, BaseDistribution] = {}
    for name in (*(n for n in known if n in names), *sorted(options)):
        if params[name] is None or not isinstance(params[name], Mapping):
            raise SearchSpaceError(f"{where}.{name} must be a mapping with type, low, high, "
                                   f"log, got {params[name]!r}")
        spec, key = params[name], f"{where}.{name}"
        extra = sorted(set(spec) - {"type", "low", "high", "log"})
        if extra:
            raise SearchSpaceError(f"{key}: unknown key(s) {extra}; expected type, low, high, log")
        kind, low, high, log = spec.get("type"), spec.get("low"), spec.get("high"), \
            bool(spec.get("log", False))
        if kind not in ("int", "float"):
            raise SearchSpaceError(f"{key}.type must be 'int' or 'float', got {kind!r}")
        for bound, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SearchSpaceError(f"{key}.{bound} must be a number, got {value!r}")
            if kind == "int" and value != int(value):
                raise SearchSpaceError(f"{key}.{bound} must be an integer, got {value!r}")
        if low > high:
            raise SearchSpaceError(f"{key}: inverted range, low={low} > high={high}")
        if log and low <= 0:
            raise SearchSpaceError(f"{key}: a log scale needs low > 0, got low={low}")
        out[name] = (IntDistribution(int(low), int(high), log=log) if kind == "int"
                     else FloatDistribution(float(low), float(high), log=log))
    _check_natural_ranges(out, where)
    return out


def _check_natural_ranges(dists: dict[str, BaseDistribution], where: str) -> None:
    """Values the trainer cannot use are config errors, caught before any training."""
    limits = {"hidden_size": (1, None), "learning_rate": (0, None),
              "one_minus_momentum": (0, 1), "input_noise": (0, None),
              "layers": (1, None), "parameter_budget": (1, None)}
    for name in ("layers", "parameter_budget"):
        if name in dists and not isinstance(dists[name], IntDistribution):
            raise SearchSpaceError(f"{where}.{name}.type must be 'int'")
    if "dropout" in dists:
        d = dists["dropout"]
        if d.low < 0 or d.high >= 1:
            raise SearchSpaceError(f"{where}.dropout: the dropout probability must lie in "
                                   f"[0, 1), got [{d.low}, {d.high}]")
    for name, (lo, hi) in limits.items():
        if name not in dists:
            continue
        d = dists[name]
        if d.low < lo or (d.low == lo and name in ("learning_rate", "one_minus_momentum")):
            raise SearchSpaceError(f"{where}.{name}.low must be > {lo}"
                                   if name in ("learning_rate", "one_minus_momentum")
                                   else f"{where}.{name}.low must be >= {lo}")
        if hi is not None and d.high > hi:
            raise SearchSpaceError(f"{where}.{name}.high must be <= {hi}")


def trial_seed(base: int, study_name: str, number: int, salt: str = "") -> int:
    """A 32-bit seed fixed by the sweep seed, the study and the trial number."""
    words = [int(base) & 0xFFFFFFFF, zlib.crc32(study_name.encode()), int(number),
             zlib.crc32(salt.encode())]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


class TrialSeededRandomSampler(RandomSampler):
    """Random search whose draws depend only on (seed, study, trial number, parameter).

    Optuna's RandomSampler draws from one generator per process, so with several workers
    the points depend on which worker asked first. Seeding each draw from the trial number
    makes a sweep's hyperparameter points the same however many workers run it.
    """

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self._base_seed = int(seed)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        seed = trial_seed(self._base_seed, study.study_name, trial.number, param_name)
        return RandomSampler(seed=seed).sample_independent(study, trial, param_name,
                                                           param_distribution)


class TrialSeededSobolSampler(TrialSeededRandomSampler):
    """Quasi-random search: a study's trial k takes point k of a scrambled Sobol' sequence.

    Each point is still uniform over the space (the scramble is random, drawn from the seed
    and the study), so a trial means what a random-search trial means; but any first n
    trials cover every parameter's range evenly (the first 2^m put exactly one point in each
    of 2^m equal slices of each axis), so a cell's best 10 % does not hang on how many of
    its points happened to land where its learning rate works. Optuna's QMCSampler draws its
    first trial at random and needs the search space from a finished trial; here the space
    is known in advance (`names`, the order of the sequence's axes) and point k follows
    from (seed, study, k) alone, so any number of workers gives the same points. A
    parameter outside `names` is drawn at random.
    """

    def __init__(self, seed: int, names: tuple[str, ...]) -> None:
        super().__init__(seed)
        self._axes = {name: i for i, name in enumerate(names)}
        self._last: tuple[tuple[str, int], np.ndarray] | None = None  # a trial's parameters
        # are asked one after another: its point is computed once

    def _point(self, study_name: str, number: int) -> np.ndarray:
        key = (study_name, number)
        if self._last is None or self._last[0] != key:
            engine = qmc.Sobol(len(self._axes), scramble=True,
                               rng=trial_seed(self._base_seed, study_name, 0, "sobol"))
            if number:  # SciPy's fast_forward(0) raises
                engine.fast_forward(number)
            self._last = (key, engine.random(1)[0])
        return self._last[1]

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        axis = self._axes.get(param_name)
        if axis is None or not isinstance(param_distribution,
                                          FloatDistribution | IntDistribution):
            return super().sample_independent(study, trial, param_name, param_distribution)
        return from_unit(float(self._point(study.study_name, trial.number)[axis]),
                         param_distribution)


def from_unit(u: float, d: FloatDistribution | IntDistribution) -> float | int:
    """The value at quantile `u` in [0, 1) of `d`'s uniform (or log-uniform) distribution.

    Optuna's own map from the unit interval (what its RandomSampler and QMCSampler use; a
    private module, so a test pins its behaviour): integers, log scales and steps are drawn
    exactly as random search draws them."""
    value = _SearchSpaceTransform({"x": d}, transform_0_1=True).untransform(np.array([u]))["x"]
    return int(value) if isinstance(d, IntDistribution) else float(value)


def make_sampler(kind: str, seed: int, worker: int = 0, n_startup_trials: int = 10,
                 names: tuple[str, ...] = PARAMETERS) -> BaseSampler:
    """The sampler named by `search.sampler`: "random" (the paper), "sobol" (quasi-random:
    the same distribution, covered evenly; `names` are its axes) or "tpe"."""
    if kind == "random":
        return TrialSeededRandomSampler(seed)
    if kind == "sobol":
        return TrialSeededSobolSampler(seed, names)
    if kind == "tpe":
        # TPE depends on the order of results, so it cannot be order-free; seed per worker
        return TPESampler(seed=(seed * 1009 + worker) & 0xFFFFFFFF,
                          n_startup_trials=n_startup_trials)
    raise SearchSpaceError(f"search.sampler must be one of {', '.join(SAMPLERS)}, got {kind!r}")


def suggest(trial: optuna.Trial, dists: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Ask the trial's sampler for every parameter of the space."""
    return {name: _suggest(trial, name, d) for name, d in dists.items()}


def _suggest(trial: optuna.Trial, name: str, d: BaseDistribution) -> Any:
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, log=d.log)
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, log=d.log)
    raise TypeError(f"unsupported distribution for {name}: {d!r}")
