"""Built corpora cached under `datasets/`: a compressed array file and a JSON manifest.

The manifest records counts, split, source, package versions and the SHA-256 of the array
file; a cache whose checksum or structure does not match is reported and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

MANIFEST_VERSION = 1


class CorruptCacheError(RuntimeError):
    """A cache file that is missing, unreadable or does not match its manifest."""


def datasets_dir() -> Path:
    """Where built corpora live: $ODYSSEY_DATASETS, else `datasets/` in the repository."""
    env = os.environ.get("ODYSSEY_DATASETS")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "datasets"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_sequences(stem: Path, arrays: dict[str, list[np.ndarray]], manifest: dict) -> Path:
    """Write named lists of arrays to `<stem>.npz` and the manifest to `<stem>.json`.

    Each list is stored as one concatenated array plus offsets, so loading is one read.
    The array file is written first, atomically, and the manifest last: a crash in between
    leaves no manifest, which later reads as "not built".
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    flat: dict[str, np.ndarray] = {}
    for name, seqs in arrays.items():
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        flat[f"{name}__data"] = (np.concatenate(seqs, axis=0) if seqs
                                 else np.zeros((0,), np.float32))
        flat[f"{name}__lengths"] = lengths
    npz, tmp = stem.with_suffix(".npz"), stem.with_suffix(".npz.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **flat)
    os.replace(tmp, npz)
    manifest = {**manifest, "manifest_version": MANIFEST_VERSION, "array_file": npz.name,
                "sha256": sha256(npz)}
    js = stem.with_suffix(".json")
    js.with_suffix(".json.tmp").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(js.with_suffix(".json.tmp"), js)
    return js


def load_manifest(stem: Path) -> dict | None:
    """The manifest at `<stem>.json`, or None when the corpus is not built."""
    js = stem.with_suffix(".json")
    if not js.exists():
        return None
    try:
        return json.loads(js.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CorruptCacheError(f"{js}: unreadable manifest ({e})") from e


def load_sequences(stem: Path, verify: bool = True) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Read a cache written by `save_sequences`; CorruptCacheError names what is wrong."""
    manifest = load_manifest(stem)
    if manifest is None:
        raise CorruptCacheError(f"{stem.with_suffix('.json')}: no manifest (not built)")
    npz = stem.with_suffix(".npz")
    if not npz.exists():
        raise CorruptCacheError(f"{npz}: array file missing")
    if verify and sha256(npz) != manifest.get("sha256"):
        raise CorruptCacheError(f"{npz}: checksum does not match {stem.with_suffix('.json')}")
    try:
        with np.load(npz) as data:
            names = {k.rsplit("__", 1)[0] for k in data.files}
            arrays = {}
            for name in names:
                flat, lengths = data[f"{name}__data"], data[f"{name}__lengths"]
                ends = np.cumsum(lengths)
                arrays[name] = [flat[e - n:e] for n, e in zip(lengths, ends, strict=True)]
    except (OSError, ValueError, KeyError) as e:
        raise CorruptCacheError(f"{npz}: unreadable ({e})") from e
    return arrays, manifest


def cached(stem: Path, build: Callable[[], tuple[dict[str, list[np.ndarray]], dict]],
           rebuild: bool = False, log: Callable[[str], None] = print
           ) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Load the cache at `stem`, building it first if absent, corrupt or `rebuild` is set."""
    if not rebuild and load_manifest_safe(stem, log) is not None:
        try:
            return load_sequences(stem)
        except CorruptCacheError as e:
            log(f"cache is corrupt, rebuilding: {e}")
    arrays, manifest = build()
    save_sequences(stem, arrays, manifest)
    return load_sequences(stem)


def load_manifest_safe(stem: Path, log: Callable[[str], None] = print) -> dict | None:
    """Like `load_manifest`, but a corrupt manifest is logged and read as absent."""
    try:
        return load_manifest(stem)
    except CorruptCacheError as e:
        log(f"cache is corrupt, rebuilding: {e}")
        return None


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Hold `<folder>/.lock` so that parallel workers build a corpus once, then read it.

    A few lines of the standard `fcntl` (advisory, released when the process dies); where
    that does not exist (Windows) nothing is locked.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_idle_processes(workers: int) -> None:
    """Stop joblib's loky processes after a parallel corpus build.

    Loky keeps its processes 300 s for reuse, and a process waits for its children when it
    exits: a sweep worker that built its corpus would sit that long after its last trial.
    """
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(max_workers=workers).shutdown(wait=True)
