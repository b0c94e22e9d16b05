"""The sweep worker: fill every (task, variant) study with exactly N trials.

Each worker loops: mark stale running trials failed, count each study's trials (complete,
diverged and running ones), pick a study short of `trials_per_variant`, ask, train, tell;
it stops when every study is full and no trial it can watch (a local worker's, by its pid;
any worker's on a store with heartbeats) is still running, so a worker that dies near the
end is still replaced. Workers share nothing but the store, so any number of
them (processes, Hydra launcher jobs, machines on PostgreSQL) can run at once.

Exactly N: a worker that asks for a trial checks that fewer than N counted trials precede
its trial number in the study; if not, a concurrent worker took the last slot and the new
trial is closed as failed with `fail_kind = "claim_lost"` before any training. Trials are
numbered by the store in creation order, so exactly the first N counted trials survive.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ..cells import cell_names, get_cell
from ..data.missing import OPTIONS as MISSING_OPTIONS
from ..store.provenance import RUN_PREFIX, run_record
from ..store.storage import mask_url
from ..store.sweeps import sweep_studies
from ..tasks import Task, load_task
from ..training import TrainResult, TrialJob, train_pack
from .delivery import deliver_pending, pending_dir
from .liveness import WorkerId, heartbeat_interval
from .plan import calibrate, estimate_line, make_plan, record_estimate
from .progress import best_so_far, collect, format_summary, progress_line, summary_frame
from .resilient import open_worker_storage
from .running import RunningTrial, classify_running, unwatched_message
from .sampling import make_sampler
from .spec import DEFINING_KEYS, SweepConfigError, SweepSpec
from .trial import CLAIM_LOST, STALE, ActiveTrials, counts_toward_n, fail_trial, start_trial

log = logging.getLogger("odyssey.sweep")

# seconds between looks at other workers' trials while waiting for them (no heartbeats)
LOCAL_POLL_S = 1.0
# settings that may differ between runs of one sweep without changing what a trial means
RUN_LOCAL_TRAIN_KEYS = ("device", "impl", "eval_batch_size", "fused", "test_every_epoch")


@dataclass
class WorkerReport:
    """What one worker did."""

    trials_run: int = 0
    complete: int = 0
    diverged: int = 0
    stale_replaced: int = 0
    claims_lost: int = 0
    overtaken: int = 0  # own trials another worker marked stale before they ended
    seconds: float = 0.0
    # the sweep is not complete: trials still running on workers this one cannot watch
    # (journal store), with what a rerun will do about them (running.unwatched_message)
    unfinished: str = ""


def _defining(config: dict[str, Any]) -> dict[str, Any]:
    """What must match between runs of one sweep. Keys added since a sweep may have begun
    count with their defaults: the missing-data task options (nothing removed), one layer and
    each cell's default options."""
    out = {k: config.get(k) for k in DEFINING_KEYS}
    if isinstance(out.get("train"), dict):
        out["train"] = {"layers": 1, "cell_options": default_cell_options(),
                        **{k: v for k, v in out["train"].items()
                           if k not in RUN_LOCAL_TRAIN_KEYS}}
    if isinstance(out.get("task"), dict):
        out["task"] = {**MISSING_OPTIONS, **out["task"]}
    return out


def task_error(name: str, options: dict[str, Any], error: Exception) -> str:
    """One line for a task whose data did not load: a missing or unreadable file names the
    config key that holds its path (`task.path: ...`); a bad option or a plugin task's error
    says so itself; any other error names the task and the error's type."""
    cause = error if isinstance(error, OSError) else error.__cause__  # a plugin's, wrapped
    if isinstance(cause, OSError):
        text = " ".join(str(cause).split())
        keys = sorted((k for k, v in options.items() if isinstance(v, str) and v and v in text),
                      key=lambda k: -len(options[k]))  # the most specific: a path, not a source
        if keys:
            return f"task.{keys[0]}: {text}"
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, ValueError):  # a bad option, or a plugin task's error (named there)
        return f"task: {text}"
    return f"task {name}: could not load its data: {type(error).__name__}: {text}"


