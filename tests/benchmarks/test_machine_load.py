"""The benchmarks' load guard: busy runs are marked and refused unless forced."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import machine_load  # noqa: E402


def test_quiet_run_passes() -> None:
    record = machine_load.verdict(0.3, 1.2, threads=1)
    assert record["quiet"] is True
    machine_load.finish(record, force=False)  # no exit


def test_own_threads_do_not_count_as_load() -> None:
    assert machine_load.verdict(0.2, 3.4, threads=2)["quiet"] is True
    assert machine_load.verdict(0.2, 3.4, threads=1)["quiet"] is False


def test_busy_run_exits_unless_forced(capsys: pytest.CaptureFixture[str]) -> None:
    record = machine_load.verdict(4.0, 5.0, threads=1)
    assert record["quiet"] is False
    with pytest.raises(SystemExit) as exc:
        machine_load.finish(record, force=False)
    assert exc.value.code == machine_load.BUSY_EXIT
    machine_load.finish(record, force=True)  # forced: returns
    assert "not README-grade" in capsys.readouterr().err


def test_busy_before_refuses_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine_load, "load_average", lambda: 6.0)
    with pytest.raises(SystemExit) as exc:
        machine_load.check_before(force=False)
    assert exc.value.code == machine_load.BUSY_EXIT
    assert machine_load.check_before(force=True) == 6.0
