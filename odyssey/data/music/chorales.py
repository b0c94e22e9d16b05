"""The chorales of the corpus inside the music21 wheel: listed, parsed (their voices only)
into rolls and keys, on several processes."""

from __future__ import annotations

import importlib.metadata
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ...versions import package_versions
from ..cache import stop_idle_processes
from .rolls import ROLL_FORMAT, score_to_roll

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


def versions() -> dict[str, str]:
    """The versions a parsed roll depends on (music21, numpy, the roll format)."""
    return {**package_versions("music21", "numpy"), "roll_format": str(ROLL_FORMAT)}


def music21_version() -> str:
    """The installed music21's version, read without importing it (that takes a second)."""
    return importlib.metadata.version("music21")


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
        stop_idle_processes(workers)
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
                "versions": versions()}
    return {"rolls": [r["roll"] for r in results]}, manifest
