"""The cell registry: built-ins and cells registered with register_cell, run by the layer."""

import numpy as np
import pytest
import torch

from odyssey.cells import (
    ALL_VARIANTS,
    CellRegistrationError,
    build_layer,
    canonical,
    cell_names,
    check_cell,
    get_cell,
    parameter_count,
    register_cell,
)

from .equations import sigma


def mgu_parameters(i, h):
    return {"W": (2 * h, i), "U": (2 * h, h), "b": (2 * h,)}


def mgu_step(p, x, h, drop):
    w_f, w_h = p["W"].chunk(2)
    u_f, u_h = p["U"].chunk(2)
    b_f, b_h = p["b"].chunk(2)
    f = torch.sigmoid(drop.x("f", x) @ w_f.T + drop.h("f", h) @ u_f.T + b_f)
    cand = torch.tanh(drop.x("h", x) @ w_h.T + (f * drop.h("h", h)) @ u_h.T + b_h)
    return (1 - f) * h + f * cand


def mgu_count(i, h):
    return 2 * (i * h + h * h + h)


def register_mgu(name="MGU", **extra):
    return register_cell(name, parameters=mgu_parameters, step=mgu_step,
                         parameter_count=mgu_count, origin="tests", **extra)


def mgu_numpy(cell, x: np.ndarray) -> np.ndarray:
    """The MGU equations in NumPy for one sequence (T, I)."""
    p = {k: v.detach().double().numpy() for k, v in cell.params.items()}
    h_size = cell.hidden_size
    w_f, w_h = p["W"][:h_size], p["W"][h_size:]
    u_f, u_h = p["U"][:h_size], p["U"][h_size:]
    b_f, b_h = p["b"][:h_size], p["b"][h_size:]
    h, out = np.zeros(h_size), []
    for x_t in x:
        f = sigma(w_f @ x_t + u_f @ h + b_f)
        h = (1 - f) * h + f * np.tanh(w_h @ x_t + u_h @ (f * h) + b_h)
        out.append(h)
    return np.array(out)


def test_builtins_are_registered_in_design_order():
    assert cell_names()[:len(ALL_VARIANTS)] == ALL_VARIANTS
    assert cell_names("paper") == ("V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")
    assert cell_names("baseline") == ("GRU", "RNN")
    assert cell_names("extra") == ("LSTMB", "MUT1", "MUT2", "MUT3", "CW", "GRUD")
    assert not get_cell("MUT1").has_fast and get_cell("V").has_fast


def test_a_registered_cell_is_found_by_name_after_the_builtins():
    register_mgu()
    assert cell_names()[-1] == "MGU" and cell_names("plugin") == ("MGU",)
    assert canonical("mgu") == "MGU"
    assert get_cell("Mgu").origin == "tests"
    assert parameter_count("MGU", 5, 7, bidirectional=True) == 2 * mgu_count(5, 7)


def test_plugin_cell_follows_its_equations_with_padding_and_both_directions():
    register_mgu()
    layer = build_layer("MGU", 4, 5, bidirectional=True).double()
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_parameter_count()
    lengths = torch.tensor([6, 3, 1])
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    x[3:, 1] = float("nan")  # padding must never reach a result
    x[1:, 2] = 1e3
    y = layer(x, lengths).detach().numpy()
    for b, n in enumerate(lengths.tolist()):
        seq = x[:n, b].numpy()
        np.testing.assert_allclose(y[:n, b, :5], mgu_numpy(layer.directions[0], seq), atol=1e-12)
        backward = mgu_numpy(layer.directions[1], seq[::-1])[::-1]  # from its own last step
        np.testing.assert_allclose(y[:n, b, 5:], backward, atol=1e-12)
        assert (y[n:, b] == 0).all()


def test_plugin_cell_gradcheck():
    register_mgu()
    layer = build_layer("MGU", 3, 2, bidirectional=True).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x, torch.tensor([4, 2])), (x,))


