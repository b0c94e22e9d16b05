"""Every branch of the liveness verdict on real processes: a rebooted machine (its boot id
differs), a zombie (exited, not reaped), a reused pid (its start time differs), a system
without /proc (signal 0), and judge_running's verdicts built on them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from odyssey.search import liveness
from odyssey.search.liveness import WorkerId, judge_running, process_alive


def _state(pid: int) -> str:
    """The process state letter from /proc/<pid>/stat ("" once the pid is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """A live child process, killed and reaped after the test."""
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def owner_of(p: subprocess.Popen | int, **changes) -> WorkerId:
    """The WorkerId that process `p` (or pid) would record, as this machine sees it now,
    with `changes` (a faked field)."""
    pid = p if isinstance(p, int) else p.pid
    me = WorkerId.current()
    return replace(WorkerId(me.host, me.boot_id, pid, liveness._start_ticks(pid)), **changes)


def test_a_live_child_is_alive_and_its_recorded_start_time_is_read_from_proc(sleeper):
    owner = owner_of(sleeper)
    assert owner.start_ticks is not None and owner.boot_id is not None
    assert process_alive(owner, WorkerId.current())
    verdict = judge_running(owner.as_dict(), 5.0, False, WorkerId.current(), 300)
    assert verdict.state == "alive" and verdict.owner == owner


def test_a_worker_recorded_before_a_reboot_is_dead_even_if_its_pid_runs_now(sleeper):
    """The pid and start ticks match a live process, but the boot id says the machine has
    rebooted since the trial was recorded: that process cannot be the worker."""
    me = WorkerId.current()
    rebooted = owner_of(sleeper, boot_id="00000000-0000-0000-0000-000000000000")
    assert process_alive(owner_of(sleeper), me)  # the same record with this boot: alive
    assert not process_alive(rebooted, me)
    assert not process_alive(replace(me, boot_id=rebooted.boot_id), me)  # even its own pid
    verdict = judge_running(rebooted.as_dict(), 5.0, False, me, 300)
    assert verdict.state == "stale" and f"{rebooted.host}:{sleeper.pid} ended" in verdict.reason
    # an unknown boot id on either side (a record from a system without one) is no reboot
    assert process_alive(owner_of(sleeper, boot_id=None), me)


def test_a_zombie_worker_is_dead(tmp_path):
    """A child that has exited but is not reaped keeps its pid and start time in /proc (state
    Z): it must be judged dead, not alive by its matching start ticks."""
    child = subprocess.Popen(["true"])  # never waited for until the end: it stays a zombie
    try:
        deadline = time.monotonic() + 30
        while _state(child.pid) != "Z":
            assert time.monotonic() < deadline, f"child {child.pid} never became a zombie"
            time.sleep(0.01)
        owner = owner_of(child)
        assert owner.start_ticks is not None  # /proc still holds its start time
        assert not process_alive(owner, WorkerId.current())
        verdict = judge_running(owner.as_dict(), 5.0, False, WorkerId.current(), 300)
        assert verdict.state == "stale"
        assert _state(child.pid) == "Z"  # judging it did not reap it
    finally:
        child.wait()


def test_a_reused_pid_is_dead_when_its_start_time_differs(sleeper):
    """The recorded pid runs, but a different process: its start time is not the one the
    worker recorded (faked here one tick off)."""
    me = WorkerId.current()
    real = owner_of(sleeper)
    assert process_alive(real, me)
    for ticks in (real.start_ticks + 1, real.start_ticks - 1):
        reused = replace(real, start_ticks=ticks)
        assert not process_alive(reused, me)
        assert judge_running(reused.as_dict(), 5.0, False, me, 300).state == "stale"
    # this very pid recorded by an earlier process (the worker's own pid, reused)
    assert not process_alive(replace(me, start_ticks=me.start_ticks + 1), me)
    assert process_alive(me, me)
    # a record without start ticks (none were known) is judged by the pid alone
    assert process_alive(replace(real, start_ticks=None), me)


def test_without_proc_the_pid_is_probed_by_signal_0(tmp_path, monkeypatch, sleeper):
    """No /proc (macOS): no boot id, no start ticks; a live pid is alive, a gone one dead."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # exited and reaped: its pid names no process
    alive_before, gone_before = owner_of(sleeper), owner_of(gone.pid)
    monkeypatch.setattr(liveness, "PROC", tmp_path / "no-proc")  # an empty, absent folder
    me = WorkerId.current()
    assert (me.boot_id, me.start_ticks) == (None, None)
    assert liveness._start_ticks(sleeper.pid) is None
    # a reused pid cannot be told without /proc: a recorded start time that differs from
    # the process's real one is not seen (the pid alone is probed)
    assert process_alive(replace(alive_before, boot_id=None, start_ticks=12345), me)
    assert not process_alive(replace(gone_before, boot_id=None), me)
    assert judge_running(replace(gone_before, boot_id=None).as_dict(), 5.0, False, me,
                         300).state == "stale"
    with pytest.raises(subprocess.TimeoutExpired):  # probed with signal 0: not signalled,
        sleeper.wait(timeout=1)                     # so it sleeps on


def test_without_proc_another_users_process_is_alive(sleeper):
    """Signal 0 to another user's process is refused (EPERM): the process exists, so it is
    alive. As root, a forked child turned user nobody probes this (root's) sleeper; as any
    other user, this process probes pid 1 (init, root's)."""
    target = owner_of(sleeper) if os.geteuid() == 0 else owner_of(1)
    assert process_alive(target, WorkerId.current())  # with /proc, in this process
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the probe: no /proc, and (as root) no longer root
        try:
            # an absent folder that user nobody may look for (tmp_path is root's alone)
            liveness.PROC = Path(f"/no-proc-{os.getpid()}")
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            said = str(process_alive(replace(target, boot_id=None, start_ticks=None),
                                     WorkerId.current()))
        except BaseException as error:  # reported to the parent, which fails the test
            said = repr(error)
        finally:
            os.write(write, said.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        said = answer.read()
    os.waitpid(child, 0)
    assert said == "True"


def test_judge_running_verdicts_on_a_live_worker_elsewhere_unowned_and_silent(sleeper):
    me = WorkerId.current()
    live = owner_of(sleeper).as_dict()
    remote = {**live, "host": me.host + "-elsewhere"}
    assert judge_running(None, 10.0, False, me, 300).state == "elsewhere"  # young, unowned
    old = judge_running(None, 301.0, False, me, 300)
    assert old.state == "stale" and old.owner is None and "301 s" in old.reason
    assert judge_running(remote, 10.0, False, me, 300).state == "elsewhere"
    silent = judge_running(remote, 10.0, True, me, 300)
    assert silent.state == "stale" and "no heartbeat" in silent.reason
    # a silent heartbeat makes even a live local worker's trial stale (the check after the
    # process one)
    assert judge_running(live, 10.0, True, me, 300).state == "stale"
    # a remote worker is never judged by a local pid, even a dead one
    gone = {**remote, "pid": 2 ** 22 + 1, "start_ticks": 1}
    assert judge_running(gone, 10.0, False, me, 300).state == "elsewhere"


def test_same_process_needs_host_pid_and_start_time_to_match():
    me = WorkerId.current()
    assert me.same_process(replace(me)) and not me.same_process(None)
    for change in ({"pid": me.pid + 1}, {"start_ticks": (me.start_ticks or 0) + 1},
                   {"host": me.host + "-elsewhere"}):
        assert not me.same_process(replace(me, **change)), change


NAMED = """
import ctypes, time
ctypes.CDLL(None).prctl(15, b"a) Z 9 (b", 0, 0, 0)  # PR_SET_NAME: what /proc/<pid>/stat shows
print("named", flush=True)
time.sleep(60)
"""


def test_a_process_whose_name_holds_parentheses_is_read_from_its_last_one():
    """/proc/<pid>/stat puts the name in parentheses and the name may hold ") Z ": the
    fields are read after the last ")", so this live process is not taken for a zombie."""
    p = subprocess.Popen([sys.executable, "-c", NAMED], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "named\n"
        assert "a) Z 9 (b" in Path(f"/proc/{p.pid}/stat").read_text()
        owner = owner_of(p)
        assert owner.start_ticks is not None
        assert process_alive(owner, WorkerId.current())
        assert not process_alive(replace(owner, start_ticks=owner.start_ticks + 1),
                                 WorkerId.current())
    finally:
        p.kill()
        p.wait()


class FlakyStore:
    """A store whose second heartbeat fails (a network blip); it counts the beats."""

    def __init__(self) -> None:
        self.calls, self.beats = 0, threading.Semaphore(0)

    def get_heartbeat_interval(self) -> int:
        return 1

    def record_heartbeat(self, trial_id: int) -> None:
        self.calls += 1
        self.beats.release()
        if self.calls == 2:
            raise ConnectionError("blip")


def test_a_failed_heartbeat_is_retried_and_the_beats_go_on():
    store = FlakyStore()
    with liveness.Heartbeat(store, 7) as beat:
        for _ in range(4):  # the first beat, the failed one, then two more
            assert store.beats.acquire(timeout=60), f"only {store.calls} beats"
        assert beat._thread.daemon and beat._thread.name == "heartbeat-7"
    calls = store.calls
    time.sleep(1.5)
    assert store.calls == calls  # stopped: no beat after the block


def test_a_worker_id_round_trips_through_the_store_with_its_index():
    assert WorkerId.current().index == 0
    me = WorkerId.current(3)
    assert me.index == 3 and WorkerId.from_dict(me.as_dict()) == me
    old = {k: v for k, v in me.as_dict().items() if k != "index"}  # recorded before indices
    assert WorkerId.from_dict(old) == replace(me, index=0)


def test_a_stale_verdict_names_its_owner_and_says_why_in_full(sleeper):
    me = WorkerId.current()
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = owner_of(gone.pid)
    verdict = judge_running(dead.as_dict(), 5.0, False, me, 300)
    assert (verdict.state, verdict.owner) == ("stale", dead)
    assert verdict.reason == (f"stale: worker {dead.host}:{dead.pid} ended while the trial "
                              "was running (killed or crashed); replaced by a new trial")
    remote = replace(owner_of(sleeper), host=me.host + "-elsewhere")
    silent = judge_running(remote.as_dict(), 5.0, True, me, 300)
    assert (silent.state, silent.owner) == ("stale", remote)
    assert silent.reason == (f"stale: worker {remote.host}:{remote.pid} sent no heartbeat for "
                             "longer than the grace period (its machine or process died); "
                             "replaced by a new trial")
    # a trial without a worker: stale only once older than the grace period
    assert judge_running(None, 300.0, False, me, 300).state == "elsewhere"
    assert judge_running(None, 300.5, False, me, 300).reason == (
        "stale: running for 300 s without recording a worker")
