"""The physionet task: in-hospital mortality from the first 48 hours of an ICU stay
(PhysioNet/CinC Challenge 2012; GRU-D's own benchmark, Che et al. 2018).

Data you provide (`odyssey.data.physionet` reads the challenge's files). The inputs have
gaps of their own: every record is [x; m; delta] (odyssey.data.missing) with x each
variable standardised on its observed training values, so GRU-D reads them as they are and
every other cell through its `fill` view. A many-to-one task (`odyssey.tasks.classify`):
metric the classification error, with the area under the ROC curve (`auc`) beside it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from ..data import physionet as reader
from ..data.missing import MissingSpec, with_gaps
from .base import SPLITS, SequenceSet
from .classify import SequenceClassificationTask


class PhysioNetTask(SequenceClassificationTask):
    """In-hospital death (1) or survival (0) per ICU stay."""

    name = "physionet"
    metric_label = "in-hospital mortality error"

    def __init__(self, splits: dict[str, SequenceSet], **kwargs) -> None:
        super().__init__(splits, ["survived", "died"], standardize=False, **kwargs)
        self.features = self.input_size // 3
        self.missing = MissingSpec(native=True)
        self.info["missing"] = self.missing.describe()

    @torch.no_grad()
    def evaluate(self, network: torch.nn.Module, split: str, batch_size: int = 32,
                 device: torch.device | str = "cpu", *,
                 forward: Callable[[Tensor, Tensor], Tensor] | None = None
                 ) -> dict[str, float]:
        """Error and cross-entropy (Task.evaluate), and the AUC of the death probabilities,
        which needs every sequence's score at once."""
        run, outputs = forward or network, []

        def keep(x: Tensor, lengths: Tensor) -> Tensor:
            out = run(x, lengths)
            outputs.append(out)
            return out

        result = super().evaluate(network, split, batch_size, device, forward=keep)
        batches = [b.to(device) for b in self.batches(split, batch_size, by_length=True)]
        death = torch.cat([self.sequence_scores(o, b).softmax(-1)[:, 1]
                           for o, b in zip(outputs, batches, strict=True)])
        labels = torch.cat([b.targets for b in batches])
        both = 0 < int(labels.sum()) < len(labels)
        result["auc"] = (float(roc_auc_score(labels.cpu().numpy(), death.cpu().numpy()))
                         if both else float("nan"))
        return result


def load(bidirectional: bool = False, **options) -> PhysioNetTask:
    """The physionet task of a config (keys of configs/task/physionet.yaml)."""
    opts = reader.physionet_options(options)
    parts = reader.load_records(opts)
    inputs = with_gaps({s: parts[s][1] for s in SPLITS}, {s: parts[s][2] for s in SPLITS},
                       scale=True)
    splits = {s: SequenceSet(inputs[s], [np.array([y], np.int64) for y in parts[s][3]],
                             ids=parts[s][0]) for s in SPLITS}
    info = {"variables": list(reader.VARIABLES), "hours": opts.hours,
            "bin_hours": opts.bin_hours, "records": str(opts.records),
            "deaths": {s: int(sum(parts[s][3])) for s in SPLITS}}
    return PhysioNetTask(splits, bidirectional=bidirectional, source="physionet2012",
                         info=info)
