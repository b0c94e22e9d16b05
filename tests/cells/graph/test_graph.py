"""Graph cells: built-ins written as graphs equal them; canonical form, hash, validation,
the equation printer, and the compiled cell in a layer (dropout, fast path, plugin API)."""

import json

import pytest
import torch

from odyssey.cells import build_layer, check_cell, get_cell
from odyssey.cells.graph import (
    Graph,
    GraphError,
    Node,
    architecture_hash,
    canonical,
    canonical_string,
    equations,
    known,
    parameter_count,
    parse_canonical,
    register_graph,
    validate,
    weights_from_builtin,
)
from odyssey.cells.graph.compile import CompiledGraph

BUILTINS = ["V", "NP", "GRU", "MUT1", "MUT2", "MUT3"]


def _run_graph(graph, params, x, fast=False):
    compiled = CompiledGraph(graph)
    if fast:
        return compiled.fast(params, x)
    from odyssey.cells.dropout import NO_DROPOUT

    T, B, _ = x.shape
    H = next(v.shape[0] for k, v in params.items() if k.startswith("W_"))
    state = (x.new_zeros(B, H), x.new_zeros(B, H)) if graph.memory else x.new_zeros(B, H)
    out = []
    for t in range(T):
        state = compiled.step(params, x[t], state, NO_DROPOUT)
        out.append(state[0] if graph.memory else state)
    return torch.stack(out)


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("fast", [False, True])
def test_graph_equals_the_builtin_cell_with_the_same_weights(name, fast):
    torch.manual_seed(3)
    layer = build_layer(name, 3, 5, init_std=0.4, impl="reference").double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    expected = layer(x)
    params = weights_from_builtin(name, layer.directions[0])
    got = _run_graph(known(name), params, x, fast=fast)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", BUILTINS)
def test_graph_has_the_builtin_parameter_count(name):
    extra = {"GRU": -2 * 7}.get(name, 0)  # one bias per gate where PyTorch keeps two
    assert parameter_count(known(name), 4, 7) == get_cell(name).parameter_count(4, 7) + extra


def _respell(graph: Graph) -> Graph:
    """The same cell with other node names, nodes in reverse order, operands swapped."""
    names = {n: f"q{k}_{n}" for k, n in enumerate(graph.nodes)}
    rn = lambda i: names.get(i, i)  # noqa: E731
    nodes = {}
    for n, node in reversed(list(graph.nodes.items())):
        inputs = tuple(rn(i) for i in node.inputs)
        if node.op in ("add", "mul", "linear"):
            inputs = tuple(reversed(inputs))
        nodes[rn(n)] = Node(node.op, inputs, node.bias, node.value)
    # a dead node and a duplicate tanh of the same operand: neither changes the cell
    nodes["dead"] = Node("tanh", ("x",))
    return Graph(nodes, {k: rn(v) for k, v in graph.outputs.items()})


@pytest.mark.parametrize("name", BUILTINS)
def test_two_spellings_are_one_architecture(name):
    g = known(name)
    assert canonical_string(_respell(g)) == canonical_string(g)
    assert architecture_hash(_respell(g)) == architecture_hash(g)


def test_the_builtins_are_six_architectures():
    assert len({architecture_hash(known(n)) for n in BUILTINS}) == 6


def test_shared_parameter_free_nodes_merge_but_linear_maps_do_not():
    g = known("NP")
    nodes = dict(g.nodes)
    nodes["tc2"] = Node("tanh", ("c_new",))
    nodes["h_new"] = Node("mul", ("tc2", "o"))
    assert canonical_string(Graph(nodes, g.outputs)) == canonical_string(g)
    # a fresh copy of the output gate's linear map is a different cell (its own weights)
    nodes = dict(g.nodes)
    nodes["ao2"] = Node("linear", ("x", "h"), 0.0)
    nodes["o"] = Node("sigmoid", ("ao2",))
    assert canonical_string(Graph(nodes, g.outputs)) == canonical_string(g)  # ao now dead
    nodes["zi"] = Node("mul", ("z", "o"))  # the input gate replaced by the output gate
    assert canonical_string(Graph(nodes, g.outputs)) != canonical_string(g)


def test_canonical_string_and_json_round_trip():
    for name in BUILTINS:
        g = canonical(known(name))
        assert parse_canonical(canonical_string(g)) == g
        assert Graph.from_json(g.to_json()) == g
        json.loads(g.to_json())


def test_a_memory_nobody_reads_is_dropped():
    g = known("GRU")
    nodes = dict(g.nodes)
    nodes["cc"] = Node("tanh", ("h_new",))
    assert canonical(Graph(nodes, {"h": "h_new", "c": "cc"})).memory is False


@pytest.mark.parametrize("change, message", [
    (lambda n, o: n.update(z=Node("tanh", ("zz",))), "input 'zz' is no node"),
    (lambda n, o: n.update(z=Node("tanh", ("zi",))), "cycle"),
    (lambda n, o: n.update(zi=Node("mul", ("z", "x"))), "mul of sizes H and I"),
    (lambda n, o: n.update(z=Node("tanh", ("az", "x"))), "tanh takes 1 input"),
    (lambda n, o: n.update(z=Node("softmax", ("az",))), "unknown op 'softmax'"),
    (lambda n, o: o.pop("c"), "reads its memory c but has no output 'c'"),
    (lambda n, o: o.update(h="tc"), None),  # valid: h_t = tanh(c_t)
    (lambda n, o: o.update(h="pf"), "does not depend on the input x"),
    (lambda n, o: o.update(q="z"), "outputs must name"),
])
def test_validation_names_what_is_wrong(change, message):
    g = known("V")
    nodes, outputs = dict(g.nodes), dict(g.outputs)
    change(nodes, outputs)
    graph = Graph(nodes, outputs)
    if message is None:
        validate(graph)
    else:
        with pytest.raises(GraphError, match=message):
            validate(graph)


def test_equations_of_the_gru():
    lines = equations(known("GRU"))
    assert lines[-1].startswith("h_t = ")
    assert any("σ(" in line for line in lines) and "1 - a1" in lines[-1]
    lstm = equations(known("V"))
    assert [line.split(" =")[0] for line in lstm][-2:] == ["h_t", "c_t"]


def test_registered_graph_cell_runs_as_a_plugin_cell():
    cell = register_graph(known("MUT2"), origin="test")
    assert register_graph(known("MUT2"), origin="test") is cell  # same architecture again
    check_cell(cell.name)
    check_cell(cell.name, dropout=True)  # its linear maps apply the masks
    layer = build_layer(cell.name, 3, 4, bidirectional=True)
    x = torch.randn(5, 2, 3)
    lengths = torch.tensor([5, 3])
    auto = layer(x, lengths)
    for d in layer.directions:
        d.impl = "reference"
    torch.testing.assert_close(layer(x, lengths), auto, atol=1e-6, rtol=1e-5)


def test_linear_bias_offsets_initialise_the_bias():
    g = Graph({"a": Node("linear", ("x", "h"), 1.0), "y": Node("sigmoid", ("a",))},
              {"h": "y"})
    cell = register_graph(g, origin="test")
    torch.manual_seed(0)
    layer = build_layer(cell.name, 2, 300, init_std=0.01)
    (bias,) = [p for n, p in layer.named_parameters() if ".b_" in n]
    assert abs(float(bias.detach().mean()) - 1.0) < 0.01
