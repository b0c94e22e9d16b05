"""`odyssey-evolve` as a user runs it: config errors exit 2; report and export subcommands."""

import subprocess
import sys

from odyssey.cli.evolve import subcommand
from odyssey.evolve.loop import EvolveSpec, run_worker
from tests.evolve.helpers import TINY, evolve_config


def test_config_error_exits_2_naming_the_key(tmp_path):
    out = subprocess.run([sys.executable, "-m", "odyssey.cli.evolve", "evaluations=0",
                          f"results_dir={tmp_path}", *TINY], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert "evaluations must be an integer >= 1" in out.stderr


def test_report_and_export_subcommands(tmp_path, capsys):
    spec = EvolveSpec.from_config(evolve_config(tmp_path, "evaluations=3"))
    run_worker(spec)
    results = str(tmp_path / "results")
    assert subcommand(["report", "e", "--results-dir", results, "--top", "2"]) == 0
    assert (spec.sweep_dir / "evolution" / "report.md").is_file()
    out = tmp_path / "cells" / "best.py"
    assert subcommand(["export", "e", "--results-dir", results, "--name", "BEST",
                       "--out", str(out)]) == 0
    assert "register_graph(" in out.read_text() and "cell BEST" in capsys.readouterr().out
    assert subcommand(["export", "e", "--results-dir", results, "--rank", "99"]) == 2
    assert subcommand(["report", "nothing", "--results-dir", results]) == 2
