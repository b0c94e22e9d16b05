"""A reader for the PhysioNet/CinC Challenge 2012 format (GRU-D's benchmark, Che et al. 2018).

For users who have the data (it is not embedded; PhysioNet's terms apply). A record is one
text file `<RecordID>.txt` of `Time,Parameter,Value` lines (Time "HH:MM" since ICU
admission); the descriptors (RecordID, Age, Gender, Height, ICUType) come at 00:00, and a
value of -1 means unknown. The outcomes file (`Outcomes-a.txt`) has the columns RecordID,
SAPS-I, SOFA, Length_of_stay, Survival, In-hospital_death. Each record becomes a sequence
of `hours / bin_hours` steps over the VARIABLES: a step's value is the mean of the
measurements in its bin, its mask 1 where there was one (the data's own gaps; nothing is
filled here: odyssey.data.missing turns values and masks into [x; m; delta]).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# the 37 time series of the challenge (Weight is both a descriptor and a time series)
VARIABLES: tuple[str, ...] = (
    "Albumin", "ALP", "ALT", "AST", "Bilirubin", "BUN", "Cholesterol", "Creatinine",
    "DiasABP", "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "Mg", "MAP",
    "MechVent", "Na", "NIDiasABP", "NIMAP", "NISysABP", "PaCO2", "PaO2", "pH", "Platelets",
    "RespRate", "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT", "Urine", "WBC", "Weight",
)
DESCRIPTORS = ("RecordID", "Age", "Gender", "Height", "ICUType")
OUTCOME = "In-hospital_death"
OPTION_KEYS = ("records", "outcomes", "hours", "bin_hours", "fractions", "seed")


class PhysioNetFormatError(ValueError):
    """A record or outcomes file that does not follow the challenge format (names the file)."""


@dataclass(frozen=True)
class PhysioNetOptions:
    """The physionet config (configs/task/physionet.yaml), checked."""

    records: Path
    outcomes: Path
    hours: int = 48
    bin_hours: int = 1
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0

    @property
    def steps(self) -> int:
        return self.hours // self.bin_hours


def physionet_options(raw: Mapping[str, Any]) -> PhysioNetOptions:
    """Check the options; an unknown key or a bad value is an error naming the key."""
    raw = {k: v for k, v in raw.items() if k != "name"}
    unknown = sorted(set(raw) - set(OPTION_KEYS))
    if unknown:
        raise ValueError(f"physionet config: unknown key(s) {unknown}; expected some of "
                         f"{', '.join(OPTION_KEYS)}")
    paths = {}
    for key in ("records", "outcomes"):
        if not raw.get(key):
            raise ValueError(f"physionet config: {key} must name your copy of the challenge "
                             "data (records: the folder of <RecordID>.txt files, e.g. set-a; "
                             "outcomes: Outcomes-a.txt)")
        paths[key] = Path(str(raw[key])).expanduser()
    if not paths["records"].is_dir():
        raise ValueError(f"physionet config: records={paths['records']} is not a folder")
    if not paths["outcomes"].is_file():
        raise ValueError(f"physionet config: outcomes={paths['outcomes']} is not a file")
    hours, bin_hours = raw.get("hours", 48), raw.get("bin_hours", 1)
    for key, value in (("hours", hours), ("bin_hours", bin_hours)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"physionet config: {key} must be an integer >= 1, got {value!r}")
    if hours % bin_hours:
        raise ValueError(f"physionet config: hours ({hours}) must be a multiple of bin_hours "
                         f"({bin_hours})")
    fractions = tuple(float(f) for f in raw.get("fractions", (0.6, 0.2, 0.2)))
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"physionet config: fractions must be three positive shares of 1 "
                         f"(train, valid, test), got {list(fractions)}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"physionet config: seed must be an integer >= 0, got {seed!r}")
    return PhysioNetOptions(paths["records"], paths["outcomes"], hours, bin_hours,
                            fractions, seed)  # type: ignore[arg-type]


def _minutes(text: str, where: str) -> int:
    hh, sep, mm = text.partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit():
        raise PhysioNetFormatError(f"{where}: time {text!r} is not HH:MM")
    return int(hh) * 60 + int(mm)


def read_record(path: Path, opts: PhysioNetOptions) -> tuple[str, np.ndarray, np.ndarray]:
    """(RecordID, values (T, D), mask (T, D)) of one record file, binned (see the module)."""
    sums = np.zeros((opts.steps, len(VARIABLES)))
    counts = np.zeros_like(sums)
    index = {v: k for k, v in enumerate(VARIABLES)}
    record_id = None
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or [h.strip() for h in header] != ["Time", "Parameter", "Value"]:
            raise PhysioNetFormatError(f"{path}: expected the header Time,Parameter,Value, "
                                       f"got {header!r}")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            where = f"{path}:{line}"
            if len(row) != 3:
                raise PhysioNetFormatError(f"{where}: expected Time,Parameter,Value, got {row!r}")
            time, name, text = (c.strip() for c in row)
            if not name:
                continue  # an empty line of the export
            try:
                value = float(text)
            except ValueError as e:
                raise PhysioNetFormatError(f"{where}: value {text!r} is not a number") from e
            if name == "RecordID":
                record_id = str(int(value))
                continue
            if name in DESCRIPTORS and name not in index:
                continue  # static descriptors: not part of the time series
            if name not in index:
                raise PhysioNetFormatError(f"{where}: unknown parameter {name!r}; expected one "
                                           f"of {', '.join((*DESCRIPTORS, *VARIABLES))}")
            minute = _minutes(time, where)
            if value < 0 or minute >= opts.hours * 60:
                continue  # -1: unknown; or after the window
            step = minute // (60 * opts.bin_hours)
            sums[step, index[name]] += value
            counts[step, index[name]] += 1
    if record_id is None:
        raise PhysioNetFormatError(f"{path}: no RecordID line")
    mask = (counts > 0).astype(np.float32)
    values = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return record_id, values, mask


def read_outcomes(path: Path) -> dict[str, int]:
    """RecordID -> In-hospital_death (0 or 1) from the outcomes file."""
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        if rows.fieldnames is None or "RecordID" not in rows.fieldnames \
                or OUTCOME not in rows.fieldnames:
            raise PhysioNetFormatError(f"{path}: expected the columns RecordID and {OUTCOME}, "
                                       f"got {rows.fieldnames}")
        out = {}
        for line, row in enumerate(rows, start=2):
            try:
                rid, death = str(int(float(row["RecordID"]))), int(float(row[OUTCOME]))
            except (TypeError, ValueError) as e:
                raise PhysioNetFormatError(f"{path}:{line}: unreadable row {row}") from e
            if death not in (0, 1):
                raise PhysioNetFormatError(f"{path}:{line}: {OUTCOME} must be 0 or 1, got "
                                           f"{death}")
            out[rid] = death
    return out


def load_records(opts: PhysioNetOptions) -> dict[str, tuple[list[str], list[np.ndarray],
                                                            list[np.ndarray], list[int]]]:
    """Per split: (record ids, values, masks, labels), records shuffled into the splits by
    `seed` in the shares `fractions`. Records without an outcome are an error."""
    outcomes = read_outcomes(opts.outcomes)
    files = sorted(p for p in opts.records.glob("*.txt") if p.resolve() != opts.outcomes.resolve())
    if len(files) < 3:
        raise PhysioNetFormatError(f"{opts.records}: {len(files)} record files (*.txt); need "
                                   "at least 3")
    records = [read_record(p, opts) for p in files]
    missing = [rid for rid, _, _ in records if rid not in outcomes]
    if missing:
        raise PhysioNetFormatError(f"{opts.outcomes}: no outcome for record(s) "
                                   f"{', '.join(missing[:5])}")
    order = np.random.default_rng(opts.seed).permutation(len(records))
    n_train = max(1, int(round(opts.fractions[0] * len(records))))
    n_valid = max(1, int(round(opts.fractions[1] * len(records))))
    cuts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
            "test": order[n_train + n_valid:]}
    out = {}
    for split, idx in cuts.items():
        if len(idx) == 0:
            raise PhysioNetFormatError(f"{opts.records}: too few records for a {split} split")
        chosen = [records[k] for k in idx]
        out[split] = ([r[0] for r in chosen], [r[1] for r in chosen], [r[2] for r in chosen],
                      [outcomes[r[0]] for r in chosen])
    return out
