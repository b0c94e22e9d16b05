"""`odyssey-analyze sweep_name=NAME [key=value ...]`: write results/<NAME>/report.md.

A Hydra app on configs/analyze.yaml; figures go to results/<NAME>/figures/ (PNG and PDF),
tables to results/<NAME>/tables/*.csv. `sweep_name=[A,B,C]` analyses several sweeps (e.g. one
per task) together into results/A+B+C/.
"""

from __future__ import annotations

import sys

import hydra
import matplotlib
from omegaconf import DictConfig, OmegaConf

from ..config import CONFIG_DIR


def options_from(cfg: DictConfig):
    """The analysis Options of a resolved analyze config."""
    from ..analysis import Options
    from ..analysis.load import variant_name
    variants = cfg.fanova.variants
    return Options(metric=cfg.metric, select_by=cfg.select_by,
                   baseline=variant_name(str(cfg.baseline)),
                   best_fraction=float(cfg.best_fraction), alpha=float(cfg.alpha),
                   correction=str(cfg.correction).lower(), min_trials=int(cfg.min_trials),
                   fanova_min_trials=int(cfg.fanova.min_trials),
                   fanova_trees=int(cfg.fanova.n_trees), fanova_seed=int(cfg.fanova.seed),
                   fanova_min_samples_leaf=int(cfg.fanova.min_samples_leaf),
                   fanova_variants=(None if variants is None else
                                    [str(v) for v in OmegaConf.to_object(variants)]
                                    if not isinstance(variants, str) else [variants]),
                   fanova_cap_iqr=(None if cfg.fanova.get("cap_iqr") is None
                                   else float(cfg.fanova.cap_iqr)),
                   fanova_pool_if_too_few=bool(cfg.fanova.get("pool_if_too_few", True)),
                   grid=int(cfg.fanova.grid), top_pairs=int(cfg.fanova.top_pairs),
                   little=float(cfg.findings.little),
                   interactions_little=float(cfg.findings.interactions_little),
                   progress=bool(cfg.progress),
                   formats=tuple(str(f) for f in cfg.figure_formats))


def load_installed_plugins() -> None:
    """The installed plugins (entry points `odyssey.plugins`), so that their cells are named
    and ordered as registered; the analysis needs none, so a broken one is only a warning."""
    from ..plugins import PluginError, load_plugins
    try:
        load_plugins()
    except PluginError as e:
        print(f"odyssey-analyze: warning: {e}", file=sys.stderr)


def run(cfg: DictConfig) -> int:
    """Analyse the configured sweep; prints the report path, or the error and returns 1."""
    matplotlib.use("Agg")
    load_installed_plugins()
    from ..analysis import analyze, list_sweeps
    from ..analysis.stats import CORRECTIONS
    try:
        if not cfg.sweep_name:
            known = list_sweeps(cfg.results_dir)
            raise ValueError("give the sweep to analyse: odyssey-analyze sweep_name=NAME; sweeps "
                             f"in {cfg.results_dir}: {', '.join(known) if known else 'none'}")
        if str(cfg.correction).lower() not in CORRECTIONS:
            raise ValueError(f"configs/analyze.yaml: correction={cfg.correction!r}; expected "
                             f"one of {', '.join(CORRECTIONS)}")
        if not 0 < float(cfg.best_fraction) <= 1:
            raise ValueError(f"configs/analyze.yaml: best_fraction={cfg.best_fraction}; "
                             "expected a fraction in (0, 1]")
        names = cfg.sweep_name
        names = ([str(n) for n in OmegaConf.to_object(names)] if OmegaConf.is_list(names)
                 else str(names))
        path = analyze(names, cfg.results_dir, url=cfg.storage_url,
                       options=options_from(cfg), out_dir=cfg.out_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"odyssey-analyze: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


@hydra.main(config_path=str(CONFIG_DIR), config_name="analyze", version_base="1.3")
def _app(cfg: DictConfig) -> None:
    code = run(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """Console entry point."""
    _app()


if __name__ == "__main__":
    main()
