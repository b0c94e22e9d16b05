"""What produced a trial: package versions and the git commit of the code."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from ..versions import package_versions

PACKAGES = ("odyssey", "torch", "numpy", "optuna", "hydra-core", "omegaconf")
REPO = Path(__file__).resolve().parents[2]


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
