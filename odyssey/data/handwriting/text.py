"""Text lines for the synthetic handwriting corpus: English words with punctuation and digits.

Words come from the English frequency list of the `wordfreq` package (Apache-2.0; its data
ships inside the wheel, so nothing is downloaded) and are drawn with probability
proportional to frequency**alpha, so that common words and letter combinations dominate as
in running text. A machine's /usr/share/dict is not used by default: it differs between
machines, and the corpus must be the same wherever it is built. A user's own word list (one
word per line) can be named instead (`word_list`).
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path

import numpy as np

PUNCTUATION = ".,;:!?'\"-()"
#: every character the synthetic corpus can contain (the CTC labels are 1 + its index)
CHARSET = " " + string.digits + string.ascii_uppercase + string.ascii_lowercase + PUNCTUATION
WORD = re.compile(r"[A-Za-z]+(['-][A-Za-z]+)*")
PRONOUN_I = {"i", "i'm", "i've", "i'll", "i'd"}


@lru_cache(maxsize=4)
def load_words(word_list: str | None = None, size: int = 30000, alpha: float = 0.6
               ) -> tuple[tuple[str, ...], np.ndarray]:
    """Words and their sampling probabilities; from wordfreq, or a user's file (uniform)."""
    if word_list:
        path = Path(word_list).expanduser()
        try:
            raw = path.read_text(encoding="utf-8", errors="replace").split()
        except OSError as e:
            raise ValueError(f"hershey.word_list {path}: cannot read ({e})") from e
        words = sorted({w for w in raw if WORD.fullmatch(w)})
        if len(words) < 100:
            raise ValueError(f"hershey.word_list {path}: only {len(words)} usable words "
                             "(letters, apostrophes, hyphens); need at least 100")
        return tuple(words), np.full(len(words), 1.0 / len(words))
    import wordfreq

    words, freqs = [], []
    for w in wordfreq.top_n_list("en", size):
        if WORD.fullmatch(w):
            words.append(w)
            freqs.append(wordfreq.word_frequency(w, "en"))
    p = np.asarray(freqs, np.float64) ** alpha
    return tuple(words), p / p.sum()


class LineText:
    """Draws text lines of about `min_chars`..`max_chars` characters from a word list."""

    def __init__(self, min_chars: int = 12, max_chars: int = 40, word_list: str | None = None
                 ) -> None:
        if not 1 <= min_chars <= max_chars:
            raise ValueError(f"hershey line length: need 1 <= min_chars ({min_chars}) <= "
                             f"max_chars ({max_chars})")
        self.min_chars, self.max_chars = min_chars, max_chars
        self.words, p = load_words(word_list)
        self.cdf = np.cumsum(p)
        self.cdf /= self.cdf[-1]

    def draw(self, rng: np.random.Generator) -> str:
        """One word from the list, by its sampling probability."""
        return self.words[min(int(np.searchsorted(self.cdf, rng.random())), len(self.words) - 1)]

    def word(self, rng: np.random.Generator) -> str:
        """One token: a word (cased), sometimes a number, with the odd mark around it."""
        u = rng.random()
        if u < 0.03:
            w = str(rng.integers(1, 10 ** rng.integers(1, 5)))
        elif u < 0.04:
            w = str(rng.integers(1850, 2030))
        else:
            w = self.draw(rng)
            if w in PRONOUN_I:
                w = "I" + w[1:]
            elif rng.random() < 0.06:
                w = w.capitalize()
            elif rng.random() < 0.005:
                w = w.upper()
        v = rng.random()
        if v < 0.015:
            w = f'"{w}"'
        elif v < 0.025:
            w = f"({w})"
        elif v < 0.035:
            w = f"{w}-{self.draw(rng)}"
        return w

    def __call__(self, rng: np.random.Generator) -> str:
        """A line: words separated by single spaces, sentence case and punctuation."""
        budget = int(rng.integers(self.min_chars, self.max_chars + 1))
        out: list[str] = []
        sentence_start = rng.random() < 0.5
        length = 0
        while True:
            w = self.word(rng)
            if sentence_start and w[0].isalpha():
                w = w[0].upper() + w[1:]
            sentence_start = False
            u = rng.random()
            if u < 0.05:
                w += "."
                sentence_start = True
            elif u < 0.11:
                w += ","
            elif u < 0.12:
                w += rng.choice(list(";:"))
            elif u < 0.135:
                w += rng.choice(list("!?"))
                sentence_start = True
            extra = len(w) + (1 if out else 0)
            if out and length + extra > self.max_chars:
                break
            out.append(w[: self.max_chars])
            length += extra
            if length >= budget:
                break
        return " ".join(out)
