"""Recurrent layers built from the cells: parameters, initialisation, lengths, directions.

A layer direction is an nn.Module with `sequence(x, drop=None)`: y (T, B, H) for x
(T, B, I), every sequence starting at t = 0. `RecurrentLayer` wraps one or two of them
(built by a registered `CellType`, odyssey.cells.registry) and adds what every cell needs:
lengths, zeros at padded steps, the reverse direction from each sequence's own last step,
and variational dropout masks while training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from . import fast, reference
from .dropout import NO_DROPOUT, VariationalDropout
from .types import CellType, PluginDefinition
from .variants import VariantSpec

# "auto": the fast kernels where they can be built, else the reference loops (one warning);
# "cpp": the fast kernels or an error; "reference": the readable per-step loops.
IMPLS = ("auto", "reference", "cpp")


def _use_fast(impl: str) -> bool:
    """Whether a cell with this `impl` runs the fast kernels (building them on first use)."""
    return impl != "reference" and fast.extension(required=impl == "cpp") is not None


def _init_normal(cell: nn.Module) -> None:
    """Every parameter of a cell from N(0, cell.init_std) (Greff et al.)."""
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, cell.init_std)


class LSTMFamilyCell(nn.Module):
    """Parameters of one direction of an LSTM-family variant and its sequence loop.

    weight_ih (G*H, I), weight_hh (G*H, H) and bias (G*H) hold the blocks `spec.blocks`
    (z, then whichever of i, f, o the variant has); peephole_<gate> (H) each gate's
    diagonal peephole; weight_gg (3H, 3H) FGR's gate-to-gate recurrence.
    """

    def __init__(self, spec: VariantSpec, input_size: int, hidden_size: int,
                 forget_bias: float, init_std: float, impl: str) -> None:
        super().__init__()
        self.spec, self.input_size, self.hidden_size = spec, input_size, hidden_size
        if spec.forget_bias is not None:  # the variant fixes its own shift (LSTMB)
            forget_bias = spec.forget_bias
        self.forget_bias, self.init_std, self.impl = forget_bias, init_std, impl
        g, h = len(spec.blocks), hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g * h, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g * h, h))
        self.bias = nn.Parameter(torch.empty(g * h))
        for gate in spec.peephole_gates:
            self.register_parameter(f"peephole_{gate}", nn.Parameter(torch.empty(h)))
        self.weight_gg = nn.Parameter(torch.empty(3 * h, 3 * h)) if spec.gate_recurrence else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """All weights from N(0, init_std) (Greff et al.); then shift the forget-gate bias.

        CIFG has no forget-gate parameters: its f = 1 - sigma(a_i), so the same shift of f
        is a shift of -forget_bias on the input-gate bias. NFG has no f to shift. A variant
        whose spec fixes `forget_bias` (LSTMB: +1) uses that shift whatever the argument.
        """
        _init_normal(self)
        if self.forget_bias:
            h = self.hidden_size
            with torch.no_grad():
                if self.spec.forget_gate:
                    k = self.spec.blocks.index("f")
                    self.bias[k * h:(k + 1) * h] += self.forget_bias
                elif self.spec.coupled:
                    k = self.spec.blocks.index("i")
                    self.bias[k * h:(k + 1) * h] -= self.forget_bias

    def peepholes(self) -> dict[str, Tensor]:
        """The peephole vectors by gate name."""
        return {g: getattr(self, f"peephole_{g}") for g in self.spec.peephole_gates}

    def sequence(self, x: Tensor, drop: VariationalDropout | None = None) -> Tensor:
        """y (T, B, H) for x (T, B, I), all sequences starting at t = 0.

        With dropout masks the reference loop runs (the C++ kernels have no masks).
        """
        if drop is not None:
            return reference.lstm_sequence(self.spec, x, self.weight_ih, self.weight_hh,
                                           self.bias, self.peepholes(), self.weight_gg, drop)
        run = fast.lstm_sequence if _use_fast(self.impl) else reference.lstm_sequence
        return run(self.spec, x, self.weight_ih, self.weight_hh, self.bias, self.peepholes(),
                   self.weight_gg)


class TorchParamCell(nn.Module):
    """GRU or RNN in PyTorch's parameterisation (weight_ih, weight_hh, bias_ih, bias_hh)."""

    def __init__(self, spec: VariantSpec, input_size: int, hidden_size: int,
                 init_std: float, impl: str) -> None:
        super().__init__()
        self.spec, self.input_size, self.hidden_size = spec, input_size, hidden_size
        self.init_std, self.impl = init_std, impl
        rows = (3 if spec.family == "gru" else 1) * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """All weights from N(0, init_std), as for the LSTM family."""
        _init_normal(self)

    def sequence(self, x: Tensor, drop: VariationalDropout | None = None) -> Tensor:
        """y (T, B, H) for x (T, B, I), all sequences starting at t = 0.

        The fast path is the C++ kernel on the CPU and PyTorch's own GRU / tanh-RNN kernel
        on other devices or where the extension cannot be built (same parameterisation).
        With dropout masks the reference loop runs.
        """
        gru = self.spec.family == "gru"
        args = (x, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if drop is not None:
            return (reference.gru_sequence if gru else reference.rnn_sequence)(*args, drop)
        if self.impl == "reference":
            return (reference.gru_sequence if gru else reference.rnn_sequence)(*args)
        # without the extension ("auto" only), PyTorch's kernels beat the reference loop
        mode = "fast" if _use_fast(self.impl) else "torch"
        return (fast.gru_sequence if gru else fast.rnn_sequence)(*args, mode=mode)


class MutCell(nn.Module):
    """Parameters of one direction of MUT1, MUT2 or MUT3 and its (autograd) sequence loop.

    weight_ih (3H, I): W_xz, W_xr, W_xh; weight_hh (2H or 3H, H): [W_hz,] W_hr, W_hh;
    bias (3H): b_z, b_r, b_h. There is no fast kernel: every `impl` but "cpp" runs the
    reference loop, and "cpp" is refused.
    """

    def __init__(self, spec: VariantSpec, input_size: int, hidden_size: int,
                 init_std: float, impl: str) -> None:
        super().__init__()
        if impl == "cpp":
            raise ValueError(f"{spec.name} has no C++ kernel; use impl='auto' or 'reference'")
        self.spec, self.input_size, self.hidden_size = spec, input_size, hidden_size
        self.init_std, self.impl = init_std, impl
        h = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * h, input_size))
        self.weight_hh = nn.Parameter(torch.empty((2 if spec.name == "MUT1" else 3) * h, h))
        self.bias = nn.Parameter(torch.empty(3 * h))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """All weights from N(0, init_std), as for the LSTM family."""
        _init_normal(self)

    def sequence(self, x: Tensor, drop: VariationalDropout | None = None) -> Tensor:
        """y (T, B, H) for x (T, B, I), all sequences starting at t = 0."""
        return reference.mut_sequence(self.spec, x, self.weight_ih, self.weight_hh, self.bias,
                                      drop)


