"""`odyssey-analyze` as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "odyssey.cli.analyze", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_unknown_sweep_is_a_clear_error(sweep_factory):
    sweep_factory("quick", variants=["V"], n_trials=1)
    res = _run("sweep_name=nope", f"results_dir={sweep_factory.results}",
               cwd=sweep_factory.results.parent)
    assert res.returncode == 1
    assert "no sweep 'nope'" in res.stderr and "quick" in res.stderr


@pytest.mark.slow
def test_cli_writes_the_report(sweep_factory):
    sweep_factory("quick", variants=["V", "NFG"], n_trials=6)
    res = _run("sweep_name=quick", f"results_dir={sweep_factory.results}", "fanova.min_trials=1000",
               "progress=false", cwd=sweep_factory.results.parent)
    assert res.returncode == 0, res.stderr
    report = sweep_factory.results / "quick" / "report.md"
    assert f"wrote {report}" in res.stdout
    # the fANOVA is judged on V (fanova.variants=[V]): its 6 complete trials
    assert "too few trials for fANOVA: 6 complete, 1000 needed" in report.read_text()
    for name in ("variants_music", "learning_rate_music"):
        for suffix in ("png", "pdf"):
            assert (report.parent / "figures" / f"{name}.{suffix}").stat().st_size > 5_000
    assert not (sweep_factory.results.parent / "outputs").exists()  # no Hydra run folders


def test_missing_sweep_name_and_bad_options_are_clear_errors(sweep_factory, capsys):
    from hydra import compose, initialize_config_dir

    from odyssey.cli.analyze import run
    from odyssey.config import CONFIG_DIR
    sweep_factory("quick-music", variants=["V"], n_trials=1)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        base = [f"results_dir={sweep_factory.results}"]
        assert run(compose("analyze", overrides=base)) == 1
        assert "sweep_name=NAME" in capsys.readouterr().err
        bad = compose("analyze", overrides=[*base, "sweep_name=quick-music", "correction=fdr"])
        assert run(bad) == 1
        assert "correction='fdr'" in capsys.readouterr().err
