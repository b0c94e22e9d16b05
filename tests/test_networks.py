"""Networks: stacked layers (deep vs wide), parameter counts and the hidden size that fits a
parameter budget."""

import pytest
import torch

from odyssey.networks import SequenceNetwork, hidden_size_for_budget, network_parameter_count
from odyssey.search.sampling import SearchSpaceError, distributions
from odyssey.tasks import load_task
from odyssey.training import Hyperparameters, TrainSettings, train
from tests import toy


@pytest.mark.parametrize(("variant", "options"), [("V", None), ("GRU", None), ("FGR", None),
                                                  ("CW", {"modules": 3}), ("GRUD", None)])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 3])
def test_parameter_count_formula_of_a_stack(variant, options, bidirectional, layers):
    net = SequenceNetwork(variant, 6, 7, 4, bidirectional=bidirectional, layers=layers,
                          cell_options=options)
    n = sum(p.numel() for p in net.parameters())
    assert net.parameter_count() == n
    assert n == network_parameter_count(variant, 6, 7, 4, bidirectional=bidirectional,
                                        layers=layers, cell_options=options)
    assert net.recurrent_parameter_count() == n - net.head.weight.numel() - 4
    assert net.layers == layers


def test_one_layer_is_the_network_it_always_was():
    torch.manual_seed(0)
    one = SequenceNetwork("V", 3, 5, 2, bidirectional=False)
    torch.manual_seed(0)
    same = SequenceNetwork("V", 3, 5, 2, bidirectional=False, layers=1)
    assert list(one.state_dict()) == ["rnn.directions.0.weight_ih", "rnn.directions.0.weight_hh",
                                      "rnn.directions.0.bias", "rnn.directions.0.peephole_i",
                                      "rnn.directions.0.peephole_f",
                                      "rnn.directions.0.peephole_o", "head.weight", "head.bias"]
    for a, b in zip(one.state_dict().values(), same.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_each_layer_reads_the_one_below():
    torch.manual_seed(1)
    net = SequenceNetwork("GRU", 3, 4, 2, bidirectional=True, layers=2).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 4])
    expected = net.head(net.deeper[0](net.rnn(x, lengths), lengths))
    assert torch.equal(net(x, lengths), expected)
    assert net.deeper[0].input_size == 8
    with pytest.raises(ValueError, match="layers must be an integer >= 1"):
        SequenceNetwork("V", 3, 4, 2, bidirectional=False, layers=0)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("variant", ["V", "CW"])
def test_hidden_size_for_budget_is_the_largest_that_fits(layers, variant):
    budget = 5000
    h = hidden_size_for_budget(budget, variant, 10, 5, bidirectional=False, layers=layers)

    def count(k):
        return network_parameter_count(variant, 10, k, 5, bidirectional=False, layers=layers)

    assert count(h) <= budget < count(h + 1)
    deeper = hidden_size_for_budget(budget, variant, 10, 5, bidirectional=False, layers=3)
    assert deeper <= h  # the same budget buys narrower layers when there are more of them
    assert hidden_size_for_budget(1, variant, 10, 5, bidirectional=False) >= 1


def test_search_space_takes_layers_and_a_budget_instead_of_the_hidden_size():
    base = {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
            "one_minus_momentum": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
            "input_noise": {"type": "float", "low": 0.0, "high": 1.0}}
    budget = {"parameter_budget": {"type": "int", "low": 2000, "high": 20000, "log": True},
              "layers": {"type": "int", "low": 1, "high": 3}}
    assert set(distributions({**base, **budget})) == {*base, *budget}
    with pytest.raises(SearchSpaceError, match="not both"):
        distributions({**base, **budget,
                       "hidden_size": {"type": "int", "low": 2, "high": 9}})
    with pytest.raises(SearchSpaceError, match="missing \\['hidden_size'\\]"):
        distributions(base)
    with pytest.raises(SearchSpaceError, match="layers.type must be 'int'"):
        distributions({**base, **budget, "layers": {"type": "float", "low": 1, "high": 3}})
    with pytest.raises(SearchSpaceError, match="layers.low must be >= 1"):
        distributions({**base, **budget, "layers": {"type": "int", "low": 0, "high": 3}})


def test_hyperparameters_from_a_budget_search():
    hp = Hyperparameters.from_search({"parameter_budget": 900, "layers": 2,
                                      "learning_rate": 0.1, "one_minus_momentum": 0.5,
                                      "input_noise": 0.0})
    assert hp.hidden_size is None and hp.parameter_budget == 900 and hp.layers == 2
    with pytest.raises(ValueError, match="exactly one of hidden_size and parameter_budget"):
        Hyperparameters(None, 0.1, 0.5, 0.0)


def test_training_derives_the_hidden_size_from_the_budget():
    toy.register()
    task = load_task("toy", seed=2)
    settings = TrainSettings(max_epochs=2, patience=3, batch_size=8)
    hp = Hyperparameters(None, 0.5, 0.9, 0.0, layers=2, parameter_budget=800)
    r = train(task, "GRU", hp, settings, seed=1)
    expected = hidden_size_for_budget(800, "GRU", task.input_size, task.output_size,
                                      bidirectional=False, layers=2)
    assert r.status == "complete" and r.hidden_size == expected and r.layers == 2
    assert r.parameter_count <= 800
    deep = train(task, "V", Hyperparameters(5, 0.5, 0.9, 0.0),
                 TrainSettings(max_epochs=1, patience=3, batch_size=8, layers=3), seed=1)
    assert deep.layers == 3 and deep.parameter_count == network_parameter_count(
        "V", task.input_size, 5, task.output_size, bidirectional=False, layers=3)


def test_cell_options_reach_the_cell_through_the_settings():
    toy.register()
    task = load_task("toy", seed=2)
    settings = TrainSettings(max_epochs=1, patience=3, batch_size=8,
                             cell_options={"cw": {"modules": 2, "period_base": 3}})
    r = train(task, "CW", Hyperparameters(6, 0.5, 0.9, 0.0), settings, seed=1)
    assert r.recurrent_parameter_count == network_parameter_count(
        "CW", task.input_size, 6, 0, bidirectional=False, cell_options={"modules": 2})
    with pytest.raises(ValueError, match="train.cell_options.CW: cell CW: unknown cell option"):
        TrainSettings(cell_options={"CW": {"blocks": 2}})
