"""Tasks: the data, network shape, loss and metric of each experiment (DESIGN §3).

The task registry is the one way a task is found: `load_task(name, **options)` builds the
task `name` from its config options (`configs/task/<name>.yaml`, or the YAML a user puts on
Hydra's search path for a task of their own). The built-in tasks are registered as
"module:function" strings and imported lazily, so that one task's optional dependencies
never break another; a plugin adds its own with `register_task` (docs/extending.md
"Your own task").
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..data.missing import OPTIONS as MISSING_OPTIONS
from ..data.missing import missing_spec
from ..registry import BUILTIN, Registry, origin_or_current
from .base import SPLITS, Batch, FramewiseTask, KernelLoss, SequenceSet, Task

__all__ = ["TASKS", "TaskType", "TaskRegistrationError", "register_task", "remove_task",
           "task_names", "load_task", "Task", "FramewiseTask", "KernelLoss",
           "SequenceSet", "Batch", "SPLITS"]

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class TaskRegistrationError(ValueError):
    """A task definition that cannot be registered; the message says what is wrong."""


@dataclass(frozen=True)
class TaskType:
    """A registered task: `load(**options) -> Task`, or a lazy "module:function" path."""

    name: str
    load: Callable[..., Task] | str
    origin: str = BUILTIN
    description: str = ""


# the tasks by name, in registration order: built-ins first
TASKS: Registry[TaskType] = Registry("task", error=TaskRegistrationError)


def register_task(name: str, load: Callable[..., Task] | str, *, description: str = "",
                  origin: str | None = None) -> TaskType:
    """Register task `name`: `load(**options)` returns a `Task` (docs/extending.md "Your own task").

    `load` is a function, or "package.module:function" to import on first use. The options
    are the keys of the task's config besides `name`. A name already taken is an error.
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise TaskRegistrationError(f"task name {name!r} must start with a letter and hold "
                                    "only letters, digits, '_' and '-'")
    if isinstance(load, str):
        if load.count(":") != 1:
            raise TaskRegistrationError(f"task {name!r}: load must be a function or "
                                        f"'module:function', got {load!r}")
    elif not callable(load):
        raise TaskRegistrationError(f"task {name!r}: load must be a function returning a "
                                    f"Task, got {load!r}")
    # the same definition again is nothing to do; another one under a taken name an error
    return TASKS.add(TaskType(name, load, origin_or_current(origin), description))


def remove_task(name: str) -> None:
    """Unregister a task of a plugin (tests, notebooks reloading a plugin)."""
    task = TASKS.get(name)
    if task is None or task.origin == BUILTIN:
        raise ValueError(f"{name!r} is not a plugin task")
    TASKS.remove(name)


def task_names() -> tuple[str, ...]:
    """Registered task names, built-ins first."""
    return TASKS.names()


def load_task(name: str, **options) -> Task:
    """Build (or load from its cache) the task `name` with its config options.

    The missing-data options (`missing_rate`, `missing`, `fill`, `missing_seed`;
    odyssey.data.missing) belong to every task: they are taken out here and applied to the
    loaded task, so a task's own `load` never sees them.
    """
    entry = TASKS.get(name)
    if entry is None:
        raise ValueError(f"unknown task {name!r}; expected one of: {', '.join(task_names())} "
                         "(a task of your own must be registered by a plugin, see "
                         "docs/extending.md 'Your own task')")
    missing = missing_spec(options)
    options = {k: v for k, v in options.items() if k not in MISSING_OPTIONS}
    load = entry.load
    if isinstance(load, str):
        module, func = load.split(":")
        load = getattr(importlib.import_module(module, __name__ if module.startswith(".")
                                               else None), func)
    try:
        task = load(**options)
    except Exception as e:
        if entry.origin == BUILTIN:
            raise
        raise ValueError(f"task {name!r} of plugin {entry.origin!r} failed to load with "
                         f"options {options}: {type(e).__name__}: {e}") from e
    if not isinstance(task, Task):
        raise TypeError(f"task {name!r}: its load function returned {type(task).__name__}, "
                        "not an odyssey.tasks.Task")
    task.remove_observations(missing)
    return task


for _name in ("music", "speech", "handwriting", "words", "physionet"):
    register_task(_name, f".{_name}:load", origin=BUILTIN)
# the next-character tasks of Jozefowicz et al. (2015), searched by odyssey-evolve
for _name in ("arith", "xml", "lm"):
    register_task(_name, f".chars:load_{_name}", origin=BUILTIN)
