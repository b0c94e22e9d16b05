"""Analysis of a sweep (DESIGN §5): trial tables, exact fANOVA, Welch tests, figures, report.

Typical use (what the notebooks do):

    from odyssey.analysis import load_sweep, complete, variant_tests, fanova_by_task
    frame = load_sweep("quick")              # results/quick/config.yaml -> Optuna store
    data = complete(frame)                   # COMPLETE trials with a finite test metric
    tests = variant_tests(data)              # each variant vs V per task, Holm-corrected
    importance = fanova_by_task(data)        # task -> FanovaResult (or Skipped, with why)
"""

from ..store.sweeps import UnknownSweepError, list_sweeps, storage_url
from ..store.sweeps import open_existing as open_storage  # the analysis opens existing stores
from .fanova import FanovaResult, fanova
from .findings import Finding, hyperparameter_findings, variant_findings
from .hyperparameters import DEFAULT_SPACE, Hyperparameter
from .importance import Skipped, cap_response, fanova_by_task, fanova_by_variant
from .load import (
    complete,
    load_curves,
    load_runs,
    load_sweep,
    load_sweeps,
    order_tasks,
    order_variants,
    space_of,
    trials_frame,
)
from .report import Options, analyze, write_report
from .stats import best_fraction, correct, mann_whitney, variant_tests, welch

__all__ = [
    "FanovaResult", "fanova", "Finding", "hyperparameter_findings", "variant_findings",
    "Skipped", "cap_response", "fanova_by_task", "fanova_by_variant", "complete",
    "load_curves", "load_runs", "load_sweep", "load_sweeps",
    "order_tasks", "order_variants",
    "space_of", "trials_frame", "Options", "analyze", "write_report", "DEFAULT_SPACE",
    "Hyperparameter", "best_fraction", "correct", "mann_whitney", "variant_tests", "welch",
    "UnknownSweepError", "list_sweeps", "open_storage", "storage_url",
]
