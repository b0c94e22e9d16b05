"""The handwriting corpus: IAM-OnDB from the user's folder, or synthetic Hershey-font lines.

`odyssey-data build|info|show handwriting` calls `build`, `info` and `show`; the task
(`odyssey.tasks.handwriting`) calls `load_corpus`. Both read `configs/task/handwriting.yaml`
with overrides. A built corpus is cached under `datasets/handwriting/` as raw (not yet
standardised) per-point features and label sequences, with a manifest naming its source,
configuration, character set, sizes and the ids and writers of every line.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError
from tqdm import tqdm

from ...config import load_group_config
from ...versions import package_versions
from ..cache import build_lock, cached, datasets_dir, load_manifest_safe, stop_idle_processes
from .ink import InkLine, check_subsample, feature_names, line_features

SPLITS = ("train", "valid", "test")
SOURCES = ("hershey", "iamondb")
# Hershey corpus sizes (the `size` option): writers per split and lines per writer.
# hershey.writers.<split> and hershey.lines_per_writer override them key by key. A writer's
# lines are seeded by (seed, split, index) alone, so a smaller size draws the first writers
# (and the first lines of each) of a larger one.
SIZES: dict[str, dict] = {
    "standard": {"writers": {"train": 100, "valid": 25, "test": 25}, "lines_per_writer": 30},
    "quick": {"writers": {"train": 20, "valid": 5, "test": 5}, "lines_per_writer": 10},
}
Corpus = dict[str, tuple[list[np.ndarray], list[np.ndarray], list[str]]]


def resolve(options: Mapping | DictConfig | None = None) -> DictConfig:
    """The task config: configs/task/handwriting.yaml with `options` merged over it.

    An option the config does not define is an error naming it (a typo must not pass).
    """
    base = load_group_config("task", "handwriting")
    OmegaConf.set_struct(base, True)
    try:
        cfg = OmegaConf.merge(base, options or {})
    except ConfigKeyError as e:
        key = e.full_key or e.key
        raise ValueError(f"handwriting task: unknown option {key!r} (not in "
                         f"{base_path()}); top-level options are "
                         f"{', '.join(str(k) for k in base)}") from e
    if cfg.source not in SOURCES:
        raise ValueError(f"handwriting: source {cfg.source!r} unknown; expected one of "
                         f"{', '.join(SOURCES)}")
    feature_names(cfg.feature)  # validates
    check_subsample(cfg.subsample)
    _resolve_size(cfg)
    return cfg


def _resolve_size(cfg: DictConfig) -> None:
    """Fill hershey.writers and hershey.lines_per_writer left null from the `size` preset
    (in place), so that the cache key holds the counts the corpus is built with."""
    if cfg.size not in SIZES:
        raise ValueError(f"handwriting: size={cfg.size!r}; expected one of "
                         f"{', '.join(SIZES)} (the hershey source's writers and lines)")
    preset, h = SIZES[cfg.size], cfg.hershey
    for name in SPLITS:
        if h.writers.get(name) is None:
            h.writers[name] = preset["writers"][name]
    if h.lines_per_writer is None:
        h.lines_per_writer = preset["lines_per_writer"]
    counts = {f"writers.{name}": h.writers[name] for name in SPLITS}
    counts["lines_per_writer"] = h.lines_per_writer
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"handwriting: hershey.{key} must be a positive integer (or "
                             f"null for size={cfg.size}'s), got {value!r}")


def base_path() -> Path:
    """The task's config file."""
    from ...config import CONFIG_DIR

    return CONFIG_DIR / "task" / "handwriting.yaml"


def _key_options(cfg: DictConfig) -> dict:
    """The options that determine the corpus's content (not how fast it is built)."""
    section = OmegaConf.to_container(cfg[cfg.source], resolve=True)
    section.pop("workers", None)
    for key in ("variation", "valid_fraction", "test_fraction"):  # 2 and 2.0: one corpus
        if isinstance(section.get(key), int | float) and not isinstance(section[key], bool):
            section[key] = float(section[key])
    if cfg.source == "iamondb":
        if not section.get("root"):
            raise ValueError("handwriting: source=iamondb needs iamondb.root, the folder of "
                             "the IAM-OnDB corpus (holding lineStrokes/ and ascii/)")
        section["root"] = str(Path(section["root"]).expanduser().resolve())
    else:
        from .hershey import GENERATOR_VERSION

        section["generator_version"] = GENERATOR_VERSION
    key = {"source": cfg.source, "feature": cfg.feature, cfg.source: section}
    if cfg.subsample != 1:  # absent from caches built before subsampling existed (all 1)
        key["subsample"] = int(cfg.subsample)
    return key


