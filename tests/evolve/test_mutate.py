"""Each mutation happens, yields a valid graph, and invalid or listed results are redrawn."""

import numpy as np
import pytest

from odyssey.cells.graph import (
    Graph,
    GraphError,
    Node,
    ancestors,
    architecture_hash,
    canonical,
    known,
    validate,
)
from odyssey.evolve import mutate as m


def _edit(name, node_name, kind, seed):
    g = canonical(known(name))
    ed = m._Editor(g)
    line = m.transform(ed, node_name, kind, np.random.default_rng(seed))
    return g, ed.graph(), line


def _first(g, pred):
    return next(n for n, node in g.nodes.items() if pred(node))


def test_activation_replaced_by_another():
    g = canonical(known("GRU"))
    name = _first(g, lambda nd: nd.op == "sigmoid")
    for seed in range(20):
        _, child, line = _edit("GRU", name, "activation", seed)
        new = child.nodes[name]
        assert m.is_activation(new) and m.activation_kind(new) != "sigmoid"
        assert new.inputs == g.nodes[name].inputs and line.startswith("activation")


def test_linear_a_x_is_an_activation_and_can_become_a_nonlinearity():
    g = canonical(known("GRU"))
    name = _first(g, lambda nd: nd.op == "linear" and len(nd.inputs) == 1)
    kinds = {m.activation_kind(_edit("GRU", name, "activation", s)[1].nodes[name])
             for s in range(40)}
    assert "tanh" in kinds and 0.0 not in kinds


def test_elementwise_replaced_by_another():
    g = canonical(known("NP"))
    name = _first(g, lambda nd: nd.op == "mul")
    ops = {_edit("NP", name, "elementwise", s)[1].nodes[name].op for s in range(20)}
    assert ops == {"add", "sub"}


def test_insert_puts_an_activation_between_node_and_operand():
    g = canonical(known("NP"))
    name = _first(g, lambda nd: nd.op == "mul")
    _, child, _ = _edit("NP", name, "insert", 1)
    (new,) = set(child.nodes) - set(g.nodes)
    assert new in child.nodes[name].inputs
    assert m.is_activation(child.nodes[new]) and child.nodes[new].inputs[0] in g.nodes[name].inputs
    validate(child)


def test_ancestor_replaces_every_use():
    g = canonical(known("GRU"))
    name = _first(g, lambda nd: nd.op == "tanh")
    _, child, line = _edit("GRU", name, "ancestor", 2)
    target = line.split("-> ")[1]
    assert target in ancestors(g, name)
    assert not any(name in nd.inputs for nd in child.nodes.values())
    assert any(target in nd.inputs for nd in child.nodes.values())


def test_combine_replaces_the_node_by_an_op_of_two_ancestors():
    g = canonical(known("V"))
    name = _first(g, lambda nd: nd.op == "tanh")
    _, child, _ = _edit("V", name, "combine", 3)
    (new,) = set(child.nodes) - set(g.nodes)
    assert child.nodes[new].op in ("add", "mul", "sub")
    a, _ = child.nodes[new].inputs
    assert a == name or a in ancestors(g, name)
    users = [n for n, nd in child.nodes.items() if name in nd.inputs and n != new]
    assert not users  # every former user reads the new node


def test_mutate_returns_a_valid_new_architecture_and_redraws_listed_ones():
    rng = np.random.default_rng(0)
    parent = known("GRU")
    seen = {architecture_hash(parent)}
    for _ in range(15):
        child = m.mutate(parent, rng, listed=seen)
        validate(child.graph)
        assert child.hash == architecture_hash(child.graph) and child.hash not in seen
        assert child.steps and child.draws >= 1
        seen.add(child.hash)


def test_invalid_proposals_are_redrawn(monkeypatch):
    bad = Graph({"y": Node("tanh", ("h",))}, {"h": "y"})  # does not read x
    good = Graph({"a": Node("linear", ("x",), 0.0), "y": Node("tanh", ("a",))}, {"h": "y"})
    with pytest.raises(GraphError):
        validate(bad)
    calls = iter([(bad, ("x",), 0.5), (known("GRU"), ("y",), 0.5), (good, ("z",), 0.5)])
    monkeypatch.setattr(m, "propose", lambda g, rng: next(calls))
    child = m.mutate(known("GRU"), np.random.default_rng(0))
    assert child.draws == 3 and child.hash == architecture_hash(good)


def test_mutate_gives_up_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(m, "propose", lambda g, rng: (g, ("same",), 0.5))
    with pytest.raises(m.MutationError, match="no valid new architecture in 5"):
        m.mutate(known("GRU"), np.random.default_rng(0), max_draws=5)


def test_mutation_is_reproducible_from_the_generator():
    a = m.mutate(known("V"), np.random.default_rng(7))
    b = m.mutate(known("V"), np.random.default_rng(7))
    assert a.hash == b.hash and a.steps == b.steps


def _mutants(n, seed=1):
    rng = np.random.default_rng(seed)
    out, g = [], known("V")
    for k in range(n):
        child = m.mutate(g, rng).graph
        out.append(child)
        if k % 3 == 0:
            g = child
    return out, rng


def test_a_respelled_mutant_keeps_its_hash():
    mutants, rng = _mutants(40)
    for child in mutants:
        names = list(child.nodes)
        rename = {n: f"z{k}" for k, n in zip(rng.permutation(len(names)), names, strict=True)}
        nodes = {}
        for k in rng.permutation(len(names)):
            node = child.nodes[names[k]]
            inputs = tuple(rename.get(i, i) for i in node.inputs)
            if node.op in ("add", "mul", "linear") and rng.uniform() < 0.5:
                inputs = inputs[::-1]
            nodes[rename[names[k]]] = Node(node.op, inputs, node.bias, node.value)
        spelled = Graph(nodes, {o: rename[v] for o, v in child.outputs.items()})
        assert architecture_hash(spelled) == architecture_hash(child)


def test_mutants_compile_and_the_fast_loop_equals_the_step():
    import torch

    from odyssey.cells.dropout import NO_DROPOUT
    from odyssey.cells.graph import parameter_shapes
    from odyssey.cells.graph.compile import CompiledGraph

    mutants, _ = _mutants(20, seed=4)
    torch.manual_seed(0)
    for child in mutants:
        compiled = CompiledGraph(child)
        p = {k: torch.randn(s, dtype=torch.float64) * 0.3
             for k, s in parameter_shapes(child, 3, 4).items()}
        x = torch.randn(5, 2, 3, dtype=torch.float64)
        zeros = torch.zeros(2, 4, dtype=torch.float64)
        state = (zeros, zeros) if child.memory else zeros
        steps = []
        for t in range(5):
            state = compiled.step(p, x[t], state, NO_DROPOUT)
            steps.append(state[0] if child.memory else state)
        torch.testing.assert_close(compiled.fast(p, x), torch.stack(steps), rtol=1e-10,
                                   atol=1e-10, equal_nan=True)
