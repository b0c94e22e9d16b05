"""Hydra's submitit launchers (local and SLURM) with the keep-going rule (keep_going.py).

Hydra's own `launch` collects every job's result with `job.results()`, which raises
UncompletedJobError for the first job that was killed, timed out or crashed, so the
multirun ends in a traceback without its final callbacks. These subclasses submit the jobs
exactly as Hydra's launcher does (its own submission code, reused through `_submit`) and
collect the results one by one, turning a job that ended without one into a logged
failure. Used by configs/hydra/launcher/slurm.yaml and submitit_local.yaml.
"""

import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from .keep_going import JobFailedError, failed, job_name

log = logging.getLogger(__name__)

try:  # the `cluster` extra; without it these launchers are simply not offered
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _hydra_submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
except ImportError:  # pragma: no cover - exercised only without the extra
    _hydra_submitit = None


if _hydra_submitit is not None:

    class _KeepGoing(_hydra_submitit.BaseSubmititLauncher):
        """Submit as Hydra's submitit launcher does; collect results without raising."""

        def _submit(self, job_overrides: Any, initial_job_idx: int) -> list[Any]:
            # Hydra's BaseSubmititLauncher.launch up to its map_array call (hydra-submitit-
            # launcher 1.2), the same steps, so the jobs run exactly as there
            import submitit

            assert self.config is not None
            params = self.params
            init_params = {"folder": self.params["submitit_folder"]}
            specific_init_keys = {"max_num_timeout"}
            init_params.update(**{f"{self._EXECUTOR}_{x}": y for x, y in params.items()
                                  if x in specific_init_keys})
            init_keys = specific_init_keys | {"submitit_folder"}
            executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
            baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
            params = {x if x in baseparams else f"{self._EXECUTOR}_{x}": y
                      for x, y in params.items() if x not in init_keys}
            executor.update_parameters(**params)
            log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : "
                     f"{self.config.hydra.sweep.dir}")
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            if "mode" in self.config.hydra.sweep:
                os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
            job_params: list[Any] = []
            for idx, overrides in enumerate(job_overrides):
                idx = initial_job_idx + idx
                log.info("\t%s", job_name(idx, overrides))  # a password masked
                job_params.append((list(overrides), "hydra.sweep.dir", idx,
                                   f"job_id_for_{idx}", Singleton.get_state()))
            return executor.map_array(self, *zip(*job_params, strict=True))

        def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
            jobs = self._submit(job_overrides, initial_job_idx)
            results = []
            for i, (job, overrides) in enumerate(zip(jobs, job_overrides, strict=True)):
                idx = initial_job_idx + i
                try:
                    ret = job.results()[0]
                except Exception as e:  # UncompletedJobError (killed, timed out), FailedJobError
                    # submitit's first two lines: the job, then its state or error
                    why = " ".join(str(e).strip().splitlines()[:2]) or type(e).__name__
                    results.append(failed(idx, overrides, JobFailedError(
                        f"{type(e).__name__}: {why} (submitit job {job.job_id}; its log: "
                        f"{job.paths.stderr})"), keep_going=True))
                    continue
                if ret.status != JobStatus.COMPLETED:
                    ret = failed(idx, overrides, ret._return_value, keep_going=True, ret=ret)
                results.append(ret)
            return results

    class LocalLauncher(_KeepGoing):
        """`hydra/launcher=submitit_local`, keeping going when a job dies."""

        _EXECUTOR = "local"

    class SlurmLauncher(_KeepGoing):
        """`hydra/launcher=slurm` (configs/hydra/launcher/slurm.yaml), keeping going."""

        _EXECUTOR = "slurm"
