"""The task registry: built-ins by name, tasks of one's own registered and loaded the same way."""

import pytest

from odyssey.tasks import TaskRegistrationError, load_task, register_task, task_names
from tests.toy import ToyTask
from tests.toy import load as toy_load


def test_builtin_tasks_are_registered():
    assert task_names()[:3] == ("music", "speech", "handwriting")


def test_a_registered_task_loads_with_its_options():
    register_task("toy_fn", toy_load, origin="tests")
    register_task("toy_path", "tests.toy:load", origin="tests")
    for name in ("toy_fn", "toy_path"):
        task = load_task(name, n_train=3, n_valid=2, n_test=2, inputs=5)
        assert isinstance(task, ToyTask) and task.input_size == 5


def test_unknown_clashing_and_bad_tasks():
    with pytest.raises(ValueError, match="unknown task 'nope'; expected one of: music, speech, "
                                         "handwriting.*Your own task"):
        load_task("nope")
    with pytest.raises(TaskRegistrationError, match="'music' is already taken by a built-in"):
        register_task("music", toy_load, origin="tests")
    with pytest.raises(TaskRegistrationError, match="must be a function or 'module:function'"):
        register_task("x", "tests.toy.load", origin="tests")
    with pytest.raises(TaskRegistrationError, match="must start with a letter"):
        register_task("1x", toy_load, origin="tests")
    register_task("not_a_task", lambda: 42, origin="tests")
    with pytest.raises(TypeError, match="returned int, not an odyssey.tasks.Task"):
        load_task("not_a_task")


def test_a_plugin_task_that_fails_to_load_is_named():
    register_task("picky", toy_load, origin="my_tasks.py")
    with pytest.raises(ValueError, match=r"task 'picky' of plugin 'my_tasks.py' failed to load "
                                         r"with options \{'colour': 1\}: TypeError"):
        load_task("picky", colour=1)
