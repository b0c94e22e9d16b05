"""A recurrent cell as a serialisable expression DAG (Jozefowicz et al. 2015's search space).

The inputs of one step are `x` (x_t, size I), `h` (h_(t-1), size H) and, for cells with a
memory, `c` (c_(t-1), size H). Every other node is one operation on named nodes:

- ``linear``: sum_k W_k in_k (+ b): each input its own matrix (H x size of the input),
  `bias` the initial offset of b (null: no bias). A one-input linear with a bias is the
  paper's Linear(a, x) activation.
- ``diag``: p * in, a learned vector (a peephole).
- ``tanh``, ``sigmoid``, ``relu``: elementwise nonlinearities.
- ``add``, ``mul``, ``sub``: elementwise binary operations.
- ``const``: a scalar constant `value` (the 1 of 1 - z).

`outputs` names the node of h_t and, for a cell with a memory, of c_t. A `Graph` is checked
by `validate` (known ops, arity, no cycles, sizes agree, every output reachable from the
inputs); `canonical` gives the one spelling of an architecture (dead nodes pruned, equal
parameter-free nodes merged, commutative operands sorted, nodes renamed n0, n1, ... in a
fixed traversal), and `architecture_hash` hashes that spelling.

Graph canonisation is graph isomorphism in general; no library does it for labelled DAGs
with commutative operators and distinct parameter owners, so it is written here: each node
gets a structural signature (its expression tree, hashed bottom-up), commutative operands
are ordered by it, and nodes are numbered in depth-first order from the outputs. Siblings
with equal signatures are interchangeable unless their sharing differs; that rare case may
give two strings for one architecture (never one string for two).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

INPUTS = ("x", "h", "c")
NONLINEAR = ("tanh", "sigmoid", "relu")
BINARY = ("add", "mul", "sub")
COMMUTATIVE = ("add", "mul", "linear")
OPS = ("linear", "diag", *NONLINEAR, *BINARY, "const")
ARITY = {"diag": 1, **dict.fromkeys(NONLINEAR, 1), **dict.fromkeys(BINARY, 2), "const": 0}
PARAMETRIC = ("linear", "diag")
OUTPUTS = ("h", "c")
MAX_NODES = 80  # a bigger graph is refused (mutations could otherwise grow it without end)


class GraphError(ValueError):
    """A graph that is not a valid cell; the message names the node and what is wrong."""


@dataclass(frozen=True)
class Node:
    """One operation: `op` on the nodes named `inputs`; `bias` (linear), `value` (const)."""

    op: str
    inputs: tuple[str, ...] = ()
    bias: float | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if self.inputs:
            out["in"] = list(self.inputs)
        if self.op == "linear":
            out["bias"] = self.bias
        if self.op == "const":
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class Graph:
    """A cell: nodes by name, and the names of its outputs {"h": ..., ["c": ...]}."""

    nodes: Mapping[str, Node]
    outputs: Mapping[str, str]
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def memory(self) -> bool:
        """Whether the cell carries a memory c besides h."""
        return "c" in self.outputs

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": {k: n.to_dict() for k, n in self.nodes.items()},
                "outputs": dict(self.outputs)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "graph") -> Graph:
        """A graph from its dict form; GraphError naming the field for a malformed one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), Mapping) \
                or not isinstance(data.get("outputs"), Mapping):
            raise GraphError(f"{where}: expected a mapping with 'nodes' and 'outputs'")
        nodes = {}
        for name, spec in data["nodes"].items():
            if not isinstance(spec, Mapping) or "op" not in spec:
                raise GraphError(f"{where}: node {name!r} must be a mapping with an 'op'")
            inputs = spec.get("in", [])
            if isinstance(inputs, str) or not isinstance(inputs, list | tuple):
                raise GraphError(f"{where}: node {name!r}: 'in' must be a list of node names")
            bias, value = spec.get("bias"), spec.get("value")
            nodes[str(name)] = Node(str(spec["op"]), tuple(str(i) for i in inputs),
                                    None if bias is None else float(bias),
                                    None if value is None else float(value))
        return cls(nodes, {str(k): str(v) for k, v in data["outputs"].items()})

    @classmethod
    def from_json(cls, text: str, where: str = "graph") -> Graph:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise GraphError(f"{where}: not JSON: {e}") from e
        return cls.from_dict(data, where)


