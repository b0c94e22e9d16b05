"""The embedded speech corpus: utterances synthesised with Debian's `flite`.

A synthetic stand-in for TIMIT that builds offline. Each "speaker" is one of flite's
voices (kal and kal16 diphone voices, awb, rms and slt clustergen voices) with its own
speaking rate (`duration_stretch`) and mean pitch (`int_f0_target_mean`); the speakers
of the three splits are disjoint. Sentences are 5-12 words drawn from a word list
(Debian's `wamerican`). `flite -psdur` prints every phone's end time, so frame labels
are exact; the 8 kHz `kal` voice is resampled to 16 kHz (its spectrum ends at 4 kHz, like
telephone speech).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .features import SAMPLE_RATE, utterance_frames
from .phones import FLITE

INSTALL_HINT = "install it with: sudo apt-get install flite wamerican  (Debian/Ubuntu)"
VOICES: tuple[str, ...] = ("kal", "kal16", "awb", "rms", "slt")
# Mean-pitch ranges (Hz) a speaker of each voice is drawn from: the four male voices
# low, slt (female) high; speaking rate is drawn from RATE_RANGE for all.
F0_RANGES: dict[str, tuple[float, float]] = {
    "kal": (80.0, 150.0), "kal16": (80.0, 150.0), "awb": (80.0, 150.0),
    "rms": (80.0, 150.0), "slt": (150.0, 250.0),
}
RATE_RANGE = (0.8, 1.3)
WORDS_RANGE = (5, 12)
WORD_PATTERN = re.compile(r"(?=.*[aeiouy])[a-z]{3,8}")
# Read speech is about one third function words; drawing only from a dictionary would leave
# phones such as "dh" nearly unseen. A token is one of these with FUNCTION_SHARE chance.
FUNCTION_WORDS: tuple[str, ...] = (
    "the", "of", "and", "a", "to", "in", "is", "that", "it", "was", "for", "on", "are",
    "as", "with", "his", "they", "at", "be", "this", "from", "have", "or", "by", "one",
    "had", "not", "but", "what", "all", "were", "when", "we", "there", "can", "an", "your",
    "which", "their", "if", "do", "will", "each", "about", "how", "up", "out", "them",
    "then", "she", "many", "some", "so", "these", "would", "other", "into", "has", "more",
    "her", "two", "like", "him", "see", "time", "could", "no", "make", "than", "first",
)
FUNCTION_SHARE = 0.3
DITHER = 1.0  # std of the Gaussian dither (16-bit sample units): synthetic silence is
# exactly zero, which real recordings never are; it keeps log energies finite.


CORPUS_VERSION = 1  # bump when the same options would synthesise different utterances


class FliteError(RuntimeError):
    """flite is missing, lacks a voice, or produced output that cannot be read."""


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: a flite voice with its own rate and mean pitch."""

    name: str
    voice: str
    duration_stretch: float
    f0_mean: float


def flite_binary() -> str:
    """Path of the flite program, or a FliteError saying how to install it."""
    path = shutil.which("flite")
    if path is None:
        raise FliteError(f"the speech task's embedded corpus needs the `flite` program; "
                         f"{INSTALL_HINT}, or `make system-deps` as root; or use "
                         "source=timit path=/your/TIMIT")
    return path


def flite_version() -> str:
    """flite's version (for manifests), e.g. "flite-2.2-current Sep 2018"."""
    out = subprocess.run([flite_binary(), "--version"], capture_output=True, text=True,
                         timeout=30)
    m = re.search(r"version:\s*(.+?)\s*(\(|$)", out.stdout + out.stderr, re.MULTILINE)
    return m.group(1) if m else "unknown"


