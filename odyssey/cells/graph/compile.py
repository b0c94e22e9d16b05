"""A graph compiled to a cell through the plugin API (`register_cell` with a `step`).

So a graph cell works wherever a plugin cell does: every task, the trainer, the sweep and
the analysis. Parameters are named after the nodes: W_<node>_<input> (H x size of the
input), b_<node>, p_<node> (a diag's vector). Dropout: where x or h_(t-1) enters a linear
map, that node's mask is applied (drop.x / drop.h with the node's name as the gate).

`fast` is the same loop without dropout, with every product of x done for all steps in one
matrix product and every product of h_(t-1) in one per step (the same sums, grouped: equal
to `step` within float rounding, tests/cells/graph).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..registry import CellType, get_cell, register_cell
from .core import (
    Graph,
    architecture_hash,
    canonical,
    canonical_string,
    sizes,
    topological_order,
    validate,
)

_UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}
_BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": torch.add, "mul": torch.mul, "sub": torch.sub}


def parameter_shapes(graph: Graph, input_size: int, hidden_size: int
                     ) -> dict[str, tuple[int, ...]]:
    """{name: shape} of one direction's parameters (see the module for the names)."""
    order = topological_order(graph)
    size = {"I": input_size, "H": hidden_size}
    node_size = sizes(graph, order)
    shapes: dict[str, tuple[int, ...]] = {}
    for name in order:
        node = graph.nodes[name]
        if node.op == "linear":
            for i in node.inputs:
                shapes[f"W_{name}_{i}"] = (hidden_size, size[node_size[i]])
            if node.bias is not None:
                shapes[f"b_{name}"] = (hidden_size,)
        elif node.op == "diag":
            shapes[f"p_{name}"] = (size[node_size[node.inputs[0]]],)
    return shapes


def parameter_count(graph: Graph, input_size: int, hidden_size: int) -> int:
    """The number of parameters of one direction."""
    total = 0
    for shape in parameter_shapes(graph, input_size, hidden_size).values():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


