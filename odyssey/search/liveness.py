"""Which worker owns a running trial, and whether that worker still lives.

A trial records its worker (host, boot id, pid, process start time) when it starts. A
running trial is stale when its worker is on this machine and that process is gone (or
the pid now belongs to another process): this is decided at once, so a killed sweep that
is rerun replaces its interrupted trials immediately. Workers on other machines are judged
by Optuna's heartbeats, which RDB stores (PostgreSQL, SQLite) keep; a journal store has
no heartbeats and is meant for one machine.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# where the process table is read (Linux procfs); a module constant so that a test can
# point it at an empty folder and drive the branch of a system without /proc (macOS)
PROC = Path("/proc")


def _boot_id() -> str | None:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass(frozen=True)
class WorkerId:
    """A worker process, recorded on each of its trials as user attribute `worker`."""

    host: str
    boot_id: str | None
    pid: int
    start_ticks: int | None
    index: int = 0

    @classmethod
    def current(cls, index: int = 0) -> WorkerId:
        pid = os.getpid()
        return cls(socket.gethostname(), _boot_id(), pid, _start_ticks(pid), index)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def same_process(self, other: WorkerId | None) -> bool:
        """Whether `other` is this very process (host, pid and start time)."""
        return other is not None and (self.host, self.pid, self.start_ticks) == (
            other.host, other.pid, other.start_ticks)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkerId:
        return cls(str(d["host"]), d.get("boot_id"), int(d["pid"]), d.get("start_ticks"),
                   int(d.get("index", 0)))


def same_machine(a: WorkerId, b: WorkerId) -> bool:
    """Both on this machine (same host name; the boot id, where known, may differ)."""
    return a.host == b.host


def process_alive(owner: WorkerId, me: WorkerId) -> bool:
    """Whether `owner` (on `me`'s machine) is still running."""
    if owner.boot_id and me.boot_id and owner.boot_id != me.boot_id:
        return False  # the machine rebooted since: the process cannot be alive
    if owner.pid == me.pid:
        return owner.start_ticks == me.start_ticks
    stat = PROC / str(owner.pid) / "stat"
    if (PROC / "self" / "stat").exists():
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        if fields[0] in ("Z", "X"):  # zombie or dead: finished, not yet reaped
            return False
        return owner.start_ticks is None or int(fields[19]) == owner.start_ticks
    try:  # no /proc (macOS): signal 0 only tells whether the pid exists
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def heartbeat_interval(storage: Any) -> int | None:
    """Seconds between a running trial's heartbeats on `storage`; None where the store keeps
    none (a journal store, or an RDB store opened without heartbeats)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


def silent_trial_ids(study: Any) -> set[int]:
    """Trial ids whose Optuna heartbeat is older than the grace period (RDB stores)."""
    storage = study._storage
    # the storage's own query, the one optuna.storages.fail_stale_trials uses; called here
    # so that fail_kind/fail_reason are set before the state (a finished trial is frozen)
    get_stale = getattr(storage, "_get_stale_trial_ids", None)
    if get_stale is None or not heartbeat_interval(storage):
        return set()
    return set(get_stale(study._study_id))


class Heartbeat:
    """Records Optuna heartbeats for a running trial on stores that keep them (RDB):
    `start()` to `stop()`, or as a `with` block."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._interval = heartbeat_interval(storage)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        """One beat now, then one every interval in a background thread."""
        if self._interval:
            self._storage.record_heartbeat(self._trial_id)
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name=f"heartbeat-{self._trial_id}")
            self._thread.start()
        return self

    def __enter__(self) -> Heartbeat:
        return self.start()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception:  # a missed beat is retried; the trial itself must go on
                continue

    def stop(self) -> None:
        """No more beats (waits for the thread to end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Verdict:
    """What a running trial's owner is doing, as far as this worker can tell.

    `state`: "alive" (its worker is a live process on this machine), "stale" (its worker
    is gone: replace the trial; `reason` says how that was judged) or "elsewhere" (on
    another machine, alive by its heartbeat or unwatchable on a journal store, or not yet
    owned and younger than the grace period). `owner` is None for a trial that never
    recorded its worker.
    """

    state: str
    owner: WorkerId | None
    reason: str = ""


def judge_running(owner_attr: dict[str, Any] | None, age_s: float, silent: bool,
                  me: WorkerId, unowned_grace_s: float) -> Verdict:
    """The verdict on one running trial: its recorded `worker` attribute (None if it never
    recorded one), seconds since it started, and whether the store's heartbeat went silent."""
    if owner_attr is None:
        if age_s > unowned_grace_s:
            return Verdict("stale", None,
                           f"stale: running for {age_s:.0f} s without recording a worker")
        return Verdict("elsewhere", None)
    owner = WorkerId.from_dict(owner_attr)
    here = same_machine(owner, me)
    if here and not process_alive(owner, me):
        return Verdict("stale", owner,
                       f"stale: worker {owner.host}:{owner.pid} ended while the trial was "
                       "running (killed or crashed); replaced by a new trial")
    if silent:
        return Verdict("stale", owner,
                       f"stale: worker {owner.host}:{owner.pid} sent no heartbeat for longer "
                       "than the grace period (its machine or process died); replaced by a "
                       "new trial")
    return Verdict("alive" if here else "elsewhere", owner)
