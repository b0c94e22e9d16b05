"""The handwriting task (DESIGN §3): online text lines -> characters with CTC.

One bidirectional recurrent layer, a softmax over the characters plus the CTC blank
(label 0), `torch.nn.CTCLoss`, best-path decoding (the most likely label at each step,
repeats merged, blanks removed) and the character error rate: the Levenshtein distance
between decoded and true label sequences, summed over a split and divided by the number of
true characters. Edit distances come from `rapidfuzz` (maintained, C++).

The default corpus is SYNTHETIC (Hershey-font lines); `source=iamondb` reads IAM-OnDB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein
from torch import Tensor
from torch.nn import functional as F

from .base import Batch, SequenceSet, Task

BLANK = 0


def best_path(outputs: Tensor, lengths: Tensor, blank: int = BLANK) -> list[list[int]]:
    """Best-path CTC decoding of (T, B, C) scores: argmax per real step, merge, drop blanks."""
    best = outputs.argmax(-1).cpu()  # (T, B)
    prev = torch.cat([torch.full_like(best[:1], -1), best[:-1]])
    keep = (best != prev) & (best != blank)
    keep &= torch.arange(best.shape[0])[:, None] < lengths.cpu()[None, :]
    return [best[keep[:, b], b].tolist() for b in range(best.shape[1])]


def edit_distance(hyp: Sequence, ref: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    return int(Levenshtein.distance(hyp, ref))


def error_rate(hyps: Sequence[Sequence], refs: Sequence[Sequence]) -> float:
    """Summed edit distance over summed reference length (CER on characters, WER on words)."""
    errors = sum(edit_distance(h, r) for h, r in zip(hyps, refs, strict=True))
    total = sum(len(r) for r in refs)
    return errors / total if total else float("nan")


class HandwritingTask(Task):
    """CTC over characters; metric "cer", extra metrics "wer" and "ctc_loss" per line."""

    name = "handwriting"
    bidirectional = True
    metric = "cer"
    metric_label = "character error rate"
    loss_key = "ctc_loss"

    def __init__(self, splits: dict[str, SequenceSet], charset: str, **kwargs) -> None:
        super().__init__(splits, len(charset) + 1, **kwargs)
        self.charset = charset
        self.ctc = torch.nn.CTCLoss(blank=BLANK, reduction="sum", zero_infinity=False)

    def _baseline(self, split: str) -> float:
        """CER of the empty output (1.0): where a CTC network starts, emitting only blanks."""
        return float(trivial_baselines(self, split)["empty"])

    # -- labels and text --------------------------------------------------------------
    def text(self, labels: Sequence[int]) -> str:
        """The string of a label sequence (labels 1..K; the blank never appears)."""
        return "".join(self.charset[int(k) - 1] for k in labels)

    def decode(self, outputs: Tensor, lengths: Tensor) -> list[str]:
        """Best-path transcriptions of a batch's network outputs."""
        return [self.text(seq) for seq in best_path(outputs, lengths)]

    # -- Task interface ------------------------------------------------------------------
    def collate_targets(self, targets: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        """(B, L_max) zero-padded label sequences and their lengths."""
        lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
        padded = torch.zeros((len(targets), int(lengths.max())), dtype=torch.long)
        for b, t in enumerate(targets):
            padded[b, : len(t)] = torch.as_tensor(np.asarray(t, np.int64))
        return padded, lengths

    def loss_terms(self, outputs: Tensor, batch: Batch) -> tuple[Tensor, int]:
        """CTC negative log-likelihood summed over the batch's lines; the number of lines."""
        log_probs = F.log_softmax(outputs.float(), dim=-1)
        total = self.ctc(log_probs, batch.targets, batch.lengths, batch.target_lengths)
        return total, outputs.shape[1]

    def score(self, outputs: Tensor, batch: Batch) -> dict[str, tuple[float, float]]:
        """Character errors / characters, word errors / words and CTC loss / lines."""
        hyps = best_path(outputs, batch.lengths)
        targets, target_lengths = batch.targets.cpu(), batch.target_lengths.cpu()
        refs = [targets[b, : int(target_lengths[b])].tolist() for b in range(len(hyps))]
        char_errors = sum(edit_distance(h, r) for h, r in zip(hyps, refs, strict=True))
        hyp_words = [self.text(h).split() for h in hyps]
        ref_words = [self.text(r).split() for r in refs]
        word_errors = sum(edit_distance(h, r) for h, r in zip(hyp_words, ref_words, strict=True))
        log_probs = F.log_softmax(outputs.float(), dim=-1)
        nll = float(self.ctc(log_probs, batch.targets, batch.lengths, batch.target_lengths))
        return {"cer": (float(char_errors), float(sum(len(r) for r in refs))),
                "wer": (float(word_errors), float(sum(len(r) for r in ref_words))),
                "ctc_loss": (nll, float(len(hyps)))}


def load(**options) -> HandwritingTask:
    """The handwriting task from its config options (configs/task/handwriting.yaml keys)."""
    from ..data.handwriting import SPLITS, load_corpus, resolve, summary

    rebuild = bool(options.pop("rebuild", False))
    cfg = resolve(options)
    corpus, manifest = load_corpus(cfg, rebuild=rebuild)
    splits = {name: SequenceSet(list(corpus[name][0]), list(corpus[name][1]),
                                list(corpus[name][2])) for name in SPLITS}
    info = {"charset": manifest["charset"], "features": manifest["features"],
            "subsample": manifest.get("subsample", 1),
            "synthetic": manifest["synthetic"], "corpus": summary(manifest)}
    return HandwritingTask(splits, manifest["charset"], standardize=bool(cfg.standardize),
                           source=cfg.source, info=info)


def trivial_baselines(task: HandwritingTask, split: str = "test") -> dict[str, float | str]:
    """CERs of outputs that ignore the input: empty, and the most frequent training
    character repeated to each line's true length (which even knows the length)."""
    refs = [list(map(int, t)) for t in task.splits[split].targets]
    train = np.concatenate([np.asarray(t) for t in task.splits["train"].targets])
    top = int(np.bincount(train).argmax())
    return {"empty": error_rate([[] for _ in refs], refs),
            "most_frequent": error_rate([[top] * len(r) for r in refs], refs),
            "most_frequent_char": task.charset[top - 1]}
