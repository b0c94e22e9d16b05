"""The spoken-word corpus: single words synthesised with flite, one label per utterance.

The clockwork RNN's own test was spoken-word classification (Koutník et al. 2014). Each
split has its own synthetic speakers (a flite voice, a speaking rate and a mean pitch,
`odyssey.data.flite`); every speaker says every word of the vocabulary `repeats` times, each
time at a speaking rate scaled by a factor drawn from REPEAT_RATE, so a word comes in
several voices and rates. Features are the speech task's 39 MFCC-based features per 10 ms
frame (`odyssey.data.features`). The corpus is cached in datasets/words/ like the speech
corpus (`odyssey-data build words`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..versions import package_versions
from . import features, flite
from .cache import build_lock, cached, datasets_dir, load_manifest_safe

SPLITS = ("train", "valid", "test")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
REPEAT_RATE = (0.85, 1.15)  # a repetition's speaking rate, relative to its speaker's
CORPUS_VERSION = 1  # bump when the same options would synthesise different utterances
OPTION_KEYS = ("vocabulary", "speakers", "repeats", "voices", "seed", "workers")
TASK_KEYS = ("bidirectional", "standardize")  # the task's options, not the corpus's


@dataclass
class WordsOptions:
    """The words config (configs/task/words.yaml), checked."""

    vocabulary: list[str] = field(default_factory=lambda: list(DIGITS))
    speakers: dict[str, int] = field(
        default_factory=lambda: {"train": 20, "valid": 5, "test": 5})
    repeats: int = 2
    voices: list[str] = field(default_factory=lambda: list(flite.VOICES))
    seed: int = 0
    workers: int | None = None

    def cache_key(self) -> dict:
        """What the built corpus depends on (not the worker count)."""
        return {"corpus_version": CORPUS_VERSION, "features_version": features.FEATURES_VERSION,
                "vocabulary": self.vocabulary, "speakers": self.speakers,
                "repeats": self.repeats, "voices": self.voices, "seed": self.seed}

    def stem(self) -> Path:
        """Cache location: datasets/words/flite-<hash of the key>."""
        digest = hashlib.sha256(json.dumps(self.cache_key(), sort_keys=True).encode())
        return datasets_dir() / "words" / f"flite-{digest.hexdigest()[:10]}"


def words_options(cfg: DictConfig | Mapping[str, Any] | None = None) -> WordsOptions:
    """Check a words config; an unknown key or bad value is an error naming the key."""
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else \
        dict(cfg or {})
    for key in ("name", *TASK_KEYS):
        raw.pop(key, None)
    unknown = sorted(set(raw) - set(OPTION_KEYS))
    if unknown:
        raise ValueError(f"words config: unknown key(s) {unknown}; expected some of "
                         f"{', '.join(OPTION_KEYS)}")
    opts = WordsOptions()
    vocabulary = list(raw.get("vocabulary") or opts.vocabulary)
    if len(vocabulary) < 2 or len(set(vocabulary)) != len(vocabulary) or not all(
            isinstance(w, str) and w.isalpha() for w in vocabulary):
        raise ValueError(f"words config: vocabulary must be at least two distinct words of "
                         f"letters, got {vocabulary!r}")
    speakers = dict(opts.speakers)
    given = raw.get("speakers") or {}
    if not isinstance(given, Mapping) or set(given) - set(SPLITS):
        raise ValueError(f"words config: speakers must map {', '.join(SPLITS)} to counts, "
                         f"got {given!r}")
    speakers.update({k: v for k, v in given.items() if v is not None})
    for key, value in [*((f"speakers.{s}", speakers[s]) for s in SPLITS),
                       ("repeats", raw.get("repeats", opts.repeats)),
                       ("seed", raw.get("seed", opts.seed))]:
        low = 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"words config: {key} must be an integer >= {low}, got {value!r}")
    voices = list(raw.get("voices") or opts.voices)
    workers = raw.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"words config: workers must be a positive integer or null, got "
                         f"{workers!r}")
    return WordsOptions(vocabulary=[w.lower() for w in vocabulary], speakers=speakers,
                        repeats=int(raw.get("repeats", opts.repeats)), voices=voices,
                        seed=int(raw.get("seed", opts.seed)), workers=workers)


def plan(opts: WordsOptions) -> tuple[dict[str, list[flite.Speaker]], dict[str, list[tuple]]]:
    """Speakers and synthesis jobs (id, speaker fields, word, label, seed) per split."""
    rng = np.random.default_rng(opts.seed)
    speakers = flite.make_speakers(opts.speakers, opts.voices, rng)
    jobs: dict[str, list[tuple]] = {}
    for split in SPLITS:
        jobs[split] = []
        for speaker in speakers[split]:
            for label, word in enumerate(opts.vocabulary):
                for r in range(opts.repeats):
                    stretch = speaker.duration_stretch * float(rng.uniform(*REPEAT_RATE))
                    said = replace(speaker, duration_stretch=round(stretch, 3))
                    jobs[split].append((f"{speaker.name}_{word}{r}", asdict(said), word, label,
                                        int(rng.integers(0, 2**31 - 1))))
    return speakers, jobs


def synthesize_job(job: tuple) -> tuple[str, np.ndarray, int]:
    """Worker: (id, speaker fields, word, label, seed) -> (id, features (T, 39), label)."""
    utt_id, speaker_fields, word, label, seed = job
    with tempfile.TemporaryDirectory(prefix="odyssey-words-") as tmp:
        x, _, ends = flite.synthesize(flite.Speaker(**speaker_fields), word, Path(tmp))
    x = x + np.random.default_rng(seed).normal(0.0, flite.DITHER, size=x.shape)
    # the word's whole audio: one segment ending where flite's last phone ends
    feats, _ = features.utterance_frames(x, features.SAMPLE_RATE, ends[-1:],
                                         np.zeros(1, np.int16))
    return utt_id, feats, label


def _build(opts: WordsOptions, log: Callable[[str], None]) -> tuple[dict, dict]:
    from .speech import _map  # the speech corpus's threaded map with a progress bar

    t0 = time.time()
    flite.flite_binary()
    flite.check_voices(opts.voices)
    workers = opts.workers or flite.default_workers()
    speakers, jobs = plan(opts)
    log(f"building the words corpus ({len(opts.vocabulary)} words) on {workers} thread(s)")
    flat = [j for s in SPLITS for j in jobs[s]]
    results = list(_map(synthesize_job, flat, workers, "flite words"))
    arrays: dict[str, list[np.ndarray]] = {}
    manifest: dict = {"task": "words", "source": "flite", "options": opts.cache_key(),
                      "vocabulary": opts.vocabulary, "features": features.DESCRIPTION,
                      "input_size": features.N_FEATURES, "frame_hop_s": features.HOP_S,
                      "splits": {}, "synthetic": True,
                      "speaker_settings": {s: [asdict(p) for p in speakers[s]] for s in SPLITS}}
    start = 0
    for s in SPLITS:
        part = results[start:start + len(jobs[s])]
        start += len(jobs[s])
        arrays[f"{s}_x"] = [r[1] for r in part]
        arrays[f"{s}_y"] = [np.array([r[2]], np.int64) for r in part]
        manifest["splits"][s] = {"utterances": len(part),
                                 "frames": int(sum(len(r[1]) for r in part)),
                                 "speakers": len(speakers[s]), "ids": [r[0] for r in part]}
    manifest.update(build_seconds=round(time.time() - t0, 1), workers=workers,
                    versions={**package_versions("numpy", "python_speech_features", "scipy"),
                              "flite": flite.flite_version()},
                    created=datetime.now(UTC).isoformat(timespec="seconds"))
    log(f"built in {manifest['build_seconds']} s: " + ", ".join(
        f"{s} {manifest['splits'][s]['utterances']} words" for s in SPLITS))
    return arrays, manifest


def load_corpus(opts: WordsOptions, rebuild: bool = False,
                log: Callable[[str], None] = print) -> tuple[dict[str, list[np.ndarray]], dict]:
    """The corpus of `opts` (arrays `<split>_x`, `<split>_y`) and its manifest, cached."""
    stem = opts.stem()
    with build_lock(stem.parent):
        return cached(stem, lambda: _build(opts, log), rebuild=rebuild, log=log)


# -- odyssey-data ----------------------------------------------------------------------------
def build(cfg: DictConfig, rebuild: bool = False) -> Path:
    """Build (or find cached) the corpus of `cfg`; the manifest's path."""
    opts = words_options(cfg)
    load_corpus(opts, rebuild=rebuild)
    return opts.stem().with_suffix(".json")


def info(cfg: DictConfig) -> dict:
    """What `odyssey-data info words` prints: counts per split, or that it is not built."""
    opts = words_options(cfg)
    manifest = load_manifest_safe(opts.stem())
    if manifest is None:
        return {"task": "words", "built": False, "cache": str(opts.stem()),
                "hint": "odyssey-data build words"}
    return {"task": "words", "built": True, "cache": str(opts.stem()),
            "vocabulary": manifest["vocabulary"],
            **{s: {k: v for k, v in manifest["splits"][s].items() if k != "ids"}
               for s in SPLITS if s in manifest["splits"]}}
