"""`odyssey-notebooks SWEEP`: execute every notebook in notebooks/ on a sweep (papermill).

Writes results/<SWEEP>/notebooks/<name>.ipynb (executed) and <name>.html (nbconvert, figures
embedded as base64 images, readable with no Jupyter), then links them from report.md. A
notebook that fails is reported with its cell and error; the others still run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from odyssey.analysis.notebook_links import link_notebooks

ROOT = Path(__file__).resolve().parents[2]


def _value(text: str) -> object:
    """A -p value as int, float or str."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def sweep_names(text: str) -> list[str]:
    """One sweep name, or each of a Hydra-style list "[a,b]" (as `make analyze SWEEP=` takes)."""
    names = [n.strip() for n in text.strip().removeprefix("[").removesuffix("]").split(",")]
    return [n for n in names if n]


def _failed_cell(executed: Path) -> str:
    """'cell N (`first line`)' of the cell that raised, N counted from 1 in the source notebook."""
    import nbformat

    added = {"injected-parameters", "papermill-error-cell-tag"}  # cells papermill inserts
    cells = [c for c in nbformat.read(executed, as_version=4).cells
             if not added & set(c.metadata.get("tags", []))]
    for number, cell in enumerate(cells, 1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            lines = cell.source.strip().splitlines()
            return f"cell {number}" + (f" (`{lines[0]}`)" if lines else "")
    return "an unknown cell"


def _run_one(book: Path, out: Path, params: dict, kernel: str, source: Path,
             timeout: int) -> str | None:
    """Execute one notebook into `out` and render its HTML; None if it ran, else its error."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    executed = out / book.name
    error = None
    try:
        pm.execute_notebook(str(book), str(executed), parameters=params, kernel_name=kernel,
                            cwd=str(source), progress_bar=False, execution_timeout=timeout)
    except pm.PapermillExecutionError as err:
        error = f"{_failed_cell(executed)}: {err.ename}: {err.evalue}"
    except Exception as err:  # kernel missing, bad notebook JSON: still render the others
        error = f"{type(err).__name__}: {err}"
    if executed.exists():  # papermill writes the notebook up to the failing cell
        html, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
        (out / f"{book.stem}.html").write_text(html, encoding="utf-8")
    return error


def render(sweep: str, results_dir: str | Path = "results", notebooks_dir: str | Path | None = None,
           parameters: dict | None = None, kernel: str = "python3",
           timeout: int = 1800) -> dict[str, str | None]:
    """Execute and render each notebook on one sweep: {name: None if it ran, else its error}."""
    results = Path(results_dir).resolve()
    source = Path(notebooks_dir) if notebooks_dir else ROOT / "notebooks"
    if not (results / sweep).is_dir():
        raise FileNotFoundError(f"no sweep folder {results / sweep} (SWEEP={sweep!r}; "
                                "run `make run-sweep` or pick another SWEEP)")
    books = sorted(source.glob("*.ipynb"))
    if not books:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {source}")
    out = results / sweep / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    params = {"SWEEP": sweep, "RESULTS_DIR": str(results), **(parameters or {})}
    # each notebook in its own process (a kernel each): on two cores the three take about
    # half the time they take one after the other; results do not depend on the order
    jobs = min(len(books), os.cpu_count() or 1)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        errors = pool.map(_run_one, books, [out] * len(books), [params] * len(books),
                          [kernel] * len(books), [source] * len(books), [timeout] * len(books))
        outcome = dict(zip((b.stem for b in books), errors, strict=True))
    report = results / sweep / "report.md"
    if report.exists():
        link_notebooks(report)
    return outcome


def main(argv: list[str] | None = None) -> None:
    """Run the notebooks on SWEEP; print each page, exit 1 if any notebook failed."""
    parser = argparse.ArgumentParser(prog="odyssey-notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("sweep", help="the sweep folder's name under the results directory "
                        "(or [a,b,...]: each)")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--notebooks-dir", default=None,
                        help="default: the repository's notebooks/")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="another parameters-cell value, e.g. -p N_TREES=20")
    args = parser.parse_args(argv)
    params = {}
    for item in args.parameter:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"-p {item!r}: expected KEY=VALUE")
        params[key] = _value(value)
    failed = False
    for sweep in sweep_names(args.sweep):
        try:
            outcome = render(sweep, args.results_dir, args.notebooks_dir, params)
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
        out = Path(args.results_dir) / sweep / "notebooks"
        for name, error in outcome.items():
            if error is None:
                print(f"{out / name}.html")
            else:
                failed = True
                print(f"error: notebook {name}.ipynb failed at {error} "
                      f"(partial: {out / name}.html)", file=sys.stderr)
    sys.exit(1 if failed else 0)
