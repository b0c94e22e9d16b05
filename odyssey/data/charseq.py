"""Character sequences for the tasks of Jozefowicz et al. (2015): generated arithmetic with
distractors, generated valid XML, and English text (a corpus shipped with Python, any plain
text file, or the Penn Treebank files for users who have them).

Each function is seeded and returns plain strings; odyssey.tasks.chars turns them into
next-character prediction tasks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

DIGITS = "0123456789"
DISTRACTORS = "abcdefghijk"
END = "."


def arith_example(rng: np.random.Generator, min_digits: int, max_digits: int,
                  distractors: float) -> tuple[str, int]:
    """One problem `<a><op><b>=<answer>.` with distractor letters inside a and b (each
    position followed by a letter with probability `distractors`); returns the string and
    the index of '=' (the answer follows it)."""
    def number() -> int:
        n = int(rng.integers(min_digits, max_digits + 1))
        return int(rng.integers(10 ** (n - 1) if n > 1 else 0, 10 ** n))

    def noisy(digits: str) -> str:
        out = []
        for d in digits:
            out.append(d)
            while rng.uniform() < distractors:
                out.append(DISTRACTORS[rng.integers(len(DISTRACTORS))])
        return "".join(out)

    a, b = number(), number()
    op = "+" if rng.uniform() < 0.5 else "-"
    answer = a + b if op == "+" else a - b
    question = f"{noisy(str(a))}{op}{noisy(str(b))}="
    return f"{question}{answer}{END}", len(question) - 1


def arith_split(n: int, seed: int, *, min_digits: int = 1, max_digits: int = 8,
                distractors: float = 0.3) -> list[tuple[str, int]]:
    """`n` problems from `seed` (see `arith_example`)."""
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"arith: need 1 <= min_digits <= max_digits, got {min_digits}, "
                         f"{max_digits}")
    if not 0.0 <= distractors < 1.0:
        raise ValueError(f"arith: distractors must lie in [0, 1), got {distractors}")
    rng = np.random.default_rng(seed)
    return [arith_example(rng, min_digits, max_digits, distractors) for _ in range(n)]


def xml_document(rng: np.random.Generator, max_depth: int, max_children: int,
                 max_length: int) -> str:
    """A valid XML fragment: nested elements with random tag names and lowercase text."""
    def name() -> str:
        return "".join(chr(97 + int(k)) for k in rng.integers(0, 26, rng.integers(1, 5)))

    def element(depth: int) -> str:
        tag = name()
        parts = [f"<{tag}>"]
        n = int(rng.integers(0, max_children + 1)) if depth < max_depth else 0
        for _ in range(n):
            if rng.uniform() < 0.3:
                parts.append(name())  # text
            else:
                parts.append(element(depth + 1))
        parts.append(f"</{tag}>")
        return "".join(parts)

    while True:
        doc = element(0)
        if len(doc) <= max_length:
            return doc


def xml_split(n: int, seed: int, *, max_depth: int = 4, max_children: int = 3,
              max_length: int = 120) -> list[str]:
    """`n` XML fragments from `seed`, each at most `max_length` characters."""
    if max_depth < 0 or max_children < 0 or max_length < 7:
        raise ValueError("xml: need max_depth >= 0, max_children >= 0, max_length >= 7")
    rng = np.random.default_rng(seed)
    return [xml_document(rng, max_depth, max_children, max_length) for _ in range(n)]


def pydoc_text() -> str:
    """The English prose that ships with CPython: the pydoc topics of the Python language
    reference (pydoc_data.topics, about 460,000 characters), in a fixed order."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))
    return re.sub(r"[ \t]+", " ", text)


PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}


def read_ptb(folder: str | Path) -> dict[str, list[str]]:
    """The Penn Treebank language-modelling files (Mikolov's ptb.{train,valid,test}.txt,
    one sentence per line, <unk> for rare words) as sentences per split."""
    folder = Path(folder).expanduser()
    out = {}
    for split, name in PTB_FILES.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"task lm: source=ptb needs {path} (path: the folder "
                                    f"holding {', '.join(PTB_FILES.values())})")
        lines = [" ".join(line.split()) for line in path.read_text().splitlines()]
        out[split] = [line for line in lines if line]
        if not out[split]:
            raise ValueError(f"{path}: no sentences")
    return out


def chunks(text: str, length: int) -> list[str]:
    """`text` cut into pieces of `length` characters (the last, shorter one kept)."""
    return [text[k:k + length] for k in range(0, len(text), length) if text[k:k + length]]
