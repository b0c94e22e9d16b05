"""A graph cell written as equations, one line per named quantity.

Outputs are h_t and c_t; a node used more than once gets a name (a1, a2, ...); a node used
once is written inside its user. Linear maps are W<k>·x_t + U<k>·h_(t-1) + ... + b<k>, each
matrix numbered by its node, so two equal-looking gates show they hold their own weights.
"""

from __future__ import annotations

from .core import INPUTS, Graph, canonical, topological_order

SYMBOLS = {"x": "x_t", "h": "h_(t-1)", "c": "c_(t-1)"}
FUNCS = {"tanh": "tanh", "sigmoid": "σ", "relu": "ReLU"}
OPS = {"add": "+", "sub": "-", "mul": "⊙"}


def equations(graph: Graph, *, canonicalise: bool = True) -> list[str]:
    """The cell as lines `name = expression`, inputs first, h_t and c_t last."""
    g = canonical(graph) if canonicalise else graph
    order = topological_order(g)
    uses: dict[str, int] = {}
    for node in g.nodes.values():
        for i in node.inputs:
            uses[i] = uses.get(i, 0) + 1
    outs = {v: k for k, v in g.outputs.items()}
    names: dict[str, str] = dict(SYMBOLS)
    linear_ids: dict[str, int] = {}
    diag_ids: dict[str, int] = {}
    text: dict[str, str] = {}
    lines: list[str] = []
    k = 0
    for n in order:
        node = g.nodes[n]
        if node.op == "linear":
            linear_ids[n] = len(linear_ids) + 1
        elif node.op == "diag":
            diag_ids[n] = len(diag_ids) + 1

    def ref(i: str) -> str:
        return names[i] if i in names else text[i]

    for n in order:
        node = g.nodes[n]
        if node.op == "linear":
            j = linear_ids[n]
            terms = [f"{_matrix(i, j)}·{_wrap(ref(i))}" for i in node.inputs]
            if node.bias is not None:
                terms.append(f"b{j}" + (f"[init {node.bias:g}]" if node.bias else ""))
            expr = " + ".join(terms)
        elif node.op == "diag":
            expr = f"p{diag_ids[n]}⊙{_wrap(ref(node.inputs[0]))}"
        elif node.op == "const":
            expr = f"{node.value:g}"
        elif node.op in FUNCS:
            expr = f"{FUNCS[node.op]}({ref(node.inputs[0])})"
        else:
            a, b = (ref(i) for i in node.inputs)
            expr = f"{_wrap(a)} {OPS[node.op]} {_wrap(b)}"
        if n in outs:
            names[n] = f"{outs[n]}_t"
            lines.append(f"{names[n]} = {expr}")
        elif uses.get(n, 0) > 1:
            k += 1
            names[n] = f"a{k}"
            lines.append(f"{names[n]} = {expr}")
        else:
            text[n] = expr
    # outputs last, h before c
    tail = [line for o in ("h", "c") for line in lines if line.startswith(f"{o}_t =")]
    return [line for line in lines if line not in tail] + tail


def _matrix(i: str, j: int) -> str:
    return {"x": "W", "h": "U", "c": "V"}.get(i, "M") + str(j) if i in INPUTS else f"M{j}"


def _wrap(expr: str) -> str:
    """Parentheses around an expression with a top-level operator."""
    depth = 0
    for ch in expr:
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch == " ":
            return f"({expr})"
    return expr
