"""Finding a sweep by name, its Optuna store and its studies (docs/results.md "Sweep store").

A sweep lives in results/<sweep>/ with its resolved config in config.yaml; `storage.url` there
says where its Optuna store is, and each (task, variant) is one study named
"<sweep>/<task>/<variant>". An existing store is opened by `open_existing` (for readers: it
never creates an empty store) through `odyssey.store.storage.open_storage`.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from omegaconf import OmegaConf

from .storage import open_storage

FILE_SCHEMES = ("journal://", "file://")


class UnknownSweepError(ValueError):
    """A sweep name with no results/<name>/config.yaml; the message lists the sweeps there are."""


def list_sweeps(results_dir: str | Path = "results") -> list[str]:
    """Names of the sweeps under `results_dir` (folders holding a config.yaml)."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/config.yaml"))


def sweep_dir(sweep_name: str, results_dir: str | Path = "results") -> Path:
    """results/<sweep_name>/, or UnknownSweepError naming the sweeps that exist."""
    path = Path(results_dir) / sweep_name
    if not (path / "config.yaml").is_file():
        known = list_sweeps(results_dir)
        listing = ", ".join(known) if known else "none"
        raise UnknownSweepError(f"no sweep {sweep_name!r}: {path / 'config.yaml'} does not exist. "
                                f"Sweeps in {Path(results_dir)}: {listing}")
    return path


def storage_url(sweep_name: str, results_dir: str | Path = "results") -> str:
    """The `storage.url` recorded in results/<sweep>/config.yaml."""
    config = sweep_dir(sweep_name, results_dir) / "config.yaml"
    cfg = OmegaConf.load(config)
    url = OmegaConf.select(cfg, "storage.url", default=None)
    if not url:
        raise ValueError(f"{config}: no storage.url (expected the Optuna storage URL of the "
                         "sweep, e.g. sqlite:///results/<sweep>/optuna.db)")
    return str(url)


def _resolve_file(path: str, base: Path | None) -> Path:
    """A store file as given, else relative to the sweep folder; FileNotFoundError if neither."""
    candidates = [Path(path)]
    if base is not None and not Path(path).is_absolute():
        candidates += [base / path, base / Path(path).name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Optuna store file {path!r} not found (looked at "
                            f"{', '.join(str(c) for c in candidates)})")


def study_name(sweep: str, task: str, variant: str) -> str:
    """The study of one (task, variant) of a sweep: "<sweep>/<task>/<variant>"."""
    return f"{sweep}/{task}/{variant}"


def sweep_studies(storage: optuna.storages.BaseStorage, sweep: str) -> list:
    """The studies "<sweep>/..." in an opened store (Optuna's FrozenStudy records)."""
    prefix = f"{sweep}/"
    return [s for s in storage.get_all_studies() if s.study_name.startswith(prefix)]


def open_existing(url: str, base: str | Path | None = None) -> optuna.storages.BaseStorage:
    """Open an existing store: sqlite:// / postgresql:// / mysql:// URL or a journal file path.

    `base` (the sweep folder) is where a relative file path is also looked for. A file store
    that does not exist is an error here: analysis never creates an empty store.
    """
    base = Path(base) if base is not None else None
    if url.startswith("sqlite:///"):
        url = f"sqlite:///{_resolve_file(url[len('sqlite:///'):], base).resolve()}"
    elif url.startswith(FILE_SCHEMES):
        url = f"journal://{_resolve_file(url.split('://', 1)[1], base).resolve()}"
    elif "://" not in url:
        url = f"journal://{_resolve_file(url, base).resolve()}"
    return open_storage(url)
