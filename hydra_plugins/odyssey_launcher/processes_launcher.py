"""`hydra/launcher=processes`: each multirun job in its own process; one dying spares the rest.

Why not Hydra's joblib launcher: it runs jobs in a loky process pool, and when one pool
process is killed (kill -9, the OOM killer) loky aborts every job with
TerminatedWorkerError. Here each job is a separate `multiprocessing` process (spawn, so
nothing of the parent's threads or torch state is inherited), started as in Hydra's own
launchers (`run_job` on the job's sweep config), at most `n_jobs` at once. A job that ends
without a result (killed by a signal, a non-zero exit, an exception) is logged when it
happens and, with `keep_going` (the default), does not stop the others or the multirun
(keep_going.py).
"""


import logging
import multiprocessing as mp
import signal
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import cloudpickle
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from .keep_going import JobFailedError, failed, job_name

log = logging.getLogger(__name__)


@dataclass
class ProcessesLauncherConf:
    _target_: str = "hydra_plugins.odyssey_launcher.processes_launcher.ProcessesLauncher"
    # jobs running at once; -1: all of them (one sweep worker per job)
    n_jobs: int = -1
    # a job that dies or fails is logged and the multirun goes on to its end callbacks
    keep_going: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="processes",
                             node=ProcessesLauncherConf, provider="odyssey")


def _child(payload: bytes, conn: Connection) -> None:
    """Run one job in this (spawned) process and send back its JobReturn."""
    idx, overrides, hydra_context, config, task_function, singletons = cloudpickle.loads(payload)
    setup_globals()
    Singleton.set_state(singletons)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    ret = run_job(hydra_context=hydra_context, config=sweep_config,
                  task_function=task_function, job_dir_key="hydra.sweep.dir",
                  job_subdir_key="hydra.sweep.subdir")
    if ret.status == JobStatus.FAILED:  # an exception object may not survive pickling
        error = ret._return_value
        text = "".join(traceback.format_exception(error)) if isinstance(
            error, BaseException) else repr(error)
        ret._return_value = JobFailedError(f"raised {type(error).__name__}: {error}\n{text}")
    ret.cfg = ret.hydra_cfg = None  # the parent has them; keeps the message small
    try:
        conn.send(ret)
    except Exception:  # an unpicklable return value: keep the status
        ret._return_value = repr(ret._return_value)
        conn.send(ret)
    conn.close()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with status {code} without a result"


class ProcessesLauncher(Launcher):
    """Each job a spawned process, at most `n_jobs` at once; see the module docstring."""

    def __init__(self, n_jobs: int = -1, keep_going: bool = True) -> None:
        self.n_jobs, self.keep_going = n_jobs, keep_going
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        n = len(job_overrides)
        at_once = n if self.n_jobs is None or self.n_jobs < 1 else min(self.n_jobs, n)
        log.info("Launching %d jobs as separate processes (%d at once), sweep output dir: %s",
                 n, at_once, sweep_dir)
        singletons = Singleton.get_state()
        ctx = mp.get_context("spawn")
        pending = deque((initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides))
        results: dict[int, JobReturn] = {}
        received: dict[int, JobReturn | None] = {}
        running: dict[int, tuple[Any, Connection, list[str]]] = {}
        while pending or running:
            while pending and len(running) < at_once:
                idx, overrides = pending.popleft()
                log.info("\t%s", job_name(idx, overrides))
                payload = cloudpickle.dumps((idx, overrides, self.hydra_context, self.config,
                                             self.task_function, singletons))
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(payload, send), name=f"job{idx}")
                proc.start()
                send.close()
                running[idx] = (proc, recv, overrides)
            # a job's result is read as soon as it is sent (a big one would block the child)
            waiting = [c for i, (_, c, _) in running.items() if i not in received]
            ready = wait([p.sentinel for p, _, _ in running.values()] + waiting)
            for idx, (proc, conn, overrides) in list(running.items()):
                ended = proc.sentinel in ready
                if idx not in received and (conn in ready or (ended and conn.poll())):
                    try:
                        received[idx] = conn.recv()
                    except (EOFError, OSError):
                        received[idx] = None  # it ended without sending: judged by its exit
                if ended:
                    proc.join()
                    conn.close()
                    del running[idx]
                    results[idx] = self._judge(idx, overrides, received.get(idx), proc.exitcode)
        return [results[initial_job_idx + i] for i in range(n)]

    def _judge(self, idx: int, overrides: list[str], ret: JobReturn | None,
               exitcode: int | None) -> JobReturn:
        """The job's JobReturn, or a failure when it sent none or ended badly."""
        if ret is not None and ret.status == JobStatus.COMPLETED:
            return ret
        if ret is not None:  # an exception inside the job
            return failed(idx, overrides, ret._return_value, self.keep_going, ret)
        error = JobFailedError(_exit_reason(exitcode))
        return failed(idx, overrides, error, self.keep_going)
