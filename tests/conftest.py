"""Shared test settings: deterministic, single-threaded torch for reproducible numbers; the
cell and task registries and the loaded plugins restored after every test; what a test
`requires` checked before it runs; and, in CI, no skipped test (tests/requirements.py)."""

from __future__ import annotations

import pytest
import torch

from odyssey import plugins
from odyssey.cells.registry import CELLS
from odyssey.tasks import TASKS

# pytest's hooks for `requires` and for the CI rule (no skips): defined with the requirements
from tests.requirements import (  # noqa: F401
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_runtest_setup,
    pytest_sessionfinish,
    pytest_terminal_summary,
)


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