class CompiledGraph:
    """The step function, the fast loop and the initialiser of one validated graph."""

    def __init__(self, graph: Graph) -> None:
        validate(graph)
        self.graph = graph
        self.order = topological_order(graph)
        self.memory = graph.memory
        # linear maps that read x or h_(t-1) directly: batched in `fast`
        self.x_terms = [n for n in self.order if graph.nodes[n].op == "linear"
                        and "x" in graph.nodes[n].inputs]
        self.h_terms = [n for n in self.order if graph.nodes[n].op == "linear"
                        and "h" in graph.nodes[n].inputs]

    def init(self, params: dict[str, Tensor], init_std: float) -> None:
        """Every parameter from N(0, init_std); each bias shifted by its node's `bias`."""
        for p in params.values():
            p.normal_(0.0, init_std)
        for name, node in self.graph.nodes.items():
            if node.op == "linear" and node.bias:
                params[f"b_{name}"] += node.bias

    def _node(self, name: str, p: dict[str, Tensor], v: dict[str, Tensor], drop: Any,
              pre: dict[str, Tensor] | None = None) -> Tensor:
        node = self.graph.nodes[name]
        op = node.op
        if op == "linear":
            total = pre[name] if pre is not None and name in pre else None
            for i in node.inputs:
                if pre is not None and i in ("x", "h"):
                    continue  # already in pre[name]
                value = (drop.x(name, v[i]) if i == "x" else drop.h(name, v[i]) if i == "h"
                         else v[i])
                term = value @ p[f"W_{name}_{i}"].t()
                total = term if total is None else total + term
            if node.bias is not None and (pre is None or name not in pre):
                total = total + p[f"b_{name}"]
            return total
        if op == "diag":
            return p[f"p_{name}"] * v[node.inputs[0]]
        if op == "const":
            return v["h"].new_tensor(node.value)
        if op in _UNARY:
            return _UNARY[op](v[node.inputs[0]])
        return _BINARY[op](v[node.inputs[0]], v[node.inputs[1]])

    def step(self, p: dict[str, Tensor], x: Tensor, state: Any, drop: Any) -> Any:
        """One time step: the readable evaluation of every node in order."""
        h, c = state if self.memory else (state, None)
        v = {"x": x, "h": h}
        if c is not None:
            v["c"] = c
        for name in self.order:
            v[name] = self._node(name, p, v, drop)
        out = v[self.graph.outputs["h"]]
        return (out, v[self.graph.outputs["c"]]) if self.memory else out

    def fast(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        """The loop over x (T, B, I) without dropout, x and h products batched."""
        T, B, _ = x.shape
        H = self._hidden(p)
        nodes = self.graph.nodes
        x_pre: dict[str, tuple[Tensor, ...]] = {}
        if self.x_terms:  # every x product of every step in one matrix product
            w = torch.cat([p[f"W_{n}_x"] for n in self.x_terms])
            parts = torch.nn.functional.linear(x, w).split(H, dim=2)
            for n, part in zip(self.x_terms, parts, strict=True):
                if nodes[n].bias is not None:
                    part = part + p[f"b_{n}"]
                x_pre[n] = part.unbind(0)
        hw = torch.cat([p[f"W_{n}_h"] for n in self.h_terms]) if self.h_terms else None
        state_h = x.new_zeros(B, H)
        state_c = x.new_zeros(B, H) if self.memory else None
        outputs = []
        for t in range(T):
            pre: dict[str, Tensor] = {n: x_pre[n][t] for n in self.x_terms}
            if hw is not None:  # every h_(t-1) product of this step in one
                terms = (state_h @ hw.t()).split(H, dim=1)
                for n, term in zip(self.h_terms, terms, strict=True):
                    if n in pre:
                        pre[n] = pre[n] + term
                    else:
                        pre[n] = term + p[f"b_{n}"] if nodes[n].bias is not None else term
            v = {"x": x[t], "h": state_h}
            if state_c is not None:
                v["c"] = state_c
            for name in self.order:
                v[name] = self._node(name, p, v, None, pre)
            state_h = v[self.graph.outputs["h"]]
            if self.memory:
                state_c = v[self.graph.outputs["c"]]
            outputs.append(state_h)
        return torch.stack(outputs) if outputs else x.new_zeros(0, B, H)

    def _hidden(self, p: dict[str, Tensor]) -> int:
        """H: the rows of any linear map's matrix (a valid graph has one)."""
        return next(v.shape[0] for k, v in p.items() if k.startswith("W_"))


def cell_name(graph: Graph) -> str:
    """The registry name of a graph's architecture: G_<hash>."""
    return f"G_{architecture_hash(graph)}"


def register_graph(graph: Graph, name: str | None = None, *, canonicalise: bool = True,
                   description: str = "", origin: str | None = None) -> CellType:
    """Register `graph` as a cell (by default under `cell_name`, in its canonical form);
    the same architecture registered again under the same name returns the first one."""
    g = canonical(graph) if canonicalise else graph
    validate(g)
    name = name or cell_name(g)
    text = canonical_string(g)
    try:
        existing = get_cell(name)
    except ValueError:
        existing = None
    if existing is not None and getattr(existing.definition, "graph_string", None) == text:
        return existing
    compiled = CompiledGraph(g)  # (a valid graph has a linear map: only it makes size H)
    cell = register_cell(
        name, parameters=lambda i, h: parameter_shapes(g, i, h),
        parameter_count=lambda i, h: parameter_count(g, i, h), step=compiled.step,
        fast=compiled.fast, states=2 if g.memory else 1, init=compiled.init,
        description=description or f"graph cell {text}", origin=origin)
    # the definition is frozen; the architecture string lets a repeat be recognised
    object.__setattr__(cell.definition, "graph_string", text)
    return cell
