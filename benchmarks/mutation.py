"""Mutation testing (issue 28): how many small bugs planted in a module its tests catch.

mutmut (3.x, the `mutation` extra: pip install -e '.[mutation]') copies the package, plants
one mutant at a time (`<` for `<=`, `and` for `or`, a constant changed, an argument dropped,
...) and runs the tests that call the mutated function; a mutant no test fails on "survived".
Each scope below mutates a few modules and runs only their own test files, so that it fits a
small machine; a survivor is a change those files cannot see (slow end-to-end tests are not
run).

    python benchmarks/mutation.py                        # every scope, cheapest first
    python benchmarks/mutation.py analysis search.plan   # some scopes
    python benchmarks/mutation.py analysis --survivors   # and each survivor's diff
    python benchmarks/mutation.py --list                 # the scopes and their test files

Prints, per module: killed, survived, timeout, no tests (a mutant in code that none of the
scope's tests calls in the test process; code only run by a worker subprocess lands here),
others (suspicious, segfault, ...), total, and the surviving-mutant rate
survived / (killed + survived + timeout); and the machine's load average before and after
(a loaded machine makes more mutants time out; the counts are otherwise load-free).

Why a copy per scope: mutmut reads one [tool.mutmut] table from the pyproject.toml of the
folder it runs in and keeps its results beside it, so each scope runs in its own copy of
the working tree, .mutation/<scope>/ (git-ignored), with that table written for the scope.
A second run of a scope reuses the results of functions that did not change (mutmut's
cache), so new tests do not change a survivor's verdict: --retest-survivors tests the
survivors again against the tests as they are now; --fresh starts the scope over.
docs/testing.md "Mutation testing" says how to read it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_load import finish, load_average, verdict  # noqa: E402

WORK = ROOT / ".mutation"


@dataclass(frozen=True)
class Scope:
    """Modules mutated together and the test files run against them."""

    mutate: tuple[str, ...]
    tests: tuple[str, ...]
    # seconds a test may take (pytest-timeout) before it counts as failed: mutmut's own limit
    # is on CPU time, so a mutant that makes a worker wait forever for a "live" trial sleeps
    # until the suite's 900 s timeout; the search scopes' tests take seconds each
    test_timeout: int | None = None


# cheapest first: pure functions with fast tests, then the search modules by the cost of
# their tests (sweeps on the toy task). A test file that does not exist is left out; "FILE::TEST"
# runs one test of a file whose other tests cost much and call the module little.
SWEEP = "tests/search/test_sweep.py::"
SCOPES = {
    "analysis": Scope(
        ("odyssey/analysis/findings.py", "odyssey/analysis/stats.py"),
        ("tests/analysis/test_stats.py", "tests/analysis/test_findings.py",
         "tests/analysis/test_report.py")),
    "search.progress": Scope(
        ("odyssey/search/progress.py",),
        (SWEEP + "test_one_worker_fills_every_study_and_records_the_contract",
         SWEEP + "test_diverging_trials_are_recorded_failed_and_the_sweep_goes_on"),
        test_timeout=120),
    "search.sampling": Scope(
        ("odyssey/search/sampling.py",),
        ("tests/store/test_storage.py",
         "tests/test_networks.py::test_search_space_takes_layers_and_a_budget_instead_of_the"
         "_hidden_size",
         SWEEP + "test_bad_values_stop_before_any_training",
         "tests/search/test_plugins.py::test_dropout_ranges_are_checked"), test_timeout=120),
    "search.liveness": Scope(
        ("odyssey/search/liveness.py", "odyssey/search/running.py"),
        ("tests/store/test_storage.py",
         SWEEP + "test_a_dead_workers_running_trial_is_replaced",
         SWEEP + "test_a_running_trial_of_a_live_worker_is_left_alone",
         "tests/search/test_liveness.py", "tests/search/test_running.py"),
        test_timeout=120),
    "search.delivery": Scope(
        ("odyssey/search/delivery.py", "odyssey/search/resilient.py"),
        ("tests/search/test_resilient.py", "tests/search/test_sweep_branches.py"),
        test_timeout=120),
    "search.trial": Scope(
        ("odyssey/search/trial.py",),
        ("tests/search/test_trial.py", "tests/search/test_sweep_branches.py"), test_timeout=120),
    "search.plan": Scope(
        ("odyssey/search/plan.py",),
        ("tests/search/test_plan.py",), test_timeout=120),
    "search.spec": Scope(
        ("odyssey/search/spec.py",),
        (SWEEP + "test_bad_values_stop_before_any_training", "tests/search/test_plugins.py",
         "tests/search/test_packed_sweep.py::test_parallel_trials_must_be_a_positive_integer",
         "tests/search/test_resilient.py::test_the_retry_bound_and_the_timeout_are_checked"
         "_settings"), test_timeout=120),
    "search.sweep": Scope(
        ("odyssey/search/sweep.py",),
        ("tests/search/test_sweep.py", "tests/search/test_sweep_branches.py"), test_timeout=120),
    "search.app": Scope(
        ("odyssey/search/app.py",),
        ("tests/search/test_cli.py", "tests/search/test_launchers.py"), test_timeout=120),
}

# mutmut's words for the results, as `mutmut results --all true` prints them
COUNTED = ("killed", "survived", "timeout", "no tests")
SUMMARY_COLUMNS = (*COUNTED, "others", "total", "survived %")
LINE = re.compile(r"^\s*(\S+__mutmut_\d+): (.+?)\s*$")


def mutmut_table(scope: Scope) -> str:
    """The [tool.mutmut] table for one scope (mutmut 3.x's keys)."""
    tests = existing(scope.tests)
    if not tests:
        raise SystemExit(f"error: none of the scope's test files exists: {scope.tests}")
    # everything the tests read besides the package itself: configs/, tests/, notebooks/, ...
    tops = sorted({p.split("/", 1)[0] for p in tracked_files()} - {"odyssey", "pyproject.toml"})

    def array(items: list[str] | tuple[str, ...]) -> str:
        return "[" + ", ".join(f'"{x}"' for x in items) + "]"

    return "\n".join([
        "[tool.mutmut]",
        'source_paths = ["odyssey"]',
        f"only_mutate = {array(scope.mutate)}",
        f"also_copy = {array(tops)}",
        f"pytest_add_cli_args_test_selection = {array(tests)}",
        *([f'pytest_add_cli_args = ["--timeout={scope.test_timeout}"]']
          if scope.test_timeout else []),
        # a mutant that makes a test loop is stopped at 15x the test's clean time (the default)
        "timeout_multiplier = 15.0",
        # the scratch copy is not a git work tree
        "use_git_change_detection = false",
        ""])


def existing(tests: tuple[str, ...]) -> list[str]:
    """The test files (or FILE::TEST ids) whose file exists."""
    return [t for t in tests if (ROOT / t.split("::", 1)[0]).is_file()]


def tracked_files() -> list[str]:
    """The working tree as git sees it: tracked files and new files not ignored."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                         check=True, text=True, capture_output=True).stdout
    return [p for p in out.splitlines() if (ROOT / p).is_file()]


def prepare(name: str, scope: Scope, fresh: bool) -> Path:
    """.mutation/<name>/: the working tree's files, pyproject.toml with the scope's table."""
    work = WORK / name
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files():
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists() or dest.read_bytes() != (ROOT / rel).read_bytes():
            shutil.copy2(ROOT / rel, dest)
    pyproject = (ROOT / "pyproject.toml").read_text()
    if "[tool.mutmut]" in pyproject:
        raise SystemExit("error: pyproject.toml has its own [tool.mutmut] table; this script "
                         "writes one per scope: remove it")
    (work / "pyproject.toml").write_text(pyproject + "\n" + mutmut_table(scope))
    return work


def mutmut(work: Path, *args: str, log: Path | None = None) -> str:
    """Run `python -m mutmut ARGS` in `work`; its output (also appended to `log`)."""
    r = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ mutmut {' '.join(args)}\n{r.stdout}\n")
    if r.returncode != 0:
        tail = "\n".join(r.stdout.splitlines()[-30:])
        raise SystemExit(f"error: mutmut {' '.join(args)} failed in {work} (exit "
                         f"{r.returncode}); the last lines:\n{tail}")
    return r.stdout


def results(work: Path) -> dict[str, str]:
    """Every mutant's status by name, as mutmut reports it."""
    out = mutmut(work, "results", "--all", "true")
    return {m.group(1): m.group(2) for line in out.splitlines() if (m := LINE.match(line))}


def module_of(mutant: str) -> str:
    """'odyssey.search.trial.xǁActiveTrialsǁstart__mutmut_3' -> 'odyssey.search.trial'."""
    return mutant.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[0]


def summarise(statuses: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per module: the count of each status, others, total and the surviving-mutant rate."""
    table: dict[str, dict[str, float]] = {}
    for mutant, status in statuses.items():
        row = table.setdefault(module_of(mutant), dict.fromkeys(SUMMARY_COLUMNS, 0))
        row[status if status in COUNTED else "others"] += 1
        row["total"] += 1
    for row in table.values():
        judged = row["killed"] + row["survived"] + row["timeout"]
        row["survived %"] = round(100 * row["survived"] / judged, 1) if judged else float("nan")
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    width = max([len("module"), *map(len, table)])
    head = f"{'module':{width}} " + " ".join(f"{c:>10}" for c in SUMMARY_COLUMNS)
    lines = [head]
    for module, row in sorted(table.items()):
        lines.append(f"{module:{width}} " + " ".join(
            f"{row[c]:>10.1f}" if c == "survived %" else f"{row[c]:>10.0f}"
            for c in SUMMARY_COLUMNS))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scopes", nargs="*", help=f"scopes to run (default: all): "
                                                  f"{', '.join(SCOPES)}")
    parser.add_argument("--max-children", type=int, default=2,
                        help="mutants tested at once (default 2)")
    parser.add_argument("--fresh", action="store_true",
                        help="forget earlier results of these scopes and test every mutant")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="test only the earlier survivors again, against the tests as they "
                             "are now (after writing tests that should kill them)")
    parser.add_argument("--survivors", action="store_true",
                        help="print each surviving mutant's diff (mutmut show)")
    parser.add_argument("--list", action="store_true", help="list the scopes and exit")
    args = parser.parse_args()
    if args.list:
        for name, scope in SCOPES.items():
            print(f"{name}: mutates {', '.join(scope.mutate)}; tests "
                  f"{', '.join(existing(scope.tests))}")
        return
    try:
        import mutmut as _  # noqa: F401
    except ImportError:
        raise SystemExit("error: mutmut is not installed: .venv/bin/pip install -e "
                         "'.[mutation]'") from None
    unknown = sorted(set(args.scopes) - set(SCOPES))
    if unknown:
        raise SystemExit(f"error: unknown scope(s) {unknown}; expected some of "
                         f"{', '.join(SCOPES)}")
    before = load_average()
    totals: dict[str, dict[str, float]] = {}
    for name in args.scopes or list(SCOPES):
        scope = SCOPES[name]
        work = prepare(name, scope, args.fresh)
        started = time.perf_counter()
        log = work / "mutmut.log"
        print(f"== {name}: mutating {', '.join(scope.mutate)} (log: {log})", flush=True)
        if args.retest_survivors:  # mutmut's cache keeps a verdict until the code changes
            survivors = sorted(m for m, st in results(work).items() if st == "survived")
            print(f"   testing the {len(survivors)} survivors again", flush=True)
            if survivors:
                mutmut(work, "run", "--max-children", str(args.max_children), *survivors,
                       log=log)
        else:
            mutmut(work, "run", "--max-children", str(args.max_children), log=log)
        statuses = results(work)
        table = summarise(statuses)
        print(format_table(table))
        print(f"   {time.perf_counter() - started:.0f} s", flush=True)
        survivors = sorted(m for m, s in statuses.items() if s == "survived")
        if survivors:
            print("   survivors: " + " ".join(survivors))
        if args.survivors:
            for mutant in survivors:
                print(mutmut(work, "show", mutant))
        totals.update(table)
    if len(totals) > 1:
        print("== all scopes")
        print(format_table(totals))
        all_rows = list(totals.values())
        judged = sum(r["killed"] + r["survived"] + r["timeout"] for r in all_rows)
        survived = sum(r["survived"] for r in all_rows)
        print(f"surviving-mutant rate: {survived:.0f}/{judged:.0f} = "
              f"{100 * survived / judged if judged else float('nan'):.1f} %")
    finish(verdict(before, load_average(), threads=args.max_children), force=True)


if __name__ == "__main__":
    main()