def flite_voices() -> list[str]:
    """The voices this flite has built in (`flite -lv`)."""
    out = subprocess.run([flite_binary(), "-lv"], capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    return text.split(":", 1)[1].split() if ":" in text else text.split()


def check_voices(voices: list[str]) -> None:
    """Raise FliteError naming any requested voice this flite lacks."""
    have = set(flite_voices())
    missing = [v for v in voices if v not in have]
    if missing:
        raise FliteError(f"flite lacks voice(s) {missing} (it has: {sorted(have)}); "
                         f"set `voices` to a subset of those")


def load_words(path: str | Path) -> list[str]:
    """Content words of a word list: lower-case a-z, 3-8 letters with a vowel.

    Names, possessives and the plural or third-person form of another listed word are left
    out (the latter would flood the corpus with final "s" and "z").
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"word list {p} not found; {INSTALL_HINT}, or set "
                                "words=/path/to/a/list (one word per line)")
    found = {w for w in p.read_text(errors="replace").split() if WORD_PATTERN.fullmatch(w)}
    words = sorted(w for w in found
                   if not (w.endswith("s") and (w[:-1] in found or w[:-2] in found)))
    if len(words) < 100:
        raise ValueError(f"word list {p}: only {len(words)} usable words (lower-case a-z, "
                         "3-8 letters); need at least 100")
    return words


def make_speakers(counts: dict[str, int], voices: list[str],
                  rng: np.random.Generator) -> dict[str, list[Speaker]]:
    """Disjoint speakers per split; voices cycle (from a random start) through each split."""
    out: dict[str, list[Speaker]] = {}
    for split, n in counts.items():
        if n < 1:
            raise ValueError(f"speakers.{split} must be >= 1, got {n}")
        speakers = []
        order = [voices[int(k)] for k in rng.permutation(len(voices))]
        for k in range(n):
            voice = order[k % len(order)]
            lo, hi = F0_RANGES.get(voice, (90.0, 200.0))
            speakers.append(Speaker(f"{split}{k:03d}-{voice}", voice,
                                    round(float(rng.uniform(*RATE_RANGE)), 3),
                                    round(float(rng.uniform(lo, hi)), 1)))
        out[split] = speakers
    return out


def make_sentences(n: int, words: list[str], rng: np.random.Generator) -> list[str]:
    """`n` sentences of 5-12 words: function words (FUNCTION_SHARE) and list words."""
    lengths = rng.integers(WORDS_RANGE[0], WORDS_RANGE[1] + 1, size=n)
    out = []
    for k in lengths:
        func = rng.random(k) < FUNCTION_SHARE
        fw = rng.integers(0, len(FUNCTION_WORDS), size=k)
        cw = rng.integers(0, len(words), size=k)
        out.append(" ".join(FUNCTION_WORDS[fw[i]] if func[i] else words[cw[i]]
                            for i in range(k)))
    return out


def parse_psdur(text: str, context: str) -> tuple[list[str], np.ndarray]:
    """Phones and end times (s) from flite's `-psdur` output ("ph:end ph:end ...")."""
    phones, ends = [], []
    for tok in text.split():
        name, _, end = tok.rpartition(":")
        try:
            ends.append(float(end))
        except ValueError as e:
            raise FliteError(f"{context}: unreadable -psdur token {tok!r}") from e
        phones.append(name)
    if not phones:
        raise FliteError(f"{context}: flite printed no phone durations")
    unknown = sorted(set(phones) - set(FLITE))
    if unknown:
        raise FliteError(f"{context}: flite produced phone(s) {unknown} outside the "
                         f"inventory {FLITE}")
    return phones, np.asarray(ends)


def synthesize(speaker: Speaker, text: str, workdir: Path) -> tuple[np.ndarray, list[str],
                                                                    np.ndarray]:
    """16 kHz samples, phones and phone end times of `text` spoken by `speaker`."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    wav = workdir / "utt.wav"
    cmd = [flite_binary(), "-voice", speaker.voice,
           "--setf", f"duration_stretch={speaker.duration_stretch}",
           "--setf", f"int_f0_target_mean={speaker.f0_mean}",
           "-psdur", "-t", text, "-o", str(wav)]
    context = f"flite voice {speaker.voice} ({speaker.name}), text {text!r}"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    except subprocess.CalledProcessError as e:
        raise FliteError(f"{context}: flite failed ({e.returncode}): {e.stderr.strip()}") from e
    phones, ends = parse_psdur(out.stdout, context)
    rate, data = wavfile.read(wav)
    if data.ndim != 1:
        raise FliteError(f"{context}: expected mono audio, got shape {data.shape}")
    x = data.astype(np.float64)
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g)
    return x, phones, ends


def synthesize_job(job: tuple[str, dict, str, int]) -> tuple[str, np.ndarray, np.ndarray]:
    """Worker: (utterance id, speaker fields, text, seed) -> (id, features, labels)."""
    utt_id, speaker_fields, text, seed = job
    speaker = Speaker(**speaker_fields)
    index = {p: k for k, p in enumerate(FLITE)}
    with tempfile.TemporaryDirectory(prefix="odyssey-flite-") as tmp:
        x, phones, ends = synthesize(speaker, text, Path(tmp))
    x = x + np.random.default_rng(seed).normal(0.0, DITHER, size=x.shape)
    labels = np.array([index[p] for p in phones], np.int16)
    feats, y = utterance_frames(x, SAMPLE_RATE, ends, labels)
    return utt_id, feats, y


def plan(utterances: dict[str, int], speakers: dict[str, int], voices: list[str],
         words: list[str], seed: int) -> tuple[dict[str, list[Speaker]],
                                               dict[str, list[tuple[str, dict, str, int]]]]:
    """Speakers and synthesis jobs per split, all drawn from `seed` (deterministic)."""
    rng = np.random.default_rng(seed)
    spk = make_speakers(speakers, voices, rng)
    jobs: dict[str, list[tuple[str, dict, str, int]]] = {}
    for split, n in utterances.items():
        if n < 1:
            raise ValueError(f"utterances.{split} must be >= 1, got {n}")
        sentences = make_sentences(n, words, rng)
        seeds = rng.integers(0, 2**31 - 1, size=n)
        members = spk[split]
        jobs[split] = [(f"{members[k % len(members)].name}_u{k:05d}",
                        asdict(members[k % len(members)]), sentences[k], int(seeds[k]))
                       for k in range(n)]
    return spk, jobs


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
