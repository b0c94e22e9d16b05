"""Tasks: the data, network shape, loss and metric of each experiment (DESIGN §3).

`load_task(name, **options)` is the one way to get a task; options come from
`configs/task/<name>.yaml`. Task modules are imported lazily so that one task's optional
dependencies never break another.
"""

from __future__ import annotations

import importlib

from .base import SPLITS, Batch, FramewiseTask, SequenceSet, Task

__all__ = ["TASKS", "load_task", "Task", "FramewiseTask", "SequenceSet", "Batch", "SPLITS"]

# task name -> "module:function" returning a Task from keyword options
TASKS: dict[str, str] = {
    "music": ".music:load",
    "speech": ".speech:load",
    "handwriting": ".handwriting:load",
}


def load_task(name: str, **options) -> Task:
    """Build (or load from its cache) the task `name` with its config options."""
    if name not in TASKS:
        known = ", ".join(sorted(TASKS)) or "none registered"
        raise ValueError(f"unknown task {name!r}; expected one of: {known}")
    module, func = TASKS[name].split(":")
    return getattr(importlib.import_module(module, __name__), func)(**options)
