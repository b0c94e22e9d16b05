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

Secrets: a URL's password never reaches a file or a log: everything the project writes
shows `mask_url(url)` (`postgresql+psycopg2://odyssey:***@host/db`). A masked URL (read
back from results/<sweep>/config.yaml) is opened with the password of
`$ODYSSEY_STORAGE_URL` when that names the same database, else with none, so that libpq
takes it from `$PGPASSWORD` or `~/.pgpass` (its own mechanisms).
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
URL_ENV = "ODYSSEY_STORAGE_URL"

JOURNAL_SCHEME = "journal://"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")


class StorageURLError(ValueError):
    """A storage URL that names no store this module can open."""


class DamagedJournalError(ValueError):
    """A journal file with a line that is not a complete JSON record (not its last line)."""


def _parsed(url: str) -> URL | None:
    """The SQLAlchemy URL of a database URL, None for journals and unparsable strings."""
    if "://" not in url or url.startswith(JOURNAL_SCHEME):
        return None
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        return None


def mask_url(url: str) -> str:
    """The URL with its password shown as *** (the only form the project writes or logs)."""
    parsed = _parsed(url)
    if parsed is None or parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


# the password in a URL's user info: scheme://user:PASSWORD@host
_USERINFO_PASSWORD = re.compile(r"(://[^:/@\s'\"]*:)([^\s'\"]+)(@[^@\s'\"/]*)")


def mask_secrets(value: object) -> object:
    """`value` (a config of dicts, lists and strings, or a file's text) with the password of
    every URL in it shown as ***, for writing configs, trial attributes and Hydra's files."""
    if isinstance(value, str):
        return _USERINFO_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", value)
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_secrets(v) for v in value)
    return value


def unmask_url(url: str) -> str:
    """The URL to connect with: a masked password comes from $ODYSSEY_STORAGE_URL when it
    names the same database, else is left out (libpq then reads $PGPASSWORD, ~/.pgpass)."""
    parsed = _parsed(url)
    if parsed is None or parsed.password != MASK:
        return url
    env = _parsed(os.environ.get(URL_ENV, ""))
    if env is not None and env.password and env._replace(password=None) == \
            parsed._replace(password=None):
        return env.render_as_string(hide_password=False)
    return parsed._replace(password=None).render_as_string(hide_password=False)


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
            f"storage URL {mask_url(url)!r}: expected journal://PATH, sqlite:///PATH or an "
            "SQLAlchemy database URL such as postgresql://USER:PASSWORD@HOST:5432/DB")
    return scheme


def open_storage(url: str, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> BaseStorage:
    """An Optuna storage for `url` (see the module docstring), creating a journal's folder.

    `heartbeat_interval` / `grace_period` (seconds) switch on Optuna's heartbeats for RDB
    stores (workers record one while a trial runs; a trial silent for `grace_period` is
    stale); journal stores have none and ignore them.
    """
    scheme = check_url(url)
    url = unmask_url(url.strip())
    if scheme == "journal":
        path = journal_path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        check_journal(path)
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
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs,
                              heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        except ImportError as e:  # Optuna: "Failed to import DB access module ..."
            raise StorageURLError(
                f"storage URL {mask_url(url)!r}: no database driver for {scheme} in this "
                "environment; install the cluster extra (pip install -e '.[cluster]', or make "
                f"setup EXTRAS=cluster) for PostgreSQL ({e})") from e


def check_journal(path: Path) -> None:
    """Refuse a damaged journal with a message naming the file and line; move a torn last
    line (a worker killed while appending: an operation that never completed) aside.

    Optuna skips a torn last line when reading, but the next append would glue its record
    to it, and the merged line would stop every later run; so it is cut off under Optuna's
    own file lock and kept in <journal>.torn-<time> for inspection.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    tail = lines.pop()  # bytes after the last newline: b"" for a clean journal
    for number, line in enumerate(lines, start=1):
        try:
            json.loads(line)
        except ValueError as e:
            kept = number - 1
            raise DamagedJournalError(
                f"{path}: line {number} of {len(lines) + bool(tail)} is not a complete JSON "
                f"record ({e}); the journal is damaged there. Restore it from a backup, or "
                f"keep the {kept} records before it with: head -n {kept} {path} > "
                f"{path}.repaired && mv {path}.repaired {path} (records after line "
                f"{number} are then lost; their trials run again)") from None
    if tail:
        lock = JournalFileSymlinkLock(str(path))  # the lock JournalFileBackend appends under
        lock.acquire()
        try:
            with open(path, "rb") as f:
                data = f.read()
            cut = data.rfind(b"\n") + 1
            if cut < len(data):
                aside = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
                aside.write_bytes(data[cut:])
                with open(path, "r+b") as f:
                    f.truncate(cut)
                warnings.warn(f"{path}: its last line was torn (a worker killed while "
                              f"writing); cut off and kept in {aside}", stacklevel=2)
        finally:
            lock.release()
