"""The fused step of packed training: K trials' forward, loss, backward and SGD step.

At the paper's batch size of 1 a trial's step is a few hundred microseconds of arithmetic
under about two milliseconds of Python, autograd and optimizer overhead. The C++ kernels in
odyssey/cells/csrc/lstm_family.cpp run every trial's network -- recurrent layer in each
direction, linear head --, its loss where the task declares a kernel loss (`Task.kernel_loss`:
music's BCE, speech's cross-entropy), its backward pass and its SGD step in one call per
pack step (`pack_train_step`), so that overhead is paid once per pack. Any other loss (CTC,
a user's own) is computed in Python on the trial's logits between `pack_forward` and
`pack_backward_step`. Either way each trial is computed on its own, trial after trial, so
its numbers never depend on the others in its pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..cells import fast
from ..cells.layer import LSTMFamilyCell, RecurrentLayer, TorchParamCell
from ..networks import SequenceNetwork
from ..tasks import Task
from ..tasks.base import KERNEL_LOSSES, KernelLoss

# must match kSlots / kGRU / kRNN (csrc/pack.h) and kBCE / kCE (csrc/losses.h)
SLOTS = 7
_KINDS = {"gru": -1, "rnn": -2}
_LOSS_CODES = {kind: code for code, kind in enumerate(KERNEL_LOSSES)}  # kBCE, kCE
_LSTM_SLOTS = ("weight_ih", "weight_hh", "bias", "peephole_i", "peephole_f", "peephole_o",
               "weight_gg")
_TORCH_SLOTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def fusable(net: nn.Module, device: torch.device, impl: str) -> bool:
    """Whether `net` can train on the fused kernels: a SequenceNetwork of one LSTM-family,
    GRU or RNN layer reading its inputs as they are, on the CPU, with impl "auto" or "cpp"
    and the extension built."""
    return (device.type == "cpu" and impl != "reference" and type(net) is SequenceNetwork
            and net.input_view is None and net.layers == 1
            and isinstance(net.rnn, RecurrentLayer)
            and all(isinstance(c, LSTMFamilyCell | TorchParamCell) for c in net.rnn.directions)
            and fast.extension(required=impl == "cpp") is not None)


def kind(net: SequenceNetwork) -> int:
    """The kernel's cell code: the LSTM family's flags, or GRU / RNN."""
    s = net.rnn.spec
    return fast.flags(s) if s.family == "lstm" else _KINDS[s.family]


def slot_tensors(net: SequenceNetwork) -> list[Tensor]:
    """The network's parameters in the kernel's slot order (absent slots: empty tensors).

    The tensors are the parameters' own storage: the kernel's SGD step updates the network.
    """
    out: list[Tensor] = []
    for cell in net.rnn.directions:
        names = _LSTM_SLOTS if isinstance(cell, LSTMFamilyCell) else _TORCH_SLOTS
        for k in range(SLOTS):
            p = getattr(cell, names[k], None) if k < len(names) else None
            out.append(p.data if p is not None else torch.empty(0))
    out += [net.head.weight.data, net.head.bias.data]
    for t in out:
        if t.numel() and not t.is_contiguous():
            raise ValueError("packed training needs contiguous parameters")
    return out


def kernel_loss(task: Task) -> KernelLoss | None:
    """The task's `kernel_loss` if it still describes the task's loss: declared by the class
    that defines the `loss_terms` in use (not overridden below it or on the instance), with
    Task's own `loss` and `sequence_loss` built on it."""
    spec = task.kernel_loss
    if spec is None or "loss_terms" in vars(task):
        return None
    cls = type(task)
    owner = next(c for c in cls.__mro__ if "kernel_loss" in vars(c))
    same = (vars(owner).get("loss_terms") is cls.loss_terms and cls.loss is Task.loss
            and cls.sequence_loss is Task.sequence_loss)
    return spec if same else None