def cache_stem(cfg: DictConfig) -> Path:
    """datasets/handwriting/<source>-<hash of the content options>."""
    key = json.dumps(_key_options(cfg), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return datasets_dir() / "handwriting" / f"{cfg.source}-{digest}"


def labels(text: str, charset: str) -> np.ndarray:
    """CTC labels of a text: 1 + the index of each character in `charset` (0 is the blank)."""
    index = {c: k + 1 for k, c in enumerate(charset)}
    return np.array([index[c] for c in text], np.int16)


def ctc_min_length(label_seq: np.ndarray) -> int:
    """The fewest input steps CTC needs for a label sequence: its length plus its repeats."""
    return int(len(label_seq) + np.count_nonzero(label_seq[1:] == label_seq[:-1]))


def _pack(lines: dict[str, list[InkLine]], charset: str, feature: str, subsample: int
          ) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Features and labels per split; lines too short for CTC are dropped and counted."""
    arrays: dict[str, list[np.ndarray]] = {}
    splits: dict = {}
    for name in SPLITS:
        inputs, targets, ids, writers, dropped = [], [], [], [], []
        for line in lines[name]:
            x = line_features(line.strokes, feature, subsample)
            y = labels(line.text, charset)
            if len(y) == 0 or len(x) < ctc_min_length(y):
                dropped.append(line.id)
                continue
            inputs.append(x)
            targets.append(y)
            ids.append(line.id)
            writers.append(line.writer)
        if not inputs:
            raise ValueError(f"handwriting: split {name!r} has no usable line")
        arrays[f"{name}_inputs"], arrays[f"{name}_targets"] = inputs, targets
        splits[name] = {
            "lines": len(inputs), "points": int(sum(len(x) for x in inputs)),
            "characters": int(sum(len(y) for y in targets)),
            "writers": len(set(writers)), "dropped_lines": dropped,
            "ids": ids, "line_writers": writers,
        }
    return arrays, {"charset": charset, "features": list(feature_names(feature)),
                    "subsample": subsample, "splits": splits}


def _hershey_job(args: tuple) -> tuple[dict, list[InkLine]]:
    from .hershey import writer_lines

    writer, lines = writer_lines(*args)
    return writer.to_dict(), lines


def build_hershey(cfg: DictConfig) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Synthesise the Hershey corpus: writers in parallel, each seeded on its own."""
    from .hershey import FONTS, font_glyphs
    from .text import CHARSET, LineText

    h = cfg.hershey
    fonts = list(h.fonts)
    if not fonts:
        raise ValueError("hershey.fonts: name at least one font")
    for f in fonts:
        font_glyphs(f)  # fails early on an unknown font
    if any(f not in FONTS for f in fonts):
        print(f"note: hershey.fonts {fonts} includes fonts beyond the single-stroke "
              f"{', '.join(FONTS)}")
    LineText(int(h.min_chars), int(h.max_chars), h.word_list)  # fails early on bad options
    if not float(h.variation) >= 0:
        raise ValueError(f"hershey.variation must be >= 0, got {h.variation}")
    jobs = []
    for name in SPLITS:
        n = int(h.writers[name])
        if n < 1:
            raise ValueError(f"hershey.writers.{name} must be at least 1, got {n}")
        jobs += [(int(h.seed), name, k, fonts[k % len(fonts)], int(h.lines_per_writer),
                  int(h.min_chars), int(h.max_chars), h.word_list, float(h.variation))
                 for k in range(n)]
    if int(h.lines_per_writer) < 1:
        raise ValueError("hershey.lines_per_writer must be at least 1")
    workers = max(1, int(h.workers))
    lines: dict[str, list[InkLine]] = {name: [] for name in SPLITS}
    writers: dict[str, list[dict]] = {name: [] for name in SPLITS}
    # joblib's loky workers never re-run the caller's __main__ script (multiprocessing's
    # spawn does), so a build started from an unguarded script or a notebook is safe.
    results = (map(_hershey_job, jobs) if workers == 1 else
               Parallel(n_jobs=workers, return_as="generator", batch_size=2)(
                   delayed(_hershey_job)(job) for job in jobs))
    for job, (writer, wl) in tqdm(zip(jobs, results, strict=True), total=len(jobs),
                                  desc="handwriting: writers", unit="writer"):
        lines[job[1]] += wl
        writers[job[1]].append(writer)
    if workers > 1:
        stop_idle_processes(workers)
    arrays, manifest = _pack(lines, CHARSET, cfg.feature, int(cfg.subsample))
    manifest["writer_styles"] = writers
    manifest["versions"] = package_versions("Hershey-Fonts", "wordfreq", "numpy", python=False)
    return arrays, manifest


def build_iamondb(cfg: DictConfig) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Read IAM-OnDB from the user's folder; the character set is the corpus's own."""
    from .iamondb import read_corpus

    c = cfg.iamondb
    lines, report = read_corpus(
        c.root, split=c.split, lists=OmegaConf.to_container(c.lists, resolve=True),
        writers_file=c.writers_file, valid_fraction=float(c.valid_fraction),
        test_fraction=float(c.test_fraction), seed=int(c.seed), skip_bad=bool(c.skip_bad),
        progress=lambda it: tqdm(list(it), desc="iamondb: forms", unit="form"))
    charset = "".join(sorted({ch for name in SPLITS for line in lines[name]
                              for ch in line.text}))
    arrays, manifest = _pack(lines, charset, cfg.feature, int(cfg.subsample))
    manifest["reader"] = report
    manifest["versions"] = package_versions("numpy", python=False)
    return arrays, manifest


def _build_arrays(cfg: DictConfig) -> tuple[dict[str, list[np.ndarray]], dict]:
    start = time.time()
    arrays, manifest = (build_hershey if cfg.source == "hershey" else build_iamondb)(cfg)
    manifest.update({"task": "handwriting", "source": cfg.source,
                     "synthetic": cfg.source == "hershey", "options": _key_options(cfg),
                     "build_seconds": round(time.time() - start, 1)})
    return arrays, manifest


def load_corpus(options: Mapping | DictConfig | None = None, rebuild: bool = False
                ) -> tuple[Corpus, dict]:
    """(inputs, targets, ids) per split, building and caching the corpus when needed."""
    cfg = resolve(options)
    stem = cache_stem(cfg)
    with build_lock(stem.parent):  # parallel sweep workers build once, the others read
        arrays, manifest = cached(stem, lambda: _build_arrays(cfg), rebuild=rebuild)
        if manifest.get("options") != _key_options(cfg):  # a cache copied in by hand
            print(f"note: {stem.with_suffix('.json')} was built with other options "
                  f"({manifest.get('options')}); rebuilding")
            arrays, manifest = cached(stem, lambda: _build_arrays(cfg), rebuild=True)
    corpus = {name: (arrays[f"{name}_inputs"], arrays[f"{name}_targets"],
                     manifest["splits"][name]["ids"]) for name in SPLITS}
    return corpus, manifest


def build(cfg: DictConfig, rebuild: bool = False) -> Path:
    """Build (or find) the corpus; returns its manifest's path."""
    cfg = resolve(cfg)
    stem = cache_stem(cfg)
    load_corpus(cfg, rebuild=rebuild)
    return stem.with_suffix(".json")


def summary(manifest: dict) -> dict:
    """The manifest without its per-line lists, for people: key facts first."""
    out = {k: manifest.get(k) for k in ("task", "source", "synthetic")}
    out["characters"] = len(manifest["charset"])
    out["charset"] = manifest["charset"]
    out["features"] = manifest["features"]
    out["subsample"] = manifest.get("subsample", 1)
    out["splits"] = {}
    for name in SPLITS:
        s = manifest["splits"][name]
        row = {k: v for k, v in s.items() if k not in ("ids", "line_writers", "dropped_lines")}
        row["dropped_lines"] = len(s["dropped_lines"])
        row["mean_points_per_line"] = round(s["points"] / s["lines"], 1)
        row["mean_characters_per_line"] = round(s["characters"] / s["lines"], 1)
        out["splits"][name] = row
    if "reader" in manifest:
        reader = manifest["reader"]
        out["skipped_files"] = len(reader.get("skipped_files", []))
        out["missing_list_entries"] = {k: len(v) for k, v in
                                       reader.get("missing_list_entries", {}).items()}
    out["build_seconds"] = manifest.get("build_seconds")
    out["options"] = manifest.get("options")
    out["versions"] = manifest.get("versions")
    out["array_file"], out["sha256"] = manifest.get("array_file"), manifest.get("sha256")
    return out


def info(cfg: DictConfig) -> dict:
    """What the configured corpus is, from its manifest (or what a build would make)."""
    cfg = resolve(cfg)
    stem = cache_stem(cfg)
    manifest = load_manifest_safe(stem)
    if manifest is None:
        return {"task": "handwriting", "source": cfg.source, "built": False,
                "cache": str(stem.with_suffix(".json")),
                "hint": "run `odyssey-data build handwriting` first",
                "options": _key_options(cfg)}
    return {"built": True, "cache": str(stem.with_suffix(".json")), **summary(manifest)}


def show(cfg: DictConfig, n: int = 6, out: Path | None = None) -> Path:
    """Draw `n` training lines with their transcriptions to a PNG; returns its path."""
    from .plot import draw_samples

    cfg = resolve(cfg)
    corpus, manifest = load_corpus(cfg)
    out = Path(out) if out else cache_stem(cfg).parent / f"{cache_stem(cfg).name}-samples.png"
    return draw_samples(corpus, manifest, n, out)
