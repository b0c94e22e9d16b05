"""Next-character tasks of Jozefowicz et al. (2015): `arith`, `xml` and `lm`.

Inputs are one-hot characters; at step t the network predicts character t + 1 (softmax,
cross-entropy). `arith` scores only the answer (the characters after '=', and the end
mark), `xml` and `lm` every character. Metrics: arith and xml the character error
(`error`, lower is better; `accuracy` = 1 - error beside it), lm the cross-entropy in nats
per character (`nll`; perplexity = exp(nll)). One unidirectional layer, like music.
"""

from __future__ import annotations

import math
import platform
from collections import Counter
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from ..data import charseq
from .base import SPLITS, Batch, FramewiseTask, KernelLoss, SequenceSet

IGNORE = -1  # target of a step that is not scored


class CharTask(FramewiseTask):
    """Next-character prediction over a fixed alphabet; targets IGNORE where not scored."""

    name = "chars"
    bidirectional = False
    metric = "error"
    metric_label = "character error"
    loss_key = "cross_entropy"
    kernel_loss = KernelLoss("cross_entropy", IGNORE)

    def __init__(self, splits: dict[str, SequenceSet], alphabet: str, **kwargs) -> None:
        self.alphabet = alphabet
        super().__init__(splits, len(alphabet), standardize=False, **kwargs)

    def _real(self, batch: Batch) -> Tensor:
        return batch.mask & (batch.targets != IGNORE)

    def _targets(self, split: str) -> np.ndarray:
        y = np.concatenate(self.splits[split].targets)
        return y[y != IGNORE]

    def _baseline(self, split: str) -> float:
        """The metric of always predicting the training set's character frequencies."""
        counts = np.bincount(self._targets("train"), minlength=self.output_size) + 1.0
        y = self._targets(split)
        if self.metric == "nll":
            p = counts / counts.sum()
            return float(-np.log(p[y]).mean())
        return float(np.mean(y != counts.argmax()))

    def loss_terms(self, outputs: Tensor, batch: Batch) -> tuple[Tensor, Tensor | int]:
        keep = self._real(batch)
        if not bool(keep.any()):
            return outputs.sum() * 0.0, 0
        return F.cross_entropy(outputs[keep], batch.targets[keep], reduction="sum"), keep.sum()

    def score(self, outputs: Tensor, batch: Batch) -> dict[str, tuple[float, float]]:
        keep = self._real(batch)
        scores, targets = outputs[keep], batch.targets[keep]
        n = float(targets.numel())
        wrong = float((scores.argmax(-1) != targets).sum())
        ce = float(F.cross_entropy(scores, targets, reduction="sum")) if n else 0.0
        return {"error": (wrong, n), "accuracy": (n - wrong, n), "cross_entropy": (ce, n),
                "nll": (ce, n)}


class LanguageModelTask(CharTask):
    """Character-level language modelling: the metric is nats per character."""

    metric = "nll"
    metric_label = "NLL per character (perplexity = exp)"
    loss_key = ""


