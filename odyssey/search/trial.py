"""The trial contract: how a sweep's trial starts, ends, fails and counts (DESIGN §6).

A trial this worker runs is started (`start_trial`: seed, hyperparameters, provenance) and
held by `ActiveTrials`, which keeps its heartbeat beating until it is closed: told complete
or diverged (`ActiveTrials.finish`), or failed with its kind when an exception (a fault, a
store error while finishing, Ctrl-C) leaves the worker's `with` block. Every failure is
written by `fail_trial` with a `fail_kind` from `FAIL_KINDS` and a `fail_reason`.

Exactly N: `counts_toward_n` says which trials fill a study's `trials_per_variant` slots:
complete, running and diverged ones; any other failure is replaced by a new trial.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from ..store.provenance import git_commit, run_record
from ..tasks import Task
from ..training import Hyperparameters, TrainResult, TrialJob
from .delivery import deliver, keep_until_stored, result_record
from .liveness import Heartbeat
from .resilient import StoreUnavailableError
from .sampling import suggest, trial_seed
from .spec import SweepSpec

log = logging.getLogger("odyssey.sweep")

# the trial's result: the training diverged (a finite score was never reached); counted
DIVERGED = "diverged"
# its worker died while it ran (judged by odyssey.search.liveness); replaced
STALE = "stale"
# another worker took the study's last slot at the same moment; never ran, replaced
CLAIM_LOST = "claim_lost"
# an exception ended it (a fault to fix, or a store error); replaced
ERROR = "error"
# Ctrl-C or another BaseException that is not an Exception ended it; replaced
INTERRUPTED = "interrupted"
FAIL_KINDS = (DIVERGED, STALE, CLAIM_LOST, ERROR, INTERRUPTED)
# FAIL trials whose `fail_kind` is one of these are results of the search (they count
# toward trials_per_variant); other failures are replaced by a new trial.
COUNTED_FAIL_KINDS = frozenset({DIVERGED})

# set first (null until the trial ends): optuna-dashboard lists a journal store's trial
# attributes in the order they were first set, in a box a few lines high
FIRST_ATTRS = ("valid_metric", "test_metric", "best_epoch", "parameter_count")


def counts_toward_n(t: FrozenTrial) -> bool:
    """Whether a trial fills one of its study's `trials_per_variant` slots."""
    if t.state in (TrialState.COMPLETE, TrialState.RUNNING):
        return True
    return t.state == TrialState.FAIL and t.user_attrs.get("fail_kind") in COUNTED_FAIL_KINDS


def fail_kind(error: BaseException) -> str:
    """The kind of failure an exception makes of the trial it ends."""
    return ERROR if isinstance(error, Exception) else INTERRUPTED


def fail_trial(study: optuna.Study, trial: optuna.Trial | FrozenTrial, kind: str,
               reason: str, **attrs: Any) -> bool:
    """Close a running trial as failed with `fail_kind`, `fail_reason` and `attrs`.

    A trial this worker asked for (an `optuna.Trial`) is told through its study, so the
    sampler sees it end; another worker's (a `FrozenTrial`, judged stale) is closed in the
    store. Returns False when the trial had already ended (another worker closed it).
    """
    if kind not in FAIL_KINDS:
        raise ValueError(f"unknown fail kind {kind!r}; expected one of {FAIL_KINDS}")
    storage = study._storage
    frozen = isinstance(trial, FrozenTrial)
    try:
        for key, value in {"fail_kind": kind, "fail_reason": reason, **attrs}.items():
            if frozen:
                storage.set_trial_user_attr(trial._trial_id, key, value)
            else:
                trial.set_user_attr(key, value)
        if frozen:
            return storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.tell(trial, state=TrialState.FAIL)
        return True
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def start_trial(spec: SweepSpec, study: optuna.Study, trial: optuna.Trial,
                variant: str) -> TrialJob:
    """Record a new trial's seed, hyperparameters and provenance; the job that trains it.

    Each epoch's validation score goes to the store as an intermediate value. The job's
    `tag` is (study, trial) until `ActiveTrials.start` adds its heartbeat.
    """
    seed = trial_seed(spec.seed, study.study_name, trial.number, "train")
    params = suggest(trial, spec.distributions)
    hp = Hyperparameters.from_search(params)
    attrs = {**dict.fromkeys(FIRST_ATTRS), "seed": seed, "momentum": hp.momentum,
             "batch_size": spec.train.batch_size, "run_id": run_record(spec.config)[0],
             "git_commit": git_commit()}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    size = (f"H={hp.hidden_size}" if hp.hidden_size is not None
            else f"budget={hp.parameter_budget}") + (f" layers={hp.layers}" if hp.layers else "")
    log.info("start %s trial %d: %s lr=%.3g momentum=%.3f noise=%.3f seed=%d",
             variant, trial.number, size, hp.learning_rate, hp.momentum, hp.input_noise, seed)

    def on_epoch(entry: dict[str, Any]) -> None:
        # the learning curve in the store (optuna-dashboard, plot_intermediate_values); a
        # non-finite score (a diverging epoch) is left out: Optuna's plots cannot draw it
        if np.isfinite(entry["valid"]):
            # past the retry bound training goes on: the curve is in its result (delivery.py);
            # a trial another worker has failed as stale meanwhile trains on to its end, where
            # its result is dropped as overtaken (finish_trial)
            with contextlib.suppress(StoreUnavailableError,
                                     optuna.exceptions.UpdateFinishedTrialError):
                trial.report(float(entry["valid"]), int(entry["epoch"]))
        log.debug("%s trial %d epoch %d: train %.4f valid %.4f test %s", variant,
                  trial.number, entry["epoch"], entry["train_loss"], entry["valid"],
                  "-" if entry["test"] is None else f"{entry['test']:.4f}")

    return TrialJob(variant, hp, seed, on_epoch, tag=(study, trial))


