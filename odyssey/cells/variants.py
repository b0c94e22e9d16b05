"""The built-in recurrent cells of DESIGN §2 as data: which parts each one has.

Every LSTM-family variant is the vanilla LSTM (V) with exactly one change; a
`VariantSpec` records that change so that the reference step, the fast kernels and
the parameter-count formula all read the same description. They are found by name through
`odyssey.cells.registry`, like cells from plugins.
"""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS: tuple[str, ...] = (
    "V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR", "GRU", "RNN",
)
LSTM_FAMILY: tuple[str, ...] = VARIANTS[:9]
# Variants beyond the paper's eleven, searchable beside them (same sweep, same report).
# LSTMB: Jozefowicz et al. (2015)'s LSTM-b, V with its forget-gate bias initialised to +1.
# MUT1-3: the three architectures Jozefowicz et al. found by evolutionary search (DESIGN §2).
EXTRA_VARIANTS: tuple[str, ...] = ("LSTMB", "MUT1", "MUT2", "MUT3")
ALL_VARIANTS: tuple[str, ...] = VARIANTS + EXTRA_VARIANTS


@dataclass(frozen=True)
class VariantSpec:
    """What an LSTM-family variant has; GRU and RNN only use `name` and `family`."""

    name: str
    family: str  # "lstm", "gru", "rnn" or "mut"
    input_gate: bool = True
    forget_gate: bool = True  # False for NFG (f = 1) and CIFG (f = 1 - i)
    coupled: bool = False  # CIFG: f = 1 - i
    output_gate: bool = True
    input_activation: bool = True  # g = tanh, else identity (NIAF)
    output_activation: bool = True  # h = tanh, else identity (NOAF)
    peepholes: bool = True
    gate_recurrence: bool = False  # FGR
    # fixed forget-gate bias shift at initialisation (LSTMB: +1), replacing the layer's
    # `forget_bias` argument; None: use that argument
    forget_bias: float | None = None

    @property
    def blocks(self) -> tuple[str, ...]:
        """Pre-activation blocks that own W, R and b rows, in storage order."""
        if self.family != "lstm":
            raise AttributeError(f"{self.name} is not an LSTM-family variant")
        present = {"z": True, "i": self.input_gate, "f": self.forget_gate, "o": self.output_gate}
        return tuple(k for k in ("z", "i", "f", "o") if present[k])

    @property
    def peephole_gates(self) -> tuple[str, ...]:
        """Gates with a peephole vector (each gate that has parameters, unless NP)."""
        if not self.peepholes:
            return ()
        return tuple(k for k in self.blocks if k != "z")


SPECS: dict[str, VariantSpec] = {
    "V": VariantSpec("V", "lstm"),
    "NIG": VariantSpec("NIG", "lstm", input_gate=False),
    "NFG": VariantSpec("NFG", "lstm", forget_gate=False),
    "NOG": VariantSpec("NOG", "lstm", output_gate=False),
    "NIAF": VariantSpec("NIAF", "lstm", input_activation=False),
    "NOAF": VariantSpec("NOAF", "lstm", output_activation=False),
    "NP": VariantSpec("NP", "lstm", peepholes=False),
    "CIFG": VariantSpec("CIFG", "lstm", forget_gate=False, coupled=True),
    "FGR": VariantSpec("FGR", "lstm", gate_recurrence=True),
    "GRU": VariantSpec("GRU", "gru"),
    "RNN": VariantSpec("RNN", "rnn"),
    "LSTMB": VariantSpec("LSTMB", "lstm", forget_bias=1.0),
    "MUT1": VariantSpec("MUT1", "mut"),
    "MUT2": VariantSpec("MUT2", "mut"),
    "MUT3": VariantSpec("MUT3", "mut"),
}


def builtin_parameter_count(s: VariantSpec, input_size: int, hidden_size: int) -> int:
    """The DESIGN §2 formula for the parameters of one direction of a built-in cell."""
    i, h = input_size, hidden_size
    block = i * h + h * h + h
    if s.family == "gru":
        return 3 * (i * h + h * h + 2 * h)
    if s.family == "rnn":
        return i * h + h * h + 2 * h
    if s.family == "mut":  # 3 input blocks (z, r, h), 2 (MUT1) or 3 recurrent, 3 biases
        return 3 * i * h + (2 if s.name == "MUT1" else 3) * h * h + 3 * h
    n = len(s.blocks) * block + len(s.peephole_gates) * h
    return n + 9 * h * h if s.gate_recurrence else n
