"""Load-average guard for benchmarks: README-grade timings need a quiet machine.

A shared machine's other jobs slow oneDNN's LSTM more than our kernels (issue 14: a table
taken at load average 5-6 overstated our kernels twofold), so a benchmark records the
1-minute load average before and after its run and refuses to publish (exit status 3) when
the machine was busy, unless --force. The benchmark's own threads are subtracted from the
"after" reading, since the run itself keeps that many cores busy.
"""

from __future__ import annotations

import argparse
import os
import sys

QUIET_LOAD = 1.5  # the project's rule: publish timings taken at load average below this
BUSY_EXIT = 3


def add_force_flag(parser: argparse.ArgumentParser) -> None:
    """The --force flag: write the results even when the machine was busy."""
    parser.add_argument("--force", action="store_true",
                        help=f"write results even if the load average was >= {QUIET_LOAD} "
                             "(they are then marked busy and are not README-grade)")


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def check_before(force: bool) -> float:
    """The load before a run; exits (BUSY_EXIT) at once when it is busy and not forced."""
    before = load_average()
    if before >= QUIET_LOAD and not force:
        print(f"error: load average {before:.2f} >= {QUIET_LOAD} before the benchmark: the "
              "machine is busy and timings would not be README-grade. Wait for a quiet "
              "machine (`uptime`), or pass --force to measure anyway (results marked busy).",
              file=sys.stderr)
        sys.exit(BUSY_EXIT)
    return before


def verdict(before: float, after: float, threads: int) -> dict[str, float | bool]:
    """The load record a benchmark writes beside its numbers; quiet=False marks busy runs."""
    others_after = max(0.0, after - threads)
    return {"load_average_before": round(before, 2), "load_average_after": round(after, 2),
            "own_threads": threads,
            "quiet": before < QUIET_LOAD and others_after < QUIET_LOAD}


def finish(record: dict[str, float | bool], force: bool) -> None:
    """Print the load line; exit BUSY_EXIT when the run was busy and not forced."""
    print(f"load average before {record['load_average_before']}, after "
          f"{record['load_average_after']} ({record['own_threads']} of it this benchmark's "
          f"own threads): {'quiet' if record['quiet'] else 'BUSY'}")
    if not record["quiet"]:
        print(f"warning: the machine was busy during the benchmark (load >= {QUIET_LOAD} "
              "besides its own threads); these numbers are not README-grade.", file=sys.stderr)
        if not force:
            sys.exit(BUSY_EXIT)
