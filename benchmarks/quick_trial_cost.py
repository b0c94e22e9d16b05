"""Where a quick trial's time goes, per task (issue 24: `make reproduce` in an hour).

For each task it composes the sweep config (`experiment=quick task=<task>` plus any Hydra
overrides after `--`, exactly as `odyssey-sweep` would), loads the corpus (building it when
missing, or always in a throwaway folder with `--fresh-build`), and trains `--trials`
trials drawn from the search space (Optuna's random sampler, as the sweep) on one thread.
It prints one table per task:

- the corpus: sequences, real frames, mean and longest length per split, the padding of
  the training batches, and (fresh builds) the build's CPU and wall seconds;
- the measured GEMM rate of this machine on one thread: a large square product (the
  peak) and the shapes of the recurrent layer (the whole-sequence input product, the
  per-step recurrent product at the batch size);
- per trial: cell, hidden size, epochs, CPU seconds, and their split into the fused
  kernels' training steps, batching (padding the training batches), the loss computed in
  Python (tasks without a C++ loss: CTC), and evaluation (valid every epoch, test at
  validation gains); FLOPs of the weight products (forward 2, forward+backward 6 per
  weight and real frame; elementwise work left out) and the arithmetic floor, those FLOPs
  at the peak rate;
- the median and mean, the fraction of time per part, whether each trial beat the task's
  trivial baseline, and the mean cost over the search space projected from a linear fit
  of CPU seconds on FLOPs (hidden size is log-uniform, so a handful of trials is a noisy
  mean).

CPU seconds, not wall: process CPU time is the cost on an idle core, whatever else runs.
The load average goes in the output (`uptime`); on a busy machine a CPU second is still
somewhat slower (shared caches), so the numbers are upper bounds there.

    .venv/bin/python benchmarks/quick_trial_cost.py --tasks speech handwriting --trials 6
    .venv/bin/python benchmarks/quick_trial_cost.py --tasks speech -- task.size=small

Writes results/bench/quick_trial_cost_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import optuna
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import load_average  # noqa: E402
from odyssey.training.trainer import Hyperparameters, TrainSettings, train  # noqa: E402

from odyssey.cells import canonical  # noqa: E402
from odyssey.tasks import load_task  # noqa: E402

PARTS = ("kernels", "batching", "loss", "evaluation")


def cpu_now() -> float:
    """CPU seconds of this process and of its finished children (flite runs as one)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def compose(task: str, overrides: list[str]):
    """The sweep spec `odyssey-sweep experiment=quick task=<task> <overrides>` would run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from odyssey.config import CONFIG_DIR
    from odyssey.search.spec import SweepSpec

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["experiment=quick", f"task={task}",
                                                 *overrides])
    return SweepSpec.from_config(cfg)


class Profile:
    """Exclusive CPU seconds of wrapped methods (time in a nested wrapped call is charged
    to the inner one only), for splitting a trial's time without touching the trainer."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[list[float]] = []  # [start, time of nested calls]

    def wrap(self, obj: object, name: str, part: str) -> None:
        """Shadow `obj.name` with a timed version charged to `part`."""
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            self._stack.append([time.process_time(), 0.0])
            try:
                return inner(*args, **kwargs)
            finally:
                start, nested = self._stack.pop()
                spent = time.process_time() - start
                self.seconds[part] = self.seconds.get(part, 0.0) + spent - nested
                if self._stack:
                    self._stack[-1][1] += spent

        setattr(obj, name, timed)

    def reset(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out


def gemm_rate(m: int, k: int, n: int, seconds: float = 0.3) -> float:
    """GFLOP/s of (m, k) @ (k, n) in float32 on the current threads."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    torch.mm(a, b, out=out)
    reps, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(8):
            torch.mm(a, b, out=out)
        reps += 8
    return 2.0 * m * k * n * reps / (time.process_time() - start) / 1e9


def machine_rates(input_size: int, batch: int, mean_len: float, hidden: int) -> dict[str, float]:
    """The peak and the recurrent layer's product shapes at one hidden size (LSTM: 4H)."""
    rows = int(batch * mean_len)
    return {"peak (1024^3)": gemm_rate(1024, 1024, 1024),
            f"input product ({rows}x{input_size} @ {input_size}x{4 * hidden})":
                gemm_rate(rows, input_size, 4 * hidden),
            f"recurrent step ({batch}x{hidden} @ {hidden}x{4 * hidden})":
                gemm_rate(batch, hidden, 4 * hidden)}


def padding(lengths: list[int], batch: int, seed: int = 0) -> float:
    """Padded steps over real steps of shuffled training batches (the fused kernels stop
    each sequence at its length, so this is the batching's waste, not the kernels')."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    arr = np.asarray(lengths)[order]
    padded = sum(int(arr[s:s + batch].max()) * len(arr[s:s + batch])
                 for s in range(0, len(arr), batch))
    return padded / arr.sum() - 1.0


def draw(spec, n: int, variants: list[str], seed: int) -> list[tuple[str, Hyperparameters]]:
    """`n` trials: cells in turn, hyperparameters from the sweep's random sampler."""
    from odyssey.search.space import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for k in range(n):
        params = suggest(study.ask(), spec.distributions)
        out.append((variants[k % len(variants)], Hyperparameters.from_search(params)))
    return out


def flops_per_epoch(task, result, frames: dict[str, int]) -> tuple[float, float]:
    """(training, validation) FLOPs of one epoch's weight products (every weight one
    multiply-add per real frame; backward twice forward)."""
    weights = result.parameter_count
    return 6.0 * weights * frames["train"], 2.0 * weights * frames["valid"]


def projected_mean(fit: np.ndarray, spec, variants: list[str], task, mean_epochs: float,
                   frames: dict[str, int], seed: int) -> float:
    """Mean CPU seconds over 2000 search-space draws, from the fit on training FLOPs."""
    params = []
    for variant, hp in draw(spec, 2000, variants, seed + 1):
        net = task.build_network(canonical(variant), hp.hidden_size)
        params.append(net.parameter_count())
    flops = (6.0 * frames["train"] + 2.0 * frames["valid"]) * np.asarray(params) * mean_epochs
    return float(np.mean(np.polyval(fit, flops)))


@contextmanager
def fresh_datasets(enabled: bool):
    """ODYSSEY_DATASETS pointed at a temporary folder (so the corpus is built and timed)."""
    if not enabled:
        yield
        return
    old = os.environ.get("ODYSSEY_DATASETS")
    with tempfile.TemporaryDirectory(prefix="odyssey-cost-") as tmp:
        os.environ["ODYSSEY_DATASETS"] = tmp
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("ODYSSEY_DATASETS", None)
            else:
                os.environ["ODYSSEY_DATASETS"] = old


def table(rows: list[list], header: list[str]) -> str:
    """A plain fixed-width table."""
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def measure(task_name: str, args: argparse.Namespace, overrides: list[str],
            say: Callable[[str], None]) -> dict:
    spec = compose(task_name, overrides)
    settings: TrainSettings = spec.train
    say(f"\n== {task_name}: {', '.join(f'{k}={v}' for k, v in spec.task_options.items() if k in ('source', 'size', 'subsample'))}"  # noqa: E501
        f"; train max_epochs={settings.max_epochs} patience={settings.patience} "
        f"batch_size={settings.batch_size}; trials_per_variant={spec.trials_per_variant}")
    options = dict(spec.task_options)
    if task_name == "handwriting" and args.fresh_build:
        options.setdefault("hershey", {})
        options["hershey"] = {**options["hershey"], "workers": 1}  # in-process: CPU counted
    with fresh_datasets(args.fresh_build):
        cpu0, wall0 = cpu_now(), time.perf_counter()
        task = load_task(task_name, **options)
        load_cpu, load_wall = cpu_now() - cpu0, time.perf_counter() - wall0
    frames = {s: task.splits[s].frames for s in ("train", "valid", "test")}
    lengths = {s: [len(x) for x in task.splits[s].inputs] for s in frames}
    corpus_rows = [[s, len(lengths[s]), frames[s], round(float(np.mean(lengths[s])), 1),
                    max(lengths[s])] for s in frames]
    say(table(corpus_rows, ["split", "sequences", "frames", "mean length", "longest"]))
    pad = padding(lengths["train"], settings.batch_size)
    say(f"training batches of {settings.batch_size}: {pad:.0%} padding (not computed by the "
        f"fused kernels); corpus load{' and build' if args.fresh_build else ''}: "
        f"{load_cpu:.1f} CPU s, {load_wall:.1f} s wall"
        + ("" if args.fresh_build else " (cached; --fresh-build times a build)"))

    rates = machine_rates(task.input_size, settings.batch_size,
                          float(np.mean(lengths["train"])), args.rate_hidden)
    peak = rates["peak (1024^3)"]
    say("GEMM rate on one thread (GFLOP/s): " + "; ".join(f"{k} {v:.1f}"
                                                         for k, v in rates.items()))

    profile = Profile()
    profile.wrap(task, "evaluate", "evaluation")
    profile.wrap(task, "_collate", "batching")
    profile.wrap(task, "sequence_loss", "loss")
    profile.wrap(task, "loss", "loss")
    baseline = task.baseline("valid")
    rows, records = [], []
    variants = args.variants.split(",")
    for k, (variant, hp) in enumerate(draw(spec, args.trials, variants, args.seed)):
        profile.reset()
        result = train(task, variant, hp, settings, seed=args.seed * 1000 + k)
        parts = profile.reset()
        parts["kernels"] = max(0.0, result.cpu_seconds - sum(parts.values()))
        train_f, valid_f = flops_per_epoch(task, result, frames)
        flops = (train_f + valid_f) * result.epochs_run
        learnt = result.status == "complete" and result.valid_metric is not None and \
            baseline is not None and result.valid_metric < baseline
        records.append({"variant": variant, "hidden_size": hp.hidden_size,
                        "learning_rate": hp.learning_rate, "momentum": hp.momentum,
                        "status": result.status, "epochs": result.epochs_run,
                        "best_epoch": result.best_epoch, "valid": result.valid_metric,
                        "test": result.test_metric, "beats_baseline": learnt,
                        "cpu_seconds": result.cpu_seconds, "parts": parts, "flops": flops,
                        "floor_seconds": flops / peak / 1e9})
        rows.append([variant, hp.hidden_size, f"{hp.learning_rate:.1e}", result.epochs_run,
                     f"{result.valid_metric:.3f}" if result.valid_metric is not None else
                     result.status,
                     "yes" if learnt else "no", f"{result.cpu_seconds:.1f}",
                     *(f"{parts.get(p, 0.0) / max(result.cpu_seconds, 1e-9):.0%}"
                       for p in PARTS),
                     f"{flops / 1e9:.1f}", f"{flops / peak / 1e9:.2f}",
                     f"{train_f * result.epochs_run / 1e9 / max(parts['kernels'], 1e-9):.1f}"])
        if args.verbose:
            print(f"  trial {k}: {rows[-1]}", file=sys.stderr)
    say(f"trivial baseline ({task.metric}, valid): {baseline}")
    say(table(rows, ["cell", "H", "lr", "epochs", "valid", "learnt", "CPU s", *PARTS,
                     "GFLOP", "floor s", "kernel GFLOP/s"]))
    cpu = [r["cpu_seconds"] for r in records]
    totals = {p: sum(r["parts"].get(p, 0.0) for r in records) for p in PARTS}
    epochs = [r["epochs"] for r in records]
    done = [r for r in records if r["status"] == "complete"]  # a failed trial's FLOPs are 0
    fit = (np.polyfit([r["flops"] for r in done], [r["cpu_seconds"] for r in done], 1)
           if len(done) >= 3 else None)
    projected = (projected_mean(fit, spec, variants, task, float(np.mean(epochs)), frames,
                                args.seed) if fit is not None else None)
    summary = {
        "task": task_name, "overrides": overrides, "task_options": spec.task_options,
        "train": {k: getattr(settings, k) for k in ("max_epochs", "patience", "batch_size",
                                                    "eval_batch_size")},
        "trials_per_variant": spec.trials_per_variant, "frames": frames,
        "sequences": {s: len(v) for s, v in lengths.items()}, "padding": pad,
        "load_cpu_seconds": load_cpu, "load_wall_seconds": load_wall,
        "fresh_build": args.fresh_build, "gemm_gflops": rates,
        "trials": records, "cpu_median": statistics.median(cpu), "cpu_mean": statistics.mean(cpu),
        "cpu_per_epoch_mean": sum(cpu) / max(sum(epochs), 1),
        "fractions": {p: totals[p] / max(sum(cpu), 1e-9) for p in PARTS},
        "floor_fraction": sum(r["floor_seconds"] for r in records) / max(sum(cpu), 1e-9),
        "learnt": sum(r["beats_baseline"] for r in records),
        "projected_mean_cpu": projected, "baseline_valid": baseline,
    }
    say(f"per trial: median {summary['cpu_median']:.1f} CPU s, mean {summary['cpu_mean']:.1f}"
        f" ({summary['cpu_per_epoch_mean']:.2f} per epoch, {np.mean(epochs):.1f} epochs); "
        + ", ".join(f"{p} {summary['fractions'][p]:.0%}" for p in PARTS)
        + f"; the arithmetic floor is {summary['floor_fraction']:.1%} of the time; "
        f"{summary['learnt']}/{len(records)} beat the baseline"
        + (f"; projected mean over the search space {projected:.1f} CPU s" if projected
           else ""))
    n_trials = spec.trials_per_variant * 11
    mean = projected or summary["cpu_mean"]
    say(f"a quick sweep of 11 cells x {spec.trials_per_variant} = {n_trials} trials: "
        f"~{n_trials * mean:.0f} CPU s, ~{n_trials * mean / 2 / 60:.1f} min on 2 idle cores "
        "(plus the corpus build)")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["speech", "handwriting"])
    parser.add_argument("--trials", type=int, default=6, help="trials per task")
    parser.add_argument("--variants", default="V,NFG,NOAF,GRU,RNN,CIFG",
                        help="cells the trials take in turn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate-hidden", type=int, default=63,
                        help="hidden size of the GEMM shapes measured (63: the median of "
                             "the log-uniform 20-200)")
    parser.add_argument("--fresh-build", action="store_true",
                        help="build each corpus in a temporary folder and time it")
    parser.add_argument("--verbose", action="store_true", help="print each trial as it ends")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, after --")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from odyssey.cells import fast
    if fast.extension() is None:  # the trials would train through autograd, 5-10x slower
        sys.exit("error: the fused C++ kernels are not available (odyssey.cells.fast."
                 "extension() is None); the costs would not be the sweep's")
    out_dir = ROOT / "results" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    before = load_average()
    print(f"load average {before:.2f} at the start ({os.cpu_count()} cores); CPU seconds "
          "below are process time, one thread")
    for name in args.tasks:
        lines: list[str] = []

        def say(text: str, lines: list[str] = lines) -> None:
            print(text, flush=True)
            lines.append(text)

        summary = measure(name, args, list(args.overrides), say)
        summary["load_average"] = {"start": before, "end": load_average()}
        say(f"load average now {load_average():.2f}")
        (out_dir / f"quick_trial_cost_{name}.json").write_text(
            json.dumps({**summary, "printed": lines}, indent=1, default=str))


if __name__ == "__main__":
    main()
