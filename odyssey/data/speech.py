"""The speech corpus: built from TIMIT or synthesised with flite, cached with a manifest.

`odyssey-data build speech [key=value ...]` and `odyssey-data info speech` use `build` and
`info` below; the task (`odyssey.tasks.speech`) uses `load_corpus`. Options are the keys of
`configs/task/speech.yaml`; features and labels are described in `odyssey.data.features`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ..versions import package_versions
from . import features, flite, timit
from .cache import build_lock, cached, datasets_dir, load_manifest_safe
from .missing import OPTIONS as MISSING_OPTIONS
from .phones import inventory

SPLITS = ("train", "valid", "test")
# flite corpus sizes: utterances and speakers per split.
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "small": {"utterances": {"train": 1000, "valid": 200, "test": 200},
              "speakers": {"train": 40, "valid": 10, "test": 10}},
    # experiment=quick's (configs/experiment_task/quick_speech.yaml): trials cheap enough
    # for 30+ per cell in `make reproduce`'s budget
    "quick": {"utterances": {"train": 200, "valid": 50, "test": 50},
              "speakers": {"train": 20, "valid": 5, "test": 5}},
    "timit": {"utterances": dict(timit.FULL_SIZES),
              "speakers": {"train": 462, "valid": 50, "test": 24}},
}
OPTION_KEYS = ("source", "path", "size", "utterances", "speakers", "voices", "words", "seed",
               "fold39", "workers")


@dataclass
class SpeechOptions:
    """The speech config, checked; `utterances`/`speakers` resolved from `size`."""

    source: str = "flite"
    path: str | None = None
    size: str = "small"
    utterances: dict[str, int] = field(default_factory=dict)
    speakers: dict[str, int] = field(default_factory=dict)
    voices: list[str] = field(default_factory=lambda: list(flite.VOICES))
    words: str = "/usr/share/dict/words"
    seed: int = 0
    fold39: bool = False
    workers: int | None = None

    def cache_key(self) -> dict:
        """What the built corpus depends on (not fold39 or workers)."""
        key: dict = {"source": self.source, "features_version": features.FEATURES_VERSION}
        if self.source == "timit":
            key["path"] = str(Path(self.path or "").expanduser().resolve())
        else:
            key.update(corpus_version=flite.CORPUS_VERSION, utterances=self.utterances,
                       speakers=self.speakers, voices=self.voices, words=str(self.words),
                       seed=self.seed)
        return key

    def stem(self) -> Path:
        """Cache location: datasets/speech/<source>-<label>-<hash of the key>."""
        digest = hashlib.sha256(json.dumps(self.cache_key(), sort_keys=True).encode())
        label = "timit" if self.source == "timit" else f"flite-{self.size}"
        return datasets_dir() / "speech" / f"{label}-{digest.hexdigest()[:10]}"


def _split_counts(value, name: str, default: dict[str, int]) -> dict[str, int]:
    out = dict(default)
    for k, v in (value or {}).items():
        if k not in SPLITS:
            raise ValueError(f"speech config: {name}.{k} is not a split (expected "
                             f"{', '.join(SPLITS)})")
        if v is not None:
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"speech config: {name}.{k} must be a positive integer, "
                                 f"got {v!r}")
            out[k] = v
    return out


def speech_options(cfg: DictConfig | dict | None = None, **overrides) -> SpeechOptions:
    """Check a speech config (a DictConfig, a dict or keywords) and resolve its sizes."""
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else \
        dict(cfg or {})
    raw.update(overrides)
    for key in ("name", *MISSING_OPTIONS):  # the missing-data options act on the loaded task
        raw.pop(key, None)
    unknown = sorted(set(raw) - set(OPTION_KEYS))
    if unknown:
        raise ValueError(f"speech config: unknown key(s) {unknown}; expected some of "
                         f"{', '.join(OPTION_KEYS)}")
    source = raw.get("source", "flite")
    if source not in ("flite", "timit"):
        raise ValueError(f"speech config: source={source!r}; expected 'flite' (embedded, "
                         "synthetic) or 'timit' (with path=/your/TIMIT)")
    if source == "timit" and not raw.get("path"):
        raise ValueError("speech config: source=timit needs path=/folder/holding/TRAIN+TEST")
    size = raw.get("size", "small")
    if size not in SIZES:
        raise ValueError(f"speech config: size={size!r}; expected one of {', '.join(SIZES)}")
    voices = list(raw.get("voices") or flite.VOICES)
    if not voices:
        raise ValueError("speech config: voices must name at least one flite voice")
    workers = raw.get("workers")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"speech config: workers must be a positive integer or null, "
                         f"got {workers!r}")
    utterances = _split_counts(raw.get("utterances"), "utterances", SIZES[size]["utterances"])
    speakers = _split_counts(raw.get("speakers"), "speakers", SIZES[size]["speakers"])
    for s in SPLITS:
        if source == "flite" and speakers[s] > utterances[s]:
            raise ValueError(f"speech config: speakers.{s}={speakers[s]} exceeds "
                             f"utterances.{s}={utterances[s]} (every speaker needs one)")
    return SpeechOptions(
        source=source, path=raw.get("path"), size=size, utterances=utterances,
        speakers=speakers,
        voices=voices, words=str(raw.get("words") or "/usr/share/dict/words"),
        seed=int(raw.get("seed", 0)), fold39=bool(raw.get("fold39", False)), workers=workers)


# -- building --------------------------------------------------------------------------------
def _map(func: Callable, jobs: list, workers: int, desc: str) -> Iterable:
    """`func` over `jobs` in order, on `workers` threads, with a progress bar.

    Threads, not processes: the work is mostly waiting for the `flite` program or NumPy,
    both outside the GIL, and threads need no re-import of the caller's script (a
    spawned process would run an unguarded script again) nor a fork of a process that
    holds torch's thread pool.
    """
    bar = dict(total=len(jobs), desc=desc, unit="utt", file=sys.stderr, mininterval=1.0)
    if workers <= 1 or len(jobs) < 4:
        yield from tqdm(map(func, jobs), **bar)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from tqdm(pool.map(func, jobs), **bar)


def _timit_job(job: tuple[str, str, str]) -> tuple[str, np.ndarray, np.ndarray]:
    """Worker: (utterance id, .WAV path, .PHN path) -> (id, features, labels)."""
    utt_id, wav, phn = job
    x, rate = timit.read_wav(Path(wav))
    if rate != features.SAMPLE_RATE:
        raise timit.TimitFormatError(f"{wav}: sample rate {rate} Hz, expected "
                                     f"{features.SAMPLE_RATE}")
    segments = timit.read_phn(Path(phn))
    index = {p: k for k, p in enumerate(inventory("timit"))}
    ends = np.array([end for _, end, _ in segments], np.float64) / rate
    labels = np.array([index[p] for _, _, p in segments], np.int16)
    try:
        feats, y = features.utterance_frames(x, rate, ends, labels)
    except ValueError as e:
        raise timit.TimitFormatError(f"{wav} / {phn}: {e}") from e
    return utt_id, feats, y


def _build(opts: SpeechOptions, log: Callable[[str], None]) -> tuple[dict, dict]:
    """Read or synthesise every utterance; arrays and manifest for the cache."""
    t0 = time.time()
    workers = opts.workers or flite.default_workers()
    extra: dict = {}
    versions = package_versions("numpy", "python_speech_features", "scipy")
    if opts.source == "timit":
        split_utts = timit.list_utterances(opts.path)
        jobs = {s: [(u.id, str(u.wav), str(u.phn)) for u in split_utts[s]] for s in SPLITS}
        speakers = {s: sorted({u.speaker for u in split_utts[s]}) for s in SPLITS}
        func: Callable = _timit_job
        complete = all(len(jobs[s]) == timit.FULL_SIZES[s] for s in SPLITS)
        extra["complete_corpus"] = complete
        if not complete:
            log("warning: this TIMIT tree gives " + ", ".join(
                f"{s} {len(jobs[s])}" for s in SPLITS) + " utterances; the full corpus gives "
                + ", ".join(f"{s} {n}" for s, n in timit.FULL_SIZES.items()))
        desc = "TIMIT features"
    else:
        flite.flite_binary()
        flite.check_voices(opts.voices)
        words = flite.load_words(opts.words)
        spk, jobs = flite.plan(opts.utterances, opts.speakers, opts.voices, words, opts.seed)
        speakers = {s: [p.name for p in spk[s]] for s in SPLITS}
        extra["speaker_settings"] = {s: [asdict(p) for p in spk[s]] for s in SPLITS}
        extra["word_list"] = {"path": str(opts.words), "usable_words": len(words)}
        extra["texts"] = {s: [j[2] for j in jobs[s]] for s in SPLITS}
        versions["flite"] = flite.flite_version()
        func = flite.synthesize_job
        desc = "flite synthesis"
    log(f"building the speech corpus ({opts.source}) on {workers} thread(s)")
    flat = [j for s in SPLITS for j in jobs[s]]
    results = list(_map(func, flat, workers, desc))
    arrays: dict[str, list[np.ndarray]] = {}
    names = inventory(opts.source)
    manifest: dict = {"task": "speech", "source": opts.source, "options": opts.cache_key(),
                      "inventory": list(names), "features": features.DESCRIPTION,
                      "input_size": features.N_FEATURES, "frame_hop_s": features.HOP_S,
                      "splits": {}, "phone_frames": {}, "speakers": speakers}
    start = 0
    for s in SPLITS:
        part = results[start:start + len(jobs[s])]
        start += len(jobs[s])
        arrays[f"{s}_x"] = [r[1] for r in part]
        arrays[f"{s}_y"] = [r[2] for r in part]
        counts = np.bincount(np.concatenate(arrays[f"{s}_y"]), minlength=len(names))
        manifest["splits"][s] = {"utterances": len(part),
                                 "frames": int(sum(len(r[2]) for r in part)),
                                 "speakers": len(speakers[s]), "ids": [r[0] for r in part]}
        manifest["phone_frames"][s] = {p: int(c) for p, c in zip(names, counts, strict=True)}
    manifest.update(extra, build_seconds=round(time.time() - t0, 1), workers=workers,
                    versions=versions, created=datetime.now(UTC).isoformat(timespec="seconds"))
    log(f"built in {manifest['build_seconds']} s: " + ", ".join(
        f"{s} {manifest['splits'][s]['utterances']} utt / {manifest['splits'][s]['frames']} "
        "frames" for s in SPLITS))
    return arrays, manifest


def load_corpus(opts: SpeechOptions, rebuild: bool = False,
                log: Callable[[str], None] = print) -> tuple[dict[str, list[np.ndarray]], dict]:
    """The corpus of `opts` (arrays `<split>_x`, `<split>_y`) and its manifest, cached.

    Parallel sweep workers wait on a lock, so that one of them builds and the others read.
    """
    stem = opts.stem()
    with build_lock(stem.parent):
        return cached(stem, lambda: _build(opts, log), rebuild=rebuild, log=log)


# -- odyssey-data ----------------------------------------------------------------------------
def build(cfg: DictConfig, rebuild: bool = False) -> Path:
    """Build (or find cached) the corpus of `cfg`; the manifest's path."""
    opts = speech_options(cfg)
    load_corpus(opts, rebuild=rebuild)
    return opts.stem().with_suffix(".json")