def topological_order(graph: Graph) -> list[str]:
    """Node names so that every node follows its inputs; GraphError on a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for start in graph.nodes:
        if start in state:
            continue
        stack = [(start, iter(graph.nodes[start].inputs))]
        state[start] = 1
        while stack:
            name, it = stack[-1]
            for child in it:
                if child in INPUTS:
                    continue
                if state.get(child) == 1:
                    raise GraphError(f"graph has a cycle through node {child!r}")
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(graph.nodes[child].inputs)))
                    break
            else:
                stack.pop()
                state[name] = 2
                order.append(name)
    return order


def sizes(graph: Graph, order: list[str] | None = None) -> dict[str, str]:
    """Each node's size: "I" (x's), "H" or "1" (a scalar constant); GraphError on a clash."""
    out = {"x": "I", "h": "H", "c": "H"}
    for name in order or topological_order(graph):
        node = graph.nodes[name]
        ins = [out[i] for i in node.inputs]
        if node.op == "const":
            out[name] = "1"
        elif node.op == "linear":
            if "1" in ins:
                raise GraphError(f"node {name!r}: a linear map of a constant")
            out[name] = "H"
        elif node.op in BINARY:
            real = {s for s in ins if s != "1"}
            if len(real) > 1:
                raise GraphError(f"node {name!r}: {node.op} of sizes {ins[0]} and {ins[1]}")
            out[name] = real.pop() if real else "1"
        else:  # diag, nonlinearities: the input's size
            if ins[0] == "1":
                raise GraphError(f"node {name!r}: {node.op} of a constant")
            out[name] = ins[0]
    return out


def validate(graph: Graph, *, max_nodes: int = MAX_NODES) -> None:
    """Raise GraphError unless `graph` is a cell: known ops and names, the right number of
    inputs, no cycle, sizes that agree, outputs of size H reached from x (and from x or h
    for c), and a memory c read only by a cell that writes it."""
    if not graph.nodes:
        raise GraphError("graph has no nodes")
    if len(graph.nodes) > max_nodes:
        raise GraphError(f"graph has {len(graph.nodes)} nodes, more than {max_nodes}")
    for name, node in graph.nodes.items():
        if not name.isidentifier() or name in INPUTS:
            raise GraphError(f"node name {name!r} must be an identifier other than "
                             f"{', '.join(INPUTS)}")
        if node.op not in OPS:
            raise GraphError(f"node {name!r}: unknown op {node.op!r}; expected one of "
                             f"{', '.join(OPS)}")
        want = ARITY.get(node.op)
        if want is not None and len(node.inputs) != want:
            raise GraphError(f"node {name!r}: {node.op} takes {want} input(s), got "
                             f"{len(node.inputs)}")
        if node.op == "linear" and not node.inputs:
            raise GraphError(f"node {name!r}: linear needs at least one input")
        for i in node.inputs:
            if i not in graph.nodes and i not in INPUTS:
                raise GraphError(f"node {name!r}: input {i!r} is no node")
        if node.op == "const" and node.value is None:
            raise GraphError(f"node {name!r}: const needs a value")
    unknown = sorted(set(graph.outputs) - set(OUTPUTS))
    if unknown or "h" not in graph.outputs:
        raise GraphError(f"outputs must name 'h' (and 'c' for a memory), got "
                         f"{sorted(graph.outputs)}")
    order = topological_order(graph)
    size = sizes(graph, order)
    for out, name in graph.outputs.items():
        if name not in graph.nodes:
            raise GraphError(f"output {out!r} must be a node, got {name!r}")
        if size[name] != "H":
            raise GraphError(f"output {out!r} (node {name!r}) has size {size[name]}, not H")
    reads = {o: _ancestors(graph, n) for o, n in graph.outputs.items()}
    if "x" not in reads["h"]:
        raise GraphError("output 'h' does not depend on the input x")
    if "c" in graph.outputs and not ({"x", "h"} & reads["c"]):
        raise GraphError("output 'c' depends on neither x nor h (it would stay zero)")
    if any("c" in r for r in reads.values()) and "c" not in graph.outputs:
        raise GraphError("the cell reads its memory c but has no output 'c'")


def _ancestors(graph: Graph, name: str) -> set[str]:
    """Every node and input `name` is computed from (not itself)."""
    seen: set[str] = set()
    stack = list(graph.nodes[name].inputs) if name in graph.nodes else []
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in graph.nodes:
            stack.extend(graph.nodes[n].inputs)
    return seen


def ancestors(graph: Graph, name: str) -> set[str]:
    """Nodes and inputs that `name` is computed from."""
    return _ancestors(graph, name)


def _signature(graph: Graph, order: list[str]) -> dict[str, str]:
    """A hash of each node's expression tree (operands of commutative ops sorted)."""
    sig = {i: i for i in INPUTS}
    for name in order:
        node = graph.nodes[name]
        kids = [sig[i] for i in node.inputs]
        if node.op in COMMUTATIVE:
            kids.sort()
        text = f"{node.op}|{node.bias}|{node.value}|{','.join(kids)}"
        sig[name] = hashlib.sha1(text.encode()).hexdigest()[:16]
    return sig


def _prune(graph: Graph) -> Graph:
    """Only the nodes the outputs need; a memory nobody reads dropped."""
    outputs = dict(graph.outputs)
    while True:
        live = set()
        for n in outputs.values():
            live |= {n} | _ancestors(graph, n)
        if "c" in outputs and "c" not in live:
            del outputs["c"]  # c_t is written but never read: not a memory
            continue
        break
    return Graph({k: v for k, v in graph.nodes.items() if k in live}, outputs, graph.meta)


