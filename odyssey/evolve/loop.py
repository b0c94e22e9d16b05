"""The evolution worker: Jozefowicz et al. (2015)'s search as trials on an Optuna store.

Each evaluation is one trial of the study "<sweep_name>/evolve": an architecture (user
attributes `architecture`, its canonical string, and `architecture_hash`; `parent` and
`mutation` for a mutant; `kind`: seed, reevaluate or mutate; `diverged`: the tasks on
which training diverged, each scored 0), hyperparameters from the
Greff search space (search.params, drawn per trial number so they do not depend on the
worker), and one training run per task (`tasks`, the attribute holding each task's
validation and test metric). A worker loops: fail stale trials, stop once `evaluations`
trials count, ask a trial, hold its claim (the sweep's exact-count rule: fewer than N
counted trials before it), decide what to evaluate from the store, train, tell.

The decision (`decide`) reads only the store and a generator seeded by the trial number:
first every seed architecture (the LSTM and the GRU) gets `seed_evaluations`; then, with
probability `reevaluate_probability`, a random architecture of the top list (the best
`top` by score, derived from the store) with fewer than `evaluations_per_architecture`
evaluations is evaluated again; otherwise a random listed architecture is mutated into one
the store does not hold (odyssey.evolve.mutate). With one worker a seed reproduces the run.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from ..cells.graph import (
    GRAPHS,
    Graph,
    GraphError,
    architecture_hash,
    canonical_string,
    known,
    parse_canonical,
    register_graph,
)
from ..cells.graph.compile import cell_name
from ..search.liveness import Heartbeat, WorkerId
from ..search.running import classify_running, unwatched_message
from ..search.sampling import (
    SearchSpaceError,
    TrialSeededRandomSampler,
    distributions,
    suggest,
    trial_seed,
)
from ..search.spec import NAME_PATTERN, SweepConfigError
from ..search.sweep import _claim_holds, fail_stale_trials
from ..search.trial import counts_toward_n
from ..store.storage import (
    StorageURLError,
    check_url,
    mask_secrets,
    mask_url,
    open_storage,
    resolve_url,
)
from ..tasks import Task, load_task, task_names
from ..training import Hyperparameters, TrainSettings, train
from . import scores
from .mutate import mutate

log = logging.getLogger("odyssey.evolve")
STUDY = "evolve"
KINDS = ("seed", "reevaluate", "mutate")


@dataclass(frozen=True)
class EvolveSpec:
    """What one `odyssey-evolve` worker needs, validated from the config."""

    sweep_name: str
    results_dir: Path
    evaluations: int
    tasks: dict[str, dict[str, Any]]
    seeds: tuple[str, ...]  # canonical strings
    baseline: str  # canonical string of the architecture scores are relative to
    seed_evaluations: int
    evaluations_per_architecture: int
    reevaluate_probability: float
    top: int
    max_draws: int
    seed: int
    worker: int
    threads: int
    train: TrainSettings
    distributions: dict[str, BaseDistribution]
    storage_url: str
    config: dict[str, Any]
    heartbeat_interval: int | None = None
    grace_period: int | None = None

    @property
    def sweep_dir(self) -> Path:
        return self.results_dir / self.sweep_name

    @property
    def study_name(self) -> str:
        return f"{self.sweep_name}/{STUDY}"

    @classmethod
    def from_config(cls, cfg: DictConfig) -> EvolveSpec:
        """Validate the composed config; SweepConfigError names the first bad key."""
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.pop("hydra", None)
        try:
            c = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:
            raise SweepConfigError(f"config does not resolve: {e}") from e
        assert isinstance(c, dict)
        for key in ("sweep_name", "results_dir", "evaluations", "tasks", "evolve", "train",
                    "search", "storage", "seed"):
            if c.get(key) is None:
                raise SweepConfigError(f"missing config key {key!r}")
        name = c["sweep_name"]
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise SweepConfigError(f"sweep_name must be letters, digits, '.', '_' or '-', "
                                   f"got {name!r}")
        n = _int(c, "evaluations", 1)
        tasks = c["tasks"]
        if not isinstance(tasks, dict) or not tasks:
            raise SweepConfigError("tasks must map names to task configs (configs/task/)")
        opts = {}
        for key, tc in tasks.items():
            if not isinstance(tc, dict) or tc.get("name") not in task_names():
                raise SweepConfigError(f"tasks.{key}.name must be one of "
                                       f"{', '.join(task_names())}")
            opts[key] = {k: v for k, v in tc.items()}
        ev = c["evolve"]
        seeds = tuple(_architecture(s, "evolve.seeds") for s in ev.get("seeds") or [])
        if not seeds:
            raise SweepConfigError("evolve.seeds must list at least one architecture "
                                   f"({', '.join(GRAPHS)} or a canonical string)")
        baseline = _architecture(ev.get("baseline", "GRU"), "evolve.baseline")
        prob = ev.get("reevaluate_probability", 0.5)
        if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 <= prob <= 1:
            raise SweepConfigError(f"evolve.reevaluate_probability must lie in [0, 1], got "
                                   f"{prob!r}")
        try:
            dists = distributions(c["search"]["params"])
        except (SearchSpaceError, KeyError, TypeError) as e:
            raise SweepConfigError(f"search: {e}") from e
        try:
            settings = TrainSettings.from_mapping(c["train"])
        except (TypeError, ValueError) as e:
            raise SweepConfigError(f"train: {e}") from e
        url = c["storage"].get("url") if isinstance(c["storage"], dict) else None
        try:
            check_url(url)
            url = resolve_url(url)
        except StorageURLError as e:
            raise SweepConfigError(f"storage.url: {e}") from e
        beats = {}
        for key in ("heartbeat_interval", "grace_period"):
            value = c["storage"].get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise SweepConfigError(f"storage.{key} must be null or an integer >= 1 "
                                       f"(seconds), got {value!r}")
            beats[key] = value
        resolved = mask_secrets(c)
        resolved["storage"]["url"] = mask_url(url)
        results_dir = Path(str(c["results_dir"])).expanduser().resolve()
        return cls(
            sweep_name=name, results_dir=results_dir, evaluations=n, tasks=opts, seeds=seeds,
            baseline=baseline, seed_evaluations=_int(ev, "seed_evaluations", 1, "evolve."),
            evaluations_per_architecture=_int(ev, "evaluations_per_architecture", 1,
                                              "evolve."),
            reevaluate_probability=float(prob), top=_int(ev, "top", 1, "evolve."),
            max_draws=_int(ev, "max_draws", 1, "evolve."), seed=_int(c, "seed", 0),
            worker=_int(c, "worker", 0) if "worker" in c else 0,
            threads=_int(c, "threads", 1) if "threads" in c else 1, train=settings,
            distributions=dists, storage_url=url, config=resolved, **beats)


def _int(c: dict, key: str, minimum: int, prefix: str = "") -> int:
    value = c.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepConfigError(f"{prefix}{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _architecture(ref: Any, key: str) -> str:
    """A canonical string from a known cell's name or a canonical string."""
    if isinstance(ref, str) and ref.upper() in GRAPHS:
        return canonical_string(known(ref))
    try:
        return canonical_string(parse_canonical(str(ref)))
    except GraphError as e:
        raise SweepConfigError(f"{key}: {ref!r} is neither one of {', '.join(GRAPHS)} nor a "
                               f"valid architecture ({e})") from e


