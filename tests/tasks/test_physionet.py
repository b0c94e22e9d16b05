"""The PhysioNet 2012 reader and the physionet task, on challenge-format files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from odyssey.data.physionet import (
    VARIABLES,
    PhysioNetFormatError,
    physionet_options,
    read_outcomes,
    read_record,
)
from odyssey.tasks import load_task
from odyssey.training import Hyperparameters, TrainSettings, train


def write_record(folder: Path, rid: int, rng: np.random.Generator, died: int) -> None:
    lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}", "00:00,Age,61",
             "00:00,Gender,1", "00:00,Height,-1", "00:00,ICUType,2", "00:00,Weight,-1"]
    for minute in sorted(rng.choice(48 * 60, size=30, replace=False)):
        name = str(rng.choice(["HR", "Temp", "GCS", "pH"]))
        value = {"HR": 80 + 20 * died, "Temp": 37.0, "GCS": 15 - 6 * died,
                 "pH": 7.4}[name] + rng.normal(0, 1)
        lines.append(f"{minute // 60:02d}:{minute % 60:02d},{name},{value:.2f}")
    lines.append("49:10,HR,300")  # after the 48 h window: left out
    (folder / f"{rid}.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("physionet")
    records = root / "set-a"
    records.mkdir()
    rng = np.random.default_rng(0)
    rows = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    for k in range(40):
        rid, died = 132539 + k, int(k % 3 == 0)
        write_record(records, rid, rng, died)
        rows.append(f"{rid},10,3,5,-1,{died}")
    outcomes = root / "Outcomes-a.txt"
    outcomes.write_text("\n".join(rows) + "\n")
    return records, outcomes


def test_a_record_is_binned_by_hour_with_its_own_gaps(tmp_path):
    (tmp_path / "r.txt").write_text("Time,Parameter,Value\n00:00,RecordID,7\n00:00,Age,50\n"
                                    "00:10,HR,80\n00:50,HR,90\n02:05,Temp,37.5\n"
                                    "03:00,GCS,-1\n47:59,pH,7.3\n48:00,pH,7.0\n")
    opts = physionet_options({"records": str(tmp_path), "outcomes": str(tmp_path / "r.txt")})
    rid, values, mask = read_record(tmp_path / "r.txt", opts)
    hr, temp, gcs, ph = (VARIABLES.index(v) for v in ("HR", "Temp", "GCS", "pH"))
    assert rid == "7" and values.shape == (48, 37)
    assert values[0, hr] == 85 and mask[0, hr] == 1
    assert values[2, temp] == 37.5 and mask[1, temp] == 0
    assert mask[:, gcs].sum() == 0  # -1: unknown
    assert values[47, ph] == pytest.approx(7.3) and mask[:, ph].sum() == 1  # 48:00 is out
    assert mask.sum() == 3


def test_bad_files_are_named(tmp_path, data):
    records, outcomes = data
    opts = physionet_options({"records": str(records), "outcomes": str(outcomes)})
    bad = tmp_path / "bad.txt"
    bad.write_text("Time,Parameter,Value\n00:00,RecordID,1\n00:10,Heart,80\n")
    with pytest.raises(PhysioNetFormatError, match="bad.txt:3: unknown parameter 'Heart'"):
        read_record(bad, opts)
    bad.write_text("Time,Parameter,Value\n00:00,RecordID,1\n0010,HR,80\n")
    with pytest.raises(PhysioNetFormatError, match="bad.txt:3: time '0010' is not HH:MM"):
        read_record(bad, opts)
    bad.write_text("RecordID,In-hospital_death\n1,2\n")
    with pytest.raises(PhysioNetFormatError, match="In-hospital_death must be 0 or 1"):
        read_outcomes(bad)
    with pytest.raises(ValueError, match="physionet config: records must name your copy"):
        physionet_options({"outcomes": str(outcomes)})
    with pytest.raises(ValueError, match="hours \\(48\\) must be a multiple of bin_hours"):
        physionet_options({"records": str(records), "outcomes": str(outcomes),
                           "bin_hours": 5})


def test_the_task_has_gaps_of_its_own_and_scores_auc(data):
    records, outcomes = data
    task = load_task("physionet", records=str(records), outcomes=str(outcomes), fill="last")
    assert task.input_size == 3 * 37 and task.features == 37
    assert task.missing.native and task.missing.fill == "last"
    assert task.describe()["missing"] == "gaps of its own, fill last"
    assert [len(task.splits[s]) for s in ("train", "valid", "test")] == [24, 8, 8]
    x = np.concatenate(task.splits["train"].inputs)
    m = x[:, 37:74]
    observed = x[:, :37][m == 1]
    assert np.all(x[:, :37][m == 0] == 0) and abs(observed.mean()) < 0.5
    assert task.input_view("GRUD") is None and task.input_view("V").mode == "last"
    with pytest.raises(ValueError, match="gaps of their own; task.missing_rate must be 0"):
        load_task("physionet", records=str(records), outcomes=str(outcomes),
                  missing_rate=0.2)
    settings = TrainSettings(max_epochs=2, patience=3, batch_size=8)
    r = train(task, "GRUD", Hyperparameters(6, 1e-2, 0.9, 0.0), settings, seed=0)
    assert r.status == "complete" and 0 <= r.test_metric <= 1
    assert 0 <= r.extra_metrics["test_auc"] <= 1
    net = task.build_network("GRUD", 6)
    scores = task.evaluate(net, "test", batch_size=3)
    batches = list(task.batches("test", 3, by_length=True))
    probs = np.concatenate([task.sequence_scores(net(b.x, b.lengths), b).softmax(-1)[:, 1]
                            .detach().numpy() for b in batches])
    labels = np.concatenate([b.targets.numpy() for b in batches])
    assert scores["auc"] == pytest.approx(roc_auc_score(labels, probs))
