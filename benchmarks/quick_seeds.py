"""Does the default quick study reproduce the paper for every seed? (issue 24)

Runs the quick sweep (`experiment=quick`, the default of `make run-sweep`) once per seed,
analyses each one (`odyssey-analyze`, no notebooks) and tabulates the verdict of every
finding per seed, with each sweep's and analysis' wall time:

    .venv/bin/python benchmarks/quick_seeds.py --seeds 0 1 2 3 4
    .venv/bin/python benchmarks/quick_seeds.py --seeds 0 1 --parallel 2 -- trials_per_variant=40

Anything after `--` is passed to every sweep as Hydra overrides. `--parallel K` runs K
sweeps at once (each with `--workers` processes): for a machine with more cores than one
sweep uses; the wall times are then not those of `make run-sweep` on an idle machine.
Writes results/bench/quick_seeds.{md,csv}. The load average is recorded beside the times;
timings taken at load >= 1.5 are marked busy (the verdicts do not depend on the load).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import QUIET_LOAD, load_average  # noqa: E402

from odyssey.analysis.report import md_table  # noqa: E402

# the findings issue 24 asks the default run to reproduce (short names for the table)
HEADLINE = {"(NFG)": "NFG worse", "(NOAF)": "NOAF worse", "(CIFG)": "CIFG same",
            "(NP)": "NP same", "(FGR)": "FGR no gain", "Learning rate": "LR first",
            "Hidden size": "H second", "Input noise": "noise hurts",
            "Momentum": "momentum little", "interact": "interact little"}


def short(claim: str) -> str:
    """A finding's column name in the table."""
    for key, name in HEADLINE.items():
        if key in claim:
            return name
    return claim[:20]


def run_seed(seed: int, args: argparse.Namespace, overrides: list[str]) -> dict:
    """One quick sweep and its analysis; the verdicts and timings of that seed."""
    name = f"{args.prefix}-seed{seed}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_dir = Path(args.results_dir) / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    sweep = [sys.executable, "-m", "odyssey.search.app", "--multirun",
             "hydra/launcher=processes", f"hydra.launcher.n_jobs={args.workers}",
             f"worker=range(0,{args.workers})", f"task={args.task}", f"seed={seed}",
             f"sweep_name={name}", f"results_dir={args.results_dir}", *overrides]
    analyze = [sys.executable, "-m", "odyssey.cli.analyze", f"sweep_name={name}",
               f"results_dir={args.results_dir}", "progress=false", "figure_formats=[png]"]
    times = {}
    with open(log_dir / f"{name}.log", "w") as log:
        for step, cmd in (("sweep_s", sweep), ("analyze_s", analyze)):
            start = time.perf_counter()
            code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            times[step] = round(time.perf_counter() - start, 1)
            if code != 0:
                raise SystemExit(f"seed {seed}: {step[:-2]} failed (exit {code}); see "
                                 f"{log_dir / f'{name}.log'}")
    findings = pd.read_csv(Path(args.results_dir) / name / "tables" / "findings.csv")
    row = {"seed": seed, **times}
    row.update({short(c): v for c, v in zip(findings["claim"], findings["verdict"],
                                            strict=True)})
    print(f"seed {seed}: sweep {times['sweep_s']} s, analysis {times['analyze_s']} s; "
          + ", ".join(f"{short(c)} {v}" for c, v in zip(findings["claim"], findings["verdict"],
                                                        strict=True)), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--task", default="music")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per sweep")
    parser.add_argument("--parallel", type=int, default=1, help="sweeps run at once")
    parser.add_argument("--prefix", default="quickseeds")
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every sweep")
    args = parser.parse_args()
    before = load_average()
    start = time.perf_counter()
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda s: run_seed(s, args, args.overrides), args.seeds))
    after = load_average()
    table = pd.DataFrame(rows)
    out = Path(args.results_dir) / "bench"
    table.to_csv(out / "quick_seeds.csv", index=False)
    busy = before >= QUIET_LOAD or after - args.parallel * args.workers >= QUIET_LOAD
    text = (f"Quick study per seed (task {args.task}, {args.workers} workers, {args.parallel} "
            f"sweep(s) at once, overrides {args.overrides or 'none'}); load average before "
            f"{before:.2f}, after {after:.2f}{' (BUSY: times not README-grade)' if busy else ''};"
            f" {time.perf_counter() - start:.0f} s in all.\n\n"
            + md_table(table) + "\n")
    (out / "quick_seeds.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
