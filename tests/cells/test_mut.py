"""MUT1-3 (Jozefowicz et al. 2015): equations, parameter counts, directions. Their gradcheck
and padding tests are the shared ones in test_reference.py (every cell)."""

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
def test_backward_direction_is_the_forward_loop_of_the_reversed_sequence(variant):
    torch.manual_seed(17)
    layer = build_layer(variant, 2, 3, bidirectional=True).double()
    seq = torch.randn(4, 2, dtype=torch.float64)
    x = torch.zeros(6, 1, 2, dtype=torch.float64)
    x[:4, 0] = seq
    y = layer(x, torch.tensor([4]))
    expected = run_mut_equations(layer.directions[1], seq.flip(0).numpy())[::-1]
    np.testing.assert_allclose(y[:4, 0, 3:].detach().numpy(), expected, atol=1e-12, rtol=0)