class PluginCell(nn.Module):
    """One direction of a cell registered by a plugin (`odyssey.cells.register_cell`).

    Its parameters are those the plugin's `parameters(I, H)` names; its loop runs the
    plugin's `step` under autograd (or its `sequence`, or its `fast` kernel when allowed).
    """

    def __init__(self, definition: PluginDefinition, input_size: int, hidden_size: int,
                 init_std: float, impl: str) -> None:
        super().__init__()
        d = definition
        if impl == "cpp" and d.fast is None:
            raise ValueError(f"{d.name} has no fast kernel (its plugin gives no `fast`); use "
                             "impl='auto' or 'reference'")
        self.definition, self.input_size, self.hidden_size = d, input_size, hidden_size
        self.init_std, self.impl = init_std, impl
        shapes = d.parameters(input_size, hidden_size)
        if not isinstance(shapes, Mapping) or not shapes:
            raise ValueError(f"{d.name}: parameters({input_size}, {hidden_size}) must return "
                             f"a non-empty {{name: shape}} mapping, got {shapes!r}")
        params = {}
        for key, shape in shapes.items():
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            if not isinstance(key, str) or not key.isidentifier() or not shape or any(
                    isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
                raise ValueError(f"{d.name}: parameter {key!r} needs an identifier name and a "
                                 f"shape of positive integers, got {shape!r}")
            params[key] = nn.Parameter(torch.empty(shape))
        self.params = nn.ParameterDict(params)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, init_std) as for the built-ins, or the plugin's own `init`."""
        if self.definition.init is None:
            _init_normal(self)
        else:
            with torch.no_grad():
                self.definition.init(dict(self.params), self.init_std)

    def sequence(self, x: Tensor, drop: VariationalDropout | None = None) -> Tensor:
        """y (T, B, H) for x (T, B, I), all sequences starting at t = 0."""
        d, p = self.definition, dict(self.params)
        T, B, _ = x.shape
        if drop is None and d.fast is not None and self.impl != "reference":
            y = d.fast(p, x)
        elif d.sequence is not None:
            y = d.sequence(p, x, drop or NO_DROPOUT)
        else:
            y = self._loop(d.step, p, x, drop or NO_DROPOUT)
        if not isinstance(y, Tensor) or y.shape != (T, B, self.hidden_size):
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"{d.name} returned {got} for x of shape {tuple(x.shape)}; "
                             f"expected ({T}, {B}, {self.hidden_size})")
        return y

    def _loop(self, step: Callable[..., Any], p: dict[str, Tensor], x: Tensor,
              drop: Any) -> Tensor:
        """The per-step loop: state zeros at t = 0; the output is the state (or state[0])."""
        T, B, _ = x.shape
        n = self.definition.states
        zeros = [x.new_zeros(B, self.hidden_size) for _ in range(n)]

        def checked_step(t: int, state: Any) -> tuple[Tensor, Any]:
            state = step(p, x[t], state, drop)
            if n > 1 and (not isinstance(state, tuple | list) or len(state) != n):
                raise ValueError(f"{self.definition.name}: step must return a tuple of {n} "
                                 f"state tensors (states={n}), got {type(state).__name__}")
            if t == 0:  # a wrong shape would otherwise surface deep inside torch
                for k, part in enumerate([state] if n == 1 else state):
                    if not isinstance(part, Tensor) or part.shape != (B, self.hidden_size):
                        got = tuple(part.shape) if isinstance(part, Tensor) else type(part)
                        raise ValueError(
                            f"{self.definition.name}: step returned state {k} of shape {got}; "
                            f"expected (batch, hidden) = ({B}, {self.hidden_size})")
            return (state if n == 1 else state[0]), state

        return reference.unroll(checked_step, zeros[0] if n == 1 else tuple(zeros), T,
                                x.new_zeros(0, B, self.hidden_size))


