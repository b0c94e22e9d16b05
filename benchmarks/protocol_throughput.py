"""Paper-protocol throughput: trials one at a time against packed trials (issue 13).

A task (music by default) at the paper's protocol (batch 1, one update per sequence), a fixed seeded
set of trials per cell drawn from the paper's search space (DESIGN §4's ranges, written out in
`paper_space_trials`; the same as configs/search/greff.yaml),
each run for a capped number of epochs (no early stopping inside the cap), trained four
ways in one run, one thread:

- one at a time, before packing: each trial alone on the trainer of `--before` (default
  7a734f7, main before packed training: the trainer as issue 13 found it), checked out into
  a temporary git worktree and run in a subprocess on the same trials and data
  (trainer_at_commit.py); left out where that fails (no git), the next way then being the
  baseline;
- one at a time, autograd: each trial alone through autograd and torch.optim now
  (`train.fused=false`, with this code's cheaper evaluation); still the path of cells
  without fused kernels;
- one at a time, fused: each trial alone on the fused kernels (`parallel_trials=1`);
- packed: `parallel_trials` trials at once on the fused kernels.

Each way is timed `--rounds` times, the ways interleaved; it prints the median
CPU-seconds per trial-epoch and trials per hour (at 40 epochs per trial, the
middle of DESIGN §6's 20-60) for each, their ratios, and the largest difference between a
trial's packed result and its result alone with the same arithmetic (fused, one at a time).
The last line compares packed training with the first way. Writes
results/bench/protocol_throughput_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import add_force_flag, check_before, finish, load_average, verdict  # noqa: E402

from odyssey.cells import VARIANTS  # noqa: E402
from odyssey.tasks import load_task  # noqa: E402
from odyssey.training import (  # noqa: E402
    Hyperparameters,
    TrainResult,
    TrainSettings,
    TrialJob,
    train_pack,
)

EPOCHS_PER_TRIAL = 40  # a paper-protocol music trial runs 20-60 epochs (DESIGN §6)
BEFORE_PACKING = "7a734f7"  # main before packed training (issue 13): one trial at a time


def paper_space_trials(per_cell: int, seed: int) -> list[TrialJob]:
    """`per_cell` trials of every cell, hyperparameters drawn from DESIGN §4's ranges."""
    rng = np.random.default_rng(seed)
    jobs = []
    for variant in VARIANTS:
        for k in range(per_cell):
            hp = Hyperparameters(
                hidden_size=int(round(math.exp(rng.uniform(math.log(20), math.log(200))))),
                learning_rate=float(math.exp(rng.uniform(math.log(1e-6), math.log(1e-2)))),
                momentum=1.0 - float(math.exp(rng.uniform(math.log(0.01), 0.0))),
                input_noise=float(rng.uniform(0.0, 1.0)))
            jobs.append(TrialJob(variant, hp, seed=1000 * seed + len(jobs),
                                 tag=f"{variant}#{k}"))
    return jobs


def run(task, jobs: list[TrialJob], settings: TrainSettings, capacity: int
        ) -> tuple[float, dict[str, TrainResult]]:
    """CPU seconds for all of `jobs`, and each trial's result by tag."""
    queue = list(reversed(jobs))
    results: dict[str, TrainResult] = {}
    start = time.process_time()
    train_pack(task, settings, lambda: queue.pop() if queue else None,
               lambda job, result: results.__setitem__(job.tag, result), capacity=capacity)
    return time.process_time() - start, results


class CommitTrainer:
    """The trainer of another commit (`--before`), in a temporary git worktree of this
    repository, timing the same trials in a subprocess (benchmarks/trainer_at_commit.py)."""

    def __init__(self, commit: str, task: str, jobs: list[TrialJob], epochs: int) -> None:
        self.root = Path(__file__).resolve().parents[1]
        self.commit, self.task, self.epochs = commit, task, epochs
        self.jobs = [{"variant": j.variant, "seed": j.seed, "hidden_size": j.hp.hidden_size,
                      "learning_rate": j.hp.learning_rate, "momentum": j.hp.momentum,
                      "input_noise": j.hp.input_noise} for j in jobs]
        self.tree = Path(tempfile.mkdtemp(prefix="odyssey-before-"))
        git = ["git", "-C", str(self.root)]
        subprocess.run([*git, "worktree", "add", "--detach", "--force", str(self.tree), commit],
                       check=True, capture_output=True, text=True)
        try:  # the built corpora (git-ignored) beside that commit's tracked files
            (self.tree / "datasets").mkdir(exist_ok=True)
            for corpus in (self.root / "datasets").iterdir():
                if not (self.tree / "datasets" / corpus.name).exists():
                    (self.tree / "datasets" / corpus.name).symlink_to(corpus)
        except OSError:
            self.close()
            raise

    def cpu_seconds(self) -> float:
        """CPU seconds of training every job alone on that commit's trainer."""
        spec = json.dumps({"task": self.task, "epochs": self.epochs, "jobs": self.jobs})
        env = {**os.environ, "PYTHONPATH": str(self.tree)}
        script = Path(__file__).with_name("trainer_at_commit.py")
        done = subprocess.run([sys.executable, str(script)], input=spec, capture_output=True,
                              text=True, cwd=self.tree, env=env)
        if done.returncode:
            raise RuntimeError(f"the trainer of {self.commit} failed:\n{done.stderr[-2000:]}")
        return float(json.loads(done.stdout.strip().splitlines()[-1])["cpu_seconds"])

    def close(self) -> None:
        subprocess.run(["git", "-C", str(self.root), "worktree", "remove", "--force",
                        str(self.tree)], check=False, capture_output=True)
        shutil.rmtree(self.tree, ignore_errors=True)