def open_task(spec: SweepSpec) -> Task:
    """The sweep's task, loaded; any loading error as a one-line SweepConfigError."""
    try:
        task = load_task(spec.task_name, **spec.task_options)
    except Exception as e:  # bad options, a missing corpus file, a plugin task's own error
        raise SweepConfigError(task_error(spec.task_name, spec.task_options, e)) from e
    if not getattr(task, "metric", ""):
        raise SweepConfigError(f"task {spec.task_name!r} defines no metric")
    return task


def default_cell_options() -> dict[str, dict[str, Any]]:
    """{cell: its options' defaults} of the registered cells that take options (CW)."""
    return {name: dict(get_cell(name).options) for name in cell_names()
            if get_cell(name).options}


def write_config(spec: SweepSpec) -> None:
    """results/<sweep>/config.yaml; refuse to mix trials of a differently defined sweep."""
    spec.sweep_dir.mkdir(parents=True, exist_ok=True)
    path = spec.sweep_dir / "config.yaml"
    config = {k: v for k, v in spec.config.items() if k != "worker"}
    if path.exists():
        old = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        assert isinstance(old, dict)
        if isinstance(old.get("train"), dict):  # sweeps begun before train.stopping existed
            old["train"].setdefault("stopping", "metric")  # stopped on the metric alone
        before, now = _defining(old), _defining(config)
        changed = [k for k in DEFINING_KEYS if before.get(k) != now.get(k)]
        if changed:
            raise SweepConfigError(
                f"{path} belongs to a sweep {spec.sweep_name!r} run with different "
                f"{', '.join(changed)}; its trials would not be comparable. Choose another "
                f"sweep_name=..., or delete {spec.sweep_dir} to start that sweep over")
    tmp = path.with_name(f".config.yaml.{WorkerId.current().pid}.tmp")
    OmegaConf.save(OmegaConf.create(config), tmp)
    tmp.replace(path)


def open_studies(spec: SweepSpec, task: Task, storage: optuna.storages.BaseStorage,
                 sampler: optuna.samplers.BaseSampler | None = None
                 ) -> dict[str, optuna.Study]:
    """One study per variant, created if missing, with the contract's user attributes.

    The run's config and package versions go here once, as `run/<id>` (provenance.run_record);
    each trial names its record by `run_id`.
    """
    run_id, record = run_record(spec.config)
    studies = {}
    for v in spec.variants:
        study = optuna.create_study(storage=storage, study_name=spec.study_name(v),
                                    direction="minimize", load_if_exists=True,
                                    sampler=sampler)
        attrs = {"sweep_name": spec.sweep_name, "task": spec.task_name, "variant": v,
                 "metric": task.metric, "metric_label": task.metric_label,
                 "task_setting": task.missing.describe(),
                 f"{RUN_PREFIX}{run_id}": record}
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        studies[v] = study
    return studies


def fail_stale_trials(studies: dict[str, optuna.Study], me: WorkerId,
                      grace_period: int | None = None,
                      running: list[RunningTrial] | None = None,
                      pending: Path | None = None) -> int:
    """Fail running trials whose worker is gone (running.classify_running); returns how
    many this call failed. `running`: the classification, when the caller has it.
    `pending`: results dead workers left there are delivered first (delivery.py)."""
    failed = 0
    if pending is not None:
        deliver_pending(studies, pending)
    if running is None:
        running = classify_running(studies, me, grace_period)
    for r in running:
        if r.verdict.state == "stale" and fail_trial(r.study, r.trial, STALE,
                                                     r.verdict.reason):
            failed += 1
            log.warning("trial %d of %s: %s", r.trial.number, r.study.study_name,
                        r.verdict.reason)
    return failed


def _pick(studies: dict[str, optuna.Study], n: int, worker: int) -> str | None:
    """A variant whose study has fewest counted trials, below n; None when all are full."""
    counts = {v: sum(counts_toward_n(t) for t in st.get_trials(deepcopy=False))
              for v, st in studies.items()}
    open_ = [v for v in studies if counts[v] < n]
    if not open_:
        return None
    order = list(studies)
    shift = worker % len(order)
    return min(open_, key=lambda v: (counts[v], (order.index(v) - shift) % len(order)))


def _claim_holds(study: optuna.Study, number: int, n: int) -> bool:
    """Whether fewer than n counted trials precede trial `number` in the study."""
    before = sum(1 for t in study.get_trials(deepcopy=False)
                 if t.number < number and counts_toward_n(t))
    return before < n


