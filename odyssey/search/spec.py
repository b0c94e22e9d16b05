"""A sweep's resolved, validated settings (from the Hydra config), checked before training.

Every bad value stops here with a message naming the config key and what was expected:
an unknown task or variant, an inverted range, trials_per_variant < 1, a broken plugin, ...
The plugins (config key `plugins`, and the `odyssey.plugins` entry points) are loaded here,
first, so that their cells and tasks are known to every check below; every worker process
validates its config this way, so each loads the same plugins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution

from ..cells import canonical, cell_names, check_cell, get_cell
from ..plugins import PluginError, load_plugins, resolve
from ..tasks import task_names
from ..training import TrainSettings
from .space import SAMPLERS, SearchSpaceError, distributions
from .storage import StorageURLError, check_url, mask_secrets, mask_url, resolve_url

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# the keys whose change would mix incomparable trials in one study
DEFINING_KEYS = ("task", "search", "train", "seed")


class SweepConfigError(ValueError):
    """A sweep config value that is wrong; the message names the key."""


def _int(cfg: DictConfig, key: str, minimum: int) -> int:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class SweepSpec:
    """What one `odyssey-sweep` worker needs, validated; `config` is the resolved dict."""

    sweep_name: str
    results_dir: Path
    task_name: str
    task_options: dict[str, Any]
    variants: tuple[str, ...]
    plugins: tuple[str, ...]
    trials_per_variant: int
    seed: int
    worker: int
    threads: int
    parallel_trials: int
    train: TrainSettings
    distributions: dict[str, BaseDistribution]
    sampler: str
    n_startup_trials: int
    storage_url: str
    heartbeat_interval: int | None
    grace_period: int | None
    config: dict[str, Any]
    # a worker rides out a store outage this long; a store call waits this long for an answer
    # (docs/store-outages.md)
    retry_seconds: int = 300
    timeout_seconds: int = 60

    @property
    def sweep_dir(self) -> Path:
        """results/<sweep_name>/: the store (embedded), config.yaml, logs and summary."""
        return self.results_dir / self.sweep_name

    def study_name(self, variant: str) -> str:
        """The contract's study name "<sweep_name>/<task>/<variant>"."""
        return f"{self.sweep_name}/{self.task_name}/{variant}"

    @property
    def total_trials(self) -> int:
        return self.trials_per_variant * len(self.variants)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> SweepSpec:
        """Validate the composed config; SweepConfigError names the first bad key."""
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.pop("hydra", None)  # Hydra's own settings: not resolvable outside a job
        try:
            resolved = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # omegaconf's interpolation errors name the key
            raise SweepConfigError(f"config does not resolve: {e}") from e
        assert isinstance(resolved, dict)
        for key in ("sweep_name", "results_dir", "task", "variants", "trials_per_variant",
                    "seed", "train", "search", "storage"):
            if key not in resolved or resolved[key] is None:
                raise SweepConfigError(f"missing config key {key!r}")

        raw_plugins = resolved.get("plugins") or []
        if isinstance(raw_plugins, str):
            raw_plugins = [raw_plugins]
        if not isinstance(raw_plugins, list) or not all(isinstance(p, str) for p in raw_plugins):
            raise SweepConfigError(f"plugins must be a list of module names or .py paths, got "
                                   f"{raw_plugins!r}")
        try:
            plugins = tuple(resolve(p) for p in raw_plugins)
            load_plugins(plugins)
        except PluginError as e:
            raise SweepConfigError(f"plugins: {e}") from e

        name = resolved["sweep_name"]
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise SweepConfigError(f"sweep_name must be letters, digits, '.', '_' or '-' "
                                   f"(it names a folder and the studies), got {name!r}")

        task = resolved["task"]
        if not isinstance(task, dict) or not isinstance(task.get("name"), str):
            raise SweepConfigError("task must be a task config with a 'name' "
                                   "(configs/task/<task>.yaml)")
        if task["name"] not in task_names():
            raise SweepConfigError(f"task.name: unknown task {task['name']!r}; expected one of "
                                   f"{', '.join(task_names())} (a task of your own: load its "
                                   "plugin with plugins=[...])")
        task_options = {k: v for k, v in task.items() if k != "name"}

        raw = resolved["variants"]
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise SweepConfigError(f"variants must be a non-empty list of names from "
                                   f"{', '.join(cell_names())}, got {raw!r}")
        try:
            variants = tuple(canonical(v) for v in raw)
        except ValueError as e:
            raise SweepConfigError(f"variants: {e}") from e
        dupes = sorted({v for v in variants if variants.count(v) > 1})
        if dupes:
            raise SweepConfigError(f"variants: {dupes} listed more than once")

        trials = _int(cfg, "trials_per_variant", 1)
        seed = _int(cfg, "seed", 0)
        worker = _int(cfg, "worker", 0) if "worker" in cfg else 0
        threads = _int(cfg, "threads", 1) if "threads" in cfg else 1
        parallel = _int(cfg, "parallel_trials", 1) if "parallel_trials" in cfg else 1

        if not isinstance(resolved["train"], dict):
            raise SweepConfigError("train must be a mapping of training settings")
        try:
            train = TrainSettings.from_mapping(resolved["train"])
        except (TypeError, ValueError) as e:
            raise SweepConfigError(str(e) if str(e).startswith("train") else f"train: {e}") \
                from e

        search = resolved["search"]
        if not isinstance(search, dict) or "params" not in search:
            raise SweepConfigError("search must hold 'params' (configs/search/greff.yaml)")
        try:
            dists = distributions(search["params"])
        except SearchSpaceError as e:
            raise SweepConfigError(str(e)) from e
        sampler = search.get("sampler", "random")
        if sampler not in SAMPLERS:
            raise SweepConfigError(f"search.sampler must be one of {', '.join(SAMPLERS)}, "
                                   f"got {sampler!r}")
        n_startup = _int(cfg, "search.n_startup_trials", 1) \
            if "n_startup_trials" in search else 10
        _check_kernels(variants, train.impl, dists)

        storage = resolved["storage"]
        if not isinstance(storage, dict) or not isinstance(storage.get("url"), str):
            raise SweepConfigError("storage.url must be a store URL (configs/storage/)")
        try:
            check_url(storage["url"])
            url = resolve_url(storage["url"])
        except StorageURLError as e:
            raise SweepConfigError(f"storage.url: {e}") from e
        beats = {}
        for key in ("heartbeat_interval", "grace_period"):
            value = storage.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise SweepConfigError(f"storage.{key} must be null or an integer >= 1 "
                                       f"(seconds), got {value!r}")
            beats[key] = value
        for key, default in (("retry_seconds", 300), ("timeout_seconds", 60)):
            value = storage.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SweepConfigError(f"storage.{key} must be an integer >= 1 (seconds), "
                                       f"got {value!r}")
            beats[key] = value
        resolved = mask_secrets(resolved)  # config.yaml and trial attrs: no secret anywhere
        resolved["storage"]["url"] = mask_url(url)
        resolved["variants"] = list(variants)
        resolved["plugins"] = list(plugins)
        results_dir = Path(str(resolved["results_dir"])).expanduser().resolve()
        resolved["results_dir"] = str(results_dir)
        return cls(sweep_name=name, results_dir=results_dir, task_name=task["name"],
                   task_options=task_options, variants=variants, plugins=plugins,
                   trials_per_variant=trials, seed=seed, worker=worker, threads=threads,
                   parallel_trials=parallel, train=train,
                   distributions=dists, sampler=sampler, n_startup_trials=n_startup,
                   storage_url=url, heartbeat_interval=beats["heartbeat_interval"],
                   grace_period=beats["grace_period"], config=resolved,
                   retry_seconds=beats["retry_seconds"],
                   timeout_seconds=beats["timeout_seconds"])


def _check_kernels(variants: tuple[str, ...], impl: str,
                   dists: dict[str, BaseDistribution]) -> None:
    """What the cells cannot do, refused before training: impl=cpp for a cell without a fast
    kernel, impl=cpp with dropout, and dropout for a plugin cell that ignores the masks."""
    dropout = "dropout" in dists and float(dists["dropout"].high) > 0  # type: ignore[attr-defined]
    if impl == "cpp":
        slow = [v for v in variants if not get_cell(v).has_fast]
        if slow:
            raise SweepConfigError(f"train.impl=cpp: no fast kernel for {', '.join(slow)}; "
                                   "use train.impl=auto (the fastest kernel each cell has)")
        if dropout:
            raise SweepConfigError("train.impl=cpp cannot apply variational dropout "
                                   "(search.params.dropout): the C++ kernels have no masks; "
                                   "use train.impl=auto")
    if dropout:
        for v in variants:
            if get_cell(v).group == "plugin":
                try:
                    check_cell(v, dropout=True)
                except ValueError as e:
                    raise SweepConfigError(f"search.params.dropout: {e}") from e
