"""A sweep's resolved, validated settings (from the Hydra config), checked before training.

Every bad value stops here with a message naming the config key and what was expected:
an unknown task or variant, an inverted range, trials_per_variant < 1, a broken plugin, ...
The plugins (config key `plugins`, and the `odyssey.plugins` entry points) are loaded before
(`load_sweep_plugins`, called by the `odyssey-sweep` entry point in every worker process), so
that their cells and tasks are known to the checks here; validation itself loads nothing.
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
from ..store.storage import StorageURLError, check_url, mask_secrets, mask_url, resolve_url
from ..store.sweeps import study_name
from ..tasks import task_names
from ..training import TrainSettings
from .sampling import SAMPLERS, SearchSpaceError, distributions

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# the keys whose change would mix incomparable trials in one study
DEFINING_KEYS = ("task", "search", "train", "seed")


class SweepConfigError(ValueError):
    """A sweep config value that is wrong; the message names the key."""


def plugin_refs(raw: object) -> tuple[str, ...]:
    """The config key `plugins` (a list of module names or .py paths), paths made absolute."""
    raw = raw or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise SweepConfigError(f"plugins must be a list of module names or .py paths, got "
                               f"{raw!r}")
    try:
        return tuple(resolve(p) for p in raw)
    except PluginError as e:
        raise SweepConfigError(f"plugins: {e}") from e


def load_sweep_plugins(cfg: DictConfig) -> tuple[str, ...]:
    """Load the plugins a sweep config names (key `plugins`) and the `odyssey.plugins` entry
    points, before `SweepSpec.from_config` checks the cells and tasks they register."""
    try:
        raw = OmegaConf.select(cfg, "plugins", default=None)
        if OmegaConf.is_config(raw):
            raw = OmegaConf.to_container(raw, resolve=True)
    except Exception as e:  # omegaconf's interpolation errors name the key
        raise SweepConfigError(f"config does not resolve: {e}") from e
    refs = plugin_refs(raw)
    try:
        load_plugins(refs)
    except PluginError as e:
        raise SweepConfigError(f"plugins: {e}") from e
    return refs


_REQUIRED = object()


def _int(config: dict[str, Any], key: str, minimum: int, default: Any = _REQUIRED) -> int:
    """The integer at dotted `key` of the resolved config, at least `minimum`; `default`
    where the key is absent (an error when there is no default)."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            if default is not _REQUIRED:
                return default
            value = None
            break
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


# -- one check per config group (configs/<group>/) and top-level key ---------------------

def check_sweep_name(name: object) -> str:
    """`sweep_name`: it names a folder and the studies."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SweepConfigError(f"sweep_name must be letters, digits, '.', '_' or '-' "
                               f"(it names a folder and the studies), got {name!r}")
    return name


def check_task(task: object) -> tuple[str, dict[str, Any]]:
    """The `task` group: a registered task's name and its options (the other keys)."""
    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        raise SweepConfigError("task must be a task config with a 'name' "
                               "(configs/task/<task>.yaml)")
    if task["name"] not in task_names():
        raise SweepConfigError(f"task.name: unknown task {task['name']!r}; expected one of "
                               f"{', '.join(task_names())} (a task of your own: load its "
                               "plugin with plugins=[...])")
    return task["name"], {k: v for k, v in task.items() if k != "name"}


def check_variants(raw: object) -> tuple[str, ...]:
    """`variants`: registered cell names, each once, in their registered spelling."""
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
    return variants


def check_train(train: object) -> TrainSettings:
    """The `train` group (configs/train/): the trainer's settings."""
    if not isinstance(train, dict):
        raise SweepConfigError("train must be a mapping of training settings")
    try:
        return TrainSettings.from_mapping(train)
    except (TypeError, ValueError) as e:
        raise SweepConfigError(str(e) if str(e).startswith("train") else f"train: {e}") \
            from e


def check_search(search: object) -> tuple[dict[str, BaseDistribution], str, int]:
    """The `search` group: the distributions, the sampler and its random start."""
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
    n_startup = _int({"search": search}, "search.n_startup_trials", 1, default=10)
    return dists, sampler, n_startup


def check_storage(storage: object) -> tuple[str, dict[str, int | None]]:
    """The `storage` group: the store's URL (relative paths made absolute), heartbeats and
    the outage bounds (retry_seconds, timeout_seconds)."""
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
    return url, beats


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
        return study_name(self.sweep_name, self.task_name, variant)

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

        plugins = plugin_refs(resolved.get("plugins"))
        name = check_sweep_name(resolved["sweep_name"])
        task_name, task_options = check_task(resolved["task"])
        variants = check_variants(resolved["variants"])
        trials = _int(resolved, "trials_per_variant", 1)
        seed = _int(resolved, "seed", 0)
        worker = _int(resolved, "worker", 0, default=0)
        threads = _int(resolved, "threads", 1, default=1)
        parallel = _int(resolved, "parallel_trials", 1, default=1)
        train = check_train(resolved["train"])
        dists, sampler, n_startup = check_search(resolved["search"])
        _check_kernels(variants, train.impl, dists)
        url, beats = check_storage(resolved["storage"])
        resolved = mask_secrets(resolved)  # config.yaml and trial attrs: no secret anywhere
        resolved["storage"]["url"] = mask_url(url)
        resolved["variants"] = list(variants)
        resolved["plugins"] = list(plugins)
        results_dir = Path(str(resolved["results_dir"])).expanduser().resolve()
        resolved["results_dir"] = str(results_dir)
        return cls(sweep_name=name, results_dir=results_dir, task_name=task_name,
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
