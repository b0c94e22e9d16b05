"""The public API of odyssey.cells: names, shapes, parameters, padding, initialisation."""

import pytest
import torch

from odyssey.cells import (
    ALL_VARIANTS,
    EXTRA_VARIANTS,
    LSTM_FAMILY,
    VARIANTS,
    build_layer,
    parameter_count,
)


def test_variants_are_the_eleven_in_order():
    assert VARIANTS == ("V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR",
                        "GRU", "RNN")


@pytest.mark.parametrize("name", ["v", "cifg", "Gru", "nP"])
def test_names_are_case_insensitive(name):
    assert build_layer(name, 3, 4).variant == name.upper()


def test_unknown_variant_lists_valid_names():
    with pytest.raises(ValueError, match="unknown variant 'LSTM2'.*V, NIG, NFG.*GRU, RNN"):
        build_layer("LSTM2", 3, 4)


@pytest.mark.parametrize("bad", [{"input_size": 0}, {"hidden_size": -1}, {"hidden_size": 2.5}])
def test_bad_sizes_are_rejected(bad):
    kwargs = {"input_size": 3, "hidden_size": 4, **bad}
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_layer("V", kwargs["input_size"], kwargs["hidden_size"])


def _formula(variant, i, h):
    block = i * h + h * h + h
    return {
        "V": 4 * block + 3 * h, "NIG": 3 * block + 2 * h, "NFG": 3 * block + 2 * h,
        "NOG": 3 * block + 2 * h, "NIAF": 4 * block + 3 * h, "NOAF": 4 * block + 3 * h,
        "NP": 4 * block, "CIFG": 3 * block + 2 * h, "FGR": 4 * block + 3 * h + 9 * h * h,
        "GRU": 3 * (i * h + h * h + 2 * h), "RNN": i * h + h * h + 2 * h,
    }[variant]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("i", "h"), [(1, 1), (88, 20), (39, 64)])
def test_parameter_count_equals_formula(variant, bidirectional, i, h):
    layer = build_layer(variant, i, h, bidirectional=bidirectional)
    n = sum(p.numel() for p in layer.parameters())
    expected = _formula(variant, i, h) * (2 if bidirectional else 1)
    assert n == expected == parameter_count(variant, i, h, bidirectional)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_shape_and_zero_padding(variant, bidirectional):
    layer = build_layer(variant, 5, 7, bidirectional=bidirectional)
    x = torch.randn(6, 3, 5)
    lengths = torch.tensor([6, 2, 4])
    y = layer(x, lengths)
    assert y.shape == (6, 3, 14 if bidirectional else 7)
    assert torch.all(y[2:, 1] == 0) and torch.all(y[4:, 2] == 0)
    assert torch.all(y[:2, 1].abs().sum(-1) > 0)
    assert layer(x).shape == y.shape  # lengths=None means all T


def test_bad_lengths_and_inputs_are_rejected():
    layer = build_layer("V", 5, 7)
    with pytest.raises(ValueError, match=r"\(T, B, 5\)"):
        layer(torch.randn(6, 3, 4))
    with pytest.raises(ValueError, match="lengths must lie in"):
        layer(torch.randn(6, 3, 5), torch.tensor([7, 1, 1]))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        layer(torch.randn(6, 3, 5), torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_weights_start_from_normal_init_std(variant):
    torch.manual_seed(1)
    layer = build_layer(variant, 100, 100, init_std=0.3)
    values = torch.cat([p.detach().flatten() for p in layer.parameters()])
    assert abs(values.mean().item()) < 0.01
    assert values.std().item() == pytest.approx(0.3, rel=0.02)
    # shape of the distribution: about 68 % within one standard deviation
    assert (values.abs() < 0.3).double().mean().item() == pytest.approx(0.6827, abs=0.01)


@pytest.mark.parametrize("variant", LSTM_FAMILY)
def test_forget_bias_shifts_the_forget_gate_bias(variant):
    h = 400
    torch.manual_seed(2)
    plain = build_layer(variant, 3, h).directions[0]
    torch.manual_seed(2)
    shifted = build_layer(variant, 3, h, forget_bias=1.0).directions[0]
    shift = (shifted.bias - plain.bias).detach().view(-1, h)
    blocks = plain.spec.blocks
    for k, block in enumerate(blocks):
        if block == "f":
            expected = 1.0
        elif block == "i" and plain.spec.coupled:  # CIFG: f = 1 - i, so shift i by -1
            expected = -1.0
        else:
            expected = 0.0
        assert torch.allclose(shift[k], torch.full((h,), expected)), (variant, block)
    if variant == "NFG":
        assert torch.all(shift == 0)


def test_extra_variants_come_after_the_paper_eleven():
    assert EXTRA_VARIANTS == ("LSTMB", "MUT1", "MUT2", "MUT3")
    assert ALL_VARIANTS == VARIANTS + EXTRA_VARIANTS
    assert build_layer("lstmb", 3, 4).variant == "LSTMB"


def test_lstmb_is_v_with_forget_bias_one_whatever_the_argument():
    h = 5
    torch.manual_seed(3)
    v = build_layer("V", 3, h, forget_bias=1.0, impl="reference")
    for forget_bias in (0.0, 1.0, 2.5):
        torch.manual_seed(3)
        b = build_layer("LSTMB", 3, h, forget_bias=forget_bias, impl="reference")
        assert b.directions[0].forget_bias == 1.0
        for (name, p), (name_v, p_v) in zip(b.named_parameters(), v.named_parameters(),
                                            strict=True):
            assert name == name_v and torch.equal(p, p_v), name
    x = torch.randn(6, 2, 3)
    assert torch.equal(b(x), v(x))
    assert parameter_count("LSTMB", 3, h) == parameter_count("V", 3, h) == _formula("V", 3, h)
    assert b.expected_parameter_count() == sum(p.numel() for p in b.parameters())