def differences(a: dict[str, TrainResult], b: dict[str, TrainResult]) -> tuple[float, int]:
    """Largest relative difference of valid/test metrics over the trials whose status,
    epochs and best epoch agree, and how many trials disagree in those."""
    worst, apart = 0.0, 0
    for tag, ra in a.items():
        rb = b[tag]
        if (ra.status, ra.epochs_run, ra.best_epoch) != (rb.status, rb.epochs_run, rb.best_epoch):
            apart += 1
            continue
        for x, y in ((ra.valid_metric, rb.valid_metric), (ra.test_metric, rb.test_metric)):
            if x is not None and y is not None:
                worst = max(worst, abs(x - y) / max(abs(y), 1e-12))
    return worst, apart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="music", help="music, speech or handwriting "
                        "(their default corpora, configs/task/)")
    parser.add_argument("--per-cell", type=int, default=2, help="trials per cell")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (the cap)")
    parser.add_argument("--pack", type=int, default=8, help="parallel_trials of the packed run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before", default=BEFORE_PACKING,
                        help="a commit whose trainer is timed as one-at-a-time training, in "
                        "a temporary git worktree ('' to leave it out); default: the trainer "
                        "before packed training")
    parser.add_argument("--rounds", type=int, default=3,
                        help="each way timed this many times, interleaved; medians reported")
    parser.add_argument("--out", default=None,
                        help="default results/bench/protocol_throughput_<task>.json")
    add_force_flag(parser)
    args = parser.parse_args()
    before = check_before(args.force)
    torch.set_num_threads(1)
    task = load_task(args.task)
    jobs = paper_space_trials(args.per_cell, args.seed)
    epochs = len(jobs) * args.epochs
    base = dict(max_epochs=args.epochs, patience=args.epochs, batch_size=1)
    print(f"{args.task}, paper protocol (batch 1), {len(jobs)} trials ({args.per_cell} per cell, "
          f"hidden sizes {min(j.hp.hidden_size for j in jobs)}-"
          f"{max(j.hp.hidden_size for j in jobs)}), {args.epochs} epochs each, one thread; "
          f"load average {before:.2f}", flush=True)
    modes = (("one at a time, autograd", TrainSettings(**base, fused=False), 1),
             ("one at a time, fused", TrainSettings(**base), 1),
             (f"packed ({args.pack})", TrainSettings(**base), args.pack))
    names = [name for name, _, _ in modes]
    old = None
    if args.before:
        try:
            old = CommitTrainer(args.before, args.task, jobs, args.epochs)
            names.insert(0, f"one at a time, {args.before}")
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"(no trainer of {args.before}: {getattr(e, 'stderr', '') or e}; comparing "
                  f"with autograd one at a time instead)", flush=True)
    cpus: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, dict[str, TrainResult]] = {}

    def note(r: int, name: str, cpu: float) -> None:
        cpus[name].append(cpu)
        print(f"round {r + 1}/{args.rounds} {name:>30}: {1e3 * cpu / epochs:7.1f} ms CPU per "
              f"trial-epoch", flush=True)

    try:
        for r in range(args.rounds):  # the ways interleaved, so that drift hits them alike
            if old is not None:
                note(r, names[0], old.cpu_seconds())
            for name, settings, capacity in modes:
                cpu, results[name] = run(task, jobs, settings, capacity)
                note(r, name, cpu)
    finally:
        if old is not None:
            old.close()
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    for name in names:
        per_epoch = cpu[name] / epochs
        print(f"{name:>30}: {per_epoch * 1e3:7.1f} ms CPU per trial-epoch (median), "
              f"{3600 / (per_epoch * EPOCHS_PER_TRIAL):7.1f} trials per hour per core "
              f"({EPOCHS_PER_TRIAL}-epoch trials)", flush=True)
    alone, fused_alone, packed = (cpu[n] for n in names[-3:])
    baseline = cpu[names[0]]  # the trainer of --before, else autograd one at a time
    diff_alone, apart_alone = differences(results[names[-1]], results[names[-3]])
    diff_fused, apart_fused = differences(results[names[-1]], results[names[-2]])
    if apart_fused:
        diff_fused = math.inf
    record = {"task": args.task, "trials": len(jobs), "epochs": args.epochs, "pack": args.pack,
              "rounds": args.rounds, "baseline": names[0], "cpu_seconds": cpus,
              "ms_per_trial_epoch": {n: 1e3 * cpu[n] / epochs for n in names},
              "packed_vs_one_at_a_time": baseline / packed,
              "packed_vs_autograd_alone": alone / packed,
              "packed_vs_fused_alone": fused_alone / packed,
              "max_metric_difference_vs_autograd": diff_alone,
              "trials_apart_from_autograd": apart_alone,
              "max_metric_difference_vs_fused_alone": diff_fused,
              **verdict(before, load_average(), 1)}
    out = Path(args.out or f"results/bench/protocol_throughput_{args.task}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"packed vs fused one-at-a-time: {fused_alone / packed:.2f}x trials per hour")
    print(f"packed vs autograd one-at-a-time (this code, with its cheaper evaluation): "
          f"{alone / packed:.2f}x trials per hour")
    print(f"packed vs autograd one-at-a-time (other arithmetic, rounding differences grow in "
          f"chaotic high-learning-rate trials): max metric difference {diff_alone:.3g} over "
          f"{len(jobs) - apart_alone} trials, {apart_alone} with other epochs or best epoch")
    finish(record, args.force)
    # against names[0] (printed first, the line's format is fixed); the metric difference:
    # the same trial packed and alone (parallel_trials=1), whose arithmetic is the same
    print(f"one-at-a-time below: {names[0]}")
    print(f"packed vs one-at-a-time: {baseline / packed:.2f}x trials per hour; max metric "
          f"difference {diff_fused:.3g}")


if __name__ == "__main__":
    main()
