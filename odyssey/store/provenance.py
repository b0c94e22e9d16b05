"""What produced a trial: package versions, the git commit of the code, the run's config.

The bulky part (the resolved sweep config and the package versions) is written once per
study as a user attribute ``run/<id>``; each trial keeps only the short ``run_id`` beside
its ``git_commit``, so that the attributes a person looks at first (scores, best epoch,
parameter count) are not buried under them in optuna-dashboard.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from ..versions import package_versions

PACKAGES = ("odyssey", "torch", "numpy", "optuna", "hydra-core", "omegaconf")
REPO = Path(__file__).resolve().parents[2]
RUN_PREFIX = "run/"  # study user attribute "run/<id>": {"config": ..., "versions": ...}


@functools.cache
def versions() -> dict[str, str]:
    """Python and the versions of the packages a result depends on."""
    return package_versions(*PACKAGES)


@functools.cache
def git_commit() -> str | None:
    """HEAD of the repository holding this code, '+dirty' with uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def run_record(config: dict[str, Any], package_versions: dict[str, str] | None = None
               ) -> tuple[str, dict[str, Any]]:
    """(id, record) of a worker's run: its config (without the worker index) and versions.

    The id is the first 12 hex digits of the SHA-256 of the record's canonical JSON, so
    workers with the same settings and packages share one record.
    """
    record = {"config": {k: v for k, v in config.items() if k != "worker"},
              "versions": dict(versions() if package_versions is None else package_versions)}
    blob = json.dumps(record, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12], record