def encode(text: str, alphabet: str, scored_from: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one string: one-hot characters 0..L-2 and the index of the
    next character, IGNORE before `scored_from` (characters not in `alphabet` map to its
    last symbol, the unknown mark of `lm`)."""
    index = {ch: k for k, ch in enumerate(alphabet)}
    unknown = len(alphabet) - 1
    ids = np.array([index.get(ch, unknown) for ch in text], dtype=np.int64)
    x = np.zeros((len(ids) - 1, len(alphabet)), np.float32)
    x[np.arange(len(ids) - 1), ids[:-1]] = 1.0
    y = ids[1:].copy()
    y[:max(scored_from, 0)] = IGNORE
    return x, y


def _sizes(n_train: int, n_valid: int, n_test: int) -> dict[str, int]:
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    for k, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"task option n_{k} must be an integer >= 1, got {v!r}")
    return sizes


def load_arith(name: str = "arith", n_train: int = 1000, n_valid: int = 200,
               n_test: int = 200, min_digits: int = 1, max_digits: int = 8,
               distractors: float = 0.3, seed: int = 0) -> CharTask:
    """Sum or difference of two numbers given with distractor letters (configs/task/arith)."""
    alphabet = charseq.DIGITS + charseq.DISTRACTORS + "+-=" + charseq.END
    splits = {}
    for k, (split, n) in enumerate(_sizes(n_train, n_valid, n_test).items()):
        problems = charseq.arith_split(n, seed * 3 + k, min_digits=min_digits,
                                       max_digits=max_digits, distractors=distractors)
        pairs = [encode(text, alphabet, eq) for text, eq in problems]
        splits[split] = SequenceSet([p[0] for p in pairs], [p[1] for p in pairs])
    task = CharTask(splits, alphabet, source="generated",
                    info={"example": charseq.arith_split(1, seed)[0][0]})
    task.name = name
    return task


def load_xml(name: str = "xml", n_train: int = 1000, n_valid: int = 200, n_test: int = 200,
             max_depth: int = 4, max_children: int = 3, max_length: int = 120,
             seed: int = 0) -> CharTask:
    """Next character of generated valid XML (configs/task/xml)."""
    alphabet = "<>/abcdefghijklmnopqrstuvwxyz"
    splits = {}
    for k, (split, n) in enumerate(_sizes(n_train, n_valid, n_test).items()):
        docs = charseq.xml_split(n, seed * 3 + k, max_depth=max_depth,
                                 max_children=max_children, max_length=max_length)
        pairs = [encode(doc, alphabet) for doc in docs]
        splits[split] = SequenceSet([p[0] for p in pairs], [p[1] for p in pairs])
    task = CharTask(splits, alphabet, source="generated",
                    info={"example": charseq.xml_split(1, seed)[0]})
    task.name = name
    return task


LM_SOURCES = ("pydoc", "ptb", "file")


def load_lm(name: str = "lm", source: str = "pydoc", path: str | None = None,
            length: int = 100, max_chars: int | None = 200_000, lowercase: bool = True,
            min_count: int = 20, fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
            ) -> LanguageModelTask:
    """Character-level language modelling (configs/task/lm): the English text shipped with
    CPython (`pydoc`), Penn Treebank files in the folder `path` (`ptb`), or any text file
    (`file`). The alphabet: characters seen `min_count` times in training, plus an unknown
    mark; `max_chars` caps the characters used per split (null: all)."""
    if source not in LM_SOURCES:
        raise ValueError(f"task lm: source must be one of {', '.join(LM_SOURCES)}, got "
                         f"{source!r}")
    if source in ("ptb", "file") and not path:
        raise ValueError(f"task lm: source={source} needs path=...")
    if source == "ptb":
        texts = {s: "\n".join(lines) for s, lines in charseq.read_ptb(path).items()}
    else:
        text = charseq.pydoc_text() if source == "pydoc" else Path(path).read_text()
        if len(fractions) != 3 or not math.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
            raise ValueError(f"task lm: fractions must be three positive shares summing to "
                             f"1, got {fractions}")
        a = int(len(text) * fractions[0])
        b = a + int(len(text) * fractions[1])
        texts = {"train": text[:a], "valid": text[a:b], "test": text[b:]}
    if lowercase:
        texts = {s: t.lower() for s, t in texts.items()}
    if max_chars is not None:
        texts = {s: t[:max_chars] for s, t in texts.items()}
    counts = Counter(texts["train"])
    alphabet = "".join(sorted(ch for ch, n in counts.items() if n >= min_count)) + "\x00"
    splits = {}
    for split in SPLITS:
        pieces = [p for p in charseq.chunks(texts[split], length) if len(p) > 1]
        if not pieces:
            raise ValueError(f"task lm: split {split} of {source} holds no text")
        pairs = [encode(p, alphabet) for p in pieces]
        splits[split] = SequenceSet([p[0] for p in pairs], [p[1] for p in pairs])
    task = LanguageModelTask(splits, alphabet, source=source,
                             info={"alphabet": len(alphabet),
                                   "python": platform.python_version() if source == "pydoc"
                                   else None,
                                   "characters": {s: len(t) for s, t in texts.items()}})
    task.name = name
    return task


def perplexity(nll: float) -> float:
    """exp(nats per character)."""
    return float(math.exp(nll)) if math.isfinite(nll) else math.inf


__all__ = ["CharTask", "LanguageModelTask", "encode", "load_arith", "load_lm", "load_xml",
           "perplexity"]