class FusedPack:
    """The kernel calls of a pack step for the fused trials of a pack."""

    def __init__(self, directions: int, loss: KernelLoss | None = None,
                 per_step: bool = False) -> None:
        """`loss`: the task's kernel loss (None: the loss is computed in Python);
        `per_step`: divide it by the counted frames (train.loss=step), else by sequences."""
        self.directions, self.kernel_loss, self.per_step = directions, loss, per_step

    @property
    def ops(self) -> Any:
        """The compiled ops, asked for only when a fused trial runs: a pack whose trials all
        take autograd (no compiler, a GPU, impl=reference) never needs them."""
        return fast.extension(required=True)

    def forward(self, xs: Sequence[Tensor], lengths: Sequence[Tensor],
                params: Sequence[Sequence[Tensor]], kinds: Sequence[int],
                noises: Sequence[Noise] | None = None
                ) -> tuple[list[Tensor], list[list[Tensor]]]:
        """Each trial's logits (T, B, O) and what its backward needs; `noises`: each trial's
        input noise (training; see `noise_args`)."""
        flat = [t for p in params for t in p]
        out = self.ops.pack_forward(list(xs), list(lengths), flat, list(kinds),
                                    *noise_args(noises, len(xs)), self.directions, 0)
        per = 2 + 5 * self.directions
        saved = [out[k * per:(k + 1) * per] for k in range(len(xs))]
        return [s[0] for s in saved], saved

    def train_step(self, xs: Sequence[Tensor], lengths: Sequence[Tensor],
                   targets: Sequence[Tensor], params: Sequence[Sequence[Tensor]],
                   buffers: Sequence[Sequence[Tensor]], lrs: Sequence[float],
                   momenta: Sequence[float], kinds: Sequence[int],
                   noises: Sequence[Noise] | None = None) -> list[float]:
        """With a kernel loss: every trial's forward, loss, backward and SGD step in one call
        (trial after trial, so each backward finds its activations in cache); each trial's
        loss. A trial whose loss is not finite is left as it was."""
        spec = self.kernel_loss
        assert spec is not None
        losses = self.ops.pack_train_step(
            list(xs), list(lengths), list(targets), [t for p in params for t in p],
            [t for b in buffers for t in b], list(lrs), list(momenta), list(kinds),
            *noise_args(noises, len(xs)), self.directions, 0, _LOSS_CODES[spec.kind],
            spec.ignore_index, self.per_step)
        return losses.tolist()

    def loss(self, logits: Sequence[Tensor], targets: Sequence[Tensor],
             lengths: Sequence[Tensor]) -> tuple[list[float], list[Tensor]]:
        """Each trial's kernel loss and its gradient dL/dlogits (the loss of `train_step`,
        on its own: the tests check it against the task's loss through autograd)."""
        spec = self.kernel_loss
        assert spec is not None
        out = self.ops.pack_loss(list(logits), list(targets), list(lengths),
                                 _LOSS_CODES[spec.kind], spec.ignore_index,
                                 self.per_step)
        return out[0].tolist(), list(out[1:])

    def backward_step(self, dlogits: Sequence[Tensor], lengths: Sequence[Tensor],
                      saved: Sequence[Sequence[Tensor]], params: Sequence[Sequence[Tensor]],
                      buffers: Sequence[Sequence[Tensor]], lrs: Sequence[float],
                      momenta: Sequence[float], kinds: Sequence[int]) -> None:
        """Backward from dL/dlogits and one SGD step of every trial, in place."""
        if not dlogits:
            return
        self.ops.pack_backward_step(list(dlogits), list(lengths),
                                    [t for s in saved for t in s],
                                    [t for p in params for t in p],
                                    [t for b in buffers for t in b], list(lrs), list(momenta),
                                    list(kinds), self.directions, 0)


# a trial's input noise for one step: N(0, 1) draws of its input's shape and their std, or
# None (no noise); the kernel adds std * draws at the real steps, as `run._noisy` does
Noise = tuple[Tensor, float] | None


def noise_args(noises: Sequence[Noise] | None, trials: int) -> tuple[list[Tensor], list[float]]:
    """The kernel's noise arguments: a draw tensor (empty: none) and a std per trial."""
    noises = noises or [None] * trials
    empty = torch.empty(0)
    return ([n[0] if n else empty for n in noises], [n[1] if n else 0.0 for n in noises])


def lengths_of(lengths: Tensor) -> Tensor:
    """A batch's lengths as the contiguous int64 CPU tensor the kernel reads."""
    return lengths.to(dtype=torch.long, device="cpu").contiguous()
