"""The words task: spoken-word classification, a many-to-one task (Koutník et al. 2014).

The network reads a whole utterance (39 features per 10 ms frame, `odyssey.data.words`) and
answers one word (`odyssey.tasks.classify`: the last real step's scores, or their mean for a
bidirectional network). Loss: cross-entropy per sequence; metric: the classification error.
"""

from __future__ import annotations

import numpy as np

from ..data import words as corpus
from .base import SPLITS, SequenceSet
from .classify import SequenceClassificationTask


class WordsTask(SequenceClassificationTask):
    """Spoken-word classification: one word per utterance."""

    name = "words"
    metric_label = "word classification error"

    def __init__(self, splits: dict[str, SequenceSet], vocabulary: list[str], *,
                 bidirectional: bool = False, **kwargs) -> None:
        self.vocabulary = list(vocabulary)
        super().__init__(splits, self.vocabulary, bidirectional=bidirectional, **kwargs)


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
