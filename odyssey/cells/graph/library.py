"""Known cells written as graphs: the LSTM (V, NP), the GRU and MUT1-3 (DESIGN §2).

Each equals the built-in cell of that name given the same weights (tests/cells/graph);
`weights_from_builtin` maps a built-in direction's parameters onto the graph's names.
Node names say which gate a node is (z, i, f, o; r, u for the GRU's update gate).
"""

from __future__ import annotations

from torch import Tensor, nn

from .core import Graph, graph_from_edges


def lstm(peepholes: bool = True) -> Graph:
    """Greff et al.'s vanilla LSTM (V), or NP without the peepholes."""
    rows = [("az", "linear", ("x", "h"), 0.0), ("z", "tanh", ("az",), None)]
    for g in ("i", "f"):
        rows.append((f"a{g}", "linear", ("x", "h"), 0.0))
        if peepholes:
            rows += [(f"p{g}", "diag", ("c",), None),
                     (f"s{g}", "add", (f"a{g}", f"p{g}"), None)]
        rows.append((g, "sigmoid", (f"s{g}" if peepholes else f"a{g}",), None))
    rows += [("zi", "mul", ("z", "i"), None), ("cf", "mul", ("c", "f"), None),
             ("c_new", "add", ("zi", "cf"), None), ("ao", "linear", ("x", "h"), 0.0)]
    if peepholes:
        rows += [("po", "diag", ("c_new",), None), ("so", "add", ("ao", "po"), None)]
    rows += [("o", "sigmoid", ("so" if peepholes else "ao",), None),
             ("tc", "tanh", ("c_new",), None), ("h_new", "mul", ("tc", "o"), None)]
    return graph_from_edges(rows, {"h": "h_new", "c": "c_new"})


def gru() -> Graph:
    """The GRU in PyTorch's form: n = tanh(W_n x + b_in + r * (U_n h + b_hn))."""
    return graph_from_edges([
        ("ar", "linear", ("x", "h"), 0.0), ("r", "sigmoid", ("ar",), None),
        ("au", "linear", ("x", "h"), 0.0), ("u", "sigmoid", ("au",), None),
        ("xn", "linear", ("x",), 0.0), ("hn", "linear", ("h",), 0.0),
        ("rhn", "mul", ("r", "hn"), None), ("an", "add", ("xn", "rhn"), None),
        ("n", "tanh", ("an",), None), ("one", "const", (), 1.0),
        ("keep", "sub", ("one", "u"), None), ("new", "mul", ("keep", "n"), None),
        ("old", "mul", ("u", "h"), None), ("h_new", "add", ("new", "old"), None),
    ], {"h": "h_new"})


def mut(k: int) -> Graph:
    """MUT1, MUT2 or MUT3 as Odyssey implements them (the raw x through a projection)."""
    if k not in (1, 2, 3):
        raise ValueError(f"MUT{k}: expected 1, 2 or 3")
    rows: list = []
    if k == 1:
        rows.append(("az", "linear", ("x",), 0.0))
    elif k == 2:
        rows.append(("az", "linear", ("x", "h"), 0.0))
    else:
        rows += [("th", "tanh", ("h",), None), ("az", "linear", ("x", "th"), 0.0)]
    rows += [("z", "sigmoid", ("az",), None),
             ("ar", "linear", ("x", "h"), 0.0), ("r", "sigmoid", ("ar",), None),
             ("rh", "mul", ("r", "h"), None)]
    if k == 1:
        rows += [("ah", "linear", ("rh",), 0.0), ("wx", "linear", ("x",), None),
                 ("tx", "tanh", ("wx",), None), ("sh", "add", ("ah", "tx"), None),
                 ("cand", "tanh", ("sh",), None)]
    else:
        rows += [("ah", "linear", ("rh", "x"), 0.0), ("cand", "tanh", ("ah",), None)]
    rows += [("new", "mul", ("cand", "z"), None), ("one", "const", (), 1.0),
             ("keep", "sub", ("one", "z"), None), ("old", "mul", ("h", "keep"), None),
             ("h_new", "add", ("new", "old"), None)]
    return graph_from_edges(rows, {"h": "h_new"})


GRAPHS = {"V": lambda: lstm(True), "NP": lambda: lstm(False), "GRU": gru,
          "MUT1": lambda: mut(1), "MUT2": lambda: mut(2), "MUT3": lambda: mut(3)}


def known(name: str) -> Graph:
    """The graph of a cell in `GRAPHS` (V, NP, GRU, MUT1, MUT2, MUT3)."""
    key = name.upper()
    if key not in GRAPHS:
        raise ValueError(f"no graph for cell {name!r}; expected one of {', '.join(GRAPHS)}")
    return GRAPHS[key]()


def weights_from_builtin(name: str, cell: nn.Module) -> dict[str, Tensor]:
    """The graph `known(name)`'s parameters (compile.parameter_names) from one direction of
    the built-in cell `name`, so that both compute the same function."""
    key = name.upper()
    out: dict[str, Tensor] = {}
    if key in ("V", "NP"):
        h = cell.hidden_size
        blocks = dict(zip(cell.spec.blocks, range(4), strict=False))
        for g, k in blocks.items():
            rows = slice(k * h, (k + 1) * h)
            out[f"W_a{g}_x"] = cell.weight_ih[rows]
            out[f"W_a{g}_h"] = cell.weight_hh[rows]
            out[f"b_a{g}"] = cell.bias[rows]
        for g, p in cell.peepholes().items():
            out[f"p_p{g}"] = p
        return out
    if key == "GRU":
        wr, wz, wn = cell.weight_ih.chunk(3)
        ur, uz, un = cell.weight_hh.chunk(3)
        bir, biz, bin_ = cell.bias_ih.chunk(3)
        bhr, bhz, bhn = cell.bias_hh.chunk(3)
        return {"W_ar_x": wr, "W_ar_h": ur, "b_ar": bir + bhr, "W_au_x": wz, "W_au_h": uz,
                "b_au": biz + bhz, "W_xn_x": wn, "b_xn": bin_, "W_hn_h": un, "b_hn": bhn}
    if key.startswith("MUT"):
        wz, wr, wh = cell.weight_ih.chunk(3)
        bz, br, bh = cell.bias.chunk(3)
        if key == "MUT1":
            ur, uh = cell.weight_hh.chunk(2)
            return {"W_az_x": wz, "b_az": bz, "W_ar_x": wr, "W_ar_h": ur, "b_ar": br,
                    "W_ah_rh": uh, "b_ah": bh, "W_wx_x": wh}
        uz, ur, uh = cell.weight_hh.chunk(3)
        out = {"W_az_x": wz, "b_az": bz, "W_ar_x": wr, "W_ar_h": ur, "b_ar": br,
               "W_ah_rh": uh, "W_ah_x": wh, "b_ah": bh}
        out["W_az_th" if key == "MUT3" else "W_az_h"] = uz
        return out
    raise ValueError(f"no graph for cell {name!r}; expected one of {', '.join(GRAPHS)}")