def run_worker(spec: SweepSpec, *, max_trials: int | None = None) -> WorkerReport:
    """Run trials until every study of the sweep holds `trials_per_variant` of them.

    `spec.parallel_trials` trials train at once as a pack (each as it would alone); a slot
    that frees takes the next trial at once. `max_trials` stops this worker after starting
    that many trials (for tests and short shifts).
    """
    started = time.perf_counter()
    report = WorkerReport()
    torch.set_num_threads(spec.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say more
    task = open_task(spec)  # before config.yaml: a corrected rerun is not another sweep
    write_config(spec)
    # the store before the trials: results a dead worker left on this machine go in first
    storage = open_worker_storage(spec.storage_url, heartbeat_interval=spec.heartbeat_interval,
                                  grace_period=spec.grace_period,
                                  retry_seconds=spec.retry_seconds,
                                  timeout_seconds=spec.timeout_seconds)
    pending = pending_dir(spec.sweep_dir)
    sampler = make_sampler(spec.sampler, spec.seed, spec.worker, spec.n_startup_trials,
                           tuple(spec.distributions))
    studies = open_studies(spec, task, storage, sampler)
    try:  # the estimate at the start, for the final table, from an earlier plan=true
        calibration = calibrate(spec, task, cached_only=True)
        if calibration is not None:
            record_estimate(spec, make_plan(spec, 1, None, calibration, studies))
    except OSError as e:  # an estimate is a convenience: never a reason to stop a sweep
        log.warning("no time estimate recorded: %s", e)
    me = WorkerId.current(spec.worker)
    n = spec.trials_per_variant
    log.info("worker %d (pid %d) on sweep %s: task %s, %d variants x %d trials, %d at once, "
             "store %s", spec.worker, me.pid, spec.sweep_name, spec.task_name,
             len(spec.variants), n, spec.parallel_trials, mask_url(spec.storage_url))
    beats = heartbeat_interval(storage)

    def next_job() -> TrialJob | None:
        """The next trial to train: asked from the study with fewest trials, its claim held."""
        while max_trials is None or report.trials_run < max_trials:
            report.stale_replaced += fail_stale_trials(studies, me, spec.grace_period,
                                                       pending=pending)
            variant = _pick(studies, n, spec.worker)
            if variant is None:
                return None
            study = studies[variant]
            with warnings.catch_warnings():  # we keep heartbeats ourselves (liveness)
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
                trial = study.ask()
            if beats:  # at once, so a worker dying before its first trial beat is still seen
                storage.record_heartbeat(trial._trial_id)
            trial.set_user_attr("worker", me.as_dict())
            if not _claim_holds(study, trial.number, n):
                fail_trial(study, trial, CLAIM_LOST, "not run: another worker took the "
                           "study's last slot at the same moment")
                report.claims_lost += 1
                continue
            report.trials_run += 1
            return active.start(start_trial(spec, study, trial, variant))
        return None

    def on_result(job: TrialJob, result: TrainResult) -> None:
        outcome = active.finish(task, job, result, pending)
        setattr(report, outcome, getattr(report, outcome) + 1)
        study, trial = job.tag
        _log_progress(studies, study, trial, job.variant, outcome, n, me)

    with ActiveTrials() as active:  # an exception fails the trials still running
        _loop(spec, studies, me, report, lambda: train_pack(
            task, spec.train, next_job, on_result, capacity=spec.parallel_trials),
            beats, max_trials, pending)
    report.seconds = time.perf_counter() - started
    log.info("worker %d done: %d trials (%d complete, %d diverged) in %.0f s; %d stale "
             "replaced, %d lost claims", spec.worker, report.trials_run, report.complete,
             report.diverged, report.seconds, report.stale_replaced, report.claims_lost)
    return report


def _loop(spec: SweepSpec, studies: dict[str, optuna.Study], me: WorkerId,
          report: WorkerReport, train: Callable[[], None], beats: int | None,
          max_trials: int | None, pending: Path) -> None:
    """Train until every study is full, then wait for (or replace) other workers' trials;
    results left in `pending` (a store outage, a dead worker) are delivered first."""
    n = spec.trials_per_variant
    waited_since: float | None = None
    while True:
        train()
        if max_trials is not None and report.trials_run >= max_trials:
            break
        deliver_pending(studies, pending)
        running = classify_running(studies, me, spec.grace_period)
        report.stale_replaced += fail_stale_trials(studies, me, running=running)
        if _pick(studies, n, spec.worker) is not None:
            waited_since = None
            continue
        # every slot is taken, but a running trial's worker may still die: wait for the
        # trials this worker can watch (a local pid, a heartbeat) and replace those that
        # go stale; never end short in silence
        left = [r for r in running if r.verdict.state != "stale"
                and not me.same_process(r.verdict.owner)]  # (its own: not a worker's)
        if not left:
            break
        unwatched = [r for r in left  # an unowned trial goes stale by its age
                     if r.verdict.state == "elsewhere" and r.verdict.owner is not None]
        if unwatched and not beats:  # a journal keeps no heartbeats: cannot be judged
            report.unfinished = unwatched_message(unwatched, spec.worker)
            log.warning(report.unfinished)
            break
        if waited_since is None:
            waited_since = time.monotonic()
            log.info("worker %d: every slot is taken; waiting for %d trial(s) of other "
                     "workers to finish, or to replace them if their worker dies: %s",
                     spec.worker, len(left), "; ".join(r.describe() for r in left))
        # a local worker's death is seen by its pid at once; a remote one's only after
        # its grace period, so that wait polls at the heartbeat interval
        remote = beats and any(r.verdict.state == "elsewhere" for r in left)
        time.sleep(beats if remote else LOCAL_POLL_S)


def _log_progress(studies: dict[str, optuna.Study], study: optuna.Study,
                  trial: optuna.Trial, variant: str, outcome: str, n: int, me: WorkerId) -> None:
    """A line per finished trial; every len(variants) trials, the best so far per variant."""
    ft = study._storage.get_trial(trial._trial_id)
    statuses = collect(studies)
    workers = {(t.user_attrs["worker"]["host"], t.user_attrs["worker"]["pid"])
               for st in studies.values()
               for t in st.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if "worker" in t.user_attrs} | {(me.host, me.pid)}
    if outcome == "complete":
        what = f"valid {ft.value:.4f} test {ft.user_attrs.get('test_metric', math.nan):.4f}"
    else:
        what = ft.user_attrs.get("fail_reason", outcome)
    log.info("%s | %s trial %d: %s (%.0f s, %s epochs) | best %s %.4f",
             progress_line(statuses, n, len(workers)), variant, trial.number, what,
             ft.user_attrs.get("train_seconds", 0.0), ft.user_attrs.get("epochs_run"),
             variant, statuses[variant].best_valid)
    done = sum(min(n, s.finished) for s in statuses.values())
    if done % len(studies) == 0 or done == n * len(studies):
        log.info(best_so_far(statuses))


def load_studies(spec: SweepSpec, storage: optuna.storages.BaseStorage
                 ) -> dict[str, optuna.Study]:
    """The sweep's studies that exist in the store (for reports)."""
    names = {s.study_name for s in sweep_studies(storage, spec.sweep_name)}
    return {v: optuna.load_study(study_name=spec.study_name(v), storage=storage)
            for v in spec.variants if spec.study_name(v) in names}


def final_report(spec: SweepSpec, write: bool = True) -> str:
    """The table of best valid/test metric per variant; also results/<sweep>/summary.csv."""
    storage = open_worker_storage(spec.storage_url, retry_seconds=spec.retry_seconds,
                                  timeout_seconds=spec.timeout_seconds, writer=False)
    studies = load_studies(spec, storage)
    if not studies:
        return f"sweep {spec.sweep_name}: no studies in {mask_url(spec.storage_url)}"
    statuses = collect(studies)
    first = next(iter(studies.values()))
    label = first.user_attrs.get("metric_label") or first.user_attrs.get("metric", "metric")
    frame = summary_frame(statuses, label)
    if write:
        frame.to_csv(spec.sweep_dir / "summary.csv")
    total = sum(min(spec.trials_per_variant, s.finished) for s in statuses.values())
    head = (f"sweep {spec.sweep_name} ({spec.task_name}): {total}/{spec.total_trials} trials "
            f"finished; best validation {label} per variant and the test score of that "
            "trial; untrained: complete trials that never beat the task's trivial baseline")
    timing = estimate_line(spec, studies)
    return head + "\n" + format_summary(frame) + (f"\n{timing}" if timing else "")
