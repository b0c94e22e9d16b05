"""Riding out a store outage: a worker's store calls retried, bounded, and never left hanging.

Databases restart (upgrades, failovers), an administrator terminates a backend, a full disk
is cleared. `ResilientStorage` wraps the Optuna storage a worker uses and retries every call
that fails for a transient reason (connection refused or lost, "the database system is
shutting down", admin termination 57P01, a serialization failure 40001, a statement that
timed out) with exponential backoff, for at most `storage.retry_seconds` of outage. It logs
one line when an outage starts and one when the store is back; past the bound a call raises
`StoreUnavailableError`, whose one line the app prints before exiting with EXIT_STORE.

Why the storage boundary and not each call site: Optuna's Study and Trial call the storage
themselves (ask reads the trials for the sampler, tell reads the trial before writing it), so
only a storage wrapper sees every call a worker makes.

Timeouts (`pg_connect_args`, `install_answer_timeout`): TCP keepalives find a dead peer,
the server's statement_timeout ends a stuck statement, and a psycopg2 wait callback ends
any wait (connecting, or for an answer) on a server that accepts packets but never answers
(a frozen server: the kernel still acknowledges, so keepalives and the server's own timeout
see nothing; libpq's connect_timeout, also set, does not apply to psycopg2's waits through
a callback). Each ends as a transient error, so the retry above turns it into an outage
line, then a clear exit after the bound.
"""

from __future__ import annotations

import contextlib
import logging
import re
import select
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from ..store.storage import StorageURLError, mask_url, open_storage

log = logging.getLogger("odyssey.store")

# SQLSTATEs worth retrying: class 08 (connection exception) and these
TRANSIENT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "53300",  # too_many_connections
    "55P03",  # lock_not_available
    "57014",  # query_canceled (statement_timeout)
    "57P01",  # admin_shutdown: pg_terminate_backend, or a fast/smart shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: the database system is starting up / shutting down
})
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 15.0
# the exit status of a worker or multirun that cannot read or write its store: an outage
# longer than storage.retry_seconds, or a privilege the store's role lacks
EXIT_STORE = 4
# libpq settings: a connect attempt waits at most this long (the answer timeout if shorter)
CONNECT_TIMEOUT_S = 10
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
              "keepalives_count": 3}


class StoreUnavailableError(RuntimeError):
    """The store stayed unreachable for longer than the retry bound."""


class StorePermissionError(StorageURLError):
    """The store's role lacks a privilege a worker needs (one line naming it)."""


