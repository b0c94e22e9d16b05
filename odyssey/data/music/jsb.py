"""JSB_Chorales.pickle (Boulanger-Lewandowski et al. 2012): {'train', 'valid', 'test'} ->
sequences -> steps -> MIDI numbers, read without running code from the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .options import SPLITS
from .rolls import steps_to_roll


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles containers and numbers only: a data file must not run code when read."""

    _allowed = {("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}; expected only "
                                     "dicts, lists, tuples and numbers")


def read_jsb_pickle(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Rolls of a JSB_Chorales.pickle-format file; errors name the file and what is wrong."""
    path = existing_pickle(path)
    try:
        with open(path, "rb") as f:
            data = _PlainUnpickler(f, encoding="latin1").load()  # latin1: Python 2 pickles
    except Exception as e:
        raise ValueError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict with keys 'train', 'valid', 'test', "
                         f"got {type(data).__name__}")
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; expected 'train', 'valid', "
                         f"'test', found {sorted(map(str, data))}")
    out: dict[str, list[np.ndarray]] = {}
    for split in SPLITS:
        seqs = data[split]
        if not isinstance(seqs, list | tuple) or len(seqs) == 0:
            raise ValueError(f"{path}: {split!r} must be a non-empty list of sequences, got "
                             f"{type(seqs).__name__} of length {_len(seqs)}")
        out[split] = [steps_to_roll(seq, f"{path}: {split}[{i}]") for i, seq in enumerate(seqs)]
    return out


def existing_pickle(path: str | Path) -> Path:
    """`path` as a Path; FileNotFoundError naming it when there is no such file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (source jsb_pickle expects "
                                "JSB_Chorales.pickle; set path=...)")
    return path


def _len(x: Any) -> str:
    try:
        return str(len(x))
    except TypeError:
        return "-"
