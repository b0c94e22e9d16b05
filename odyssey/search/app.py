"""`odyssey-sweep`: the Hydra app that runs one sweep worker (or, with -m, several).

    odyssey-sweep                                   # the quick music sweep, one worker
    odyssey-sweep -m hydra/launcher=processes 'worker=range(0,2)'
    odyssey-sweep experiment=greff task=music variants=[V,NP] trials_per_variant=4
    odyssey-sweep report_only=true                  # print the table of an existing sweep
    odyssey-sweep experiment=greff plan=true plan_workers=64   # what it will cost (no training)

Options are the keys of configs/config.yaml and its groups (docs/configs.md "Sweep options").

Exit status: 0 when the sweep is complete (a multirun: whatever happened to single
workers, since the others replace a dead worker's trial), 2 for a config error or a store
that cannot be opened or used at the start (URL, password, server down, privileges), 3 when
it stops unfinished because trials still run on workers it cannot watch (journal store), 4
when the store was lost for longer than storage.retry_seconds or the sweep's final state
cannot be read from it (docs/store-outages.md), 1 when it stops unfinished otherwise (every
worker failed; the messages above say why). Whatever the launcher, a multirun exits 0 only
when its end reads the sweep as complete from the store.
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
from optuna.exceptions import StorageInternalError
from sqlalchemy.exc import DBAPIError

from ..config import CONFIG_DIR
from ..store.storage import StorageURLError, mask_secrets, mask_url, open_storage
from .delivery import pending_count, pending_dir
from .liveness import WorkerId
from .plan import calibrate, format_plan, make_plan
from .resilient import EXIT_STORE, StoreUnavailableError, open_worker_storage
from .running import EXIT_UNFINISHED, classify_running, unfinished, unwatched_message
from .spec import SweepConfigError, SweepSpec, load_sweep_plugins
from .sweep import final_report, load_studies, open_task, run_worker
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


def store_error_line(e: BaseException) -> str:
    """One line for an error of the store (the driver's reason, a password masked)."""
    cause: BaseException = e
    while cause.__cause__ is not None:
        cause = cause.__cause__
    orig = getattr(cause, "orig", None) or cause
    lines = str(orig).strip().splitlines() or [type(orig).__name__]
    return str(mask_secrets(lines[0]))


def sweep(cfg: DictConfig) -> None:
    """One worker: validate, then train trials until every study is full."""
    _scrub_hydra_files()
    spec = _spec_or_exit(cfg)
    if cfg.get("report_only", False):
        return
    if cfg.get("plan", False):
        _plan_or_exit(cfg, spec)
        return
    try:
        report = run_worker(spec)
    except (SweepConfigError, StorageURLError) as e:
        print(f"odyssey-sweep: error: {e}", file=sys.stderr)
        sys.exit(2)
    except (StoreUnavailableError, StorageInternalError, DBAPIError) as e:
        left = pending_count(pending_dir(spec.sweep_dir))
        kept = (f"; {left} trained result(s) wait in {pending_dir(spec.sweep_dir)}, and the "
                "next run delivers them") if left else ""
        why = str(e) if isinstance(e, StoreUnavailableError) else (
            f"store {mask_url(spec.storage_url)}: {store_error_line(e)}")
        print(f"odyssey-sweep: exit status {EXIT_STORE}: worker {spec.worker} stops: {why}"
              f"{kept}; run the same command again once the store is back", file=sys.stderr)
        sys.exit(EXIT_STORE)
    if report.unfinished:  # the worker has logged what is left and what to do
        print(f"odyssey-sweep: exit status {EXIT_UNFINISHED}: the sweep is unfinished, trials "
              "still run on workers this one cannot watch (see the message above)",
              file=sys.stderr)
        sys.exit(EXIT_UNFINISHED)


def _plan_or_exit(cfg: DictConfig, spec: SweepSpec) -> None:
    """plan=true: calibrate (or read the cache), print the plan, train nothing."""
    workers, epochs = cfg.get("plan_workers", 1), cfg.get("plan_epochs")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        print(f"odyssey-sweep: config error: plan_workers must be an integer >= 1, got "
              f"{workers!r}", file=sys.stderr)
        sys.exit(2)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int | float)
                               or epochs <= 0):
        print(f"odyssey-sweep: config error: plan_epochs must be null or a number > 0, got "
              f"{epochs!r}", file=sys.stderr)
        sys.exit(2)
    try:
        task = open_task(spec)
        studies = load_studies(spec, open_storage(spec.storage_url)) \
            if (spec.sweep_dir / "config.yaml").exists() else {}
        calibration = calibrate(spec, task)
    except (SweepConfigError, StorageURLError) as e:
        print(f"odyssey-sweep: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(format_plan(make_plan(spec, workers, epochs, calibration, studies)), flush=True)


def verdict(spec: SweepSpec) -> tuple[int, str]:
    """The exit status of a multirun from the store, and what is left when it is not 0."""
    studies = load_studies(spec, open_worker_storage(
        spec.storage_url, retry_seconds=spec.retry_seconds,
        timeout_seconds=spec.timeout_seconds, writer=False))
    n = spec.trials_per_variant
    short = [f"{v}: no trials yet" for v in spec.variants if v not in studies]
    short += unfinished(studies, n)
    if not short:
        return 0, ""
    left = pending_count(pending_dir(spec.sweep_dir))
    if left:
        short.append(f"{left} trained result(s) wait in {pending_dir(spec.sweep_dir)} for a "
                     "worker to deliver them")
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

    def _report(self, spec: SweepSpec) -> None:
        """Print the table; SystemExit(EXIT_STORE) with one line when the store cannot say.

        (Hydra turns an exception raised in a callback into a warning and exit status 0, so
        every failure here ends in sys.exit.)
        """
        path = spec.sweep_dir / "summary.csv"
        before = path.stat().st_mtime_ns if path.exists() else None
        try:
            text = final_report(spec)
        except Exception as e:  # (the store is down, or its final state unreadable)
            _exit_unreadable(spec, e)
        print(text, flush=True)
        if path.exists() and path.stat().st_mtime_ns != before:
            log.info("final table written to %s", path)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A config error stops a multirun here, in one line, before any job is launched
        (or submitted to SLURM), instead of once per worker."""
        _spec_or_exit(config)

    def on_run_end(self, config: DictConfig, job_return: JobReturn | None = None,
                   **kwargs: Any) -> None:
        if config.get("plan", False):  # a plan trains nothing: no table
            return
        if job_return is None or job_return.status == JobStatus.COMPLETED:
            try:
                spec = _load_spec(config)
            except SweepConfigError as e:  # the job has said what is wrong
                log.warning("no final table: %s", e)
                return
            self._report(spec)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """The table, then the multirun's exit status from the store (see the module
        docstring): with a keep-going launcher (hydra/launcher=processes, submitit_local,
        slurm) a single worker's death does not decide it."""
        if config.get("plan", False):
            return
        try:
            spec = _load_spec(config)
        except SweepConfigError as e:
            log.warning("no final table: %s", e)
            sys.exit(2)  # the jobs have said what is wrong
        self._report(spec)
        if config.get("report_only", False):
            return
        try:
            status, message = verdict(spec)
        except Exception as e:
            _exit_unreadable(spec, e)
        if status:
            print(f"odyssey-sweep: {message}", file=sys.stderr, flush=True)
            sys.exit(status)


def _exit_unreadable(spec: SweepSpec, e: BaseException) -> None:
    """One line and exit EXIT_STORE: the sweep's final state cannot be read."""
    why = str(e) if isinstance(e, StorageURLError | StoreUnavailableError) else \
        store_error_line(e)
    print(f"odyssey-sweep: exit status {EXIT_STORE}: cannot read the final state of sweep "
          f"{spec.sweep_name} (no final table): {why}", file=sys.stderr, flush=True)
    sys.exit(EXIT_STORE)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (`odyssey-sweep`)."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        logging.getLogger("optuna").setLevel(logging.WARNING)
    sweep(cfg)


if __name__ == "__main__":
    main()
