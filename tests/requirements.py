"""What some tests need from the machine, and what happens when it is missing.

Each requirement is checked once per session. Outside CI a missing one skips the test, the
reason naming what to install; in CI (`CI=true`) it fails the test: a CI run whose setup
quietly failed must not be green with whole areas untested. Tests declare a requirement with
`@pytest.mark.requires("name")` or, in a fixture, call `require("name")`. In CI any skip at
all fails the run. The pytest hooks that do this are here, made active by tests/conftest.py.
docs/testing.md lists the requirements.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# -- pytest hooks (imported by tests/conftest.py) ----------------------------------------------
_skipped: list[tuple[str, str]] = []  # (test id, reason) of every skip this session


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.requires("flite", ...)`: each named requirement met, else skip (fail in
    CI)."""
    for mark in item.iter_markers("requires"):
        for name in mark.args:
            require(name)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a whole module skipped (pytest.importorskip at module level)
        _skipped.append((report.nodeid, _reason(report)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test fails the run: a green CI run has run every selected test."""
    if in_ci() and _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config
                            ) -> None:
    if in_ci() and _skipped:
        terminalreporter.section("skipped in CI (each one fails the run)", red=True)
        for nodeid, reason in _skipped:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(f"CI=true: {len(_skipped)} test(s) skipped; CI allows none "
                              "(docs/testing.md)")