@dataclass(frozen=True)
class Decision:
    """What one trial evaluates."""

    kind: str
    architecture: str
    parent: str | None = None
    mutation: str | None = None


def decide(spec: EvolveSpec, frame, rng: np.random.Generator) -> Decision:
    """The next evaluation from the store's state `frame` (scores.evaluations)."""
    counts = frame.groupby(scores.HASH_ATTR).size() if not frame.empty else {}
    for s in spec.seeds:
        h = architecture_hash(parse_canonical(s))
        if int(counts.get(h, 0)) < spec.seed_evaluations:
            return Decision("seed", s)
    table = scores.architectures(frame, list(spec.tasks), _hash(spec.baseline))
    listed = table[table["score"].notna()].head(spec.top)
    if listed.empty:  # nothing scored yet (seed trials still running elsewhere)
        listed = table.head(spec.top)
    if rng.uniform() < spec.reevaluate_probability:
        open_ = listed[listed["evaluations"] < spec.evaluations_per_architecture]
        if not open_.empty:
            pick = open_.iloc[int(rng.integers(len(open_)))]
            return Decision("reevaluate", pick[scores.ARCH_ATTR])
    parent = listed.iloc[int(rng.integers(len(listed)))]
    known_hashes = set(table[scores.HASH_ATTR])
    child = mutate(parse_canonical(parent[scores.ARCH_ATTR]), rng, known_hashes,
                   max_draws=spec.max_draws)
    return Decision("mutate", canonical_string(child.graph), parent[scores.HASH_ATTR],
                    child.description)


