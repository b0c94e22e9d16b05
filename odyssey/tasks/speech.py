"""The speech task (DESIGN §3): framewise phone classification.

One bidirectional layer -> softmax over the phone classes, cross-entropy per frame; the
metric is the frame classification error. Inputs are 39 MFCC-based features per 10 ms
frame (`odyssey.data.features`), standardised with the training set's statistics.
Sources: TIMIT (61 phones, the paper's split) or the embedded flite corpus (synthetic,
41 phones). With `fold39=true` the task trains and scores on the 39 folded classes;
otherwise the 39-class error is reported beside the full one as `frame_error39`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import speech as corpus
from ..data.phones import FOLDED39, fold_table, inventory
from .base import SPLITS, Batch, FramewiseTask, KernelLoss, SequenceSet

IGNORE = -1  # label of frames that count nowhere (the glottal stop "q" after folding)


class SpeechTask(FramewiseTask):
    """Framewise phone classification with a bidirectional network."""

    name = "speech"
    bidirectional = True
    metric = "frame_error"
    metric_label = "frame classification error"
    loss_key = "cross_entropy"
    kernel_loss = KernelLoss("cross_entropy", IGNORE)

    def __init__(self, splits: dict[str, SequenceSet], classes: tuple[str, ...],
                 fold: np.ndarray | None = None, **kwargs) -> None:
        """`classes` names the output classes; `fold` maps them to FOLDED39 for reporting."""
        self.classes = tuple(classes)
        self.fold = None if fold is None else torch.as_tensor(fold, dtype=torch.long)
        super().__init__(splits, len(self.classes), **kwargs)

    def _baseline(self, split: str) -> float:
        """Frame error of always answering the training set's most frequent class."""
        train = np.concatenate(self.splits["train"].targets)
        majority = np.bincount(train[train != IGNORE]).argmax()
        y = np.concatenate(self.splits[split].targets)
        y = y[y != IGNORE]
        return float(np.mean(y != majority))

    def _real(self, batch: Batch) -> Tensor:
        """(T, B) True at real, scored frames."""
        return batch.mask & (batch.targets != IGNORE)

    def loss_terms(self, outputs: Tensor, batch: Batch) -> tuple[Tensor, Tensor | int]:
        """Cross-entropy summed over the scored frames (fold39's "q" left out); their count."""
        keep = self._real(batch)
        if not bool(keep.any()):  # nothing to learn from (all frames ignored)
            return outputs.sum() * 0.0, 0
        return F.cross_entropy(outputs[keep], batch.targets[keep], reduction="sum"), keep.sum()

    def score(self, outputs: Tensor, batch: Batch) -> dict[str, tuple[float, float]]:
        """Frame errors and summed cross-entropy, with frame counts."""
        keep = self._real(batch)
        scores, targets = outputs[keep], batch.targets[keep]
        pred = scores.argmax(-1)
        n = float(targets.numel())
        out = {"frame_error": (float((pred != targets).sum()), n),
               "cross_entropy": (float(F.cross_entropy(scores, targets, reduction="sum")), n)}
        if self.fold is not None:
            fold = self.fold.to(targets.device)
            ft, fp = fold[targets], fold[pred]
            scored = ft >= 0
            out["frame_error39"] = (float((fp[scored] != ft[scored]).sum()),
                                    float(scored.sum()))
        return out


def load(**options) -> SpeechTask:
    """The speech task of a config (keys of configs/task/speech.yaml), built or cached."""
    opts = corpus.speech_options(options)
    arrays, manifest = corpus.load_corpus(opts)
    classes = inventory(opts.source)
    if tuple(manifest["inventory"]) != classes:
        raise ValueError(f"{opts.stem()}.json: phone inventory does not match the "
                         f"{opts.source} source; rebuild with `odyssey-data build speech "
                         "--rebuild`")
    table = fold_table(classes)
    splits = {}
    for s in SPLITS:
        ys = arrays[f"{s}_y"]
        if opts.fold39:
            ys = [np.where(table[y] >= 0, table[y], IGNORE) for y in ys]
        splits[s] = SequenceSet([x.astype(np.float32) for x in arrays[f"{s}_x"]],
                                [y.astype(np.int64) for y in ys],
                                ids=list(manifest["splits"][s]["ids"]))
    info = {"inventory": list(FOLDED39 if opts.fold39 else classes), "fold39": opts.fold39,
            "cache": str(opts.stem().with_suffix(".npz")),
            "speakers": {s: manifest["splits"][s]["speakers"] for s in SPLITS}}
    return SpeechTask(splits, FOLDED39 if opts.fold39 else classes,
                      fold=None if opts.fold39 else table, source=opts.source, info=info)
