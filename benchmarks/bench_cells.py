"""Speed of the recurrent kernels: every variant against PyTorch's own module.

For each size (I=88; H in {20, 64, 200} x B in {1, 16} at T=100, plus B=64 H=128 T=100 and
B=16 H=64 T=500) and each variant, one forward+backward pass of our layer (impl="auto")
and of PyTorch's module -- nn.LSTM for the LSTM family, nn.GRU for the GRU, nn.RNN for the
RNN -- are timed alternately, so that load hits both; the ratio ours / theirs is the median
over repeats. Goals (issue 14): 1.2 for every variant, FGR against 1.2 times its
arithmetic floor (4HI + 13H^2) / (4HI + 4H^2) (nine more H x H products than nn.LSTM).
Then seconds per training epoch of the music task (one update per sequence, as in the
paper) per variant with the reference loops and with the fast kernels.

    python benchmarks/bench_cells.py [--repeats 7] [--threads 1] [--out results/bench]

Writes cells.json (all numbers and the machine) and cells.md (the ratio table).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from machine_load import add_force_flag, check_before, finish, verdict
from tqdm import tqdm

from odyssey.cells import LSTM_FAMILY, VARIANTS, build_layer, fast
from odyssey.networks import SequenceNetwork

GOAL = 1.2  # every variant, every size, against its PyTorch counterpart
EXTRA_SIZES = ["64,128,100", "16,64,500"]  # B,H,T beyond the H x B grid


def _time(fn: Callable[[], None], iters: int) -> float:
    """Seconds per call of fn over `iters` calls."""
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


def _calibrate(fn: Callable[[], None], target_s: float) -> int:
    """Calls per measurement so that one measurement lasts about target_s."""
    fn()  # warm-up (first call builds the extension, allocates, ...)
    once = _time(fn, 1)
    return max(1, int(target_s / max(once, 1e-6)))


def _fwd_bwd(module: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor, lstm: bool
             ) -> Callable[[], None]:
    """One forward and backward pass of a layer (grads of input and parameters)."""
    def run() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        y = module(x)[0] if lstm else module(x)
        y.backward(dy)
    return run


def baseline_of(variant: str) -> str:
    """PyTorch's module a variant is timed against: LSTM, GRU or RNN."""
    return "LSTM" if variant in LSTM_FAMILY else variant


def goal_for(variant: str, hidden: int, inputs: int) -> float:
    """The issue's target ratio ours / PyTorch's module for a variant at a size."""
    if variant == "FGR":
        i, h = inputs, hidden
        return GOAL * (4 * h * i + 13 * h * h) / (4 * h * i + 4 * h * h)
    return GOAL


def bench_ratios(variants: list[str], sizes: list[tuple[int, int, int]], inputs: int,
                 repeats: int, target_s: float) -> list[dict]:
    """Interleaved timings of each variant and its PyTorch module at every (B, H, T)."""
    rows = []
    bar = tqdm(total=len(sizes) * repeats * len(variants), desc="kernels vs torch.nn",
               unit="pair")
    for batch, hidden, steps in sizes:
        torch.manual_seed(0)
        x = torch.randn(steps, batch, inputs, requires_grad=True)
        dy = torch.randn(steps, batch, hidden)
        bases = {k: _fwd_bwd(getattr(torch.nn, k)(inputs, hidden), x, dy, lstm=True)
                 for k in sorted({baseline_of(v) for v in variants})}
        runs = {v: _fwd_bwd(build_layer(v, inputs, hidden), x, dy, lstm=False)
                for v in variants}
        iters = {v: _calibrate(f, target_s) for v, f in runs.items()}
        iters_base = {k: _calibrate(f, target_s) for k, f in bases.items()}
        ours: dict[str, list[float]] = {v: [] for v in variants}
        theirs: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(repeats):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for v in order:  # pairs in a rotating order; within a pair, alternate who starts
                k = baseline_of(v)
                if r % 2:
                    theirs[v].append(_time(bases[k], iters_base[k]))
                    ours[v].append(_time(runs[v], iters[v]))
                else:
                    ours[v].append(_time(runs[v], iters[v]))
                    theirs[v].append(_time(bases[k], iters_base[k]))
                bar.update()
        for v in variants:
            ratios = [a / b for a, b in zip(ours[v], theirs[v], strict=True)]
            goal = goal_for(v, hidden, inputs)
            ratio = statistics.median(ratios)
            rows.append({
                "variant": v, "baseline": f"nn.{baseline_of(v)}", "hidden": hidden,
                "batch": batch, "steps": steps, "inputs": inputs,
                "ours_ms": 1e3 * statistics.median(ours[v]),
                "theirs_ms": 1e3 * statistics.median(theirs[v]), "ratio": ratio,
                "ratio_min": min(ratios), "ratio_max": max(ratios), "ratios": ratios,
                "goal": goal, "meets_goal": ratio <= goal,
            })
    bar.close()
    return rows


