"""The clockwork RNN (CW, Koutník et al. 2014): equations, parameters, skipped steps, gradients,
padding and directions."""

import numpy as np
import pytest
import torch

from odyssey.cells import build_layer, check_cell, get_cell, parameter_count
from odyssey.cells.clockwork import module_sizes, periods
from tests.cells.padding import assert_padding_invariant


def run_cw_equations(cell, x: np.ndarray) -> np.ndarray:
    """The clockwork RNN of one sequence x (T, I), module by module, as the paper prints it:
    module i ticks when t mod T_i == 0 and reads modules i..g through its block of R."""
    W = cell.weight_ih.detach().double().numpy()
    b = cell.bias.detach().double().numpy()
    sizes, pers = cell.sizes, cell.periods
    H = sum(sizes)
    # the full block upper-triangular R, zeros below the diagonal blocks
    R = np.zeros((H, H))
    start = 0
    for k, n in enumerate(sizes):
        R[start:start + n, start:] = getattr(cell, f"weight_hh_{k}").detach().double().numpy()
        start += n
    h = np.zeros(H)
    out = []
    for t in range(len(x)):
        new = np.tanh(W @ x[t] + b + R @ h)
        active = np.concatenate([np.full(n, t % p == 0) for n, p in zip(sizes, pers, strict=True)])
        h = np.where(active, new, h)
        out.append(h)
    return np.array(out)


def test_modules_and_periods():
    assert module_sizes(10, 4) == (3, 3, 2, 2)
    assert periods(4, 2) == (1, 2, 4, 8)
    assert periods(3, 3) == (1, 3, 9)
    assert module_sizes(3, 5) == (1, 1, 1)  # fewer units than modules: one unit each


@pytest.mark.parametrize("options", [{}, {"modules": 3, "period_base": 3}, {"modules": 1}])
def test_follows_the_paper_equations(options):
    torch.manual_seed(5)
    layer = build_layer("CW", 3, 7, init_std=0.5, cell_options=options).double()
    x = torch.randn(11, 1, 3, dtype=torch.float64)
    expected = run_cw_equations(layer.directions[0], x[:, 0].numpy())
    np.testing.assert_allclose(layer(x)[:, 0].detach().numpy(), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("i", "h", "options"), [(5, 8, {}), (3, 10, {"modules": 3}),
                                                 (1, 1, {"modules": 1})])
def test_parameter_count_leaves_out_the_zero_blocks(bidirectional, i, h, options):
    layer = build_layer("CW", i, h, bidirectional=bidirectional, cell_options=options)
    sizes = module_sizes(h, options.get("modules", 4))
    # the upper block triangle of R: module k reads modules k..g
    recurrent = sum(n * sum(sizes[k:]) for k, n in enumerate(sizes))
    assert recurrent < h * h or len(sizes) == 1
    one = i * h + h + recurrent
    expected = one * (2 if bidirectional else 1)
    assert parameter_count("CW", i, h, bidirectional, cell_options=options) == expected
    assert sum(p.numel() for p in layer.parameters()) == expected
    assert layer.expected_parameter_count() == expected


def test_a_module_keeps_its_state_bit_for_bit_while_it_does_not_tick():
    torch.manual_seed(3)
    layer = build_layer("CW", 2, 8, init_std=0.7, cell_options={"modules": 4})
    y = layer(torch.randn(20, 3, 2))[:, :, :]
    cell = layer.directions[0]
    start = 0
    for n, p in zip(cell.sizes, cell.periods, strict=True):
        block = y[:, :, start:start + n]
        for t in range(1, 20):
            if t % p:  # not ticking: exactly the previous step's numbers
                assert torch.equal(block[t], block[t - 1]), (p, t)
            else:
                assert not torch.equal(block[t], block[t - 1]), (p, t)
        start += n


def test_the_slowest_module_ignores_the_faster_ones():
    # block-triangular R: the last module reads only itself, so changing a faster module's
    # recurrent weights leaves it unchanged
    torch.manual_seed(8)
    layer = build_layer("CW", 2, 6, cell_options={"modules": 3}).double()
    x = torch.randn(9, 1, 2, dtype=torch.float64)
    before = layer(x)
    with torch.no_grad():
        layer.directions[0].weight_hh_0.add_(1.0)
    after = layer(x)
    assert torch.equal(before[:, :, -2:], after[:, :, -2:])
    assert not torch.equal(before[:, :, :2], after[:, :, :2])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck(bidirectional):
    torch.manual_seed(11)
    layer = build_layer("CW", 3, 5, bidirectional=bidirectional, init_std=0.5,
                        cell_options={"modules": 3}).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 4])
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)),
                                          (x, lengths))

    inputs = (x, *[p.detach().clone().requires_grad_() for p in layer.parameters()])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_outputs_do_not_depend_on_padding_or_batch(bidirectional):
    torch.manual_seed(13)
    layer = build_layer("CW", 3, 4, bidirectional=bidirectional, init_std=0.5).double()
    lengths = [5, 2, 7]
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in lengths]
    assert_padding_invariant(layer, seqs)


def test_backward_direction_is_the_forward_loop_of_the_reversed_sequence():
    torch.manual_seed(17)
    layer = build_layer("CW", 2, 4, bidirectional=True).double()
    seq = torch.randn(5, 2, dtype=torch.float64)
    x = torch.zeros(7, 1, 2, dtype=torch.float64)
    x[:5, 0] = seq
    y = layer(x, torch.tensor([5]))
    expected = run_cw_equations(layer.directions[1], seq.flip(0).numpy())[::-1]
    np.testing.assert_allclose(y[:5, 0, 4:].detach().numpy(), expected, atol=1e-12, rtol=0)


def test_is_a_builtin_without_fast_kernel_and_checks_its_options():
    cell = get_cell("cw")
    assert cell.name == "CW" and cell.group == "extra" and not cell.has_fast
    check_cell("CW", dropout=True)
    with pytest.raises(ValueError, match="CW has no C\\+\\+ kernel"):
        build_layer("CW", 3, 4, impl="cpp")
    with pytest.raises(ValueError, match="unknown cell option\\(s\\) \\['period'\\]"):
        build_layer("CW", 3, 4, cell_options={"period": 2})
    with pytest.raises(ValueError, match="modules must be an integer >= 1"):
        build_layer("CW", 3, 4, cell_options={"modules": 0})
    with pytest.raises(ValueError, match="GRU: unknown cell option"):
        build_layer("GRU", 3, 4, cell_options={"modules": 2})