def finish_trial(task: Task, job: TrialJob, result: TrainResult,
                 pending: Path | None = None) -> str:
    """Tell the store a trial's result; "complete", "diverged" or "overtaken" (another
    worker judged it stale and replaced it: the result is dropped, not counted twice).

    With `pending` (a folder), the result is kept on disk until the store has it
    (delivery.py), so a store outage longer than the retry bound loses no training.
    """
    study, trial = job.tag
    # the long learning curve last, after the scores a person looks for first
    attrs = [(k, v) for k, v in sorted(result.as_dict().items(), key=lambda kv: kv[0] == "curve")
             if k not in ("status", "fail_reason")]
    value = None
    if result.status == "complete":
        value = result.valid_metric
        baseline = task.baseline("valid")
        if baseline is not None:  # never beat the trivial model: learnt nothing
            attrs += [("baseline_valid", baseline),
                      ("untrained", not result.valid_metric < baseline)]
    else:
        attrs += [("fail_kind", DIVERGED), ("fail_reason", result.fail_reason)]
    record = result_record(study.study_name, trial.number, attrs, value)
    if pending is None:
        return deliver(study, record)
    with keep_until_stored(pending, record):
        return deliver(study, record)


class ActiveTrials:
    """The trials this worker is running, each with its heartbeat, as a context manager.

    `start` begins a trial's heartbeat; `finish` tells its result and only then lets it go.
    Leaving the block with an exception (a fault, a store error while finishing, Ctrl-C)
    fails every trial still held with its kind ("error" or "interrupted") and the
    traceback; leaving it in any way stops every heartbeat. No trial of this worker is
    left RUNNING without a heartbeat (it would wait for the grace period to be replaced).
    """

    def __init__(self) -> None:
        self._held: dict[int, tuple[TrialJob, Heartbeat]] = {}  # by id(job)

    def __enter__(self) -> ActiveTrials:
        return self

    def __len__(self) -> int:
        return len(self._held)

    def start(self, job: TrialJob) -> TrialJob:
        """Hold `job` (made by `start_trial`) and start its trial's heartbeat."""
        study, trial = job.tag
        beat = Heartbeat(study._storage, trial._trial_id)
        beat.start()
        self._held[id(job)] = (job, beat)
        return job

    def finish(self, task: Task, job: TrialJob, result: TrainResult,
               pending: Path | None = None) -> str:
        """Tell the store `job`'s result (finish_trial), then stop its heartbeat and let it
        go. When telling fails the trial stays held, so leaving the block fails it."""
        outcome = finish_trial(task, job, result, pending)
        self._release(job)
        return outcome

    def _release(self, job: TrialJob) -> None:
        _, beat = self._held.pop(id(job))
        beat.stop()

    def __exit__(self, exc_type: type[BaseException] | None, error: BaseException | None,
                 tb: object) -> None:
        for job, _ in list(self._held.values()):
            self._release(job)
            if error is not None:
                self._fail(job, error)

    @staticmethod
    def _fail(job: TrialJob, error: BaseException) -> None:
        """Close a trial an exception ended; an error is a fault, not a result (the caller
        re-raises it). A store that fails here too leaves the trial to be judged stale."""
        study, trial = job.tag
        if isinstance(error, StoreUnavailableError):  # no store to tell: stale later
            return
        kind = fail_kind(error)
        try:
            fail_trial(study, trial, kind, f"{kind}: {type(error).__name__}: {error}",
                       traceback="".join(traceback.format_exception(error)))
        except Exception as e:
            log.error("%s trial %d: could not record its failure (%s: %s); a worker will "
                      "replace it once it is judged stale", job.variant, trial.number,
                      type(e).__name__, e)
