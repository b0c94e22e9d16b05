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
top of it, both with the manifests of `odyssey.data.cache`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import pickle
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..versions import package_versions
from .cache import CorruptCacheError, build_lock, cached, datasets_dir, load_manifest, sha256

LOWEST, HIGHEST = 21, 108  # A0 .. C8, the 88 piano keys
KEYS = HIGHEST - LOWEST + 1
SPLITS = ("train", "valid", "test")
SOURCES = ("music21", "jsb_pickle")
# Bump when the roll conversion changes, so that every cache built before is rebuilt.
ROLL_FORMAT = 1
_EPS = 1e-6


# -- options ---------------------------------------------------------------------------------
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


# -- score -> roll ---------------------------------------------------------------------------
def score_to_roll(score: Any, *, where: str = "score") -> np.ndarray:
    """(T, 88) uint8 roll of a music21 stream sampled on the quarter-note grid.

    Step t is the instant t quarters after the first downbeat-aligned beat (a pickup that
    starts off the beat shifts the grid, so beats stay beats). Key k is on when a note or
    chord tone of MIDI pitch 21 + k sounds at that instant (onset <= t < onset + duration):
    held and repeated notes look alike, and notes lying between beats are not kept, as in
    JSB. Rests, unpitched notes and grace notes (no duration) add nothing.
    """
    flat = score.flatten()
    parts = getattr(score, "parts", None)
    first_part = parts[0] if parts is not None and len(parts) else score
    measures = first_part.getElementsByClass("Measure")
    pad = float(measures[0].paddingLeft) if len(measures) else 0.0
    phase = (-pad) % 1.0
    if phase > 1 - _EPS:
        phase = 0.0
    end = float(flat.highestTime)
    frames = max(0, math.ceil(end - phase - _EPS))
    roll = np.zeros((frames, KEYS), np.uint8)
    for element in flat.notes:
        onset = float(element.offset)
        stop = onset + float(element.quarterLength)
        first = math.ceil(onset - phase - _EPS)
        last = math.ceil(stop - phase - _EPS)
        if last <= first:
            continue
        for pitch in getattr(element, "pitches", ()):
            midi = int(round(pitch.ps))
            if not LOWEST <= midi <= HIGHEST:
                raise ValueError(f"{where}: note {pitch.nameWithOctave} (MIDI {midi}) at "
                                 f"offset {onset} is outside the piano range "
                                 f"{LOWEST}-{HIGHEST}")
            roll[first:last, midi - LOWEST] = 1
    return roll


def transpose_roll(roll: np.ndarray, semitones: int, where: str = "roll") -> np.ndarray:
    """The roll moved by `semitones`; an error names `where` if a note leaves 21-108."""
    if semitones == 0:
        return roll
    on = np.flatnonzero(roll.any(0))
    if len(on) and not (on[0] + semitones >= 0 and on[-1] + semitones < KEYS):
        raise ValueError(f"{where}: transposing by {semitones} semitones moves notes outside "
                         f"MIDI {LOWEST}-{HIGHEST}")
    out = np.zeros_like(roll)
    if semitones > 0:
        out[:, semitones:] = roll[:, :-semitones]
    else:
        out[:, :semitones] = roll[:, -semitones:]
    return out


def shift_to_c(tonic_pitch_class: int) -> int:
    """Semitones (-6..+5, the nearer way) that move a tonic to C."""
    return (-tonic_pitch_class + 6) % 12 - 6


VOICES = ("soprano", "alto", "tenor", "bass")


def keep_voices(score: Any) -> list[str]:
    """Remove instrumental parts (horns, timpani, continuo...) when the choir's are named.

    19 of the corpus's chorales add instruments to Soprano/Alto/Tenor/Bass; JSB keeps the
    four voices. Parts are kept when their name starts with a voice ("Soprano 2", "Bass
    Continuo" for a doubled bass line); a score naming no voice keeps every part. Returns
    the names of the parts removed.
    """
    parts = list(score.parts)
    vocal = [p for p in parts if (p.partName or "").strip().lower().startswith(VOICES)]
    removed = [p for p in parts if vocal and p not in vocal]
    for part in removed:
        score.remove(part)
    return [str(p.partName) for p in removed]


def parse_chorale(name: str) -> dict:
    """Parse one corpus chorale: the roll of its voices and its key (tonic, mode)."""
    from music21 import corpus

    try:
        # forceSource: parse the wheel's file itself; music21 writes no pickle to its scratch
        score = corpus.parse(name, forceSource=True)
        removed = keep_voices(score)
        key = score.analyze("key")
        roll = score_to_roll(score, where=f"music21 corpus {name}")
    except Exception as e:  # report which chorale failed, whatever music21 raised
        return {"name": name, "error": f"{type(e).__name__}: {e}"}
    if len(roll) == 0:
        return {"name": name, "error": "no notes"}
    return {"name": name, "roll": roll, "tonic": int(key.tonic.pitchClass), "mode": key.mode,
            "key": f"{key.tonic.name} {key.mode}", "removed_parts": removed}