def _merge(graph: Graph) -> Graph:
    """Merge parameter-free nodes that compute the same thing from the same nodes, and
    drop repeated inputs of a linear map (W1 h + W2 h is one matrix on h)."""
    order = topological_order(graph)
    rename: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    nodes: dict[str, Node] = {}
    for name in order:
        node = graph.nodes[name]
        inputs = tuple(rename.get(i, i) for i in node.inputs)
        if node.op == "linear":
            inputs = tuple(dict.fromkeys(inputs))
        node = Node(node.op, inputs, node.bias, node.value)
        if node.op not in PARAMETRIC:
            key = (node.op, node.value,
                   tuple(sorted(inputs)) if node.op in COMMUTATIVE else inputs)
            if key in seen:
                rename[name] = seen[key]
                continue
            seen[key] = name
        nodes[name] = node
    outputs = {k: rename.get(v, v) for k, v in graph.outputs.items()}
    return Graph(nodes, outputs, graph.meta)


def canonical(graph: Graph) -> Graph:
    """The one spelling of `graph`'s architecture (validated first): see the module."""
    validate(graph)
    g = _merge(_prune(graph))
    order = topological_order(g)
    sig = _signature(g, order)
    names: dict[str, str] = {}

    def visit(name: str) -> None:
        # iterative depth-first numbering: a node, then its operands in signature order
        stack = [name]
        while stack:
            n = stack.pop()
            if n in INPUTS or n in names:
                continue
            names[n] = f"n{len(names)}"
            node = g.nodes[n]
            kids = list(node.inputs)
            if node.op in COMMUTATIVE:
                kids.sort(key=lambda k: sig[k])
            stack.extend(reversed(kids))

    for out in OUTPUTS:
        if out in g.outputs:
            visit(g.outputs[out])
    rn = {**{i: i for i in INPUTS}, **names}
    new_sig = {rn[k]: v for k, v in sig.items() if k in rn}
    nodes = {}
    for old, new in sorted(names.items(), key=lambda kv: int(kv[1][1:])):
        node = g.nodes[old]
        inputs = [rn[i] for i in node.inputs]
        if node.op in COMMUTATIVE:
            inputs.sort(key=lambda k: (new_sig[k], k))
        nodes[new] = Node(node.op, tuple(inputs), node.bias, node.value)
    return Graph(nodes, {k: rn[v] for k, v in g.outputs.items()}, graph.meta)


def canonical_string(graph: Graph) -> str:
    """The canonical spelling as one line: `n0=op[bias](in,...);...|h=n0;c=n1`."""
    g = canonical(graph)
    parts = []
    for name, node in g.nodes.items():
        attr = (f"[{node.bias:g}]" if node.op == "linear" and node.bias is not None
                else "[-]" if node.op == "linear"
                else f"[{node.value:g}]" if node.op == "const" else "")
        parts.append(f"{name}={node.op}{attr}({','.join(node.inputs)})")
    outs = ";".join(f"{k}={g.outputs[k]}" for k in OUTPUTS if k in g.outputs)
    return ";".join(parts) + "|" + outs


def parse_canonical(text: str) -> Graph:
    """The graph a `canonical_string` spells (the store keeps architectures this way)."""
    try:
        body, outs = text.split("|")
        nodes = {}
        for part in body.split(";"):
            name, rest = part.split("=", 1)
            head, args = rest[:-1].split("(", 1)
            op, attr = (head.split("[", 1) + [""])[:2]
            attr = attr.rstrip("]")
            inputs = tuple(a for a in args.split(",") if a)
            bias = float(attr) if op == "linear" and attr not in ("", "-") else None
            value = float(attr) if op == "const" else None
            nodes[name] = Node(op, inputs, bias, value)
        outputs = dict(o.split("=") for o in outs.split(";"))
    except ValueError as e:
        raise GraphError(f"not a canonical architecture string: {text[:80]!r}") from e
    graph = Graph(nodes, outputs)
    validate(graph)
    return graph


def architecture_hash(graph: Graph) -> str:
    """12 hex digits naming the architecture (of its canonical string)."""
    return hashlib.sha1(canonical_string(graph).encode()).hexdigest()[:12]


def graph_from_edges(nodes: Iterable[tuple[str, str, tuple[str, ...], float | None]],
                     outputs: Mapping[str, str]) -> Graph:
    """A graph from (name, op, inputs, bias-or-value) rows: a compact way to write one."""
    built = {}
    for name, op, inputs, attr in nodes:
        built[name] = Node(op, tuple(inputs), attr if op == "linear" else None,
                           attr if op == "const" else None)
    return Graph(built, dict(outputs))
