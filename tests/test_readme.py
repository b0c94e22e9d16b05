"""The README's worked examples ("Your own task", "Your own cell"), run as written.

Blocks after `<!-- example-file: PATH -->` are written to PATH in a fresh folder; each line
of a block after `<!-- example-run -->` is run there by bash, in README order; a block after
`<!-- example-output[: FILE] -->` must match what the commands printed (or FILE): each of its
lines up to the first digit (numbers differ between machines) begins a line there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from odyssey.cells import check_cell, get_cell
from odyssey.plugins import load_plugins
from odyssey.tasks import load_task

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- example-(file|run|output)(?:: (\S+))? -->\n```[a-z]*\n(.*?)```", re.S)


def examples() -> list[tuple[str, str | None, str]]:
    found = [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(README.read_text())]
    assert sum(kind == "run" for kind, _, _ in found) >= 2, "README examples not found"
    return found


def _write_files(folder: Path) -> None:
    for kind, name, text in examples():
        if kind == "file":
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)


def _normal(line: str) -> str:
    return " ".join(line.split())


def _check_output(expected: str, actual: str, where: str) -> None:
    lines = [_normal(line) for line in actual.splitlines()]
    for line in expected.strip().splitlines():
        start = _normal(re.split(r"\d", line)[0])
        assert any(a.startswith(start) for a in lines), f"{where}: no line starts with {start!r}"


def test_readme_plugins_load_and_check(tmp_path):
    """The example files as plugins (fast): the cell passes the loader's checks, the task loads."""
    _write_files(tmp_path)
    load_plugins([str(tmp_path / "my_tasks.py"), str(tmp_path / "my_cells.py")],
                 entry_points_too=False)
    assert get_cell("mgu").description.startswith("minimal gated unit")
    check_cell("MGU", dropout=True)
    task = load_task("recall", sequences=8, length=6, delay=2)
    assert task.metric == "mse" and task.input_size == 2


@pytest.mark.slow
def test_readme_examples_run_as_written(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    output = ""
    for kind, name, text in examples():
        if kind == "file":
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
        elif kind == "run":
            for command in filter(None, (c.strip() for c in text.splitlines())):
                r = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, text=True,
                                   capture_output=True, timeout=900)
                assert r.returncode == 0, f"{command}\n{r.stderr[-3000:]}"
                output += r.stdout + r.stderr
        elif name is None:
            _check_output(text, output, "the commands' output")
        else:
            _check_output(text, (tmp_path / name).read_text(), name)
    assert (tmp_path / "results" / "mgu" / "figures" / "variants_recall.png").exists()