def test_a_plugin_lstm_with_two_states_equals_the_builtin_np():
    """states=2 carries (h, c); an LSTM without peepholes written as a plugin equals NP."""
    def params(i, h):
        return {"weight_ih": (4 * h, i), "weight_hh": (4 * h, h), "bias": (4 * h,)}

    def step(p, x, state, drop):
        h, c = state
        z, i, f, o = (x @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias"]).chunk(4, 1)
        c = torch.tanh(z) * torch.sigmoid(i) + c * torch.sigmoid(f)
        return torch.tanh(c) * torch.sigmoid(o), c

    register_cell("MyNP", parameters=params, step=step, states=2, origin="tests",
                  parameter_count=lambda i, h: 4 * (i * h + h * h + h))
    ours = build_layer("MyNP", 3, 4, bidirectional=True).double()
    builtin = build_layer("NP", 3, 4, bidirectional=True, impl="reference").double()
    with torch.no_grad():
        for mine, theirs in zip(ours.directions, builtin.directions, strict=True):
            for name in ("weight_ih", "weight_hh", "bias"):
                mine.params[name].copy_(getattr(theirs, name))
    x, lengths = torch.randn(5, 3, 3, dtype=torch.float64), torch.tensor([5, 2, 4])
    assert torch.allclose(ours(x, lengths), builtin(x, lengths), atol=1e-12, rtol=0)


def test_sequence_function_and_fast_kernel():
    calls = []

    def sequence(p, x, drop):
        h, out = x.new_zeros(x.shape[1], p["R"].shape[0]), []
        for x_t in x:
            h = torch.tanh(drop.x("a", x_t) @ p["W"].T + drop.h("a", h) @ p["R"].T)
            out.append(h)
        return torch.stack(out)

    def fast(p, x):
        calls.append(x.shape)
        return sequence(p, x, type("Off", (), {"x": staticmethod(lambda g, v: v),
                                               "h": staticmethod(lambda g, v: v)})())

    register_cell("Tiny", parameters=lambda i, h: {"W": (h, i), "R": (h, h)},
                  sequence=sequence, fast=fast, parameter_count=lambda i, h: i * h + h * h,
                  origin="tests")
    x = torch.randn(3, 2, 4)
    torch.manual_seed(1)
    auto = build_layer("Tiny", 4, 2)
    torch.manual_seed(1)
    ref = build_layer("Tiny", 4, 2, impl="reference")
    assert torch.equal(auto(x), ref(x)) and len(calls) == 1  # fast only under auto
    build_layer("Tiny", 4, 2, impl="cpp")(x)  # a cell with a fast kernel takes impl=cpp
    assert len(calls) == 2
    build_layer("Tiny", 4, 2, dropout=0.5).train()(x)  # masks drawn: the loop runs
    assert len(calls) == 2
    check_cell("Tiny", dropout=True)


def test_impl_cpp_is_refused_without_a_fast_kernel():
    register_mgu()
    with pytest.raises(ValueError, match="MGU has no fast kernel"):
        build_layer("MGU", 3, 4, impl="cpp")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"step": None}, "give exactly one of step"),
    ({"sequence": lambda p, x, d: x}, "give exactly one of step"),
    ({"parameters": None}, "parameters must be a function"),
    ({"states": 0}, "states must be an integer >= 1"),
    ({"step": "not a function"}, "step must be a function"),
])
def test_bad_definitions_are_refused(kwargs, message):
    args = {"parameters": mgu_parameters, "step": mgu_step, "parameter_count": mgu_count,
            **kwargs}
    with pytest.raises(CellRegistrationError, match=message):
        register_cell("Bad", origin="tests", **args)


def test_names_that_clash_or_are_invalid_are_refused():
    with pytest.raises(CellRegistrationError, match="'v' is already taken by a built-in cell"):
        register_mgu("v")
    register_mgu()
    register_mgu()  # the same definition again: a no-op
    with pytest.raises(CellRegistrationError, match="already taken by plugin 'tests'"):
        register_cell("mgu", parameters=mgu_parameters, step=lambda p, x, h, d: h,
                      parameter_count=mgu_count, origin="tests")
    with pytest.raises(CellRegistrationError, match="must start with a letter"):
        register_mgu("my cell")


def test_check_cell_names_what_is_wrong():
    register_cell("Miscounted", parameters=mgu_parameters, step=mgu_step, origin="tests",
                  parameter_count=lambda i, h: 1)
    with pytest.raises(ValueError, match=r"Miscounted \(plugin tests\) is broken.*"
                                         r"parameter_count\(3, 4\) says 1"):
        check_cell("Miscounted")
    register_cell("Wide", parameters=mgu_parameters, origin="tests", parameter_count=mgu_count,
                  step=lambda p, x, h, d: torch.cat([h, h], 1))
    with pytest.raises(ValueError, match=r"Wide \(plugin tests\) is broken.*state 0 of shape "
                                         r"\(2, 8\); expected \(batch, hidden\) = \(2, 4\)"):
        check_cell("Wide")
    register_cell("Deaf", parameters=mgu_parameters, origin="tests", parameter_count=mgu_count,
                  step=lambda p, x, h, d: torch.tanh(x @ p["W"][:4].T + h @ p["U"][:4].T))
    check_cell("Deaf")
    with pytest.raises(ValueError, match="never applies the dropout masks"):
        check_cell("Deaf", dropout=True)
    register_mgu()
    check_cell("MGU", dropout=True)


def test_check_cell_leaves_the_random_state_alone():
    register_mgu()
    state = torch.get_rng_state()
    check_cell("MGU", dropout=True)
    assert torch.equal(torch.get_rng_state(), state)
