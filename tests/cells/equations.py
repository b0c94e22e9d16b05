"""An independent NumPy transcription of the DESIGN §2 equations, used only by the tests.

It reads a layer's parameters gate by gate and applies the printed equations literally,
so that the reference implementation is checked against the spec, not against itself.
"""

from __future__ import annotations

import numpy as np

from odyssey.cells.layer import LSTMFamilyCell, MutCell


def sigma(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def named_weights(cell: LSTMFamilyCell) -> dict[str, np.ndarray]:
    """W_k, R_k, b_k, p_k per block k, and R_{k->g} of FGR, as float64 arrays."""
    h = cell.hidden_size
    out: dict[str, np.ndarray] = {}
    for n, k in enumerate(cell.spec.blocks):
        rows = slice(n * h, (n + 1) * h)
        out[f"W_{k}"] = cell.weight_ih.detach().double().numpy()[rows]
        out[f"R_{k}"] = cell.weight_hh.detach().double().numpy()[rows]
        out[f"b_{k}"] = cell.bias.detach().double().numpy()[rows]
    for g in cell.spec.peephole_gates:
        out[f"p_{g}"] = getattr(cell, f"peephole_{g}").detach().double().numpy()
    if cell.spec.gate_recurrence:
        gg = cell.weight_gg.detach().double().numpy()
        for a, target in enumerate("ifo"):
            for b, source in enumerate("ifo"):
                out[f"R_{source}->{target}"] = gg[a * h:(a + 1) * h, b * h:(b + 1) * h]
    return out


Masks = dict[tuple[str, str], np.ndarray]


def _mask(masks: Masks | None, kind: str, gate: str, v: np.ndarray) -> np.ndarray:
    """v times the variational dropout mask of (kind, gate), if masks are given."""
    return v if masks is None else v * masks[(kind, gate)]


def run_equations(cell: LSTMFamilyCell, x: np.ndarray, masks: Masks | None = None
                  ) -> np.ndarray:
    """y for one sequence x (T, I) by the DESIGN §2 equations of cell.spec.

    `masks`: Gal & Ghahramani's dropout, {("x" or "h", block): vector}: the same mask at
    every step on x and y' where they enter that block's W and R.
    """
    s, w, h = cell.spec, named_weights(cell), cell.hidden_size
    y_prev, c_prev = np.zeros(h), np.zeros(h)
    prev_gates = {"i": np.zeros(h), "f": np.zeros(h), "o": np.zeros(h)}
    ys = []

    def pre(k: str, x_t: np.ndarray) -> np.ndarray:
        a = (w[f"W_{k}"] @ _mask(masks, "x", k, x_t) + w[f"R_{k}"] @ _mask(masks, "h", k, y_prev)
             + w[f"b_{k}"])
        if s.gate_recurrence and k in "ifo":
            a = a + sum(w[f"R_{src}->{k}"] @ prev_gates[src] for src in "ifo")
        return a

    for x_t in x:
        g = np.tanh if s.input_activation else (lambda v: v)
        hh = np.tanh if s.output_activation else (lambda v: v)
        z = g(pre("z", x_t))
        i = sigma(pre("i", x_t) + w.get("p_i", 0.0) * c_prev) if s.input_gate else np.ones(h)
        if s.coupled:
            f = 1.0 - i
        elif s.forget_gate:
            f = sigma(pre("f", x_t) + w.get("p_f", 0.0) * c_prev)
        else:
            f = np.ones(h)
        c = z * i + c_prev * f
        o = sigma(pre("o", x_t) + w.get("p_o", 0.0) * c) if s.output_gate else np.ones(h)
        y = hh(c) * o
        ys.append(y)
        y_prev, c_prev, prev_gates = y, c, {"i": i, "f": f, "o": o}
    return np.stack(ys)


def run_mut_equations(cell: MutCell, x: np.ndarray, masks: Masks | None = None) -> np.ndarray:
    """y for one sequence x (T, I) by the DESIGN §2 MUT equations, raw x through W_x*.

    `masks` as for `run_equations`, gates z, r, h (the candidate): on x and on h where it
    enters W_hz (after MUT3's tanh), W_hr and W_hh.
    """
    h_size, name = cell.hidden_size, cell.spec.name
    w_in = cell.weight_ih.detach().double().numpy()
    w_rec = cell.weight_hh.detach().double().numpy()
    bias = cell.bias.detach().double().numpy()
    W_xz, W_xr, W_xh = (w_in[k * h_size:(k + 1) * h_size] for k in range(3))
    b_z, b_r, b_h = (bias[k * h_size:(k + 1) * h_size] for k in range(3))
    if name == "MUT1":
        W_hz = None
        W_hr, W_hh = w_rec[:h_size], w_rec[h_size:]
    else:
        W_hz, W_hr, W_hh = (w_rec[k * h_size:(k + 1) * h_size] for k in range(3))
    h = np.zeros(h_size)
    out = []
    def m(kind: str, gate: str, v: np.ndarray) -> np.ndarray:
        return _mask(masks, kind, gate, v)

    for x_t in x:
        xz, xr, xh = m("x", "z", x_t), m("x", "r", x_t), m("x", "h", x_t)
        if name == "MUT1":
            z = sigma(W_xz @ xz + b_z)
            r = sigma(W_xr @ xr + W_hr @ m("h", "r", h) + b_r)
            h = (np.tanh(W_hh @ (r * m("h", "h", h)) + np.tanh(W_xh @ xh) + b_h) * z
                 + h * (1 - z))
        elif name == "MUT2":
            z = sigma(W_xz @ xz + W_hz @ m("h", "z", h) + b_z)
            r = sigma(W_xr @ xr + W_hr @ m("h", "r", h) + b_r)  # the paper's bare x, projected
            h = np.tanh(W_hh @ (r * m("h", "h", h)) + W_xh @ xh + b_h) * z + h * (1 - z)
        else:
            z = sigma(W_xz @ xz + W_hz @ m("h", "z", np.tanh(h)) + b_z)
            r = sigma(W_xr @ xr + W_hr @ m("h", "r", h) + b_r)
            h = np.tanh(W_hh @ (r * m("h", "h", h)) + W_xh @ xh + b_h) * z + h * (1 - z)
        out.append(h)
    return np.array(out)
