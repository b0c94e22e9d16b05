"""The music corpus (DESIGN §3): Bach chorales as 88-key binary piano rolls, one step a quarter.

Two sources behind `configs/task/music.yaml`, the same arrays out of both:

- ``music21`` (default, offline): the chorales of the corpus inside the music21 wheel, listed
  by its chorale iterator (Riemenschneider numbering, 371 entries, 350 distinct files), each
  sampled on the quarter-note grid: key k (MIDI 21 + k) is on at step t when a note of that
  pitch sounds at the instant t (what JSB itself keeps). Optionally transposed to C major /
  C minor (the key music21's Krumhansl-Schmuckler analysis finds), then split by a seed.
- ``jsb_pickle``: the standard ``JSB_Chorales.pickle`` of Boulanger-Lewandowski et al. (2012):
  {'train', 'valid', 'test'} -> list of sequences -> list of steps -> MIDI numbers 21-108.

Parsing is the slow part, so it is cached twice under ``datasets/music/``: every chorale's
untransposed roll once per music21 version, and each (transpose, seed, fractions) corpus on
top of it, both with the manifests of `odyssey.data.cache`. This module builds and caches the
corpus and serves `odyssey-data`; the options, the rolls, the music21 chorales and the JSB
pickle each have their own module beside it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import CorruptCacheError, build_lock, cached, datasets_dir, load_manifest, sha256
from .chorales import (
    VOICES,
    chorale_names,
    keep_voices,
    music21_version,
    parse_chorale,
    parse_corpus,
    versions,
)
from .jsb import existing_pickle, read_jsb_pickle
from .options import SOURCES, SPLITS, TASK_KEYS, MusicOptions, options_from_config
from .rolls import (
    HIGHEST,
    KEYS,
    LOWEST,
    ROLL_FORMAT,
    score_to_roll,
    shift_to_c,
    steps_to_roll,
    transpose_roll,
)

__all__ = ["HIGHEST", "KEYS", "LOWEST", "ROLL_FORMAT", "SOURCES", "SPLITS", "TASK_KEYS",
           "VOICES", "MusicOptions", "build", "chorale_names", "corpus_stem", "describe",
           "frame_accuracy", "frequency_baseline", "info", "keep_voices", "load_corpus",
           "load_parsed", "options_from_config", "parse_chorale", "parse_corpus",
           "parsed_stem", "read_jsb_pickle", "score_to_roll", "shift_to_c", "show",
           "split_indices", "steps_to_roll", "transpose_roll"]

def parsed_stem() -> Path:
    """Cache stem of every chorale's untransposed roll, one per music21 version."""
    version = music21_version().replace(".", "_")  # no dots: the stem takes suffixes
    return datasets_dir() / "music" / f"music21-chorales-{version}-r{ROLL_FORMAT}"


def load_parsed(workers: int = 2, rebuild: bool = False, log: Callable[[str], None] = print
                ) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Every chorale's roll and key, parsed once and then read from the cache."""
    return cached(parsed_stem(), lambda: parse_corpus(chorale_names(), workers, log),
                  rebuild=rebuild, log=log)


# -- the corpus (cache level 2) ----------------------------------------------------------------
def split_indices(n: int, fractions: tuple[float, float, float], seed: int
                  ) -> dict[str, np.ndarray]:
    """Disjoint sorted index sets for train/valid/test, a seeded shuffle cut by `fractions`."""
    order = np.random.default_rng(seed).permutation(n)
    n_train = round(fractions[0] * n)
    n_valid = round(fractions[1] * n)
    cuts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
            "test": order[n_train + n_valid:]}
    return {s: np.sort(idx) for s, idx in cuts.items()}


def corpus_stem(opts: MusicOptions) -> Path:
    """Cache stem of the corpus that `opts` describe (a readable name and a short hash)."""
    if opts.source == "jsb_pickle":
        key: dict[str, Any] = {"file_sha256": sha256(existing_pickle(opts.path))}  # type: ignore
        name = "jsb_pickle"
    else:
        key = {"transpose": opts.transpose, "seed": opts.seed,
               "fractions": list(opts.fractions), "music21": music21_version()}
        name = f"music21-{'C' if opts.transpose else 'orig'}-seed{opts.seed}"
    key["roll_format"] = ROLL_FORMAT
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return datasets_dir() / "music" / f"{name}-{digest}"


