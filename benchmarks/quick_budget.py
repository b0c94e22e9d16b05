"""Which quick-study budget (trials per cell x epochs) reproduces the paper most often? (issue 24)

Re-analyses finished quick sweeps instead of training again: a trial's result after its
first E epochs is the best-validation epoch among them (what the trainer reports when
max_epochs=E; patience 3 never stops a run of at most 4 epochs), so from sweeps of E_max
epochs every shorter budget follows exactly. The trials of all given sweeps are pooled per
cell; each draw takes n of them per cell at random (without replacement) and runs the
report's own variant tests and findings on it. Prints, per (E, n), the share of draws whose
report reads *agrees* for each variant finding, and the cost in trial-epochs per cell.

    .venv/bin/python benchmarks/quick_budget.py --sweeps quick-music-e4n60 seeds-seed1 \\
        --epochs 2 3 4 --trials 60 80 100 --draws 40

`--prefixes`: instead of pooled draws, each sweep on its own cut to its first n trials per
cell (by trial number). A trial's hyperparameters and seed depend only on (sweep seed, study,
trial number), so that is exactly the sweep `trials_per_variant=n` would have run: one
real verdict per sweep and budget, no resampling.

    .venv/bin/python benchmarks/quick_budget.py --prefixes --sweeps sob128-seed0 sob128-seed1 \
        --epochs 3 --trials 80 96 112 128

Draws from one pool overlap (n=120 from a pool of 360 shares a third of its trials with the
next draw), so agreement rates at large n overstate what independent sweeps would show;
compare budgets with each other, then check the chosen one with real sweeps
(benchmarks/quick_seeds.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odyssey.analysis.findings import variant_findings  # noqa: E402
from odyssey.analysis.load import complete, load_curves, load_sweep  # noqa: E402
from odyssey.analysis.stats import variant_tests  # noqa: E402

FINDINGS = ("NFG worse", "NOAF worse", "CIFG same", "NP same", "FGR no gain")


def truncated(sweep: str, results_dir: Path, epochs: int) -> pd.DataFrame:
    """The sweep's complete trials as if each had run at most `epochs` epochs."""
    trials = complete(load_sweep(sweep, results_dir))
    curves = load_curves(sweep, results_dir)
    curves = curves[curves["epoch"] <= epochs].astype({"valid": float, "test": float})
    curves = curves.dropna(subset=["valid"])
    best = curves.loc[curves.groupby(["task", "variant", "trial"])["valid"].idxmin()]
    best = best.set_index(["task", "variant", "trial"])[["valid", "test"]]
    out = trials.set_index(["task", "variant", "trial"])
    out = out.join(best, how="inner")
    out["valid_metric"], out["test_metric"] = out.pop("valid"), out.pop("test")
    out = out.reset_index()
    out["sweep"] = sweep
    return out


def agree_rates(pool: pd.DataFrame, n: int, draws: int, rng: np.random.Generator
                ) -> dict[str, float]:
    counts = dict.fromkeys(FINDINGS, 0)
    for _ in range(draws):
        sample = pd.concat([g.sample(n, random_state=int(rng.integers(1 << 31)))
                            for _, g in pool.groupby("variant")])
        for name, finding in zip(FINDINGS, variant_findings(variant_tests(sample)), strict=True):
            counts[name] += finding.verdict == "agrees"
    return {k: v / draws for k, v in counts.items()}


def prefix_verdicts(frame: pd.DataFrame, n: int) -> dict[str, str]:
    """The report's verdict per variant finding on the first n trials of each cell."""
    first = frame[frame["trial"] < n]
    return {name: finding.verdict for name, finding
            in zip(FINDINGS, variant_findings(variant_tests(first)), strict=True)}


def prefixes(args: argparse.Namespace) -> pd.DataFrame:
    """One row per (sweep, epochs, n): each finding's verdict on the sweep's first n trials."""
    rows = []
    for epochs in args.epochs:
        for sweep in args.sweeps:
            frame = truncated(sweep, args.results_dir, epochs)
            for n in args.trials:
                verdicts = prefix_verdicts(frame, n)
                rows.append({"sweep": sweep, "epochs": epochs, "trials": n, **verdicts})
                print(f"{sweep} E={epochs} n={n}: "
                      + ", ".join(f"{k} {v}" for k, v in verdicts.items()), flush=True)
    table = pd.DataFrame(rows)
    agree = (table[list(FINDINGS)] == "agrees").groupby([table["epochs"], table["trials"]])
    print("\nsweeps whose report agrees, of", len(args.sweeps))
    print(agree.sum().to_string())
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweeps", nargs="+", required=True, help="finished quick sweeps to pool")
    ap.add_argument("--results-dir", type=Path, default=ROOT / "results")
    ap.add_argument("--epochs", nargs="+", type=int, default=[2, 3, 4])
    ap.add_argument("--trials", nargs="+", type=int, default=[60, 80, 100, 120])
    ap.add_argument("--draws", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefixes", action="store_true",
                    help="each sweep's first n trials per cell, instead of pooled draws")
    args = ap.parse_args()
    if args.prefixes:
        out = args.results_dir / "bench" / "quick_prefixes.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        prefixes(args).to_csv(out, index=False)
        print(f"written {out}")
        return
    rng = np.random.default_rng(args.seed)
    rows = []
    for epochs in args.epochs:
        pool = pd.concat([truncated(s, args.results_dir, epochs) for s in args.sweeps])
        smallest = int(pool.groupby("variant").size().min())
        for n in args.trials:
            if n > smallest:
                print(f"E={epochs} n={n}: skipped, the pool holds only {smallest} trials "
                      "of some cell")
                continue
            rates = agree_rates(pool, n, args.draws, rng)
            rows.append({"epochs": epochs, "trials": n, "trial_epochs": n * epochs,
                         "pool": smallest, **rates})
            print(f"E={epochs} n={n} (trial-epochs per cell {n * epochs}): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in rates.items()), flush=True)
    table = pd.DataFrame(rows)
    out = args.results_dir / "bench" / "quick_budget.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"written {out}")


if __name__ == "__main__":
    main()
