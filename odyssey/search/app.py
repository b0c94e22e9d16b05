"""`odyssey-sweep`: the Hydra app that runs one sweep worker (or, with -m, several).

    odyssey-sweep                                   # the quick music sweep, one worker
    odyssey-sweep -m hydra/launcher=joblib hydra.launcher.n_jobs=2 'worker=range(0,2)'
    odyssey-sweep experiment=greff task=music variants=[V,NP] trials_per_variant=4
    odyssey-sweep report_only=true                  # print the table of an existing sweep

Options are the keys of configs/config.yaml and its groups (README "The sweep").
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ..config import CONFIG_DIR
from .spec import SweepConfigError, SweepSpec
from .storage import StorageURLError, mask_secrets
from .sweep import final_report, run_worker

log = logging.getLogger("odyssey.sweep")


def _spec_or_exit(cfg: DictConfig) -> SweepSpec:
    try:
        return SweepSpec.from_config(cfg)
    except SweepConfigError as e:
        print(f"odyssey-sweep: config error: {e}", file=sys.stderr)
        sys.exit(2)


def _scrub_hydra_files() -> None:
    """Mask a storage password in the files Hydra saved for this run: .hydra/*.yaml (the
    command line and the composed config) and a multirun's multirun.yaml."""
    try:
        hc = HydraConfig.get()
    except ValueError:  # not run through Hydra (tests, scripts)
        return
    files: list[Path] = []
    if hc.output_subdir:
        files += Path(hc.runtime.output_dir, hc.output_subdir).glob("*.yaml")
    if hc.mode == RunMode.MULTIRUN:
        files.append(Path(hc.sweep.dir) / "multirun.yaml")
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        masked = mask_secrets(text)
        if masked != text:
            path.write_text(str(masked))


def sweep(cfg: DictConfig) -> None:
    """One worker: validate, then train trials until every study is full."""
    _scrub_hydra_files()
    spec = _spec_or_exit(cfg)
    if cfg.get("report_only", False):
        return
    try:
        run_worker(spec)
    except (SweepConfigError, StorageURLError) as e:
        print(f"odyssey-sweep: error: {e}", file=sys.stderr)
        sys.exit(2)


class FinalReport(Callback):
    """Print the best-per-variant table once all of a run's or multirun's workers end."""

    def _report(self, config: DictConfig) -> None:
        try:
            spec = SweepSpec.from_config(config)
        except SweepConfigError as e:  # the job has said what is wrong; say it once here
            log.warning("no final table: %s", e)
            return
        try:
            text = final_report(spec)
        except Exception as e:  # a report must never hide the sweep's own outcome
            text = f"odyssey-sweep: could not build the final table: {e}"
        print(text, flush=True)
        log.info("final table written to %s", spec.sweep_dir / "summary.csv")

    def on_run_end(self, config: DictConfig, job_return: JobReturn | None = None,
                   **kwargs: Any) -> None:
        if job_return is None or job_return.status == JobStatus.COMPLETED:
            self._report(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(config)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (`odyssey-sweep`)."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        logging.getLogger("optuna").setLevel(logging.WARNING)
    sweep(cfg)


if __name__ == "__main__":
    main()