def _synthetic_music(n: int, seed: int) -> list[np.ndarray]:
    """Piano rolls shaped like JSB Chorales' training split: n pieces, 88 keys, quarter
    notes, lengths 33-160 steps (mean about 60), about four notes sounding per step."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.gamma(6.0, 10.0, size=n).astype(int), 33, 160)
    rolls = []
    for length in lengths:
        roll = np.zeros((length, 88), dtype=np.float32)
        for t in range(length):
            roll[t, rng.choice(np.arange(30, 70), size=4, replace=False)] = 1.0
        rolls.append(roll)
    return rolls


def _music_data() -> tuple[list, Callable, Callable, str]:
    """The music task's training sequences (B = 1), its network builder and loss, and
    where they came from.

    Uses the music task when it is installed; otherwise a synthetic corpus of the same
    size and shape (229 training pieces, as JSB Chorales), and says so.
    """
    try:
        from odyssey.tasks import load_task

        task = load_task("music")
        items = [(b.x, b.lengths, b) for b in task.batches("train", 1)]

        def make(v: str, hidden: int, impl: str) -> torch.nn.Module:
            return task.build_network(v, hidden, impl=impl)

        return items, make, task.loss, "the music task (odyssey.tasks.music), training split"
    except Exception as exc:  # not landed yet, or its corpus cannot be built here
        reason = f"{type(exc).__name__}: {exc}"
    items = []
    for roll in _synthetic_music(229, seed=0):  # predict the next step's keys
        x = (torch.from_numpy(roll[:-1]).unsqueeze(1) - 0.05) / 0.2
        items.append((x, None, torch.from_numpy(roll[1:]).unsqueeze(1)))

    def make(v: str, hidden: int, impl: str) -> torch.nn.Module:
        return SequenceNetwork(v, 88, hidden, 88, bidirectional=False, impl=impl)

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            out, target, reduction="none").sum(-1).mean()

    return items, make, loss, ("a synthetic 88-key corpus shaped like JSB Chorales' training "
                               f"split (229 pieces); the music task was unavailable ({reason})")


def bench_epochs(variants: list[str], hidden: int, repeats: int) -> tuple[list[dict], str]:
    """Seconds per training epoch (SGD with Nesterov momentum, one update per sequence,
    Gaussian input noise), reference loops against the fast kernels, interleaved."""
    items, make, loss_fn, source = _music_data()
    rows = []
    for v in tqdm(variants, desc=f"music epochs (H={hidden})", unit="variant"):
        times: dict[str, list[float]] = {"reference": [], "auto": []}
        for _ in range(repeats):
            for impl in ("reference", "auto"):  # same weights and data
                torch.manual_seed(0)
                net = make(v, hidden, impl)
                opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
                start = time.perf_counter()
                for x, lengths, target in items:
                    opt.zero_grad(set_to_none=True)
                    out = net(x + 0.1 * torch.randn_like(x), lengths)
                    loss_fn(out, target).backward()
                    opt.step()
                times[impl].append(time.perf_counter() - start)
        ref, fst = statistics.median(times["reference"]), statistics.median(times["auto"])
        rows.append({"variant": v, "hidden": hidden, "reference_s": ref, "fast_s": fst,
                     "speedup": ref / fst, "sequences": len(items),
                     "frames": int(sum(x.shape[0] for x, _, _ in items))})
    return rows, source


def ratio_table(rows: list[dict], variants: list[str]) -> str:
    """Markdown table: one row per variant, one column per (B, H, T), ratio ours / theirs."""
    cols = list(dict.fromkeys((r["batch"], r["hidden"], r["steps"]) for r in rows))
    by = {(r["variant"], r["batch"], r["hidden"], r["steps"]): r for r in rows}
    head = ("| variant (vs) | "
            + " | ".join(f"B={b} H={h}" + (f" T={t}" if t != 100 else "") for b, h, t in cols)
            + " |")
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for v in variants:
        cells = []
        for b, h, t in cols:
            r = by[(v, b, h, t)]
            mark = "" if r["meets_goal"] in (None, True) else " ✗"
            cells.append(f"{r['ratio']:.2f}{mark}")
        lines.append(f"| {v} (nn.{baseline_of(v)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def epoch_table(rows: list[dict]) -> str:
    """Markdown table of seconds per music-task epoch, reference vs fast."""
    lines = ["| variant | reference s/epoch | fast s/epoch | speed-up |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['reference_s']:.2f} | {r['fast_s']:.2f} | "
                     f"{r['speedup']:.1f}x |")
    return "\n".join(lines)


def _machine(threads: int) -> dict:
    """What the numbers were measured on."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"torch": torch.__version__, "threads": threads, "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(),
            "git_commit": commit, "fast_kernels": fast.available(),
            "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--hidden", nargs="+", type=int, default=[20, 64, 200])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--extra", nargs="*", default=EXTRA_SIZES, metavar="B,H,T",
                   help="sizes beyond the --batch x --hidden grid at --steps")
    p.add_argument("--inputs", type=int, default=88)
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per pair (>= 5)")
    p.add_argument("--target-seconds", type=float, default=0.1,
                   help="length of one timed measurement")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, both sides")
    p.add_argument("--epoch-hidden", type=int, default=64,
                   help="H for the music-epoch timing (0 skips it)")
    p.add_argument("--epoch-repeats", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    add_force_flag(p)
    args = p.parse_args(argv)
    if args.repeats < 5:
        p.error("--repeats must be at least 5 (the table reports a median)")
    variants = [v.upper() for v in args.variants]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; expected some of {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    if not fast.available():
        print("warning: the C++ kernels are unavailable; timing the reference loops")
    load_before = check_before(args.force)
    try:
        extra = [tuple(int(v) for v in e.split(",")) for e in args.extra]
        assert all(len(e) == 3 for e in extra)
    except (ValueError, AssertionError):
        p.error(f"--extra takes B,H,T triples such as 64,128,100; got {args.extra}")
    sizes = [(b, h, args.steps) for b in args.batch for h in args.hidden] + extra
    rows = bench_ratios(variants, sizes, args.inputs, args.repeats, args.target_seconds)
    epochs, source = ([], "")
    if args.epoch_hidden > 0:
        epochs, source = bench_epochs(variants, args.epoch_hidden, args.epoch_repeats)
    load = verdict(load_before, os.getloadavg()[0], args.threads)
    table = ratio_table(rows, variants)
    report = {"machine": _machine(args.threads), **load, "repeats": args.repeats,
              "ratios": rows, "epochs": epochs, "epoch_source": source}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cells.json").write_text(json.dumps(report, indent=2))
    md = [f"Forward+backward time, ours / PyTorch's module (median of {args.repeats} "
          f"interleaved repeats; I={args.inputs}, T={args.steps} unless given, "
          f"{args.threads} thread(s) on both sides; ✗ misses the goal: {GOAL}, FGR {GOAL} x "
          "its arithmetic floor)", f"Load average before {load['load_average_before']}, after "
          f"{load['load_average_after']}{'' if load['quiet'] else ' — BUSY, not README-grade'}.",
          "", table]
    if epochs:
        md += ["", f"Seconds per training epoch, H={args.epoch_hidden}, B=1 ({source})", "",
               epoch_table(epochs)]
    (args.out / "cells.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {args.out / 'cells.json'} and {args.out / 'cells.md'}")
    finish(load, args.force)


if __name__ == "__main__":
    main()
