"""The keep-going rule shared by Odyssey's launchers: a failed job is reported, not raised.

Hydra's sweeper raises the first failed job's exception when it reads the launcher's
results, so one dead worker would end the multirun before its end callbacks (no final
table, exit status 1). Sweep workers are independent by design (they share only the
store, and a dead worker's trial is replaced by the others), so with `keep_going` a failed
job is logged and handed back as a `SurvivedFailure`: still `JobStatus.FAILED`, but
reading its return value gives the failure instead of raising it. The application's
`on_multirun_end` callback then decides the exit status from what the jobs produced
(odyssey.search.app.FinalReport: from the sweep's store).
"""


import logging
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides

log = logging.getLogger(__name__)


class JobFailedError(RuntimeError):
    """A multirun job that ended without a result: its exception, exit status or signal."""


@dataclass
class SurvivedFailure(JobReturn):
    """A failed job whose failure does not stop the multirun (see the module docstring)."""

    @property  # type: ignore[override]
    def return_value(self) -> Any:
        return self._return_value

    @return_value.setter
    def return_value(self, value: Any) -> None:
        self._return_value = value


def job_name(idx: int, overrides: Any) -> str:
    """'#1 (worker=1)': how a job is named in launcher messages, a URL's password masked."""
    from odyssey.store.storage import mask_secrets  # here: plugin scans stay light

    return f"#{idx} ({mask_secrets(' '.join(filter_overrides(list(overrides))))})"


def failed(idx: int, overrides: Any, error: BaseException, keep_going: bool,
           ret: JobReturn | None = None) -> JobReturn:
    """The JobReturn of a failed job: logged, and raised by Hydra unless `keep_going`."""
    ret = ret or JobReturn(overrides=list(overrides))
    if keep_going:
        log.error("job %s failed (the other jobs go on): %s", job_name(idx, overrides), error)
        ret = SurvivedFailure(**{f: getattr(ret, f) for f in ret.__dataclass_fields__})
    ret.status = JobStatus.FAILED
    ret._return_value = error
    return ret
