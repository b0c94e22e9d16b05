"""`odyssey-evolve`: the evolution worker (a Hydra app on configs/evolve.yaml), its report
and the export of an evolved architecture as a plugin cell (docs/evolve.md).

    odyssey-evolve sweep_name=X evaluations=40            # one worker
    odyssey-evolve -m hydra/launcher=processes 'worker=range(0,2)' sweep_name=X
    odyssey-evolve report X [--results-dir results] [--top 10]
    odyssey-evolve export X [--rank 1] [--name EVO1] [--out results/X/evo1.py]

Exit status: 0 when the worker ends with the evolution holding its evaluations, 2 for a
config error, 3 when trials still run on workers it cannot watch (journal store, other
machines). A run that stops early can be run again: finished evaluations are kept.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ..config import CONFIG_DIR
from ..evolve import report as evolution
from ..evolve.export import write_plugin
from ..evolve.loop import EvolveSpec, run_worker
from ..evolve.scores import ARCH_ATTR, HASH_ATTR
from ..search.running import EXIT_UNFINISHED
from ..search.spec import SweepConfigError
from ..store.storage import StorageURLError

log = logging.getLogger("odyssey.evolve")
SUBCOMMANDS = ("report", "export")


def run(cfg: DictConfig) -> None:
    """One worker; then, when the evolution is complete, its report."""
    try:
        spec = EvolveSpec.from_config(cfg)
        report = run_worker(spec)
    except (SweepConfigError, StorageURLError) as e:
        print(f"odyssey-evolve: config error: {e}", file=sys.stderr)
        sys.exit(2)
    if report.unfinished:  # the worker has logged what is left and what to do
        print(f"odyssey-evolve: exit status {EXIT_UNFINISHED}: trials still run on workers "
              "this one cannot watch (see the message above)", file=sys.stderr)
        sys.exit(EXIT_UNFINISHED)
    _, study, frame = evolution.load(spec.sweep_dir)
    finished = int((frame["state"] != "RUNNING").sum()) if not frame.empty else 0
    if finished >= spec.evaluations:
        path = evolution.report(spec.sweep_dir)
        print(f"odyssey-evolve: {finished} evaluations; report {path}", flush=True)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evolve")
def _hydra_main(cfg: DictConfig) -> None:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        logging.getLogger("optuna").setLevel(logging.WARNING)
    run(cfg)


def subcommand(argv: list[str]) -> int:
    """`report` or `export` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog=f"odyssey-evolve {argv[0]}")
    parser.add_argument("sweep_name")
    parser.add_argument("--results-dir", default="results")
    if argv[0] == "report":
        parser.add_argument("--top", type=int, default=10)
    else:
        parser.add_argument("--rank", type=int, default=1, help="1 = the best architecture")
        parser.add_argument("--name", default=None, help="the cell's name (default EVO<rank>)")
        parser.add_argument("--out", default=None, help="the plugin file to write")
    args = parser.parse_args(argv[1:])
    sweep_dir = Path(args.results_dir) / args.sweep_name
    try:
        if argv[0] == "report":
            print(evolution.report(sweep_dir, top=args.top))
            return 0
        _, study, frame = evolution.load(sweep_dir)
        ranked = evolution.table(study, frame)
        scored = ranked[ranked["score"].notna()]
        if not 1 <= args.rank <= len(scored):
            print(f"odyssey-evolve export: --rank must lie in 1..{len(scored)} (the scored "
                  "architectures)", file=sys.stderr)
            return 2
        row = scored.iloc[args.rank - 1]
        name = args.name or f"EVO{args.rank}"
        out = Path(args.out or sweep_dir / f"{name.lower()}.py")
        write_plugin(row[ARCH_ATTR], name, out, arch_hash=row[HASH_ATTR],
                     sweep=args.sweep_name)
        print(f"wrote {out}: cell {name} (architecture {row[HASH_ATTR]}, score "
              f"{row['score']:.3f}); use it with odyssey-sweep plugins=[{out}] "
              f"variants=[{name},GRU,...]")
        return 0
    except FileNotFoundError as e:
        print(f"odyssey-evolve {argv[0]}: {e}", file=sys.stderr)
        return 2


def main() -> None:
    """Console entry point: a subcommand, or the Hydra worker app."""
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        sys.exit(subcommand(sys.argv[1:]))
    _hydra_main()


if __name__ == "__main__":
    main()
