"""Variational dropout (Gal & Ghahramani 2016): per-sequence, per-gate masks, off at evaluation."""

import numpy as np
import pytest
import torch

from odyssey.cells import ALL_VARIANTS, build_layer, get_cell
from odyssey.cells.dropout import VariationalDropout
from odyssey.cells.layer import RecurrentLayer
from odyssey.cells.reference import lstm_sequence
from odyssey.training import Hyperparameters, TrainSettings, train
from tests.toy import load

from .equations import run_equations, run_mut_equations, sigma

P = 0.4


@pytest.fixture
def drawn(monkeypatch):
    """Every VariationalDropout a layer draws (one per direction and forward call)."""
    seen: list[VariationalDropout | None] = []
    original = RecurrentLayer._masks

    def record(self, x):
        drop = original(self, x)
        seen.append(drop)
        return drop

    monkeypatch.setattr(RecurrentLayer, "_masks", record)
    return seen


def _numpy_torch_params(cell, x: np.ndarray, masks) -> np.ndarray:
    """nn.GRU / nn.RNN's equations with a dropout mask per gate on x and h (NumPy)."""
    h_size = cell.hidden_size
    w_ih, w_hh, b_ih, b_hh = (getattr(cell, n).detach().double().numpy()
                              for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def rows(a, k):
        return a[k * h_size:(k + 1) * h_size]

    h = np.zeros(h_size)
    out = []
    for x_t in x:
        if cell.spec.family == "rnn":
            h = np.tanh(w_ih @ (x_t * masks[("x", "a")]) + b_ih
                        + w_hh @ (h * masks[("h", "a")]) + b_hh)
        else:
            a = {g: rows(w_ih, k) @ (x_t * masks[("x", g)]) + rows(b_ih, k)
                 for k, g in enumerate("rzn")}
            r_ = {g: rows(w_hh, k) @ (h * masks[("h", g)]) + rows(b_hh, k)
                  for k, g in enumerate("rzn")}
            r, z = sigma(a["r"] + r_["r"]), sigma(a["z"] + r_["z"])
            n = np.tanh(a["n"] + r * r_["n"])
            h = (1 - z) * n + z * h
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_each_sequence_uses_one_mask_per_gate_at_every_step(variant, drawn):
    """The layer's output equals the equations with the drawn masks applied at every step."""
    layer = build_layer(variant, 4, 5, dropout=P).double().train()
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    y = layer(x).detach().numpy()
    (drop,) = drawn
    cell = layer.directions[0]
    for b in range(3):
        masks = {key: m[b].numpy() for key, m in drop._masks.items()}
        family = get_cell(variant).spec.family
        if family == "lstm":
            expected = run_equations(cell, x[:, b].numpy(), masks)
        elif family == "mut":
            expected = run_mut_equations(cell, x[:, b].numpy(), masks)
        else:
            expected = _numpy_torch_params(cell, x[:, b].numpy(), masks)
        np.testing.assert_allclose(y[:, b], expected, atol=1e-10, rtol=0)


def test_masks_differ_between_sequences_gates_directions_and_batches(drawn):
    layer = build_layer("V", 20, 30, bidirectional=True, dropout=P).train()
    layer(torch.randn(4, 8, 20))
    layer(torch.randn(4, 8, 20))
    first, reverse, second = drawn[0], drawn[1], drawn[2]
    assert set(first.used) == {(k, g) for k in "xh" for g in "zifo"}  # untied: every gate
    m = first.mask("x", "z")
    assert m.shape == (8, 20)
    assert m.unique().tolist() == pytest.approx([0.0, 1 / (1 - P)])
    assert all(not torch.equal(m[a], m[b]) for a in range(8) for b in range(a))  # sequences
    assert not torch.equal(first.mask("x", "z"), first.mask("x", "i"))  # gates
    assert not torch.equal(first.mask("h", "o"), reverse.mask("h", "o"))  # directions
    assert not torch.equal(first.mask("h", "f"), second.mask("h", "f"))  # batches
    keep = torch.cat([d.mask("h", "z").flatten() for d in drawn]) > 0
    assert abs(keep.float().mean().item() - (1 - P)) < 0.06


def test_off_at_evaluation_equals_no_dropout_bit_for_bit():
    torch.manual_seed(3)
    plain = build_layer("CIFG", 4, 6, bidirectional=True)
    torch.manual_seed(3)
    dropped = build_layer("CIFG", 4, 6, bidirectional=True, dropout=0.5)
    for a, b in zip(plain.parameters(), dropped.parameters(), strict=True):
        assert torch.equal(a, b)  # the mask seed does not disturb the initial weights
    x, lengths = torch.randn(6, 3, 4), torch.tensor([6, 2, 4])
    dropped.eval()
    assert torch.equal(plain(x, lengths), dropped(x, lengths))
    dropped.train()
    assert not torch.equal(plain(x, lengths), dropped(x, lengths))


@pytest.mark.parametrize("variant", ["V", "GRU", "MUT3"])
def test_padding_and_direction_do_not_change_a_dropout_result(variant):
    """Masks depend on the sequence, not on the padded length of its batch."""
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4])
    padded = torch.cat([x, torch.full((3, 3, 4), 1e3, dtype=torch.float64)])
    outs = []
    for inp in (x, padded):
        torch.manual_seed(7)
        layer = build_layer(variant, 4, 3, bidirectional=True, dropout=0.3).double().train()
        outs.append(layer(inp, lengths))
    assert torch.equal(outs[0], outs[1][:5])
    assert torch.equal(outs[1][5:], torch.zeros_like(outs[1][5:]))


