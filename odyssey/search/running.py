"""The running trials of a sweep, each judged once: alive here, stale, or elsewhere.

One walk over the running trials serves the worker loop (which closes the stale ones and
waits for, or reports, those elsewhere) and the end of a run or multirun (whether the sweep
is complete, and if not, what is left and when a rerun will take it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from .liveness import Verdict, WorkerId, judge_running, silent_trial_ids
from .trial import counts_toward_n

# a running trial that has not yet recorded its worker is stale after this long (journal
# stores; RDB stores use their grace period)
UNOWNED_GRACE_S = 300
# exit status of a worker or multirun that stops with the sweep unfinished although nothing
# failed: every slot is taken, but trials still run on workers it cannot watch
EXIT_UNFINISHED = 3


@dataclass(frozen=True)
class RunningTrial:
    """A running trial, its study and the verdict on its worker."""

    study: optuna.Study
    trial: FrozenTrial
    verdict: Verdict
    age_s: float
    unowned_grace_s: float

    @property
    def name(self) -> str:
        return f"{self.study.study_name}#{self.trial.number}"

    def describe(self) -> str:
        """'quick-music/music/V#3 on host-b (pid 4242), running for 45 s' and, for a trial
        that never recorded its worker, the time a rerun will replace it."""
        owner = self.verdict.owner
        if owner is None:
            at = datetime.fromtimestamp(time.time() - self.age_s + self.unowned_grace_s,
                                        tz=UTC)
            return (f"{self.name}, no worker recorded, running for {self.age_s:.0f} s: a "
                    f"worker started after {at:%Y-%m-%d %H:%M:%S} UTC replaces it")
        return (f"{self.name} on {owner.host} (pid {owner.pid}), running for "
                f"{self.age_s:.0f} s")


def classify_running(studies: dict[str, optuna.Study], me: WorkerId,
                     grace_period: int | None = None) -> list[RunningTrial]:
    """Every running trial of the studies with the verdict on its worker.

    A local owner is judged by its process; any owner by its heartbeat where the store keeps
    them; a trial that never recorded its worker (died right after asking) goes stale after
    `grace_period` seconds (UNOWNED_GRACE_S without heartbeats).
    """
    grace = float(grace_period or UNOWNED_GRACE_S)
    out = []
    for study in studies.values():
        silent = silent_trial_ids(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            age = (time.time() - t.datetime_start.timestamp()) if t.datetime_start else 0.0
            verdict = judge_running(t.user_attrs.get("worker"), age, t._trial_id in silent,
                                    me, grace)
            out.append(RunningTrial(study, t, verdict, age, grace))
    return out


def unwatched_message(left: list[RunningTrial], worker: int | None = None,
                      grace_period: int | None = None) -> str:
    """Why a worker or multirun stops with trials still running elsewhere, and what will
    take them: on a journal store (`grace_period` None) nothing from this machine can; on
    a store with heartbeats, a worker started after their grace period if theirs died."""
    who = "the multirun" if worker is None else f"worker {worker}"
    hosts = sorted({r.verdict.owner.host for r in left if r.verdict.owner is not None})
    if grace_period is None:
        why = "on workers a journal store cannot watch (it keeps no heartbeats)"
        then = ("If they finish there, the sweep is complete. If their worker died, run the "
                f"same command again on {', '.join(hosts)}: it replaces them at once; from "
                "another machine they cannot be judged (use a PostgreSQL store for workers "
                "on several machines).") if hosts else ""
    else:
        why = "on other workers, and no worker is left here to watch them"
        then = ("Their workers finish them; if a worker died, the same command run again "
                f"more than {grace_period} s (the grace period) after its last heartbeat "
                "replaces its trial.")
    lines = [f"{who} stops with the sweep unfinished: every slot is taken, but {len(left)} "
             f"trial(s) still run {why}:"]
    lines += [f"  {r.describe()}" for r in left]
    return "\n".join(lines + ([then] if then else []))


def unfinished(studies: dict[str, optuna.Study], n: int) -> list[str]:
    """'V: 2 of 3 trials finished, 1 running' for each study short of n finished trials."""
    short = []
    for v, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        done = sum(counts_toward_n(t) and t.state != TrialState.RUNNING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if done < n:
            short.append(f"{v}: {done} of {n} trials finished, {running} running")
    return short
