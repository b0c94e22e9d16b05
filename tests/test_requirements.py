"""The CI rule (tests/requirements.py): a missing requirement skips a test, saying what to
install, except in CI, where it fails it; and in CI any skip fails the run. Checked on small
pytest runs in a child process, with and without CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = """
from tests.requirements import (REQUIREMENTS, Requirement, pytest_collectreport,
    pytest_runtest_logreport, pytest_runtest_setup, pytest_sessionfinish,
    pytest_terminal_summary)

REQUIREMENTS["absent"] = Requirement("the absent thing", "apt-get install absent-thing",
                                     lambda: False)
REQUIREMENTS["present"] = Requirement("the present thing", "nothing to do", lambda: True)


def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*names): what the test needs")
"""

NEEDS = """
import pytest

@pytest.mark.requires("absent")
def test_needs_the_absent_thing():
    pass

@pytest.mark.requires("present")
def test_needs_the_present_thing():
    pass
"""

SKIPS = """
import pytest

def test_runs():
    pass

def test_skips_itself():
    pytest.skip("not today")
"""


def _pytest(folder: Path, test: str, ci: bool) -> tuple[int, str]:
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_it.py").write_text(test)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if ci:
        env["CI"] = "true"
    r = subprocess.run([sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider",
                        str(folder)], cwd=folder, env=env, capture_output=True, text=True,
                       timeout=300)
    return r.returncode, r.stdout + r.stderr


def test_outside_ci_a_missing_requirement_skips_saying_what_to_install(tmp_path):
    rc, out = _pytest(tmp_path, NEEDS, ci=False)
    assert rc == 0, out
    assert "1 passed, 1 skipped" in out
    assert "the absent thing is missing: apt-get install absent-thing" in out


def test_in_ci_a_missing_requirement_fails_saying_what_to_install(tmp_path):
    rc, out = _pytest(tmp_path, NEEDS, ci=True)
    assert rc == 1, out
    assert "1 passed, 1 error" in out
    assert "CI=true and the absent thing is missing: apt-get install absent-thing" in out


@pytest.mark.parametrize("ci", [False, True], ids=["local", "ci"])
def test_in_ci_any_skip_fails_the_run_and_is_listed(tmp_path, ci):
    rc, out = _pytest(tmp_path, SKIPS, ci=ci)
    assert "1 passed, 1 skipped" in out
    if ci:
        assert rc == 1, out
        assert "skipped in CI (each one fails the run)" in out
        assert "test_it.py::test_skips_itself: not today" in out
    else:
        assert rc == 0, out
        assert "skipped in CI" not in out