def summary(manifest: dict, top: int | None = None) -> dict:
    """Counts, speakers and phone frequencies of a built corpus, for people."""
    names = manifest["inventory"]
    train = np.array([manifest["phone_frames"]["train"][p] for p in names], np.float64)
    order = np.argsort(-train, kind="stable")
    majority = names[int(order[0])]
    out: dict = {"source": manifest["source"], "features": manifest["features"],
                 "build_seconds": manifest.get("build_seconds")}
    for s in SPLITS:
        info = manifest["splits"][s]
        frames = manifest["phone_frames"][s]
        out[s] = {"utterances": info["utterances"], "frames": info["frames"],
                  "hours": round(info["frames"] * manifest["frame_hop_s"] / 3600, 3),
                  "speakers": info["speakers"],
                  "majority_class_error": round(1 - frames[majority] / max(info["frames"], 1),
                                                4)}
    out["speakers"] = manifest["speakers"]
    used = [names[k] for k in order if train[k] > 0]
    out["phone_inventory"] = {
        "classes": len(names), "seen_in_train": len(used), "majority_class": majority,
        "train_frame_fraction": {names[k]: round(float(train[k] / train.sum()), 4)
                                 for k in order[:top]},
    }
    return out


def info(cfg: DictConfig) -> dict:
    """What `odyssey-data info speech` prints; the corpus must have been built."""
    opts = speech_options(cfg)
    if load_manifest_safe(opts.stem()) is None:
        raise RuntimeError(f"speech corpus not built ({opts.stem().with_suffix('.json')} "
                           "missing); run: odyssey-data build speech, with the same "
                           "key=value options")
    _, manifest = load_corpus(opts)
    return {"cache": str(opts.stem().with_suffix(".npz")), **summary(manifest)}


