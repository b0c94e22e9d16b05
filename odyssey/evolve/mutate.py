"""The mutations of Jozefowicz et al. (2015) on graph cells.

A mutation draws p uniformly from [0, 1] and transforms each node with probability p, by
one of the transformations that apply to it, drawn uniformly:

- ``activation``: a nonlinearity (tanh, sigmoid, ReLU, or a one-input linear map with a
  bias, the paper's Linear(a, x)) replaced by another of ACTIVATIONS;
- ``elementwise``: an elementwise op replaced by another of +, x, -;
- ``insert``: a random activation inserted between the node and one of its operands;
- ``ancestor``: the node replaced by one of its ancestors (every use of it);
- ``combine``: the node replaced by the sum, product or difference of a random ancestor
  of itself (itself included) and a random ancestor of another random node.

A result that does not validate, or whose architecture is already listed (or is the
parent's), is drawn again (`mutate`), so an invalid graph never reaches training.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from ..cells.graph import (
    BINARY,
    INPUTS,
    NONLINEAR,
    Graph,
    GraphError,
    Node,
    ancestors,
    architecture_hash,
    canonical,
)

# tanh, sigmoid, ReLU, Linear(0, x), Linear(1, x), Linear(0.9, x), Linear(1.1, x)
ACTIVATIONS: tuple[str | float, ...] = ("tanh", "sigmoid", "relu", 0.0, 1.0, 0.9, 1.1)
TRANSFORMS = ("activation", "elementwise", "insert", "ancestor", "combine")


class MutationError(RuntimeError):
    """No valid new architecture was found within the allowed number of draws."""


@dataclass(frozen=True)
class Mutation:
    """A child architecture, what was done to the parent, and how many draws it took."""

    graph: Graph
    hash: str
    steps: tuple[str, ...]
    p: float
    draws: int

    @property
    def description(self) -> str:
        return f"p={self.p:.2f}: " + "; ".join(self.steps)


def is_activation(node: Node) -> bool:
    """A nonlinearity, or a one-input linear map with a bias (Linear(a, x))."""
    return node.op in NONLINEAR or (node.op == "linear" and len(node.inputs) == 1
                                    and node.bias is not None)


def activation_node(kind: str | float, operand: str) -> Node:
    """The node of activation `kind` (a nonlinearity's name, or a Linear(a, x)'s a)."""
    if isinstance(kind, str):
        return Node(kind, (operand,))
    return Node("linear", (operand,), float(kind))


def activation_kind(node: Node) -> str | float:
    return node.op if node.op in NONLINEAR else float(node.bias)  # type: ignore[arg-type]


def _label(kind: str | float) -> str:
    return kind if isinstance(kind, str) else f"Linear({kind:g}, x)"


class _Editor:
    """A mutable copy of a graph with fresh node names for what it adds."""

    def __init__(self, graph: Graph) -> None:
        self.nodes = dict(graph.nodes)
        self.outputs = dict(graph.outputs)
        self._k = 0

    def fresh(self) -> str:
        while True:
            self._k += 1
            name = f"m{self._k}"
            if name not in self.nodes:
                return name

    def graph(self) -> Graph:
        return Graph(dict(self.nodes), dict(self.outputs))

    def replace_uses(self, old: str, new: str, *, skip: str | None = None) -> None:
        """Every use of `old` (by nodes other than `skip`, and by the outputs) -> `new`."""
        for name, node in list(self.nodes.items()):
            if name != skip and old in node.inputs:
                self.nodes[name] = Node(node.op, tuple(new if i == old else i
                                                       for i in node.inputs),
                                        node.bias, node.value)
        for k, v in list(self.outputs.items()):
            if v == old:
                self.outputs[k] = new


def applicable(node: Node) -> list[str]:
    """The transformations that apply to `node`."""
    out = []
    if is_activation(node):
        out.append("activation")
    if node.op in BINARY:
        out.append("elementwise")
    if node.inputs:
        out += ["insert", "ancestor"]
    out.append("combine")
    return out


def transform(ed: _Editor, name: str, kind: str, rng: np.random.Generator) -> str:
    """Apply transformation `kind` to node `name` in place; a line saying what was done."""
    node = ed.nodes[name]
    g = ed.graph()
    if kind == "activation":
        old = activation_kind(node)
        choices = [a for a in ACTIVATIONS if a != old]
        new = choices[rng.integers(len(choices))]
        ed.nodes[name] = activation_node(new, node.inputs[0])
        return f"activation {name}: {_label(old)} -> {_label(new)}"
    if kind == "elementwise":
        choices = [op for op in BINARY if op != node.op]
        new = choices[rng.integers(len(choices))]
        ed.nodes[name] = Node(new, node.inputs)
        return f"elementwise {name}: {node.op} -> {new}"
    if kind == "insert":
        k = int(rng.integers(len(node.inputs)))
        act = ACTIVATIONS[rng.integers(len(ACTIVATIONS))]
        new_name = ed.fresh()
        ed.nodes[new_name] = activation_node(act, node.inputs[k])
        inputs = list(node.inputs)
        inputs[k] = new_name
        ed.nodes[name] = Node(node.op, tuple(inputs), node.bias, node.value)
        return f"insert {_label(act)} between {name} and {node.inputs[k]}"
    if kind == "ancestor":
        anc = sorted(ancestors(g, name))
        target = anc[rng.integers(len(anc))]
        ed.replace_uses(name, target)
        return f"ancestor {name} -> {target}"
    if kind == "combine":
        others = [n for n in (*INPUTS, *g.nodes) if n != name and (n in g.nodes or n in
                                                                     _used_inputs(g))]
        other = others[rng.integers(len(others))]
        mine = sorted(ancestors(g, name) | {name})
        theirs = sorted((ancestors(g, other) if other in g.nodes else set()) | {other})
        a, b = mine[rng.integers(len(mine))], theirs[rng.integers(len(theirs))]
        op = BINARY[rng.integers(len(BINARY))]
        new_name = ed.fresh()
        ed.nodes[new_name] = Node(op, (a, b))
        ed.replace_uses(name, new_name, skip=new_name)
        return f"combine {name} -> {op}({a}, {b})"
    raise ValueError(f"unknown transformation {kind!r}; expected one of {TRANSFORMS}")


def _used_inputs(graph: Graph) -> set[str]:
    return {i for node in graph.nodes.values() for i in node.inputs if i in INPUTS}


def propose(graph: Graph, rng: np.random.Generator) -> tuple[Graph, tuple[str, ...], float]:
    """One draw: p ~ U[0, 1], each node transformed with probability p (in canonical order).

    The result is not validated (see `mutate`)."""
    parent = canonical(graph)
    ed = _Editor(parent)
    p = float(rng.uniform())
    steps = []
    for name in list(parent.nodes):
        if name not in ed.nodes or rng.uniform() >= p:
            continue
        kinds = applicable(ed.nodes[name])
        kind = kinds[rng.integers(len(kinds))]
        steps.append(transform(ed, name, kind, rng))
    return ed.graph(), tuple(steps), p


def mutate(graph: Graph, rng: np.random.Generator, listed: Collection[str] = (), *,
           max_draws: int = 1000) -> Mutation:
    """A valid child of `graph` whose architecture hash is neither `listed` nor the parent's;
    invalid or known results are drawn again (MutationError after `max_draws`)."""
    parent_hash = architecture_hash(graph)
    for draw in range(1, max_draws + 1):
        child, steps, p = propose(graph, rng)
        if not steps:
            continue
        try:
            h = architecture_hash(child)  # validates
        except GraphError:
            continue
        if h == parent_hash or h in listed:
            continue
        return Mutation(canonical(child), h, steps, p, draw)
    raise MutationError(f"no valid new architecture in {max_draws} mutations of "
                        f"{parent_hash}")
