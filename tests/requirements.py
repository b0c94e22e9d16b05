"""What some tests need from the machine, and what happens when it is missing.

Each requirement is checked once per session. Outside CI a missing one skips the test, the
reason naming what to install; in CI (`CI=true`) it fails the test: a CI run whose setup
quietly failed must not be green with whole areas untested. Tests declare a requirement with
`@pytest.mark.requires("name")` (tests/conftest.py checks it before the test) or, in a
fixture, call `require("name")`. docs/testing.md lists them.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSTEM_DEPS = "`make system-deps` as root installs it"
DEV_EXTRA = "pip install -e '.[dev]'"


def in_ci() -> bool:
    """Whether this is a CI run: $CI set to true (or 1, yes), as CI services set it."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _postgresql() -> bool:
    from tests.search.pg import pg_bin

    return pg_bin() is not None


def _module(name: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(name) is not None


@dataclass(frozen=True)
class Requirement:
    """Something a test needs: what it is, how to install it, and how to tell it is there."""

    what: str
    install: str
    present: Callable[[], bool]


REQUIREMENTS: dict[str, Requirement] = {
    "c++": Requirement(
        "a C++ compiler (to build the fast kernels, odyssey/cells/csrc)",
        f"apt-get install g++, or set CXX ({SYSTEM_DEPS})",
        lambda: shutil.which(os.environ.get("CXX", "c++")) is not None),
    "flite": Requirement(
        "flite and wamerican (the speech task's synthesised corpus)",
        f"apt-get install flite wamerican ({SYSTEM_DEPS})",
        lambda: shutil.which("flite") is not None and Path("/usr/share/dict/words").exists()),
    "postgresql": Requirement(
        "the PostgreSQL server binaries (initdb, pg_ctl: the tests' throwaway server)",
        f"apt-get install postgresql ({SYSTEM_DEPS})", _postgresql),
    "psycopg2": Requirement("the PostgreSQL driver psycopg2", DEV_EXTRA, _module("psycopg2")),
    "chromium": Requirement(
        "Chromium (the headless browser that loads a rendered notebook page)",
        f"apt-get install chromium ({SYSTEM_DEPS})", lambda: chromium() is not None),
    "submitit": Requirement("submitit (Hydra's submitit launcher)", DEV_EXTRA,
                            _module("submitit")),
}


def chromium() -> str | None:
    """The Chromium executable on PATH (Debian names it chromium, others chromium-browser)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@functools.cache
def _present(name: str) -> bool:
    return REQUIREMENTS[name].present()


def require(name: str) -> None:
    """Return if requirement `name` is met; else skip the test (outside CI) or fail it (in CI),
    saying what is missing and how to install it."""
    if name not in REQUIREMENTS:
        pytest.fail(f"unknown test requirement {name!r}; tests/requirements.py knows "
                    f"{', '.join(sorted(REQUIREMENTS))}", pytrace=False)
    if _present(name):
        return
    req = REQUIREMENTS[name]
    message = f"{req.what} is missing: {req.install}"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