def _hash(text: str) -> str:
    return architecture_hash(parse_canonical(text))


@dataclass
class EvolveReport:
    """What one worker did."""

    evaluations: int = 0
    diverged: int = 0
    claims_lost: int = 0
    stale_replaced: int = 0
    seconds: float = 0.0
    # trials still run on workers this one cannot watch (journal store, other machines)
    unfinished: str = ""


def open_study(spec: EvolveSpec, storage) -> optuna.Study:
    """The evolution's study (created if missing) with its sweep's attributes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(storage=storage, study_name=spec.study_name,
                                    direction="maximize", load_if_exists=True,
                                    sampler=TrialSeededRandomSampler(spec.seed))
    attrs = {"sweep_name": spec.sweep_name, "kind": "evolve", "tasks": list(spec.tasks),
             "baseline": spec.baseline, "baseline_hash": _hash(spec.baseline),
             "metrics": {k: None for k in spec.tasks}}
    for key, value in attrs.items():
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    return study


def write_config(spec: EvolveSpec) -> None:
    """results/<sweep>/config.yaml; a different evolution under the same name is refused."""
    spec.sweep_dir.mkdir(parents=True, exist_ok=True)
    path = spec.sweep_dir / "config.yaml"
    defining = ("tasks", "evolve", "search", "train", "seed")
    config = {k: v for k, v in spec.config.items() if k != "worker"}
    if path.exists():
        old = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        local = ("device", "impl", "eval_batch_size", "fused", "test_every_epoch")
        strip = (lambda d: {k: v for k, v in (d or {}).items() if k not in local})  # noqa: E731
        changed = [k for k in defining if (strip(old.get(k)) if k == "train" else old.get(k))
                   != (strip(config.get(k)) if k == "train" else config.get(k))]
        if changed:
            raise SweepConfigError(f"{path} belongs to an evolution {spec.sweep_name!r} run "
                                   f"with different {', '.join(changed)}; choose another "
                                   f"sweep_name=..., or delete {spec.sweep_dir}")
    tmp = path.with_name(f".config.yaml.{WorkerId.current().pid}.tmp")
    OmegaConf.save(OmegaConf.create(config), tmp)
    tmp.replace(path)


def evaluate(spec: EvolveSpec, tasks: dict[str, Task], graph: Graph, hp: Hyperparameters,
             number: int) -> dict[str, dict[str, Any]]:
    """Train the architecture on every task with `hp`; per task its metric and outcome."""
    variant = register_graph(graph, origin="odyssey.evolve").name
    out = {}
    for key, task in tasks.items():
        seed = trial_seed(spec.seed, spec.study_name, number, f"train/{key}")
        result = train(task, variant, hp, spec.train, seed)
        out[key] = {"metric": task.metric, "status": result.status,
                    "valid": result.valid_metric, "test": result.test_metric,
                    "best_epoch": result.best_epoch, "epochs": result.epochs_run,
                    "seconds": round(result.train_seconds, 3),
                    "parameters": result.parameter_count}
        if result.status != "complete":
            out[key]["fail_reason"] = result.fail_reason
    return out


def _counted(study: optuna.Study) -> int:
    return sum(counts_toward_n(t) for t in study.get_trials(deepcopy=False))


def run_worker(spec: EvolveSpec, *, max_trials: int | None = None) -> EvolveReport:
    """Evaluate architectures until `spec.evaluations` trials count in the store."""
    started = time.perf_counter()
    report = EvolveReport()
    torch.set_num_threads(spec.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    write_config(spec)
    try:
        tasks = {k: load_task(o["name"], **{a: b for a, b in o.items() if a != "name"})
                 for k, o in spec.tasks.items()}
    except ValueError as e:
        raise SweepConfigError(f"tasks: {e}") from e
    storage = open_storage(spec.storage_url, heartbeat_interval=spec.heartbeat_interval,
                           grace_period=spec.grace_period)
    study = open_study(spec, storage)
    beats = storage.get_heartbeat_interval() if hasattr(
        storage, "get_heartbeat_interval") else None
    me = WorkerId.current(spec.worker)
    studies = {STUDY: study}
    n = spec.evaluations
    log.info("evolve worker %d (pid %d) on %s: %d evaluations, tasks %s, store %s",
             spec.worker, me.pid, spec.sweep_name, n, ", ".join(spec.tasks),
             mask_url(spec.storage_url))
    while max_trials is None or report.evaluations < max_trials:
        report.stale_replaced += fail_stale_trials(studies, me, spec.grace_period)
        if _counted(study) >= n:
            running = [r for r in classify_running(studies, me, spec.grace_period)
                       if r.verdict.state != "stale" and not me.same_process(r.verdict.owner)]
            if not running:
                break
            unwatched = [r for r in running
                         if r.verdict.state == "elsewhere" and r.verdict.owner is not None]
            if unwatched and not beats:  # a journal keeps no heartbeats: cannot be judged
                report.unfinished = unwatched_message(unwatched, spec.worker)
                log.warning(report.unfinished)
                break
            # wait: a worker that dies now leaves a slot to refill
            time.sleep(beats if beats and unwatched else 1.0)
            continue
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = study.ask()
        if beats:  # at once, so a worker dying before its first beat is still seen
            storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr("worker", me.as_dict())
        if not _claim_holds(study, trial.number, n):
            trial.set_user_attr("fail_kind", "claim_lost")
            trial.set_user_attr("fail_reason", "not run: another worker took the last slot")
            study.tell(trial, state=TrialState.FAIL)
            report.claims_lost += 1
            continue
        heartbeat = Heartbeat(storage, trial._trial_id).__enter__()
        try:
            frame = scores.load(study)
            frame = frame[frame["number"] != trial.number] if not frame.empty else frame
            rng = np.random.default_rng(trial_seed(spec.seed, spec.study_name, trial.number,
                                                   "evolve"))
            d = decide(spec, frame, rng)
            graph = parse_canonical(d.architecture)
            attrs = {scores.ARCH_ATTR: d.architecture,
                     scores.HASH_ATTR: architecture_hash(graph), "kind": d.kind,
                     "parent": d.parent, "mutation": d.mutation, "cell": cell_name(graph)}
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            hp = Hyperparameters.from_search(suggest(trial, spec.distributions))
            log.info("trial %d: %s %s (H=%d lr=%.3g)%s", trial.number, d.kind,
                     attrs[scores.HASH_ATTR], hp.hidden_size, hp.learning_rate,
                     f" from {d.parent}: {d.mutation}" if d.mutation else "")
            results = evaluate(spec, tasks, graph, hp, trial.number)
        except BaseException as e:
            heartbeat.__exit__(None, None, None)
            kind = "error" if isinstance(e, Exception) else "interrupted"
            try:
                trial.set_user_attr("fail_kind", kind)
                trial.set_user_attr("fail_reason", f"{kind}: {type(e).__name__}: {e}")
                study.tell(trial, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
            raise
        heartbeat.__exit__(None, None, None)
        report.evaluations += 1
        try:
            trial.set_user_attr("tasks", results)
            # an architecture that diverges on a task has that task's goodness 0: a result
            # of the search, so the evaluation is complete (the tasks say which diverged)
            diverged = [k for k, r in results.items() if r["status"] != "complete"]
            trial.set_user_attr("diverged", diverged)
            if diverged:
                report.diverged += 1
            study.tell(trial, min(scores.task_goodness(r) for r in results.values()))
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning("trial %d was marked stale while it ran; its result is dropped",
                        trial.number)
        done = sum(t.state != TrialState.RUNNING for t in study.get_trials(deepcopy=False)
                   if counts_toward_n(t))
        log.info("trial %d done: %s | %d/%d evaluations finished", trial.number,
                 ", ".join(f"{k} {r['valid']:.4f}" if r["valid"] is not None
                           and math.isfinite(r["valid"]) else f"{k} {r['status']}"
                           for k, r in results.items()), done, n)
    report.seconds = time.perf_counter() - started
    log.info("evolve worker %d done: %d evaluations (%d diverged), %d stale replaced, %d "
             "claims lost, %.0f s", spec.worker, report.evaluations, report.diverged,
             report.stale_replaced, report.claims_lost, report.seconds)
    return report