class RecurrentLayer(nn.Module):
    """One recurrent layer, uni- or bidirectional, over padded time-major batches.

    Called as `layer(x, lengths)` with x (T, B, I) and lengths (B,) or None; returns
    (T, B, H) or (T, B, 2H), zero at padded steps. The reverse direction runs each
    sequence from its own last step, so padding never changes a result.
    """

    def __init__(self, cell: CellType, input_size: int, hidden_size: int, *,
                 bidirectional: bool = False, forget_bias: float = 0.0,
                 init_std: float = 0.1, impl: str = "auto", dropout: float = 0.0,
                 cell_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        if dropout > 0 and impl == "cpp":
            raise ValueError("impl='cpp' cannot apply variational dropout (the C++ kernels "
                             "have no masks); use impl='auto' or 'reference'")
        self.cell, self.spec, self.variant = cell, cell.spec, cell.name
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bidirectional, self.dropout = bidirectional, float(dropout)
        self.cell_options = cell.resolve_options(cell_options)
        n = 2 if bidirectional else 1
        self.directions = nn.ModuleList(
            cell.build(input_size, hidden_size, forget_bias=forget_bias, init_std=init_std,
                       impl=impl, **self.cell_options) for _ in range(n))
        # the masks' own generator, seeded from the global generator's current state without
        # advancing it, so a network's initial weights are the same with or without dropout
        self._mask_seed: int | None = None
        if self.dropout > 0:
            with torch.random.fork_rng(devices=[]):
                self._mask_seed = int(torch.randint(2**62, ()))
        self._mask_rng: torch.Generator | None = None
        self.dropout_used = False  # whether a direction has asked for a mask (check_cell)

    @property
    def output_size(self) -> int:
        """Features per step of the output: H, or 2H when bidirectional."""
        return self.hidden_size * len(self.directions)

    def expected_parameter_count(self) -> int:
        """The cell's parameter-count formula (DESIGN §2 for the built-ins) for this layer."""
        n = self.cell.count(self.input_size, self.hidden_size, self.cell_options)
        return n * len(self.directions)

    def extra_repr(self) -> str:
        return (f"{self.variant}, {self.input_size}, {self.hidden_size}, "
                f"bidirectional={self.bidirectional}"
                + (f", dropout={self.dropout}" if self.dropout else ""))

    def _masks(self, x: Tensor) -> VariationalDropout | None:
        """Fresh masks for one direction while training with dropout; None otherwise."""
        if not (self.training and self.dropout > 0):
            return None
        if self._mask_rng is None or self._mask_rng.device != x.device:
            self._mask_rng = torch.Generator(device=x.device)
            self._mask_rng.manual_seed(self._mask_seed)
        return VariationalDropout(self.dropout, x.shape[1], self.input_size, self.hidden_size,
                                  generator=self._mask_rng, device=x.device, dtype=x.dtype)

    def _run(self, k: int, x: Tensor) -> Tensor:
        drop = self._masks(x)
        y = self.directions[k].sequence(x, drop)
        if drop is not None and drop.used:
            self.dropout_used = True
        return y

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{self.variant} layer expects x of shape (T, B, {self.input_size}),"
                             f" got {tuple(x.shape)}")
        T, B, _ = x.shape
        steps = torch.arange(T, device=x.device)
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        else:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.shape != (B,) or lengths.dtype.is_floating_point:
                raise ValueError(f"lengths must be an integer tensor of shape ({B},), got "
                                 f"{lengths.dtype} {tuple(lengths.shape)}")
            if B and (int(lengths.min()) < 0 or int(lengths.max()) > T):
                raise ValueError(f"lengths must lie in [0, {T}], got {lengths.tolist()}")
            lengths = lengths.long()
        valid = (steps[:, None] < lengths[None, :]).unsqueeze(-1)  # (T, B, 1)
        outputs = [torch.where(valid, self._run(0, x), 0.0)]
        if self.bidirectional:
            # index that reverses each sequence within its own length (an involution)
            rev = torch.where(valid.squeeze(-1), lengths[None, :] - 1 - steps[:, None],
                              steps[:, None])
            x_rev = x.gather(0, rev.unsqueeze(-1).expand_as(x))
            y_rev = self._run(1, x_rev)
            y_back = y_rev.gather(0, rev.unsqueeze(-1).expand_as(y_rev))
            outputs.append(torch.where(valid, y_back, 0.0))
        return torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
