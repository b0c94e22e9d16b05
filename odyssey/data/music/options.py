"""The music corpus's options (the corpus keys of configs/task/music.yaml) and its splits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPLITS = ("train", "valid", "test")
SOURCES = ("music21", "jsb_pickle")


@dataclass(frozen=True)
class MusicOptions:
    """The corpus keys of configs/task/music.yaml, checked."""

    source: str = "music21"
    path: str | None = None
    transpose: bool = True
    seed: int = 0
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    workers: int = 2

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], where: str = "music options"
                     ) -> MusicOptions:
        """Options from a config mapping; an unknown key or bad value names the key."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; expected: {sorted(known)}")
        opts = dict(options)
        source = opts.get("source", "music21")
        if source not in SOURCES:
            raise ValueError(f"{where}: source must be one of {list(SOURCES)}, got {source!r}")
        path = opts.get("path")
        if source == "jsb_pickle" and not path:
            raise ValueError(f"{where}: source 'jsb_pickle' needs path=/path/to/"
                             "JSB_Chorales.pickle")
        transpose = opts.get("transpose", True)
        if not isinstance(transpose, bool):
            raise ValueError(f"{where}: transpose must be true or false, got {transpose!r}")
        seed = opts.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"{where}: seed must be an integer, got {seed!r}")
        fractions = tuple(float(f) for f in opts.get("fractions", (0.6, 0.2, 0.2)))
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(f"{where}: fractions must be three positive numbers (train, "
                             f"valid, test) summing to 1, got {list(fractions)}")
        workers = opts.get("workers", 2)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"{where}: workers must be a positive integer, got {workers!r}")
        return cls(source, str(Path(path).expanduser()) if path else None, transpose, seed,
                   fractions, workers)  # type: ignore[arg-type]


def options_from_config(cfg: Mapping[str, Any]) -> MusicOptions:
    """MusicOptions from configs/task/music.yaml (a DictConfig or dict), ignoring task keys."""
    from omegaconf import DictConfig, OmegaConf

    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) \
        else dict(cfg)
    for key in TASK_KEYS:
        data.pop(key, None)
    return MusicOptions.from_mapping(data, "configs/task/music.yaml")


# keys of configs/task/music.yaml that belong to the task, not to the corpus
TASK_KEYS = ("name", "standardize")