def _chain(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    x: BaseException | None = e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        yield x
        x = x.__cause__ or x.__context__


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def transient_reason(e: BaseException) -> str | None:
    """The driver's one-line reason when `e` is a transient store failure, else None.

    Transient: a lost or refused connection (SQLAlchemy saw a disconnect, or the driver's
    OperationalError carries no SQLSTATE, as libpq's connection failures do), an SQLSTATE
    of class 08 or in TRANSIENT_SQLSTATES, SQLite's "database is locked", a pool timeout.
    Anything else (a privilege, a schema, bad data) is not, and is raised at once.
    """
    for x in _chain(e):
        if isinstance(x, sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return _first_line(x)
        if not isinstance(x, sa_exc.DBAPIError):
            continue
        orig = x.orig
        why = _first_line(orig) if orig is not None else _first_line(x)
        code = getattr(orig, "pgcode", None)
        if x.connection_invalidated or (code and (code.startswith("08")
                                                  or code in TRANSIENT_SQLSTATES)):
            return why
        if type(orig).__module__.startswith("sqlite3"):
            return why if "database is locked" in why else None
        if code is None and isinstance(x, sa_exc.OperationalError | sa_exc.InterfaceError):
            return why
        return None
    return None


class _Outage:
    """The outage state shared by all threads of a worker: one line when it starts, one when
    it ends, whichever thread sees it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.since: float | None = None  # monotonic
        self.back_at: float | None = None  # monotonic, the end of the last outage

    def failed(self, reason: str, bound: float) -> float:
        """Record a failed call; returns the outage's start (monotonic)."""
        with self.lock:
            if self.since is None:
                self.since = time.monotonic()
                log.warning("store %s unreachable since %s (%s); retrying for up to %.0f s",
                            self.name, datetime.now().strftime("%H:%M:%S"), reason, bound)
            return self.since

    def ok(self) -> None:
        if self.since is None:  # (unlocked read: the common case costs nothing)
            return
        with self.lock:
            if self.since is not None:
                log.warning("store %s is back after %.0f s", self.name,
                            time.monotonic() - self.since)
                self.since, self.back_at = None, time.monotonic()


# calls Optuna's cache may answer without the server: their success does not end an outage
_MAYBE_CACHED = frozenset({"get_trial", "get_study_name_from_id", "get_study_directions",
                           "get_trial_id_from_study_id_trial_number", "get_trial_params",
                           "get_trial_user_attrs", "get_trial_system_attrs",
                           "get_trial_number_from_id", "get_trial_param"})
# the storage methods a worker calls, each retried as one unit (a read, or one transaction)
_RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_all_studies", "create_new_trial",
    "set_trial_param", "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id",
    "get_trial_param", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial", "get_all_trials", "get_n_trials", "get_best_trial",
    "get_trial_params", "get_trial_user_attrs", "get_trial_system_attrs",
)


class ResilientStorage(BaseStorage, BaseHeartbeat):
    """`inner` (an Optuna storage) with each call retried through an outage; see the module
    docstring. `grace_period`: a worker that has just seen the store come back judges no
    heartbeat silent for that long, so that every live worker gets to beat again first."""

    def __init__(self, inner: BaseStorage, retry_seconds: float, name: str,
                 grace_period: float | None = None) -> None:
        self._inner, self.retry_seconds = inner, float(retry_seconds)
        self._grace = grace_period
        self._outage = _Outage(name)

    @property
    def inner(self) -> BaseStorage:
        return self._inner

    def _call(self, method: str, *args: Any, bound: float | None = None, **kwargs: Any) -> Any:
        bound = self.retry_seconds if bound is None else bound
        call: Callable[..., Any] = getattr(self._inner, method)
        delay, retried = FIRST_DELAY_S, False
        while True:
            try:
                out = call(*args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                # a retried tell whose first try was committed before its answer was lost
                if retried and method == "set_trial_state_values" and self._told(*args,
                                                                                 **kwargs):
                    out = True
                else:
                    raise
            except Exception as e:
                reason = transient_reason(e)
                if reason is None:
                    raise
                since = self._outage.failed(reason, self.retry_seconds)
                left = since + bound - time.monotonic()
                if left <= 0:
                    raise StoreUnavailableError(
                        f"store {self._outage.name} unreachable for {time.monotonic() - since:.0f}"
                        f" s, longer than storage.retry_seconds={self.retry_seconds:.0f}: "
                        f"{reason}") from None
                time.sleep(min(delay, left))
                delay, retried = min(2 * delay, MAX_DELAY_S), True
                continue
            if method not in _MAYBE_CACHED:
                self._outage.ok()
            return out

    def _told(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        t = self._inner.get_trial(trial_id)
        return t.state == state and (values is None or list(t.values or []) == list(values))

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        return self._call("set_trial_state_values", trial_id, state, values)

    # heartbeats (BaseHeartbeat): a beat is retried within its interval only, and a missed
    # one is no error (the next beat goes on); the main thread's calls carry the outage
    def record_heartbeat(self, trial_id: int) -> None:
        interval = self.get_heartbeat_interval() or self.retry_seconds
        with contextlib.suppress(StoreUnavailableError):
            self._call("record_heartbeat", trial_id,
                       bound=min(self.retry_seconds, float(interval)))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        back = self._outage.back_at
        if self._outage.since is not None or (
                back is not None and self._grace and time.monotonic() - back < self._grace):
            return []  # just back: the other workers have not had a grace period to beat
        return self._call("_get_stale_trial_ids", study_id)

    def get_heartbeat_interval(self) -> int | None:
        return getattr(self._inner, "get_heartbeat_interval", lambda: None)()

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return getattr(self._inner, "get_heartbeat_stale_trial_callback", lambda: None)()

    def remove_session(self) -> None:
        self._inner.remove_session()


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"{name} of the wrapped storage, retried through an outage."
    return method


for _name in _RETRIED:
    setattr(ResilientStorage, _name, _delegate(_name))
ResilientStorage.__abstractmethods__ = frozenset()


def pg_connect_args(timeout_s: float) -> dict[str, Any]:
    """psycopg2 connect arguments: connect timeout, TCP keepalives, statement timeout."""
    return {"connect_timeout": max(1, int(min(CONNECT_TIMEOUT_S, timeout_s))), **KEEPALIVES,
            "options": f"-c statement_timeout={int(timeout_s * 1000)}"}


_STATEMENT_TIMEOUT = re.compile(r"statement_timeout=(\d+)")


def _wait_with_timeout(conn: Any) -> None:
    """psycopg2 wait callback: psycopg2.extras.wait_select, but a wait for the server longer
    than the connection's statement_timeout (plus up to 5 s) raises (psycopg2 then closes the
    connection; SQLAlchemy takes the message for a disconnect), so a
    frozen server is an outage, not a silent hang (see the module docstring)."""
    from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE

    found = _STATEMENT_TIMEOUT.search(conn.dsn or "")
    limit = None
    if found:
        timeout = int(found.group(1)) / 1000
        limit = timeout + min(5.0, timeout)  # after the server's own timeout, if it lives
    while True:
        state = conn.poll()
        if state == POLL_OK:
            return
        if state not in (POLL_READ, POLL_WRITE):
            raise conn.OperationalError(f"bad state from poll: {state}")
        fd = conn.fileno()
        ready = select.select([fd] if state == POLL_READ else [],
                              [fd] if state == POLL_WRITE else [], [], limit)
        if not any(ready):  # (psycopg2 closes the connection when this raises; closing it
            # here would deadlock on the connection's own lock, held while it waits)
            raise conn.OperationalError(
                f"could not receive data from server: no answer within {limit:.0f} s "
                "(the server is frozen or overloaded)")


def install_answer_timeout() -> None:
    """Make psycopg2 wait for the server through `_wait_with_timeout` (process-wide)."""
    import psycopg2.extensions

    if psycopg2.extensions.get_wait_callback() is not _wait_with_timeout:
        psycopg2.extensions.set_wait_callback(_wait_with_timeout)


# what a sweep worker does to each of Optuna's tables, and to their id sequences
WORKER_PRIVILEGES = ("SELECT", "INSERT", "UPDATE")


def check_privileges(rdb: RDBStorage, url: str) -> None:
    """StorePermissionError naming the role, the database and the first missing privilege
    on Optuna's tables (PostgreSQL), before any trial starts; other databases: nothing."""
    engine = rdb.engine
    if engine.dialect.name != "postgresql":
        return
    from optuna.storages._rdb import models

    tables = sorted(models.BaseModel.metadata.tables)
    with engine.connect() as c:
        role, db, schema = c.execute(text(
            "SELECT current_user, current_database(), current_schema()")).one()
        has = text("SELECT has_table_privilege(:t, :p)")
        missing = [f"{p} on table {t}" for t in tables for p in WORKER_PRIVILEGES
                   if (p == "SELECT" or t != "version_info")  # (written at creation only)
                   and not c.execute(has, {"t": f"{schema}.{t}", "p": p}).scalar()]
        seqs = c.execute(text(
            "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = "
            ":s"), {"s": schema}).scalars().all()
        missing += [f"USAGE on sequence {s}" for s in seqs
                    if not c.execute(text("SELECT has_sequence_privilege(:s, 'USAGE')"),
                                     {"s": f"{schema}.{s}"}).scalar()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise StorePermissionError(
            f"store {mask_url(url)}: role {role!r} lacks {missing[0]}{more} in database "
            f"{db!r}; a sweep worker needs {', '.join(WORKER_PRIVILEGES)} on Optuna's tables "
            f"and USAGE on their sequences: GRANT {', '.join(WORKER_PRIVILEGES)} ON ALL "
            f"TABLES IN SCHEMA {schema} TO {role}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA "
            f"{schema} TO {role}")


def open_worker_storage(url: str, *, retry_seconds: float, timeout_seconds: float,
                        heartbeat_interval: int | None = None,
                        grace_period: int | None = None, writer: bool = True) -> BaseStorage:
    """The store a worker uses: `storage.open_storage`, with timeouts and (`writer`) the
    privilege check on PostgreSQL, and (RDB stores) every call retried through an outage.

    Opening is not retried: a store unreachable at the start is more often a wrong URL than
    an outage, and is one line at once (StorageURLError).
    """
    scheme = url.strip().split("://", 1)[0].lower()
    pg = scheme in ("postgresql", "postgresql+psycopg2")  # libpq through psycopg2
    if pg:
        install_answer_timeout()
    storage = open_storage(url, heartbeat_interval=heartbeat_interval,
                           grace_period=grace_period,
                           connect_args=pg_connect_args(timeout_seconds) if pg else None)
    if not isinstance(storage, RDBStorage):
        return storage  # a journal file: no server to lose
    if pg and writer:
        check_privileges(storage, url)
    from optuna.storages import _CachedStorage

    return ResilientStorage(_CachedStorage(storage), retry_seconds, mask_url(url),
                            grace_period)
