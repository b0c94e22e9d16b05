"""Phone inventories of the speech task and the standard 61 -> 39 folding.

TIMIT is labelled with 61 phones; results are usually reported after folding them to 39
classes (Lee & Hon 1989): the closures, pauses and epenthetic silence become "sil", a few
allophones merge and the glottal stop "q" is dropped. Flite's CMU phone set is a subset of
TIMIT's symbols ("pau" for silence), so the same folding applies to the synthetic corpus.
"""

from __future__ import annotations

import numpy as np

# The 61 TIMIT phones, in a fixed order (class index = position).
TIMIT61: tuple[str, ...] = (
    "aa", "ae", "ah", "ao", "aw", "ax", "ax-h", "axr", "ay", "b", "bcl", "ch", "d", "dcl",
    "dh", "dx", "eh", "el", "em", "en", "eng", "epi", "er", "ey", "f", "g", "gcl", "h#",
    "hh", "hv", "ih", "ix", "iy", "jh", "k", "kcl", "l", "m", "n", "ng", "nx", "ow", "oy",
    "p", "pau", "pcl", "q", "r", "s", "sh", "t", "tcl", "th", "uh", "uw", "ux", "v", "w",
    "y", "z", "zh",
)

# The phones flite's US English front end (CMU lexicon + letter-to-sound rules) emits in
# `-psdur` output: the 39 CMUdict phones, the reduced vowel "ax" and the pause "pau".
FLITE: tuple[str, ...] = (
    "aa", "ae", "ah", "ao", "aw", "ax", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f",
    "g", "hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "pau", "r", "s",
    "sh", "t", "th", "uh", "uw", "v", "w", "y", "z", "zh",
)

# Lee & Hon's folding; phones not named here map to themselves, "q" maps to nothing.
_FOLD: dict[str, str | None] = {
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l",
    "em": "m", "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    "pcl": "sil", "tcl": "sil", "kcl": "sil", "bcl": "sil", "dcl": "sil", "gcl": "sil",
    "h#": "sil", "pau": "sil", "epi": "sil", "q": None,
}

FOLDED39: tuple[str, ...] = tuple(sorted({_FOLD.get(p, p) for p in TIMIT61} - {None}))
assert len(TIMIT61) == 61 and len(FOLDED39) == 39 and set(FLITE) <= set(TIMIT61)


def fold39(phone: str) -> str | None:
    """The 39-class name of a TIMIT/flite phone (None for the dropped glottal stop "q")."""
    if phone not in TIMIT61:
        raise ValueError(f"unknown phone {phone!r}; expected one of the 61 TIMIT phones")
    return _FOLD.get(phone, phone)


def fold_table(inventory: tuple[str, ...]) -> np.ndarray:
    """Index map inventory -> FOLDED39 (int64); -1 where a phone is dropped ("q")."""
    out = np.full(len(inventory), -1, np.int64)
    for k, p in enumerate(inventory):
        f = fold39(p)
        if f is not None:
            out[k] = FOLDED39.index(f)
    return out


def inventory(source: str) -> tuple[str, ...]:
    """The phone classes of a corpus source ("timit" or "flite")."""
    if source == "timit":
        return TIMIT61
    if source == "flite":
        return FLITE
    raise ValueError(f"speech source {source!r}: expected 'flite' or 'timit'")
