"""The result notebooks run top to bottom on a small sweep (nbclient), and are stored clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.slow
# one task: one box-plot figure; fractions, marginals, interactions, learning rate, time;
# time per cell and best curves
@pytest.mark.parametrize(("name", "figures"),
                         [("variants", 1), ("hyperparameters", 5), ("sweep", 2)])
def test_notebook_runs_on_a_small_sweep(sweep_factory, name, figures, tmp_path):
    sweep_factory("nbsweep", tasks=("music",), variants=["V", "NFG", "CIFG"], n_trials=12)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    stored = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in stored), \
        f"{name}.ipynb is stored with outputs; clear them before committing"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "SWEEP" in params[0].source
    params[0].source += (f'\nSWEEP = "nbsweep"\nRESULTS_DIR = r"{sweep_factory.results}"'
                         '\nN_TREES = 10')
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == figures
