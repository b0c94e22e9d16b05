"""The reference cells against the DESIGN §2 equations, PyTorch's modules and autograd."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from odyssey.cells import ALL_VARIANTS, LSTM_FAMILY, build_layer, spec
from odyssey.cells.reference import lstm_sequence, lstm_step
from tests.cells.padding import assert_padding_invariant

from .equations import run_equations

TOL = 1e-10


def _torch_twin(variant: str, layer, bidirectional: bool) -> nn.Module:
    """nn.LSTM / nn.GRU / nn.RNN holding the same weights as our NP / GRU / RNN layer."""
    i, h = layer.input_size, layer.hidden_size
    cls = {"NP": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[variant]
    twin = cls(i, h, bidirectional=bidirectional).double()
    with torch.no_grad():
        for d, cell in enumerate(layer.directions):
            sfx = "_reverse" if d else ""
            if variant == "NP":
                # ours: blocks z, i, f, o with one bias; PyTorch: i, f, g(=z), o with two
                order = [1, 2, 0, 3]
                w_ih, w_hh, b = (t.view(4, h, -1) if t.dim() == 2 else t.view(4, h)
                                 for t in (cell.weight_ih, cell.weight_hh, cell.bias))
                getattr(twin, f"weight_ih_l0{sfx}").copy_(w_ih[order].reshape(4 * h, i))
                getattr(twin, f"weight_hh_l0{sfx}").copy_(w_hh[order].reshape(4 * h, h))
                getattr(twin, f"bias_ih_l0{sfx}").copy_(b[order].reshape(-1))
                getattr(twin, f"bias_hh_l0{sfx}").zero_()
            else:
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(twin, f"{name}_l0{sfx}").copy_(getattr(cell, name))
    return twin


@pytest.mark.parametrize("variant", ["NP", "GRU", "RNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_equals_pytorch_module_outputs_and_gradients(variant, bidirectional):
    layer = build_layer(variant, 5, 6, bidirectional=bidirectional).double()
    twin = _torch_twin(variant, layer, bidirectional)
    lengths = torch.tensor([7, 3, 5, 1])
    x = torch.randn(7, 4, 5, dtype=torch.float64)
    x_ours, x_twin = x.clone().requires_grad_(), x.clone().requires_grad_()

    y_ours = layer(x_ours, lengths)
    packed = pack_padded_sequence(x_twin, lengths, enforce_sorted=False)
    y_twin, _ = pad_packed_sequence(twin(packed)[0], total_length=7)
    assert torch.allclose(y_ours, y_twin, atol=TOL, rtol=0)

    weights = torch.randn_like(y_ours)  # a loss that touches every output differently
    (y_ours * weights).sum().backward()
    (y_twin * weights).sum().backward()
    assert torch.allclose(x_ours.grad, x_twin.grad, atol=TOL, rtol=0)
    h = layer.hidden_size
    for d, cell in enumerate(layer.directions):
        sfx = "_reverse" if d else ""
        if variant == "NP":
            order = [1, 2, 0, 3]
            pairs = [
                (cell.weight_ih.grad.view(4, h, -1)[order].reshape(4 * h, -1),
                 getattr(twin, f"weight_ih_l0{sfx}").grad),
                (cell.weight_hh.grad.view(4, h, -1)[order].reshape(4 * h, -1),
                 getattr(twin, f"weight_hh_l0{sfx}").grad),
                (cell.bias.grad.view(4, h)[order].reshape(-1),
                 getattr(twin, f"bias_ih_l0{sfx}").grad),
            ]
        else:
            pairs = [(getattr(cell, n).grad, getattr(twin, f"{n}_l0{sfx}").grad)
                     for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        for ours, theirs in pairs:
            assert torch.allclose(ours, theirs, atol=TOL, rtol=0)


@pytest.mark.parametrize("variant", LSTM_FAMILY)
def test_follows_the_design_equations(variant):
    """Each variant equals an independent NumPy transcription of its equations."""
    torch.manual_seed(3)
    layer = build_layer(variant, 4, 5, init_std=0.5).double()
    x = torch.randn(6, 1, 4, dtype=torch.float64)
    y = layer(x)[:, 0].detach().numpy()
    expected = run_equations(layer.directions[0], x[:, 0].numpy())
    np.testing.assert_allclose(y, expected, atol=TOL, rtol=0)


# --- each variant's defining change, on the reference step --------------------------------

H = 4


def _step(variant, a=None, c_prev=None, peep=None):
    s = spec(variant)
    g = torch.Generator().manual_seed(7)
    a = a or {k: torch.randn(2, H, generator=g, dtype=torch.float64) for k in s.blocks}
    c_prev = torch.randn(2, H, generator=g, dtype=torch.float64) if c_prev is None else c_prev
    if peep is None:
        peep = {k: torch.randn(H, generator=g, dtype=torch.float64) for k in s.peephole_gates}
    y, c, gates = lstm_step(s, a, c_prev, peep)
    return s, a, c_prev, peep, y, c, gates


def test_v_output_gate_peeps_at_the_new_cell_state():
    _, a, c_prev, peep, y, c, gates = _step("V")
    assert torch.allclose(gates["o"], torch.sigmoid(a["o"] + peep["o"] * c))
    assert not torch.allclose(gates["o"], torch.sigmoid(a["o"] + peep["o"] * c_prev))
    assert torch.allclose(gates["i"], torch.sigmoid(a["i"] + peep["i"] * c_prev))
    assert torch.allclose(gates["f"], torch.sigmoid(a["f"] + peep["f"] * c_prev))
    assert torch.allclose(c, torch.tanh(a["z"]) * gates["i"] + c_prev * gates["f"])
    assert torch.allclose(y, torch.tanh(c) * gates["o"])


def test_nig_input_gate_is_one():
    _, a, c_prev, _, _, c, gates = _step("NIG")
    assert torch.all(gates["i"] == 1)
    assert torch.allclose(c, torch.tanh(a["z"]) + c_prev * gates["f"])


def test_nfg_keeps_all_of_the_previous_cell_state():
    _, a, c_prev, _, _, c, gates = _step("NFG")
    assert torch.all(gates["f"] == 1)
    assert torch.allclose(c - torch.tanh(a["z"]) * gates["i"], c_prev)


def test_nog_output_is_the_squashed_cell():
    _, _, _, _, y, c, gates = _step("NOG")
    assert torch.all(gates["o"] == 1)
    assert torch.allclose(y, torch.tanh(c))


def test_niaf_block_input_is_linear():
    _, a, c_prev, _, _, c, gates = _step("NIAF", a={k: 3.0 * torch.ones(2, H, dtype=torch.float64)
                                                    for k in "zifo"})
    assert torch.allclose(c, 3.0 * gates["i"] + c_prev * gates["f"])  # tanh(3) would be < 1


def test_noaf_output_is_cell_times_output_gate():
    _, _, _, _, y, c, gates = _step("NOAF")
    assert torch.allclose(y, c * gates["o"])


def test_np_gates_do_not_see_the_cell_state():
    s, a, _, _, _, _, g1 = _step("NP", c_prev=torch.zeros(2, H, dtype=torch.float64))
    _, _, _, _, _, _, g2 = _step("NP", a=a, c_prev=torch.full((2, H), 5.0, dtype=torch.float64))
    assert s.peephole_gates == ()
    for k in "ifo":
        assert torch.equal(g1[k], g2[k])


def test_cifg_forget_gate_is_one_minus_input_gate():
    s, a, c_prev, _, _, c, gates = _step("CIFG")
    assert "f" not in s.blocks
    assert torch.allclose(gates["f"], 1.0 - gates["i"])
    assert torch.allclose(c, torch.tanh(a["z"]) * gates["i"] + c_prev * (1 - gates["i"]))


def test_fgr_previous_gates_feed_in():
    torch.manual_seed(5)
    layer = build_layer("FGR", 3, H, init_std=0.5).double()
    cell = layer.directions[0]
    x = torch.randn(3, 2, 3, dtype=torch.float64)
    args = (cell.weight_ih, cell.weight_hh, cell.bias, cell.peepholes())
    y = lstm_sequence(cell.spec, x, *args, cell.weight_gg)
    y_no_gg = lstm_sequence(cell.spec, x, *args, torch.zeros_like(cell.weight_gg))
    assert torch.allclose(y[0], y_no_gg[0])  # previous gates are zero at t = 0
    assert not torch.allclose(y[1], y_no_gg[1])
    # and with R_{k->gate} = 0 FGR is exactly V
    v = build_layer("V", 3, H).double().directions[0]
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias", "peephole_i", "peephole_f", "peephole_o"):
            getattr(v, name).copy_(getattr(cell, name))
    assert torch.allclose(y_no_gg, v.sequence(x), atol=TOL)


# --- autograd, padding --------------------------------------------------------------------

@pytest.mark.parametrize("variant", ALL_VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck(variant, bidirectional):
    torch.manual_seed(11)
    layer = build_layer(variant, 3, 2, bidirectional=bidirectional, init_std=0.5).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 3])
    params = list(layer.parameters())

    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)),
                                          (x, lengths))

    inputs = (x, *[p.detach().clone().requires_grad_() for p in params])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_outputs_do_not_depend_on_padding_or_batch(variant, bidirectional):
    torch.manual_seed(13)
    layer = build_layer(variant, 3, 4, bidirectional=bidirectional, init_std=0.5).double()
    lengths = [5, 2, 7]
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in lengths]
    assert_padding_invariant(layer, seqs)


def test_backward_direction_starts_at_each_sequence_own_last_step():
    torch.manual_seed(17)
    layer = build_layer("V", 2, 3, bidirectional=True).double()
    backward_cell = layer.directions[1]
    seq = torch.randn(3, 2, dtype=torch.float64)
    x = torch.zeros(6, 1, 2, dtype=torch.float64)
    x[:3, 0] = seq
    y = layer(x, torch.tensor([3]))
    # the reverse half is the forward loop of the reversed sequence, reversed back
    expected = backward_cell.sequence(seq.flip(0)[:, None]).flip(0)[:, 0]
    assert torch.allclose(y[:3, 0, 3:], expected, atol=TOL)
    # at the sequence's last real step the reverse direction has seen only that step
    first = backward_cell.sequence(seq[-1:][:, None])[0, 0]
    assert torch.allclose(y[2, 0, 3:], first, atol=TOL)


def test_gradients_do_not_leak_through_padding():
    layer = build_layer("V", 3, 4, bidirectional=True).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    layer(x, torch.tensor([6, 3])).sum().backward()
    assert torch.all(x.grad[3:, 1] == 0)
    assert torch.all(x.grad[:3, 1] != 0)


@pytest.mark.slow
@pytest.mark.parametrize("bidirectional", [False, True])
def test_np_equals_nn_lstm_at_music_size(bidirectional):
    """NP against nn.LSTM at the music task's size, with variable lengths (float64)."""
    layer = build_layer("NP", 88, 64, bidirectional=bidirectional).double()
    twin = _torch_twin("NP", layer, bidirectional)
    lengths = torch.randint(20, 101, (8,))
    lengths[0] = 100
    x = torch.randn(100, 8, 88, dtype=torch.float64)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    y_twin, _ = pad_packed_sequence(twin(packed)[0], total_length=100)
    assert torch.allclose(layer(x, lengths), y_twin, atol=TOL, rtol=0)
