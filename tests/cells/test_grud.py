"""GRU-D (Che et al. 2018): equations, parameters, what missing values do, gradients, padding."""

import numpy as np
import pytest
import torch

from odyssey.cells import build_layer, check_cell, get_cell, parameter_count
from odyssey.cells.grud import decay
from tests.cells.padding import assert_padding_invariant


def sigma(a):
    return 1.0 / (1.0 + np.exp(-a))


def run_grud_equations(cell, inputs: np.ndarray) -> np.ndarray:
    """GRU-D on one sequence [x; m; delta] (T, 3D), step by step as Che et al. print it,
    with x-bar = 0 (the training mean after the missing-data option's centring)."""
    D, H = inputs.shape[1] // 3, cell.hidden_size
    p = {n: t.detach().double().numpy() for n, t in cell.named_parameters()}
    W, V = p["weight_ih"][:, :D], p["weight_ih"][:, D:]
    Wr, Wz, Wh = np.split(W, 3)
    Vr, Vz, Vh = np.split(V, 3)
    Ur, Uz, Uh = np.split(p["weight_hh"], 3)
    br, bz, bh = np.split(p["bias"], 3)
    x_bar = np.zeros(D)
    h, x_last = np.zeros(H), x_bar.copy()
    out = []
    for row in inputs:
        x, m, delta = row[:D], row[D:2 * D], row[2 * D:]
        gx = np.exp(-np.maximum(0, p["decay_x"] * delta + p["decay_x_bias"]))
        gh = np.exp(-np.maximum(0, p["decay_h"] @ delta + p["decay_h_bias"]))
        x_hat = m * x + (1 - m) * (gx * x_last + (1 - gx) * x_bar)
        x_last = np.where(m > 0, x, x_last)
        h = gh * h
        r = sigma(Wr @ x_hat + Ur @ h + Vr @ m + br)
        z = sigma(Wz @ x_hat + Uz @ h + Vz @ m + bz)
        cand = np.tanh(Wh @ x_hat + Uh @ (r * h) + Vh @ m + bh)
        h = (1 - z) * h + z * cand
        out.append(h)
    return np.array(out)


def missing_inputs(T: int, B: int, D: int, seed: int = 0) -> torch.Tensor:
    """[x; m; delta] with about 40 % of the values missing (x = 0 there, as the task fills)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    m = (torch.rand(T, B, D, generator=g) > 0.4).double()
    delta = torch.ones(T, B, D, dtype=torch.float64)
    for t in range(1, T):
        delta[t] = 1 + (1 - m[t - 1]) * delta[t - 1]
    return torch.cat([x * m, m, delta], dim=2)


def test_follows_the_paper_equations():
    torch.manual_seed(5)
    layer = build_layer("GRUD", 9, 4, init_std=0.5).double()
    x = missing_inputs(12, 1, 3)
    expected = run_grud_equations(layer.directions[0], x[:, 0].numpy())
    np.testing.assert_allclose(layer(x)[:, 0].detach().numpy(), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("d", "h"), [(1, 1), (3, 7), (39, 20)])
def test_parameter_count(bidirectional, d, h):
    layer = build_layer("GRUD", 3 * d, h, bidirectional=bidirectional)
    # W, V (3H x D each), U (3H x H), b (3H); w_gx, b_gx (D); W_gh (H x D), b_gh (H)
    one = 3 * h * d * 2 + 3 * h * h + 3 * h + 2 * d + h * d + h
    expected = one * (2 if bidirectional else 1)
    assert parameter_count("GRUD", 3 * d, h, bidirectional) == expected
    assert sum(p.numel() for p in layer.parameters()) == expected


def test_values_under_a_zero_mask_are_never_read():
    torch.manual_seed(6)
    layer = build_layer("GRUD", 6, 3, init_std=0.5).double()
    x = missing_inputs(8, 2, 2, seed=1)
    m = x[:, :, 2:4]
    other = x.clone()
    other[:, :, :2] += (1 - m) * 100.0  # change only what is not observed
    assert torch.equal(layer(x), layer(other))


def test_decays_start_at_one_and_shrink_with_time_since_the_observation():
    torch.manual_seed(7)
    layer = build_layer("GRUD", 3, 2, init_std=0.5).double()
    cell = layer.directions[0]
    with torch.no_grad():
        cell.decay_x.fill_(0.5)
        cell.decay_x_bias.fill_(-0.5)  # gamma_x = 1 at delta <= 1, then exp(-(d - 1) / 2)
    d = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    g = decay(d, cell.decay_x, cell.decay_x_bias, diagonal=True)
    np.testing.assert_allclose(g[:, 0].detach().numpy(), [1.0, 1.0, np.exp(-1.0)])


def test_with_every_value_observed_it_is_a_gru_on_x_and_a_constant_mask():
    # m = 1: x^ = x and the V m terms are constant biases; gamma_h depends only on delta
    torch.manual_seed(9)
    layer = build_layer("GRUD", 6, 3, init_std=0.5).double()
    x = torch.randn(5, 1, 2, dtype=torch.float64)
    full = torch.cat([x, torch.ones_like(x), torch.ones_like(x)], dim=2)
    expected = run_grud_equations(layer.directions[0], full[:, 0].numpy())
    np.testing.assert_allclose(layer(full)[:, 0].detach().numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck(bidirectional):
    torch.manual_seed(11)
    layer = build_layer("GRUD", 6, 3, bidirectional=bidirectional, init_std=0.5).double()
    x = missing_inputs(5, 2, 2, seed=2).requires_grad_()
    lengths = torch.tensor([5, 3])
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)),
                                          (x, lengths))

    inputs = (x, *[p.detach().clone().requires_grad_() for p in layer.parameters()])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_outputs_do_not_depend_on_padding_or_batch(bidirectional):
    torch.manual_seed(13)
    layer = build_layer("GRUD", 6, 4, bidirectional=bidirectional, init_std=0.5).double()
    lengths = [5, 2, 7]
    seqs = [missing_inputs(n, 1, 2, seed=n)[:, 0] for n in lengths]
    assert_padding_invariant(layer, seqs)


def test_is_a_builtin_that_reads_missing_inputs():
    cell = get_cell("grud")
    assert cell.name == "GRUD" and cell.missing_inputs and not cell.has_fast
    check_cell("GRUD", dropout=True)
    with pytest.raises(ValueError, match="GRUD has no C\\+\\+ kernel"):
        build_layer("GRUD", 6, 4, impl="cpp")
    with pytest.raises(ValueError, match="multiple of 3, got 4"):
        build_layer("GRUD", 4, 4)
