"""A damaged journal gets a clear error; a torn last line loses no finished trial."""

from __future__ import annotations

import optuna
import pytest

from odyssey.search.storage import DamagedJournalError, open_storage


def _journal_with_trials(path, n=3):
    storage = open_storage(f"journal://{path}")
    study = optuna.create_study(storage=storage, study_name="s")
    for i in range(n):
        study.add_trial(optuna.trial.create_trial(value=float(i)))
    return path.read_bytes()


def test_damaged_line_names_file_and_line(tmp_path):
    path = tmp_path / "optuna.journal"
    lines = _journal_with_trials(path).split(b"\n")
    lines[2] = lines[2][: len(lines[2]) // 2]  # a damaged record in the middle
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DamagedJournalError) as exc:
        open_storage(f"journal://{path}")
    message = str(exc.value)
    assert str(path) in message and "line 3 " in message and "head -n 2" in message


def test_torn_last_line_is_cut_off_and_earlier_trials_kept(tmp_path):
    path = tmp_path / "optuna.journal"
    data = _journal_with_trials(path)
    path.write_bytes(data + b'{"op_code": 5, "worker_id": "x", "trial_id"')  # killed mid-write
    with pytest.warns(UserWarning, match="torn"):
        storage = open_storage(f"journal://{path}")
    assert path.read_bytes() == data
    assert len(list(tmp_path.glob("optuna.journal.torn-*"))) == 1
    study = optuna.load_study(study_name="s", storage=storage)
    study.add_trial(optuna.trial.create_trial(value=9.0))  # appends cleanly afterwards
    again = optuna.load_study(study_name="s", storage=open_storage(f"journal://{path}"))
    assert [t.value for t in again.trials] == [0.0, 1.0, 2.0, 9.0]
