"""The one way to open a sweep store (docs/results.md "Sweep store"): an Optuna storage from a URL.

Accepted URLs:

- ``journal://<path>``: Optuna's JournalStorage on an append-only journal file (the
  embedded default). Several processes on one machine append to it under Optuna's file
  lock, so concurrent workers never see "database is locked". ``journal:///abs/path`` is
  absolute, ``journal://rel/path`` relative to the working directory. A bare path ending in
  ``.journal`` or ``.log`` means the same.
- ``sqlite:///<path>``, ``postgresql://...``, ``mysql://...``: Optuna's RDBStorage
  (SQLAlchemy URLs). PostgreSQL is the store for workers on several machines; RDB stores
  get Optuna heartbeats, so a worker that vanishes on another machine is noticed.
  The PostgreSQL driver comes with the ``cluster`` extra (``pip install -e .[cluster]``).

Secrets: a password in a URL is never written anywhere: `mask_url` gives the URL the project
shows and stores (``postgresql+psycopg2://odyssey:***@host/db``). Opening a masked URL takes
the password from ``ODYSSEY_STORAGE_URL`` when that names the same server, database and user;
otherwise the URL goes to the driver without one, so libpq's own ``PGPASSWORD`` or
``~/.pgpass`` supply it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

JOURNAL_SCHEME = "journal://"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")
log = logging.getLogger("odyssey.storage")

MASK = "***"
URL_ENV = "ODYSSEY_STORAGE_URL"
# concurrent first workers on an empty database race to create Optuna's tables: retries
SCHEMA_RETRIES = 8


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


class JournalDamagedError(StorageURLError):
    """A journal file with a line that is not one of Optuna's records."""


def repair_journal(path: Path) -> bool:
    """Drop a torn last line (a worker killed while writing); JournalDamagedError otherwise.

    Runs under Optuna's own journal lock, so a line being written is never taken for torn.
    Returns whether a line was dropped.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return False
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb") as f:
            lines = f.readlines()
        offset = 0
        for number, line in enumerate(lines, start=1):
            last = number == len(lines)
            try:
                ok = line.endswith(b"\n") and isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            if not ok and last:
                with open(path, "r+b") as f:
                    f.truncate(offset)
                log.warning("%s: dropped a torn last line %d (%d bytes; a worker was "
                            "killed while writing it); the %d records before it are kept",
                            path, number, len(line), number - 1)
                return True
            if not ok:
                raise JournalDamagedError(
                    f"journal {path} is damaged at line {number} of {len(lines)} (not an "
                    "Optuna record): restore the file from a backup, or delete that line "
                    f"to keep the other trials (e.g. sed -i '{number}d' {path}), or delete "
                    "the file to start the sweep over")
            offset += len(line)
        return False
    finally:
        lock.release()


# the password in a URL's user info: scheme://user:PASSWORD@host
_USERINFO_PASSWORD = re.compile(r"(://[^:/@\s'\"]*:)([^\s'\"]+)(@[^@\s'\"/]*)")


def mask_secrets(value: object) -> object:
    """`value` (a config of dicts, lists and strings, or a file's text) with the password of
    every URL in it shown as ***: for configs and the files Hydra saves (mask_url for one
    URL)."""
    if isinstance(value, str):
        return _USERINFO_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", value)
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_secrets(v) for v in value)
    return value


def mask_url(url: str) -> str:
    """`url` with any password replaced by ***: the one form shown, logged or stored."""
    if not isinstance(url, str) or "://" not in url or "@" not in url:
        return url
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def unmask_url(url: str) -> str:
    """The URL to connect with: a masked password from $ODYSSEY_STORAGE_URL, or none (libpq)."""
    if "@" not in url or MASK not in url:
        return url
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password != MASK:
        return url
    env = os.environ.get(URL_ENV, "")
    if env and "://" in env:
        try:
            full = make_url(env)
        except ArgumentError:
            full = None
        if full is not None and full.password is not None and all(
                getattr(full, k) == getattr(parsed, k)
                for k in ("drivername", "username", "host", "port", "database")):
            return full.render_as_string(hide_password=False)
    # URL.set ignores None; _replace is the documented namedtuple way to drop a field
    return parsed._replace(password=None).render_as_string(hide_password=False)


def _check_driver(url: str) -> None:
    """StorageURLError naming the extra to install when the URL's DB driver is missing."""
    try:
        make_url(url).get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError) as e:
        raise StorageURLError(
            f"storage URL {mask_url(url)!r} needs a database driver that is not installed "
            f"({e}); install the cluster extra: pip install -e '.[cluster]' (or make setup "
            "EXTRAS=cluster)") from None