def _build_music21(opts: MusicOptions, reparse: bool, log: Callable[[str], None]
                   ) -> tuple[dict[str, list[np.ndarray]], dict]:
    start = time.perf_counter()
    parsed, pman = load_parsed(opts.workers, reparse, log)
    rolls, ids = parsed["rolls"], pman["ids"]
    shifts = [shift_to_c(t) if opts.transpose else 0 for t in pman["tonic"]]
    rolls = [transpose_roll(r, s, f"music21 corpus {i}") for r, s, i in zip(rolls, shifts, ids,
                                                                         strict=True)]
    # identical rolls under two names would sit in two splits: keep the first
    seen: dict[bytes, str] = {}
    keep, duplicates = [], {}
    for k, roll in enumerate(rolls):
        digest = hashlib.sha256(roll.tobytes() + str(roll.shape).encode()).digest()
        if digest in seen:
            duplicates[ids[k]] = seen[digest]
        else:
            seen[digest] = ids[k]
            keep.append(k)
    split = split_indices(len(keep), opts.fractions, opts.seed)
    empty = [s for s, idx in split.items() if len(idx) == 0]
    if empty:
        raise ValueError(f"music21 corpus: {len(keep)} chorales leave split(s) {empty} empty "
                         f"with fractions {list(opts.fractions)}")
    arrays = {s: [rolls[keep[i]] for i in idx] for s, idx in split.items()}
    manifest = {
        "source": "music21", "options": asdict(opts),
        "description": "J. S. Bach chorales from the music21 corpus (chorale iterator), "
                       "88-key binary piano rolls sampled on the quarter-note grid"
                       + (", transposed to C major / C minor" if opts.transpose else ""),
        "ids": {s: [ids[keep[i]] for i in idx] for s, idx in split.items()},
        "keys": {s: [pman["key"][keep[i]] for i in idx] for s, idx in split.items()},
        "shift_semitones": {s: [shifts[keep[i]] for i in idx] for s, idx in split.items()},
        "iterator_entries": pman["iterator_entries"], "files": pman["files"],
        "duplicates_dropped": duplicates,
        "instrumental_parts_removed": pman["instrumental_parts_removed"],
        "parsed_cache": str(parsed_stem().with_suffix(".json")),
        "parsed_sha256": load_manifest(parsed_stem())["sha256"],
        "parse_seconds": pman["build_seconds"], "parse_workers": pman["workers"],
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    return arrays, _finish_manifest(arrays, manifest)


def _build_pickle(opts: MusicOptions) -> tuple[dict[str, list[np.ndarray]], dict]:
    start = time.perf_counter()
    path = Path(opts.path)  # type: ignore[arg-type]
    arrays = read_jsb_pickle(path)
    manifest = {"source": "jsb_pickle", "options": asdict(opts),
                "description": f"JSB_Chorales.pickle format file {path}",
                "file": str(path.resolve()), "file_sha256": sha256(path),
                "build_seconds": round(time.perf_counter() - start, 2)}
    return arrays, _finish_manifest(arrays, manifest)


def _finish_manifest(arrays: dict[str, list[np.ndarray]], manifest: dict) -> dict:
    counts = {s: {"sequences": len(arrays[s]), "frames": int(sum(len(r) for r in arrays[s]))}
              for s in SPLITS}
    return {**manifest, "counts": counts, "lowest_midi": LOWEST, "highest_midi": HIGHEST,
            "versions": versions()}


def load_corpus(opts: MusicOptions, rebuild: bool = False, log: Callable[[str], None] = print
                ) -> tuple[dict[str, list[np.ndarray]], dict]:
    """The corpus's rolls per split and its manifest: built on first use, then cached."""
    stem = corpus_stem(opts)
    if opts.source == "jsb_pickle":
        def build() -> tuple[dict[str, list[np.ndarray]], dict]:
            return _build_pickle(opts)
        stale = False
    else:
        def build() -> tuple[dict[str, list[np.ndarray]], dict]:
            return _build_music21(opts, reparse=rebuild, log=log)
        # the corpus is derived from the parsed cache: rebuild it when that changed
        stale = not rebuild and _stale(stem, log)
    with build_lock(stem.parent):
        arrays, manifest = cached(stem, build, rebuild=rebuild or stale, log=log)
    return {s: arrays[s] for s in SPLITS}, manifest


def _stale(stem: Path, log: Callable[[str], None]) -> bool:
    """True when the corpus at `stem` was derived from a parsed cache that has changed."""
    try:
        manifest, parsed = load_manifest(stem), load_manifest(parsed_stem())
    except CorruptCacheError:
        return False  # `cached` reports and rebuilds it
    if manifest is None:
        return False
    if parsed is not None and parsed.get("sha256") != manifest.get("parsed_sha256"):
        log(f"{stem.with_suffix('.json')}: the parsed chorales changed, rebuilding")
        return True
    return False


# -- odyssey-data build | info | show ----------------------------------------------------------
def build(cfg: Mapping[str, Any], rebuild: bool = False) -> Path:
    """Build (or find) the corpus of configs/task/music.yaml; returns its manifest path."""
    opts = options_from_config(cfg)
    load_corpus(opts, rebuild=rebuild)
    return corpus_stem(opts).with_suffix(".json")


def describe(arrays: dict[str, list[np.ndarray]], manifest: dict, stem: Path) -> dict:
    """Counts per split, lengths, key range, source and cache path, for `odyssey-data info`."""
    out: dict[str, Any] = {"source": manifest["source"], "description": manifest["description"],
                           "cache": str(stem.with_suffix(".npz"))}
    if manifest["source"] == "music21":
        o = manifest["options"]
        out.update(transpose=o["transpose"], seed=o["seed"], fractions=o["fractions"],
                   iterator_entries=manifest["iterator_entries"], files=manifest["files"],
                   duplicates_dropped=len(manifest["duplicates_dropped"]),
                   instruments_removed_from=len(manifest["instrumental_parts_removed"]))
    every = np.concatenate([r for s in SPLITS for r in arrays[s]])
    used = np.flatnonzero(every.any(0)) + LOWEST
    out["key_range"] = [int(used[0]), int(used[-1])] if len(used) else []
    out["notes_per_step"] = round(float(every.sum(1).mean()), 3)
    for s in SPLITS:
        lens = [len(r) for r in arrays[s]]
        out[s] = {"sequences": len(lens), "steps": int(sum(lens)),
                  "mean_length": round(float(np.mean(lens)), 1), "min_length": int(min(lens)),
                  "max_length": int(max(lens))}
    base = frequency_baseline(arrays["train"], arrays["test"])
    out["frequency_baseline_test"] = {k: round(v, 4) for k, v in base.items()}
    out["versions"] = manifest["versions"]
    return out


def info(cfg: Mapping[str, Any]) -> dict:
    """What `odyssey-data info music` prints; the corpus must have been built."""
    opts = options_from_config(cfg)
    stem = corpus_stem(opts)
    if not stem.with_suffix(".json").exists():  # a damaged cache is rebuilt below
        raise RuntimeError(f"music corpus not built ({stem.with_suffix('.json')} missing); "
                           "run: odyssey-data build music")
    arrays, manifest = load_corpus(opts)
    return describe(arrays, manifest, stem)


def show(cfg: Mapping[str, Any], n: int = 6, out: Path | None = None) -> Path:
    """Draw the first `n` training rolls as a PNG (time in quarters against MIDI pitch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opts = options_from_config(cfg)
    arrays, manifest = load_corpus(opts)
    n = max(1, min(n, len(arrays["train"])))
    ids = manifest.get("ids", {}).get("train") or [f"train[{i}]" for i in range(n)]
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.8 * n), squeeze=False)
    for ax, roll, name in zip(axes[:, 0], arrays["train"][:n], ids, strict=False):
        ax.imshow(roll.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                  extent=(0, len(roll), LOWEST - 0.5, HIGHEST + 0.5))
        ax.set_ylim(30, 90)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("MIDI pitch")
    axes[-1, 0].set_xlabel("time (quarter notes)")
    fig.tight_layout()
    out = Path(out) if out else corpus_stem(opts).with_name(corpus_stem(opts).name + ".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# -- the floor every model must beat --------------------------------------------------------
def frequency_baseline(train: list[np.ndarray], test: list[np.ndarray]) -> dict[str, float]:
    """NLL per step and frame accuracy on `test` of predicting each key's training frequency.

    The frequency is add-one smoothed ((on + 1) / (steps + 2)) so that a key never played
    in training costs a finite amount. Frame accuracy thresholds at 0.5, as the task does.
    """
    counts = np.concatenate(train).sum(0, dtype=np.float64)
    steps = sum(len(r) for r in train)
    p = (counts + 1) / (steps + 2)
    y = np.concatenate(test).astype(np.float64)
    nll = -(y * np.log(p) + (1 - y) * np.log1p(-p)).sum(1).mean()
    pred = np.broadcast_to(p > 0.5, y.shape)
    return {"nll": float(nll), "frame_accuracy": frame_accuracy(pred, y > 0)}


def frame_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Bay et al. (2009) accuracy TP / (TP + FP + FN), summed over every step and key."""
    tp = np.logical_and(pred, truth).sum()
    wrong = np.logical_xor(pred, truth).sum()
    return float(tp / (tp + wrong)) if tp + wrong else float("nan")
