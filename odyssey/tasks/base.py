"""The task interface shared by music, speech and handwriting (DESIGN §3).

A task holds train/valid/test splits of variable-length sequences, knows its network
shape, its loss and its metric, and batches sequences with padding and lengths. Losses and
metrics count real steps only: padding never changes a number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from ..cells import get_cell
from ..data.missing import MissingSpec, MissingView, remove
from ..networks import SequenceNetwork

SPLITS = ("train", "valid", "test")
KERNEL_LOSSES = ("bce_logits", "cross_entropy")  # in the order of the kernel's codes


@dataclass(frozen=True)
class KernelLoss:
    """A task's `loss_terms` in a form packed training computes in C++ (no Python per trial
    and step): "bce_logits", binary cross-entropy with logits summed over the outputs of
    every real frame; "cross_entropy", summed over the real frames whose target is not
    `ignore_index`. Both count the frames they sum over, as `loss_terms` does."""

    kind: str
    ignore_index: int = -100

    def __post_init__(self) -> None:
        if self.kind not in KERNEL_LOSSES:
            raise ValueError(f"KernelLoss kind must be one of {KERNEL_LOSSES}, got "
                             f"{self.kind!r}")


@dataclass
class SequenceSet:
    """One split: inputs[k] is (T_k, I) float32; targets[k] is the k-th sequence's target.

    Framewise tasks have targets aligned with the inputs (first dimension T_k); CTC tasks
    have label sequences of their own length.
    """

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"{len(self.inputs)} input sequences but {len(self.targets)} targets")
        if not self.ids:
            self.ids = [str(k) for k in range(len(self.inputs))]

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def frames(self) -> int:
        """Total number of real time steps in the split."""
        return int(sum(len(x) for x in self.inputs))


@dataclass
class Batch:
    """Padded, time-major batch: x (T, B, I), lengths (B,), targets padded per task."""

    x: Tensor
    lengths: Tensor
    targets: Tensor
    target_lengths: Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        """The batch on `device` (itself when it is there already)."""
        if self.x.device == torch.device(device):
            return self
        move = (lambda t: None if t is None else t.to(device))  # noqa: E731
        return Batch(move(self.x), move(self.lengths), move(self.targets),
                     move(self.target_lengths))

    @property
    def mask(self) -> Tensor:
        """(T, B) bool, True at real steps."""
        T = self.x.shape[0]
        return torch.arange(T, device=self.x.device)[:, None] < self.lengths[None, :]


def pad_time_major(seqs: list[np.ndarray], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Stack sequences (T_k, ...) into (T_max, B, ...) with zeros after each end."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    T = int(lengths.max()) if len(seqs) else 0
    out = torch.zeros((T, len(seqs), *seqs[0].shape[1:]), dtype=dtype)
    for b, s in enumerate(seqs):
        out[: len(s), b] = torch.as_tensor(s, dtype=dtype)
    return out, lengths


class Task(ABC):
    """A sequence task: data splits, network shape, loss and metric.

    Subclasses set the class attributes and implement `collate_targets`, `loss` and
    `score`. `score` returns (numerator, denominator) sums per metric so that a split's
    metric is exact over all its steps, whatever the batching.
    """

    name: str = ""
    bidirectional: bool = False
    metric: str = ""  # key of the primary metric in `evaluate`'s result; lower is better
    metric_label: str = ""  # for tables and figures, e.g. "NLL per time step"
    # key of `evaluate`'s result holding the validation loss (early stopping's tie-break);
    # "" when the metric is the loss itself
    loss_key: str = ""
    # the same loss as this class's `loss_terms`, for the C++ step of packed training; a
    # subclass that overrides `loss_terms` without declaring it again trains through autograd
    kernel_loss: KernelLoss | None = None
    # missing data (odyssey.data.missing): set by `remove_observations`; complete by default
    missing: MissingSpec = MissingSpec()

    def __init__(self, splits: dict[str, SequenceSet], output_size: int, *,
                 standardize: bool = True, source: str = "", info: dict | None = None) -> None:
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise ValueError(f"task {self.name}: missing split(s) {missing}")
        for s in SPLITS:
            if len(splits[s]) == 0:
                raise ValueError(f"task {self.name}: split {s!r} is empty")
        self.splits = splits
        self.input_size = int(splits["train"].inputs[0].shape[1])
        self.output_size = output_size
        self.source = source
        self.info = info or {}
        self.mean = np.zeros(self.input_size, np.float32)
        self.std = np.ones(self.input_size, np.float32)
        if standardize:
            self._standardize()

    def _standardize(self) -> None:
        """Standardise every split with the training set's per-feature mean and std."""
        train = np.concatenate(self.splits["train"].inputs, axis=0).astype(np.float64)
        self.mean = train.mean(0).astype(np.float32)
        std = train.std(0)
        self.std = np.where(std > 1e-8, std, 1.0).astype(np.float32)  # constant features
        for s in SPLITS:
            sset = self.splits[s]
            sset.inputs = [((x - self.mean) / self.std).astype(np.float32) for x in sset.inputs]

    def remove_observations(self, spec: MissingSpec) -> None:
        """Remove observations as `spec` says (nothing at rate 0): every split's inputs become
        [x; m; delta] (odyssey.data.missing), 3x the features; each network reads them
        through the view its cell needs (`input_view`)."""
        if self.missing.native:  # inputs with gaps of their own: only the fill is chosen
            if spec.active:
                raise ValueError(f"task {self.name}: its data have gaps of their own; "
                                 "task.missing_rate must be 0")
            self.missing = replace(self.missing, fill=spec.fill)
            self.info["missing"] = self.missing.describe()
            return
        if not spec.active:
            return
        if self.missing.active:
            raise ValueError(f"task {self.name}: observations were removed already")
        new = remove({s: self.splits[s].inputs for s in SPLITS}, spec)
        for s in SPLITS:
            self.splits[s].inputs = new[s]
        self.__dict__.pop("_batch_cache", None)
        self.missing, self.features = spec, self.input_size
        self.input_size = 3 * self.input_size
        self.info["missing"] = spec.describe()

    @property
    def noise_features(self) -> int | None:
        """Training noise goes on the first this many input features (None: on all); with
        missing data on x only, never on the mask or delta."""
        return self.features if self.missing.active else None

    def input_view(self, variant: str) -> MissingView | None:
        """What a cell of `variant` reads of the task's inputs: None (the inputs as they are)
        unless missing data and the cell's kind differ (odyssey.data.missing)."""
        reads_missing = get_cell(variant).missing_inputs
        if self.missing.active:
            return None if reads_missing else MissingView(self.missing.fill, self.features)
        return MissingView("complete", self.input_size) if reads_missing else None

    def input_view_size(self, variant: str) -> int:
        """Input features the first layer of a `variant` network reads."""
        view = self.input_view(variant)
        return self.input_size if view is None else view.output_size

    # -- batching -------------------------------------------------------------------------
    def batches(self, split: str, batch_size: int, *, shuffle: bool = False,
                generator: np.random.Generator | None = None,
                by_length: bool = False) -> Iterator[Batch]:
        """Padded batches of `split`; shuffled with `generator` when asked, or sorted by
        length (`by_length`: evaluation, where it keeps padding small and changes no sum).

        Batches of one sequence and length-sorted batches are built once and reused (the
        paper's batch size of 1 would otherwise pad every sequence again in every epoch);
        they must not be modified in place.
        """
        sset = self.splits[split]
        order = np.arange(len(sset))
        if shuffle:
            (generator or np.random.default_rng()).shuffle(order)
        elif by_length:
            order = np.argsort([len(x) for x in sset.inputs], kind="stable")
        cached = batch_size == 1 or (by_length and not shuffle)
        if not cached:
            for start in range(0, len(order), batch_size):
                yield self._collate(sset, order[start:start + batch_size])
            return
        key = (split, batch_size if by_length else 1, id(sset), len(sset))
        cache = self.__dict__.setdefault("_batch_cache", {})
        if key not in cache:
            cache[key] = ([self._collate(sset, order[s:s + batch_size])
                           for s in range(0, len(order), batch_size)] if batch_size > 1
                          else [self._collate(sset, [k]) for k in range(len(sset))])
        if batch_size > 1:
            yield from cache[key]
        else:
            yield from (cache[key][k] for k in order)

    def _collate(self, sset: SequenceSet, idx: np.ndarray | list[int]) -> Batch:
        x, lengths = pad_time_major([sset.inputs[k] for k in idx], torch.float32)
        targets, target_lengths = self.collate_targets([sset.targets[k] for k in idx])
        return Batch(x, lengths, targets, target_lengths)

    @abstractmethod
    def collate_targets(self, targets: list[np.ndarray]) -> tuple[Tensor, Tensor | None]:
        """Pad a batch's targets; returns (targets, target_lengths or None)."""

    # -- model, loss, metric ---------------------------------------------------------------
    def build_network(self, variant: str, hidden_size: int, **layer_options) -> SequenceNetwork:
        """The task's network: `layers` layers of `variant` (one by default) and a linear
        head, reading the inputs through the cell's `input_view`."""
        return SequenceNetwork(variant, self.input_size, hidden_size, self.output_size,
                               bidirectional=self.bidirectional,
                               input_view=self.input_view(variant), **layer_options)

    @abstractmethod
    def loss_terms(self, outputs: Tensor, batch: Batch) -> tuple[Tensor, Tensor | int]:
        """The batch's training loss summed over what the task counts, and that count.

        Framewise tasks count their real (scored) steps, CTC its sequences; `loss` and
        `sequence_loss` are both derived from these two numbers.
        """

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Training loss of a batch, a mean over its real steps (or sequences, for CTC)."""
        total, count = self.loss_terms(outputs, batch)
        return total / max(int(count), 1)

    def sequence_loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """The loss summed over each sequence's steps, averaged over the batch's sequences.

        Greff et al. make one update per sequence on its summed loss, so the paper's
        learning-rate range [1e-6, 1e-2] is calibrated for this scale, not a per-step mean.
        """
        total, _ = self.loss_terms(outputs, batch)
        return total / batch.lengths.numel()

    @abstractmethod
    def score(self, outputs: Tensor, batch: Batch) -> dict[str, tuple[float, float]]:
        """Per metric, (sum over the batch, count) so that sums over batches are exact."""

    @torch.no_grad()
    def evaluate(self, network: torch.nn.Module, split: str, batch_size: int = 32,
                 device: torch.device | str = "cpu", *,
                 forward: Callable[[Tensor, Tensor], Tensor] | None = None
                 ) -> dict[str, float]:
        """Every metric of `split`, exact over all of its real steps. `forward(x, lengths)`:
        the network's outputs by another path (packed training's fused kernels); default
        `network(x, lengths)`."""
        run = forward or network
        was_training = network.training
        network.eval()
        sums: dict[str, list[float]] = {}
        try:
            for batch in self.batches(split, batch_size, by_length=True):
                batch = batch.to(device)
                out = run(batch.x, batch.lengths)
                for key, (num, den) in self.score(out, batch).items():
                    acc = sums.setdefault(key, [0.0, 0.0])
                    acc[0] += num
                    acc[1] += den
        finally:
            network.train(was_training)
        return {k: (n / d if d else float("nan")) for k, (n, d) in sums.items()}

    @property
    def valid_loss_key(self) -> str:
        """The `evaluate` key early stopping reads as the validation loss."""
        return self.loss_key or self.metric

    def baseline(self, split: str) -> float | None:
        """`metric` on `split` of the task's trivial model, which ignores the inputs.

        A trial whose best validation metric does not beat `baseline("valid")` has learnt
        nothing (it is marked untrained in the sweep). None: the task defines no baseline.
        Computed once per split.
        """
        cache = self.__dict__.setdefault("_baselines", {})
        if split not in cache:
            if split not in SPLITS:
                raise ValueError(f"task {self.name}: unknown split {split!r}; expected one "
                                 f"of {SPLITS}")
            cache[split] = self._baseline(split)
        return cache[split]

    def _baseline(self, split: str) -> float | None:
        """The uncached `baseline`; tasks with a trivial model override it."""
        return None

    def describe(self) -> dict:
        """Counts per split, lengths and source, for `odyssey-data info` and manifests."""
        out: dict = {"task": self.name, "source": self.source, "input_size": self.input_size,
                     "output_size": self.output_size, "metric": self.metric}
        for s in SPLITS:
            lens = [len(x) for x in self.splits[s].inputs]
            out[s] = {"sequences": len(lens), "frames": int(sum(lens)),
                      "mean_length": float(np.mean(lens)), "min_length": int(min(lens)),
                      "max_length": int(max(lens))}
        out.update(self.info)
        return out


class FramewiseTask(Task):
    """Targets aligned with inputs, one per real step (music, speech)."""

    def collate_targets(self, targets: list[np.ndarray]) -> tuple[Tensor, Tensor | None]:
        dtype = torch.long if np.issubdtype(targets[0].dtype, np.integer) else torch.float32
        padded, _ = pad_time_major(targets, dtype)
        return padded, None