def _already_exists(e: Exception) -> bool:
    text = str(e).lower()
    return any(s in text for s in ("already exists", "duplicate key", "unique constraint",
                                   "database is locked"))


def _no_privilege(url: str, e: DBAPIError) -> StorageURLError:
    """One line: the role may not create (or read) Optuna's tables in this database."""
    parsed = make_url(url)
    why = str(e.orig).strip().splitlines()[0]
    return StorageURLError(
        f"store {mask_url(url)}: role {parsed.username!r} may not create Optuna's tables in "
        f"database {parsed.database!r} ({why}); create them once as a role that may (the "
        f"database's owner, or after GRANT CREATE ON SCHEMA public TO {parsed.username}), "
        "and grant this role what a worker needs (docs/store-outages.md)")


def _rdb_storage(url: str, engine_kwargs: dict, heartbeat_interval: int | None,
                 grace_period: int | None) -> RDBStorage:
    """RDBStorage, retried when another worker is creating the same schema at that moment."""
    for attempt in range(SCHEMA_RETRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine_kwargs,
                                  heartbeat_interval=heartbeat_interval,
                                  grace_period=grace_period)
        except optuna.exceptions.StorageInternalError as e:  # (Optuna wraps some errors)
            cause = e.__cause__
            if isinstance(cause, DBAPIError) and getattr(cause.orig, "pgcode", None) == "42501":
                raise _no_privilege(url, cause) from None
            raise
        except RuntimeError as e:  # Optuna's "no longer compatible with the table schema"
            if "table schema" not in str(e):
                raise
            raise StorageURLError(f"store {mask_url(url)}: {e}") from None
        except DBAPIError as e:
            if getattr(e.orig, "pgcode", None) == "42501":  # insufficient_privilege
                raise _no_privilege(url, e) from None
            if isinstance(e, OperationalError) and not _already_exists(e):
                # cannot connect (server down, wrong host, no or wrong password): one line
                why = str(e.orig).strip().splitlines()[0] if e.orig else type(e).__name__
                raise StorageURLError(
                    f"cannot open the store {mask_url(url)}: {why} (the password comes from "
                    f"${URL_ENV}, $PGPASSWORD or ~/.pgpass)") from None
            if attempt == SCHEMA_RETRIES - 1 or not _already_exists(e):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def open_storage(url: str, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None,
                 connect_args: dict | None = None) -> BaseStorage:
    """An Optuna storage for `url` (see the module docstring), creating a journal's folder.

    `heartbeat_interval` / `grace_period` (seconds) switch on Optuna's heartbeats for RDB
    stores (workers record one while a trial runs; a trial silent for `grace_period` is
    stale); journal stores have none and ignore them. `connect_args` go to the database
    driver (resilient.pg_connect_args: timeouts).
    """
    scheme = check_url(url)
    url = unmask_url(url.strip())
    if scheme == "journal":
        path = journal_path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_journal(path)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict = {}
    if scheme == "sqlite":
        db = url.split(":///", 1)[1] if ":///" in url else ""
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # wait for the file lock instead of failing at once when workers write together
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        _check_driver(url)
        engine_kwargs["pool_pre_ping"] = True
        if connect_args:
            engine_kwargs["connect_args"] = dict(connect_args)
    return _rdb_storage(url, engine_kwargs, heartbeat_interval, grace_period)
