"""The music task (DESIGN §3): next-step prediction of 88-key piano rolls of Bach chorales.

Alignment: for a chorale of T steps y_0 .. y_{T-1}, the input at step t is the previous
frame y_{t-1} (an all-silent frame at t = 0) and the target is y_t. Every frame of a chorale,
the first included, is predicted once from the frames before it, so the summed NLL is
-log p(chorale) and the metric is that divided by the number of frames, the convention of
Boulanger-Lewandowski et al. (2012) that Greff et al. (2017) report.

Network: one unidirectional layer and 88 sigmoid outputs. Loss: Bernoulli NLL, BCE with
logits summed over the 88 keys, averaged over real frames. Metrics: "nll" (that sum per
frame, averaged over every frame of a split) and "frame_accuracy", the accuracy of Bay et
al. (2009) used by Boulanger-Lewandowski et al.: TP / (TP + FP + FN) with keys predicted on
where the sigmoid exceeds 0.5, counted over every frame and key of the split.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells import fast
from ..data import music as corpus
from .base import SPLITS, Batch, FramewiseTask, KernelLoss, SequenceSet


class MusicTask(FramewiseTask):
    """Polyphonic next-step prediction: sigmoid outputs, Bernoulli NLL per time step."""

    name = "music"
    bidirectional = False
    metric = "nll"
    metric_label = "NLL per time step"
    kernel_loss = KernelLoss("bce_logits")

    def _baseline(self, split: str) -> float:
        """NLL per frame of the training key-frequency model (`frequency_model_logits`)."""
        y = torch.as_tensor(np.concatenate(self.splits[split].targets), dtype=torch.float32)
        logits = frequency_model_logits(self).expand_as(y)
        return float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum")) / len(y)

    def loss_terms(self, outputs: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """BCE with logits summed over the keys and the batch's real frames; the frames."""
        mask = batch.mask
        bce = F.binary_cross_entropy_with_logits(outputs[mask], batch.targets[mask],
                                                 reduction="sum")
        return bce, mask.sum()

    def score(self, outputs: Tensor, batch: Batch) -> dict[str, tuple[float, float]]:
        """Summed NLL over frames and TP / (TP + FP + FN) counts, each with its denominator.

        On the CPU with the compiled kernels, in one C++ pass over the batch (`bce_scores`:
        evaluation is a fifth of a paper-protocol trial); else through ATen (the same sums,
        within float rounding: the test checks one against the other).
        """
        ops = fast.extension() if outputs.device.type == "cpu" else None
        if ops is not None and outputs.dtype in (torch.float32, torch.float64):
            nll, frames, tp, predicted, on = ops.bce_scores(
                outputs, batch.targets.to(outputs.dtype), batch.lengths.long()).tolist()
            return {"nll": (nll, frames), "frame_accuracy": (tp, predicted + on - tp)}
        mask = batch.mask
        logits, y = outputs[mask], batch.targets[mask]
        nll = F.binary_cross_entropy_with_logits(logits, y, reduction="sum")
        pred, truth = logits > 0, y > 0.5
        tp = (pred & truth).sum()
        wrong = (pred ^ truth).sum()
        return {"nll": (float(nll), float(mask.sum())),
                "frame_accuracy": (float(tp), float(tp + wrong))}


def next_step_pairs(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one roll: inputs[t] = roll[t - 1] (silence at t = 0), targets = roll."""
    roll = roll.astype(np.float32)
    inputs = np.concatenate([np.zeros((1, roll.shape[1]), np.float32), roll[:-1]])
    return inputs, roll


def task_from_rolls(rolls: dict[str, list[np.ndarray]], *, ids: dict[str, list[str]] | None = None,
                    standardize: bool = True, source: str = "", info: dict | None = None
                    ) -> MusicTask:
    """A MusicTask from (T, 88) rolls per split (any source, or rolls a test makes)."""
    splits = {}
    for s in SPLITS:
        pairs = [next_step_pairs(r) for r in rolls[s]]
        splits[s] = SequenceSet([p[0] for p in pairs], [p[1] for p in pairs],
                                list((ids or {}).get(s, [])))
    return MusicTask(splits, corpus.KEYS, standardize=standardize, source=source, info=info)


def load(standardize: bool = True, name: str = "music", **options) -> MusicTask:
    """The music task of configs/task/music.yaml (built into datasets/ on first use)."""
    if name != "music":
        raise ValueError(f"odyssey.tasks.music.load: name must be 'music', got {name!r}")
    opts = corpus.MusicOptions.from_mapping(options, "configs/task/music.yaml")
    rolls, manifest = corpus.load_corpus(opts)
    info = {"alignment": "input y[t-1] (silence at t=0), target y[t]",
            "cache": str(corpus.corpus_stem(opts).with_suffix(".npz")),
            "description": manifest["description"]}
    ids = manifest.get("ids") if isinstance(manifest.get("ids"), dict) else None
    return task_from_rolls(rolls, ids=ids, standardize=standardize, source=opts.source,
                           info=info)


def frequency_model_logits(task: MusicTask) -> Tensor:
    """Per-key logits of the add-one-smoothed training frequency (the trivial model)."""
    train = np.concatenate(task.splits["train"].targets)
    p = (train.sum(0, dtype=np.float64) + 1) / (len(train) + 2)
    return torch.as_tensor(np.log(p) - np.log1p(-p), dtype=torch.float32)
