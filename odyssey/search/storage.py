"""The one way to open a sweep store (CONTRACT.md): an Optuna storage from a URL.

Accepted URLs:

- ``journal://<path>``: Optuna's JournalStorage on an append-only journal file (the
  embedded default). Several processes on one machine append to it under Optuna's file
  lock, so concurrent workers never see "database is locked". ``journal:///abs/path`` is
  absolute, ``journal://rel/path`` relative to the working directory. A bare path ending in
  ``.journal`` or ``.log`` means the same.
- ``sqlite:///<path>``, ``postgresql://...``, ``mysql://...``: Optuna's RDBStorage
  (SQLAlchemy URLs). PostgreSQL is the store for workers on several machines; RDB stores
  get Optuna heartbeats, so a worker that vanishes on another machine is noticed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

JOURNAL_SCHEME = "journal://"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")


class StorageURLError(ValueError):
    """A storage URL that names no store this module can open."""


def journal_path(url: str) -> Path | None:
    """The journal file of a journal URL (or bare journal path), else None."""
    if url.startswith(JOURNAL_SCHEME):
        rest = url[len(JOURNAL_SCHEME):]
        if not rest:
            raise StorageURLError(f"storage URL {url!r} names no file; expected journal://PATH")
        return Path(rest)
    if "://" not in url and url.endswith((".journal", ".log")):
        return Path(url)
    return None


def resolve_url(url: str) -> str:
    """The same store with any relative file path made absolute (for config.yaml)."""
    path = journal_path(url)
    if path is not None:
        return JOURNAL_SCHEME + str(path.expanduser().resolve())
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rest = url[len("sqlite:///"):]
        if rest and rest != ":memory:":
            return "sqlite:///" + str(Path(rest).expanduser().resolve())
    return url


def check_url(url: str) -> str:
    """The URL's kind, "journal" or an RDB scheme; StorageURLError for anything else."""
    if not isinstance(url, str) or not url.strip():
        raise StorageURLError(f"storage.url must be a non-empty string, got {url!r}")
    if journal_path(url.strip()) is not None:
        return "journal"
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in RDB_SCHEMES:
        raise StorageURLError(
            f"storage URL {url!r}: expected journal://PATH, sqlite:///PATH or an SQLAlchemy "
            "database URL such as postgresql://USER:PASSWORD@HOST:5432/DB")
    return scheme


def open_storage(url: str, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> BaseStorage:
    """An Optuna storage for `url` (see the module docstring), creating a journal's folder.

    `heartbeat_interval` / `grace_period` (seconds) switch on Optuna's heartbeats for RDB
    stores (workers record one while a trial runs; a trial silent for `grace_period` is
    stale); journal stores have none and ignore them.
    """
    scheme = check_url(url)
    url = url.strip()
    if scheme == "journal":
        path = journal_path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict = {}
    if scheme == "sqlite":
        db = url.split(":///", 1)[1] if ":///" in url else ""
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # wait for the file lock instead of failing at once when workers write together
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, engine_kwargs=engine_kwargs,
                          heartbeat_interval=heartbeat_interval, grace_period=grace_period)
