"""The words task: spoken-word classification, a many-to-one task (Koutník et al. 2014).

The network reads a whole utterance (39 features per 10 ms frame, `odyssey.data.words`) and
answers one label: the scores at the sequence's last real step (a unidirectional network,
the default), or averaged over its real steps when `bidirectional` (a pooled state: the head
is linear, so this is the head applied to the mean state). Loss: cross-entropy per sequence;
metric: the classification error.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import words as corpus
from .base import SPLITS, Batch, SequenceSet, Task


class WordsTask(Task):
    """Spoken-word classification: one label per sequence."""

    name = "words"
    bidirectional = False
    metric = "error"
    metric_label = "word classification error"
    loss_key = "cross_entropy"

    def __init__(self, splits: dict[str, SequenceSet], vocabulary: list[str], *,
                 bidirectional: bool = False, **kwargs) -> None:
        self.vocabulary = list(vocabulary)
        self.bidirectional = bool(bidirectional)
        super().__init__(splits, len(self.vocabulary), **kwargs)

    def collate_targets(self, targets: list[np.ndarray]) -> tuple[Tensor, Tensor | None]:
        """(B,) labels."""
        return torch.as_tensor(np.concatenate(targets), dtype=torch.long), None

    def sequence_scores(self, outputs: Tensor, batch: Batch) -> Tensor:
        """(B, C): each sequence's scores at its last real step, or their mean over its real
        steps for a bidirectional network."""
        if self.bidirectional:
            mask = batch.mask.unsqueeze(-1).to(outputs.dtype)
            return (outputs * mask).sum(0) / batch.lengths.clamp(min=1)[:, None].to(outputs)
        last = (batch.lengths - 1).clamp(min=0)
        return outputs[last, torch.arange(outputs.shape[1], device=outputs.device)]

    def loss_terms(self, outputs: Tensor, batch: Batch) -> tuple[Tensor, Tensor | int]:
        """Cross-entropy summed over the batch's sequences; their count."""
        scores = self.sequence_scores(outputs, batch)
        return F.cross_entropy(scores, batch.targets, reduction="sum"), len(batch.targets)

    def score(self, outputs: Tensor, batch: Batch) -> dict[str, tuple[float, float]]:
        """Classification errors and summed cross-entropy, with sequence counts."""
        scores = self.sequence_scores(outputs, batch)
        n = float(len(batch.targets))
        return {"error": (float((scores.argmax(-1) != batch.targets).sum()), n),
                "cross_entropy": (float(F.cross_entropy(scores, batch.targets,
                                                        reduction="sum")), n)}

    def _baseline(self, split: str) -> float:
        """Error of always answering the training set's most frequent word."""
        train = np.concatenate(self.splits["train"].targets)
        majority = np.bincount(train).argmax()
        return float(np.mean(np.concatenate(self.splits[split].targets) != majority))


def load(bidirectional: bool = False, standardize: bool = True, **options) -> WordsTask:
    """The words task of a config (keys of configs/task/words.yaml), built or cached."""
    opts = corpus.words_options(options)
    arrays, manifest = corpus.load_corpus(opts)
    splits = {s: SequenceSet([x.astype(np.float32) for x in arrays[f"{s}_x"]],
                             [y.astype(np.int64) for y in arrays[f"{s}_y"]],
                             ids=list(manifest["splits"][s]["ids"])) for s in SPLITS}
    info = {"vocabulary": manifest["vocabulary"], "synthetic": True,
            "cache": str(opts.stem().with_suffix(".npz"))}
    return WordsTask(splits, manifest["vocabulary"], bidirectional=bidirectional,
                     standardize=standardize, source="flite", info=info)
