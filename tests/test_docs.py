"""The documentation: its worked examples run as written, and every citation resolves.

Examples (docs/extending.md, "Your own task" and "Your own cell"): blocks after
`<!-- example-file: PATH -->` are written to PATH in a fresh folder; each line of a block
after `<!-- example-run -->` is run there by bash, in page order; a block after
`<!-- example-output[: FILE] -->` must match what the commands printed (or FILE): each of its
lines up to the first digit (numbers differ between machines) begins a line there.

Citations: code comments and docstrings cite the design as "DESIGN §N" (a section of
docs/design.md), other pages as `docs/<page>.md "<heading>"`, and the README as
`README "<heading>"`; each must name a page and heading that exist. The site itself is built
with `mkdocs build --strict` by `make docs` (broken links and API references fail there).
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

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "extending.md"
BLOCK = re.compile(r"<!-- example-(file|run|output)(?:: (\S+))? -->\n```[a-z]*\n(.*?)```", re.S)
# where citations are looked for: the package, its configs, launchers, benchmarks and tests
CITING = ("odyssey", "configs", "hydra_plugins", "benchmarks", "tests", "notebooks")
SUFFIXES = {".py", ".yaml", ".cpp", ".h", ".ipynb", ".toml"}
# a quoted heading may follow on the next comment line ("docs/x.md\n# "Heading"")
QUOTED = r"""\s+(?:#\s*)?(?:"([^"\n]+)"|'([^'\n]+)')"""
DESIGN = re.compile(r"DESIGN((?:,?\s*(?:and\s+)?§\s*\d+)+)")
DOCS_CITE = re.compile(r"docs/([\w/-]+\.md)(?:" + QUOTED + ")?")
README_CITE = re.compile(r"README" + QUOTED)
CONTRACT = re.compile(r"\bCONTRACT\b(?:\.md)?(?:" + QUOTED + ")?")


def examples() -> list[tuple[str, str | None, str]]:
    found = [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(EXAMPLES.read_text())]
    assert sum(kind == "run" for kind, _, _ in found) >= 2, f"examples not found in {EXAMPLES}"
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


def test_example_plugins_load_and_check(tmp_path):
    """The example files as plugins (fast): the cell passes the loader's checks, the task loads."""
    _write_files(tmp_path)
    load_plugins([str(tmp_path / "my_tasks.py"), str(tmp_path / "my_cells.py")],
                 entry_points_too=False)
    assert get_cell("mgu").description.startswith("minimal gated unit")
    check_cell("MGU", dropout=True)
    task = load_task("recall", sequences=8, length=6, delay=2)
    assert task.metric == "mse" and task.input_size == 2


@pytest.mark.slow
def test_examples_run_as_written(tmp_path):
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


# -- citations ---------------------------------------------------------------------------------

def headings(page: Path) -> set[str]:
    """The Markdown headings of a page (outside fenced code), as written and lower-cased."""
    found, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            found.add(m.group(1).strip().lower())
    return found


def design_sections() -> set[int]:
    """The N of each "## N. Title" section of docs/design.md."""
    return {int(m.group(1)) for h in headings(DOCS / "design.md")
            if (m := re.match(r"(\d+)\.\s", h))}


def citing_files() -> list[Path]:
    files = [p for top in CITING for p in (ROOT / top).rglob("*")
             if p.suffix in SUFFIXES and p.is_file() and ".ipynb_checkpoints" not in p.parts]
    files += [ROOT / "Makefile", ROOT / "pyproject.toml"]
    return [p for p in files if p != Path(__file__).resolve()]


def unresolved(text: str, where: str) -> list[str]:
    """Each citation in `text` that names no existing section, with what is wrong."""
    bad = []
    sections = design_sections()
    for m in DESIGN.finditer(text):
        for n in map(int, re.findall(r"\d+", m.group(1))):
            if n not in sections:
                bad.append(f"{where}: DESIGN §{n}: docs/design.md has no section '## {n}. ...'")
    for m in DOCS_CITE.finditer(text):
        page, heading = DOCS / m.group(1), m.group(2) or m.group(3)
        if not page.is_file():
            bad.append(f"{where}: docs/{m.group(1)}: no such page")
        elif heading and heading.lower() not in headings(page):
            bad.append(f"{where}: docs/{m.group(1)} has no heading {heading!r}")
    readme = headings(ROOT / "README.md")
    for m in README_CITE.finditer(text):
        heading = m.group(1) or m.group(2)
        if heading.lower() not in readme:
            bad.append(f"{where}: README {heading!r}: README.md has no such heading (the "
                       "manual is in docs/: cite docs/<page>.md \"<heading>\")")
    every = set().union(*(headings(p) for p in DOCS.rglob("*.md")))
    for m in CONTRACT.finditer(text):
        heading = m.group(1) or m.group(2)
        if not heading or heading.lower() not in every:
            bad.append(f"{where}: {m.group(0)!r}: no CONTRACT file exists; cite the docs "
                       "section (docs/results.md \"Sweep store\")")
    return bad


def test_design_has_every_section():
    assert design_sections() == set(range(1, 8))


def test_every_citation_in_the_code_resolves():
    bad = []
    for path in citing_files():
        bad += unresolved(path.read_text(errors="replace"), str(path.relative_to(ROOT)))
    assert not bad, "\n".join(bad)


def test_citations_are_found():
    """The checker sees each form of citation, and rejects what does not exist."""
    good = ('DESIGN §2, §4 and DESIGN §6; docs/results.md "Sweep store"; '
            "docs/extending.md 'Your own cell'; docs/cells.md; README \"Install\"; "
            'CONTRACT "Trial params"')
    assert unresolved(good, "x") == []
    bad = unresolved('DESIGN §2, §99; docs/nope.md; docs/cells.md\n# "Nope"; README "The sweep"; '
                     'CONTRACT "Nope"; CONTRACT.md', "x")
    expected = ["DESIGN §99", "docs/nope.md: no such page", "has no heading 'Nope'",
                "README 'The sweep'", "'CONTRACT \"Nope\"'", "'CONTRACT.md'"]
    assert len(bad) == len(expected), bad
    for what in expected:
        assert any(what in b for b in bad), (what, bad)


def test_readme_links_resolve():
    """Every relative link of README.md names a file in the repository."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert links, "README.md has no links to the docs"
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_is_short():
    """The manual lives in docs/; the README is the front door (issue 26: at most ~150 lines)."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
