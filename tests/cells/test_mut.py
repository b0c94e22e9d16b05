"""MUT1-3 (Jozefowicz et al. 2015): equations, parameter counts, gradients, padding."""

import numpy as np
import pytest
import torch

from odyssey.cells import build_layer, parameter_count
from tests.cells.equations import run_mut_equations

MUTS = ["MUT1", "MUT2", "MUT3"]


@pytest.mark.parametrize("variant", MUTS)
def test_follows_the_design_equations(variant):
    torch.manual_seed(5)
    layer = build_layer(variant, 3, 4, init_std=0.5).double()
    x = torch.randn(7, 1, 3, dtype=torch.float64)
    expected = run_mut_equations(layer.directions[0], x[:, 0].numpy())
    np.testing.assert_allclose(layer(x)[:, 0].detach().numpy(), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("variant, recurrent_blocks", [("MUT1", 2), ("MUT2", 3), ("MUT3", 3)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_parameter_count_formula(variant, recurrent_blocks, bidirectional):
    i, h = 5, 7
    layer = build_layer(variant, i, h, bidirectional=bidirectional)
    one = 3 * i * h + recurrent_blocks * h * h + 3 * h
    expected = one * (2 if bidirectional else 1)
    assert parameter_count(variant, i, h, bidirectional) == expected
    assert sum(p.numel() for p in layer.parameters()) == expected
    assert layer.expected_parameter_count() == expected


@pytest.mark.parametrize("variant", MUTS)
def test_the_projection_carries_the_raw_input_term(variant):
    # MUT1: tanh(x) -> tanh(W_xh x); MUT2: x in r -> W_xr x; so zeroing that block removes it
    torch.manual_seed(6)
    layer = build_layer(variant, 3, 4, init_std=0.5).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    before = layer(x)
    block = {"MUT1": 2, "MUT2": 1, "MUT3": 2}[variant]
    with torch.no_grad():
        layer.directions[0].weight_ih[block * 4:(block + 1) * 4] = 0
    assert not torch.allclose(before, layer(x))


def test_cpp_is_refused_for_mut():
    with pytest.raises(ValueError, match="MUT2 has no C\\+\\+ kernel"):
        build_layer("MUT2", 3, 4, impl="cpp")


@pytest.mark.parametrize("variant", MUTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck(variant, bidirectional):
    torch.manual_seed(11)
    layer = build_layer(variant, 3, 2, bidirectional=bidirectional, init_std=0.5).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 3])
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)),
                                          (x, lengths))

    inputs = (x, *[p.detach().clone().requires_grad_() for p in layer.parameters()])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("variant", MUTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_outputs_do_not_depend_on_padding_or_batch(variant, bidirectional):
    torch.manual_seed(13)
    layer = build_layer(variant, 3, 4, bidirectional=bidirectional, init_std=0.5).double()
    lengths = [5, 2, 7]
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in lengths]
    alone = [layer(s[:, None])[:, 0] for s in seqs]
    for T, fill in ((7, 0.0), (10, 1e3), (9, float("nan"))):
        x = torch.full((T, 3, 3), fill, dtype=torch.float64)
        for b, s in enumerate(seqs):
            x[: len(s), b] = s
        y = layer(x, torch.tensor(lengths))
        for b, s in enumerate(seqs):
            assert torch.allclose(y[: len(s), b], alone[b], atol=1e-12, rtol=0), (T, fill)
            assert torch.all(y[len(s):, b] == 0)


@pytest.mark.parametrize("variant", MUTS)
def test_backward_direction_is_the_forward_loop_of_the_reversed_sequence(variant):
    torch.manual_seed(17)
    layer = build_layer(variant, 2, 3, bidirectional=True).double()
    seq = torch.randn(4, 2, dtype=torch.float64)
    x = torch.zeros(6, 1, 2, dtype=torch.float64)
    x[:4, 0] = seq
    y = layer(x, torch.tensor([4]))
    expected = run_mut_equations(layer.directions[1], seq.flip(0).numpy())[::-1]
    np.testing.assert_allclose(y[:4, 0, 3:].detach().numpy(), expected, atol=1e-12, rtol=0)
