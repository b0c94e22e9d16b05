"""Shared test settings: deterministic, single-threaded torch for reproducible numbers; the
cell and task registries and the loaded plugins restored after every test."""

import pytest
import torch

from odyssey import plugins
from odyssey.cells import registry
from odyssey.tasks import _TASKS


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _registries():
    """What a test registers (cells, tasks, plugins) is gone after it."""
    cells, tasks, loaded = dict(registry._CELLS), dict(_TASKS), dict(plugins._loaded)
    yield
    for saved, live in ((cells, registry._CELLS), (tasks, _TASKS), (loaded, plugins._loaded)):
        live.clear()
        live.update(saved)
