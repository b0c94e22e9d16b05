"""Store outages against a real throwaway PostgreSQL server (issue 30, docs/store-outages.md).

For each fault, a fresh database and the multirun

    odyssey-sweep -m hydra/launcher=processes 'worker=range(0,2)' storage=postgresql \\
        'variants=[V,NP]' trials_per_variant=6 train.max_epochs=2

(the task and the sweep's size are options), the fault applied once `--after` trials are
complete: restart (pg_ctl restart -m fast), stop (stopped for --down seconds, then started),
immediate (stop -m immediate, started after --down seconds), terminate (pg_terminate_backend
of every worker connection), freeze (SIGSTOP of every server process for --down seconds,
with storage.timeout_seconds=2, so that a wait over 4 s is an outage line). Prints, per
fault: the exit status, the wall time, the trials per study by state, the outage lines the
workers logged, whether a traceback or the password appeared, and the load average before
and after. With `--none`, first the same command with no server at the URL (expected: exit
4, one line per worker, no traceback).

    python benchmarks/store_outages.py                       # all faults, music task
    python benchmarks/store_outages.py --faults restart --task toy  # (tests' toy task)

Needs Debian's postgresql and the cluster extra (psycopg2). Writes nothing outside a
temporary folder.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.search.pg import PASSWORD, Server, start_server  # noqa: E402

FAULTS = ("restart", "stop", "immediate", "terminate", "freeze")
COUNT_SQL = ("SELECT s.study_name, t.state, count(*) FROM trials t JOIN studies s "
             "USING (study_id) GROUP BY 1, 2 ORDER BY 1, 2")


def counts(server: Server, db: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in server.psql(db, COUNT_SQL).splitlines():
        study, state, n = line.split("|")
        out.setdefault(study.rsplit("/", 1)[-1], {})[state] = int(n)
    return out


def complete(server: Server, db: str) -> int:
    try:
        return sum(c.get("COMPLETE", 0) for c in counts(server, db).values())
    except subprocess.CalledProcessError:  # tables not created yet
        return 0


def apply(fault: str, server: Server, db: str, down: float) -> None:
    if fault == "restart":
        server.restart("fast")
    elif fault in ("stop", "immediate"):
        server.halt("fast" if fault == "stop" else "immediate")
        time.sleep(down)
        server.start()
    elif fault == "terminate":
        server.psql(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    elif fault == "freeze":
        pids = server.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(down)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
    else:
        raise ValueError(fault)


def sweep_command(args: argparse.Namespace, results: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "odyssey.search.app", "-m", "hydra/launcher=processes",
            "worker=range(0,2)", "storage=postgresql", f"variants=[{args.variants}]",
            f"trials_per_variant={args.trials}", f"train.max_epochs={args.epochs}",
            f"task={args.task}", f"results_dir={results}", f"sweep_name={name}",
            "storage.heartbeat_interval=2", "storage.grace_period=20",
            f"storage.retry_seconds={args.retry}", *args.overrides]


def run_one(args: argparse.Namespace, server: Server, fault: str | None, tmp: Path) -> dict:
    db = f"outage_{fault or 'none'}_{int(time.time() * 1000) % 10**8}"
    url = server.url(db)
    env = {**os.environ, "ODYSSEY_STORAGE_URL": url}
    if fault is not None:
        server.create_db(db)
    else:
        env["ODYSSEY_STORAGE_URL"] = url.replace(f":{server.port}/", ":9/")  # no server
    cmd = sweep_command(args, tmp / "results", db)
    if fault == "freeze":
        cmd.append("storage.timeout_seconds=2")  # (an unanswered wait: 2 + 2 s < --down)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    fault_at = None
    if fault is not None:
        while proc.poll() is None and complete(server, db) < args.after:
            time.sleep(0.3)
        if proc.poll() is None:
            fault_at = time.monotonic() - started
            apply(fault, server, db, args.down)
    rc = proc.wait(timeout=args.timeout)
    reader.join(10)
    wall = time.monotonic() - started
    out = "".join(lines)
    files = [p for p in (tmp / "results").rglob("*") if p.is_file()]
    leaked = [str(p) for p in files if PASSWORD.encode() in p.read_bytes()]
    return {"fault": fault or "no server", "rc": rc, "wall_s": round(wall, 1),
            "fault_at_s": None if fault_at is None else round(fault_at, 1),
            "counts": counts(server, db) if fault is not None else {},
            "outage_lines": [x for x in out.splitlines() if "unreachable since" in x
                             or "is back after" in x or "exit status" in x
                             or "odyssey-sweep: error" in x],
            "tracebacks": out.count("Traceback"), "password_seen": PASSWORD in out or leaked,
            "load": (round(load_before, 2), round(os.getloadavg()[0], 2))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faults", default=",".join(FAULTS))
    p.add_argument("--none", action="store_true", help="first run with no server at the URL")
    p.add_argument("--task", default="music")
    p.add_argument("--variants", default="V,NP")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--after", type=int, default=2, help="complete trials before the fault")
    p.add_argument("--down", type=float, default=6.0, help="seconds of stop or freeze")
    p.add_argument("--retry", type=int, default=120, help="storage.retry_seconds")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("overrides", nargs="*", help="further odyssey-sweep overrides")
    args = p.parse_args()
    server = start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="odyssey-outages-") as tmp:
            faults = ([None] if args.none else []) + [f for f in args.faults.split(",") if f]
            for fault in faults:
                r = run_one(args, server, fault, Path(tmp))
                print(f"== {r['fault']}: exit {r['rc']} in {r['wall_s']} s (fault at "
                      f"{r['fault_at_s']} s), load {r['load'][0]} -> {r['load'][1]}, "
                      f"tracebacks {r['tracebacks']}, password seen {bool(r['password_seen'])}")
                for study, c in r["counts"].items():
                    print(f"   {study}: {c}")
                for line in r["outage_lines"]:
                    print(f"   | {line[:200]}")
                sys.stdout.flush()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
