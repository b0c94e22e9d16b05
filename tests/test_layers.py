"""The layers of pyproject.toml's import-linter contracts hold: no module imports upward,
and analysis reads the store without importing search (`make lint` runs the same check)."""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_imports_flow_down_the_pipeline(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # lint-imports reads ./pyproject.toml
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                        no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out
