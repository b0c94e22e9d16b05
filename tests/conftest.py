"""Shared test settings: deterministic, single-threaded torch for reproducible numbers; the
cell and task registries and the loaded plugins restored after every test; what a test
`requires` checked before it runs; and, in CI, no skipped test (tests/requirements.py)."""

from __future__ import annotations

import pytest
import torch

from odyssey import plugins
from odyssey.cells.registry import CELLS
from odyssey.tasks import TASKS
from tests.requirements import in_ci, require

_skipped: list[tuple[str, str]] = []  # (test id, reason) of every skip this session


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _registries():
    """What a test registers (cells, tasks, plugins) is gone after it."""
    cells, tasks, loaded = CELLS.snapshot(), TASKS.snapshot(), dict(plugins._loaded)
    yield
    CELLS.restore(cells)
    TASKS.restore(tasks)
    plugins._loaded.clear()
    plugins._loaded.update(loaded)


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


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if in_ci() and _skipped:
        terminalreporter.section("skipped in CI (each one fails the run)", red=True)
        for nodeid, reason in _skipped:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(f"CI=true: {len(_skipped)} test(s) skipped; CI allows none "
                              "(docs/testing.md)")
