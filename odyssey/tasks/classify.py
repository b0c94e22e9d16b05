"""Many-to-one tasks: the network reads a whole sequence and answers one class.

The answer is the head's scores at each sequence's last real step (a unidirectional network),
or their mean over its real steps for a bidirectional one (a pooled state: the head is
linear, so this is the head applied to the mean state). Loss: cross-entropy per sequence;
metric: the classification error, with the cross-entropy beside it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, SequenceSet, Task


class SequenceClassificationTask(Task):
    """One label per sequence (targets: arrays of one integer class)."""

    name = "classification"
    bidirectional = False
    metric = "error"
    metric_label = "classification error"
    loss_key = "cross_entropy"

    def __init__(self, splits: dict[str, SequenceSet], classes: list[str], *,
                 bidirectional: bool = False, **kwargs) -> None:
        self.classes = list(classes)
        self.bidirectional = bool(bidirectional)
        super().__init__(splits, len(self.classes), **kwargs)

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
        """Error of always answering the training set's most frequent class."""
        train = np.concatenate(self.splits["train"].targets)
        majority = np.bincount(train).argmax()
        return float(np.mean(np.concatenate(self.splits[split].targets) != majority))
