"""No trained result lost: a trial's final result is on the worker's disk before it is sent.

`keep_until_stored` writes the result (its user attributes, in the order they are set, and
its value or failure) to results/<sweep>/pending/ durably (a temporary file, fsync, rename),
holds a lock on it while the result goes to the store, and deletes it once the store has
it. A worker that cannot deliver (the store is down for longer than storage.retry_seconds)
exits and leaves the file; the next worker on this machine delivers it (`deliver_pending`,
run before any running trial is judged stale) instead of training that trial again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

log = logging.getLogger("odyssey.sweep")

PENDING = "pending"


def pending_dir(sweep_dir: Path) -> Path:
    """The folder of a sweep's results not yet in the store."""
    return sweep_dir / PENDING


def result_record(study_name: str, number: int, attrs: list[tuple[str, Any]],
                  value: float | None) -> dict[str, Any]:
    """What a finished trial tells the store: attributes in order, then its value (None: a
    counted failure, `fail_kind` among the attributes)."""
    return {"study": study_name, "number": number, "attrs": [[k, v] for k, v in attrs],
            "value": value}


def _path(folder: Path, record: dict[str, Any]) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", record["study"])
    return folder / f"{safe}#{record['number']}.json"


@contextmanager
def keep_until_stored(folder: Path, record: dict[str, Any]) -> Iterator[Path]:
    """The result on disk for the block that sends it; deleted when the block ends without
    an exception, kept for the next run otherwise. The file is locked from before it
    appears (the lock is taken on the temporary file, which the rename keeps), so no other
    worker delivers it while this one does."""
    folder.mkdir(parents=True, exist_ok=True)
    path = _path(folder, record)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(record))
        f.flush()
        os.fsync(f.fileno())
        tmp.replace(path)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a crash
        finally:
            os.close(fd)
        yield path
        path.unlink(missing_ok=True)


def deliver(study: optuna.Study, record: dict[str, Any]) -> str:
    """Tell the store a result: "complete", "diverged", or "overtaken" when the trial was
    closed meanwhile (another worker judged it stale and replaced it: not counted twice)."""
    storage, number = study._storage, int(record["number"])
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    try:
        for key, value in record["attrs"]:
            storage.set_trial_user_attr(trial_id, key, value)
        if record["value"] is not None:
            study.tell(number, record["value"])
            return "complete"
        study.tell(number, state=TrialState.FAIL)
        return "diverged"
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("%s trial %d was marked stale by another worker while it ran; its result "
                    "is dropped", study.study_name, number)
        return "overtaken"


def deliver_pending(studies: dict[str, optuna.Study], folder: Path) -> int:
    """Deliver the results earlier workers on this machine left in `folder`; returns how
    many were delivered. A file another worker is sending is waited for (its lock)."""
    if not folder.is_dir():
        return 0
    by_name = {s.study_name: s for s in studies.values()}
    delivered = 0
    for path in sorted(folder.glob("*.json")):
        try:
            lock = open(path)  # noqa: SIM115 (closed by the with below)
        except FileNotFoundError:  # delivered by its worker meanwhile
            continue
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                continue
            record = json.loads(path.read_text())
            study = by_name.get(record["study"])
            if study is None:  # another sweep's study in this store (a renamed variant)
                study = optuna.load_study(study_name=record["study"],
                                          storage=next(iter(studies.values()))._storage)
            outcome = deliver(study, record)
            path.unlink()
        log.info("%s trial %d: delivered the result a previous worker left in %s (%s)",
                 record["study"], record["number"], folder, outcome)
        delivered += outcome != "overtaken"
    return delivered


def pending_count(folder: Path) -> int:
    """How many results wait in `folder` for a worker to deliver them."""
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0