def show(cfg: DictConfig, n: int = 4, out: Path | None = None) -> Path:
    """Draw `n` training utterances: static features against time, phone labels on top."""
    # (rows standardised per utterance for display; the cache holds the raw features)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opts = speech_options(cfg)
    arrays, manifest = load_corpus(opts)
    names = manifest["inventory"]
    n = max(1, min(n, len(arrays["train_x"])))
    fig, axes = plt.subplots(n, 1, figsize=(12, 2.4 * n), squeeze=False)
    for ax, x, y, utt in zip(axes[:, 0], arrays["train_x"][:n], arrays["train_y"][:n],
                             manifest["splits"]["train"]["ids"], strict=False):
        t_end = len(x) * features.HOP_S
        static = x[:, :13]  # each row standardised on its own: energy and cepstra differ
        static = (static - static.mean(0)) / np.maximum(static.std(0), 1e-6)
        image = ax.imshow(static.T, aspect="auto", origin="lower", cmap="viridis",
                          interpolation="nearest", extent=(0, t_end, -0.5, 12.5),
                          vmin=-3, vmax=3)
        bounds = np.flatnonzero(np.diff(y)) + 1
        for b in bounds:
            ax.axvline(b * features.HOP_S, color="white", lw=0.5, alpha=0.7)
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(y)]])
        for a, b in zip(starts, ends, strict=True):
            ax.text((a + b) / 2 * features.HOP_S, 12.9, names[y[a]], ha="center",
                    va="bottom", fontsize=6, clip_on=True)
        ax.set_ylim(-0.5, 14)
        ax.set_yticks([0, 4, 8, 12], ["log E", "c4", "c8", "c12"])
        ax.set_title(utt, fontsize=9, loc="left")
        ax.set_ylabel("feature")
        fig.colorbar(image, ax=ax, pad=0.01, label="z-score")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    out = Path(out) if out else opts.stem().with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