def chorale_names() -> list[str]:
    """The chorales of music21's iterator in Riemenschneider order (a file can repeat)."""
    from music21 import corpus

    return list(corpus.chorales.Iterator(returnType="filename"))


# -- the parsed music21 corpus (cache level 1) ------------------------------------------------
def _versions() -> dict[str, str]:
    return {**package_versions("music21", "numpy"), "roll_format": str(ROLL_FORMAT)}


def _music21_version() -> str:
    """The installed music21's version, read without importing it (that takes a second)."""
    return importlib.metadata.version("music21")


def parsed_stem() -> Path:
    """Cache stem of every chorale's untransposed roll, one per music21 version."""
    version = _music21_version().replace(".", "_")  # no dots: the stem takes suffixes
    return datasets_dir() / "music" / f"music21-chorales-{version}-r{ROLL_FORMAT}"


def parse_corpus(names: list[str], workers: int = 2, log: Callable[[str], None] = print
                 ) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Parse `names` (on `workers` processes, with a progress bar) into rolls and a manifest.

    A name listed twice (several Riemenschneider numbers share one file) is parsed once.
    """
    from tqdm import tqdm

    listed = len(names)
    names = list(dict.fromkeys(names))
    start = time.perf_counter()
    bar = dict(total=len(names), desc="parsing chorales", unit="chorale", file=sys.stderr)
    if workers > 1:
        # joblib's loky processes: not forked (a fork of a process holding torch's threads
        # can deadlock), and unlike multiprocessing's spawn they never re-run the caller's
        # unguarded __main__ script, so a build from a notebook or a plain script is safe
        from joblib import Parallel, delayed
        jobs = Parallel(n_jobs=workers, return_as="generator", batch_size=2)(
            delayed(parse_chorale)(n) for n in names)
        results = list(tqdm(jobs, **bar))
    else:
        results = [parse_chorale(n) for n in tqdm(names, **bar)]
    failed = [f"{r['name']} ({r['error']})" for r in results if "error" in r]
    if failed:
        raise RuntimeError(f"music21 corpus: {len(failed)} chorale(s) could not be read: "
                           + "; ".join(failed[:5]))
    seconds = time.perf_counter() - start
    log(f"parsed {len(results)} chorales in {seconds:.1f} s on {workers} process(es)")
    manifest = {"kind": "music21 chorales, untransposed quarter-note rolls",
                "iterator_entries": listed, "files": len(names),
                "ids": [r["name"] for r in results], "tonic": [r["tonic"] for r in results],
                "mode": [r["mode"] for r in results], "key": [r["key"] for r in results],
                "instrumental_parts_removed": {r["name"]: r["removed_parts"] for r in results
                                               if r["removed_parts"]},
                "build_seconds": round(seconds, 2), "workers": workers,
                "versions": _versions()}
    return {"rolls": [r["roll"] for r in results]}, manifest


def load_parsed(workers: int = 2, rebuild: bool = False, log: Callable[[str], None] = print
                ) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Every chorale's roll and key, parsed once and then read from the cache."""
    return cached(parsed_stem(), lambda: parse_corpus(chorale_names(), workers, log),
                  rebuild=rebuild, log=log)


# -- JSB_Chorales.pickle -----------------------------------------------------------------------
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
    path = _existing(path)
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


def _existing(path: str | Path) -> Path:
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


def steps_to_roll(sequence: Any, where: str) -> np.ndarray:
    """(T, 88) uint8 roll of a list of steps, each a list/tuple of MIDI numbers 21-108."""
    if not isinstance(sequence, list | tuple):
        raise ValueError(f"{where}: a sequence must be a list of time steps, got "
                         f"{type(sequence).__name__}")
    if len(sequence) == 0:
        raise ValueError(f"{where}: empty sequence (no time steps)")
    roll = np.zeros((len(sequence), KEYS), np.uint8)
    for t, step in enumerate(sequence):
        if not isinstance(step, list | tuple):
            raise ValueError(f"{where}, step {t}: a time step must be a list or tuple of MIDI "
                             f"note numbers, got {type(step).__name__}")
        for note in step:
            number = float(note) if isinstance(note, int | float | np.number) else math.nan
            if not number.is_integer():
                raise ValueError(f"{where}, step {t}: {note!r} is not a MIDI note number")
            if not LOWEST <= number <= HIGHEST:
                raise ValueError(f"{where}, step {t}: note {int(number)} is outside "
                                 f"{LOWEST}-{HIGHEST}")
            roll[t, int(number) - LOWEST] = 1
    return roll


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
        key: dict[str, Any] = {"file_sha256": sha256(_existing(opts.path))}  # type: ignore
        name = "jsb_pickle"
    else:
        key = {"transpose": opts.transpose, "seed": opts.seed,
               "fractions": list(opts.fractions), "music21": _music21_version()}
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
            "versions": _versions()}


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