def test_gradcheck_through_the_masks():
    layer = build_layer("FGR", 3, 2, dropout=0.3).double()
    cell = layer.directions[0]
    gen = torch.Generator().manual_seed(1)
    drop = VariationalDropout(0.3, 2, 3, 2, generator=gen, device=torch.device("cpu"),
                              dtype=torch.float64)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)

    def f(x, w_ih, w_hh):
        return lstm_sequence(cell.spec, x, w_ih, w_hh, cell.bias, cell.peepholes(),
                             cell.weight_gg, drop)

    assert torch.autograd.gradcheck(f, (x, cell.weight_ih, cell.weight_hh))


def test_cpp_refuses_dropout():
    with pytest.raises(ValueError, match="impl='cpp' cannot apply variational dropout"):
        build_layer("V", 3, 4, dropout=0.2, impl="cpp")
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        build_layer("V", 3, 4, dropout=1.0)


def _hp(**extra):
    return Hyperparameters(hidden_size=6, learning_rate=1e-2, momentum=0.9, input_noise=0.1,
                           **extra)


SETTINGS = TrainSettings(max_epochs=2, patience=5, batch_size=4, impl="reference")


def test_dropout_zero_trains_exactly_as_without_it():
    task = load(n_train=12, n_valid=4, n_test=4)
    base = train(task, "V", _hp(), SETTINGS, seed=5)
    zero = train(task, "V", _hp(dropout=0.0), SETTINGS, seed=5)
    assert base.status == zero.status == "complete"
    assert base.curve == zero.curve


def test_dropout_trains_reproducibly_and_differently():
    task = load(n_train=12, n_valid=4, n_test=4)
    a = train(task, "GRU", _hp(dropout=0.3), SETTINGS, seed=5)
    b = train(task, "GRU", _hp(dropout=0.3), SETTINGS, seed=5)
    plain = train(task, "GRU", _hp(), SETTINGS, seed=5)
    assert a.curve == b.curve
    assert a.curve[0]["train_loss"] != plain.curve[0]["train_loss"]


def test_hyperparameters_validate_dropout():
    with pytest.raises(ValueError, match="dropout must lie in"):
        _hp(dropout=1.0)
    assert Hyperparameters.from_search({"hidden_size": 3, "learning_rate": 1e-3,
                                        "one_minus_momentum": 0.5, "input_noise": 0.0}
                                       ).dropout == 0.0
