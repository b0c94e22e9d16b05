"""fANOVA speed: 2,200 trials, the 4 hyperparameters of the paper, 100 trees (target: < 60 s).

Run: .venv/bin/python benchmarks/fanova_speed.py [--trials N] [--trees T] [--out FILE]
Prints the forest fit, the exact decomposition (main effects and all pairs) and the marginal
curves separately; writes the numbers as JSON (default results/bench/fanova.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from machine_load import add_force_flag, check_before, finish, load_average, verdict

from odyssey.analysis import DEFAULT_SPACE, fanova


def synthetic_trials(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Random-search trials over the paper's space with a noisy error-like response."""
    rng = np.random.default_rng(seed)
    params = pd.DataFrame({
        "learning_rate": 10 ** rng.uniform(-6, -2, n),
        "hidden_size": np.round(10 ** rng.uniform(np.log10(20), np.log10(200), n)),
        "one_minus_momentum": 10 ** rng.uniform(-2, 0, n),
        "input_noise": rng.uniform(0, 1, n)})
    lr = np.log10(params["learning_rate"])
    y = (0.3 + 0.05 * (lr + 3) ** 2 - 0.1 * np.log10(params["hidden_size"])
         + 0.05 * params["input_noise"] + 0.02 * (lr + 3) * np.log10(params["hidden_size"])
         + rng.normal(0, 0.03, n))
    return params, y.to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2200)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("results/bench/fanova.json"))
    add_force_flag(parser)
    args = parser.parse_args()
    before = check_before(args.force)
    params, y = synthetic_trials(args.trials)
    t0 = time.perf_counter()
    res = fanova(params, y, DEFAULT_SPACE, n_trees=args.trees, seed=0)
    t1 = time.perf_counter()
    for hp in DEFAULT_SPACE:
        res.marginal(hp.name, 100)
    t2 = time.perf_counter()
    res.pair_marginal("learning_rate", "hidden_size", 40)
    t3 = time.perf_counter()
    leaves = float(np.mean([len(t.value) for t in res.trees]))
    numbers = {"trials": args.trials, "hyperparameters": len(DEFAULT_SPACE), "trees": args.trees,
               "mean_leaves_per_tree": leaves,
               "fit_and_decompose_s": round(t1 - t0, 2),
               "four_marginals_100_points_s": round(t2 - t1, 2),
               "one_pair_marginal_40x40_s": round(t3 - t2, 2),
               "total_s": round(t3 - t0, 2), "machine": platform.processor() or platform.machine()}
    load = verdict(before, load_average(), threads=1)
    numbers.update(load)
    print(json.dumps(numbers, indent=2))
    print(res.fractions().to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(numbers, indent=2) + "\n")
    finish(load, args.force)


if __name__ == "__main__":
    main()
