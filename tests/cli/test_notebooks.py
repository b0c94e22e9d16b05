"""odyssey-notebooks: papermill runs each notebook on a sweep; nbconvert renders HTML, images in."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from odyssey.cli.notebooks import main, render
from tests.analysis.conftest import make_sweep
from tests.requirements import chromium

IMG = re.compile(r'<img[^>]+src="data:image/png;base64,')


def _book(path: Path, *sources: str) -> None:
    """A notebook at path: a parameters cell, then one code cell per source."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('SWEEP = "none"\nRESULTS_DIR = "none"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(s) for s in sources)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def test_a_failing_notebook_is_named_with_its_cell_and_the_others_still_render(tmp_path):
    results = tmp_path / "results"
    make_sweep(results, "nb", variants=["V"], n_trials=3)
    (results / "nb" / "report.md").write_text("# Sweep `nb`: analysis\n\nbody\n")
    books = tmp_path / "books"
    books.mkdir()
    _book(books / "a_fails.ipynb", "x = 1", "raise ValueError('no such column: lr')")
    _book(books / "b_draws.ipynb",
          "%matplotlib inline\nfrom matplotlib.figure import Figure\nfrom IPython.display "
          "import display\nfig = Figure()\nfig.subplots().plot([1, 2], [2, 1])\ndisplay(fig)",
          "print(SWEEP, RESULTS_DIR)")
    outcome = render("nb", results, books)
    assert outcome["b_draws"] is None
    assert outcome["a_fails"].startswith("cell 3 (`raise ValueError(")  # counted from 1
    assert "ValueError: no such column: lr" in outcome["a_fails"]
    out = results / "nb" / "notebooks"
    page = (out / "b_draws.html").read_text()
    assert len(IMG.findall(page)) == 1
    assert f"nb {results.resolve()}" in page  # the injected parameters reached the kernel
    assert (out / "a_fails.html").exists() and (out / "b_draws.ipynb").exists()
    report = (results / "nb" / "report.md").read_text()
    assert "](notebooks/b_draws.html)" in report and "](notebooks/a_fails.html)" in report


def test_main_names_a_missing_sweep(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["nosuch", "--results-dir", str(tmp_path)])
    assert exit_.value.code == 1
    assert "SWEEP='nosuch'" in capsys.readouterr().err


@pytest.mark.slow
def test_every_notebook_renders_a_small_sweep_with_embedded_figures(tmp_path):
    results = tmp_path / "results"
    make_sweep(results, "nbsweep", variants=["V", "NFG", "CIFG"], n_trials=24)
    with pytest.raises(SystemExit) as exit_:
        main(["nbsweep", "--results-dir", str(results), "-p", "N_TREES=10"])
    assert exit_.value.code == 0
    out = results / "nbsweep" / "notebooks"
    # one task: variants 1 box-plot figure; hyperparameters fractions, marginals, interactions,
    # learning rate, training time; sweep time and curves
    expected = {"variants": 1, "hyperparameters": 5, "sweep": 2}
    assert {p.stem for p in out.glob("*.html")} == set(expected)
    for name, figures in expected.items():
        page = (out / f"{name}.html").read_text()
        assert len(IMG.findall(page)) == figures, name
        assert "Traceback" not in page, name


@pytest.mark.slow
@pytest.mark.requires("chromium")
def test_a_rendered_page_loads_in_a_headless_browser(tmp_path):
    browser = chromium()
    results = tmp_path / "results"
    make_sweep(results, "nbsweep", variants=["V", "NFG"], n_trials=6)
    books = tmp_path / "books"
    books.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "notebooks" / "sweep.ipynb", books)
    assert render("nbsweep", results, books) == {"sweep": None}
    page = results / "nbsweep" / "notebooks" / "sweep.html"
    shot = tmp_path / "page.png"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "Learning curves of the best trials per cell" in dom
    assert len(IMG.findall(dom)) == 2
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1200,2400",
         f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000  # a blank page is a few kB


def test_sweep_names_takes_one_name_or_a_list():
    from odyssey.cli.notebooks import sweep_names
    assert sweep_names("quick-music") == ["quick-music"]
    assert sweep_names("[a, b,c]") == ["a", "b", "c"]
