"""`odyssey-sweep`: the Hydra app that runs one sweep worker (or, with -m, several).

    odyssey-sweep                                   # the quick music sweep, one worker
    odyssey-sweep -m hydra/launcher=processes 'worker=range(0,2)'
    odyssey-sweep experiment=greff task=music variants=[V,NP] trials_per_variant=4
    odyssey-sweep report_only=true                  # print the table of an existing sweep

Options are the keys of configs/config.yaml and its groups (docs/configs.md "Sweep options").

Exit status: 0 when the sweep is complete (a multirun: whatever happened to single
workers, since the others replace a dead worker's trial), 2 for a config error, 3 when it
stops unfinished because trials still run on workers it cannot watch (journal store), 1
when it stops unfinished otherwise (every worker failed; the messages above say why).
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ..config import CONFIG_DIR
from ..store.storage import StorageURLError, mask_secrets, open_storage
from .liveness import WorkerId
from .running import EXIT_UNFINISHED, classify_running, unfinished, unwatched_message
from .spec import SweepConfigError, SweepSpec, load_sweep_plugins
from .sweep import final_report, load_studies, run_worker
from .trial import counts_toward_n

log = logging.getLogger("odyssey.sweep")

# configs/hydra/launcher/submitit_local.yaml shadows the submitit plugin's preset of that
# name on purpose (Hydra's launcher with the keep-going rule); Hydra validates it against the
# plugin's schema and says so in a deprecation warning that would reach every user
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_local' is validated "
                        "against ConfigStore schema")


def _load_spec(cfg: DictConfig) -> SweepSpec:
    """The plugins the config names (and the installed ones) loaded, then the config checked."""
    load_sweep_plugins(cfg)
    return SweepSpec.from_config(cfg)


def _spec_or_exit(cfg: DictConfig) -> SweepSpec:
    try:
        return _load_spec(cfg)
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
        report = run_worker(spec)
    except (SweepConfigError, StorageURLError) as e:
        print(f"odyssey-sweep: error: {e}", file=sys.stderr)
        sys.exit(2)
    if report.unfinished:  # the worker has logged what is left and what to do
        print(f"odyssey-sweep: exit status {EXIT_UNFINISHED}: the sweep is unfinished, trials "
              "still run on workers this one cannot watch (see the message above)",
              file=sys.stderr)
        sys.exit(EXIT_UNFINISHED)


def verdict(spec: SweepSpec) -> tuple[int, str]:
    """The exit status of a multirun from the store, and what is left when it is not 0."""
    studies = load_studies(spec, open_storage(spec.storage_url))
    n = spec.trials_per_variant
    short = [f"{v}: no trials yet" for v in spec.variants if v not in studies]
    short += unfinished(studies, n)
    if not short:
        return 0, ""
    running = classify_running(studies, WorkerId.current(), spec.grace_period)
    elsewhere = [r for r in running if r.verdict.state == "elsewhere"]
    counted = {v: sum(counts_toward_n(t) for t in st.get_trials(deepcopy=False))
               for v, st in studies.items()}
    if elsewhere and len(studies) == len(spec.variants) and min(counted.values()) >= n:
        grace = spec.grace_period if spec.heartbeat_interval else None
        return EXIT_UNFINISHED, unwatched_message(elsewhere, grace_period=grace)
    return 1, ("the sweep is unfinished: " + "; ".join(short) + ". No worker is left to "
               "finish it (see the errors above); run the same command again to go on: "
               "finished trials are kept and interrupted ones are replaced.")


class FinalReport(Callback):
    """Print the best-per-variant table once all of a run's or multirun's workers end."""

    def _report(self, config: DictConfig) -> None:
        try:
            spec = _load_spec(config)
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
        """The table, then the multirun's exit status from the store (see the module
        docstring): with a keep-going launcher (hydra/launcher=processes, submitit_local,
        slurm) a single worker's death does not decide it."""
        self._report(config)
        if config.get("report_only", False):
            return
        try:
            spec = _load_spec(config)
        except SweepConfigError:
            sys.exit(2)  # the jobs and _report have said what is wrong
        status, message = verdict(spec)
        if status:
            print(f"odyssey-sweep: {message}", file=sys.stderr, flush=True)
            sys.exit(status)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (`odyssey-sweep`)."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        logging.getLogger("optuna").setLevel(logging.WARNING)
    sweep(cfg)


if __name__ == "__main__":
    main()
