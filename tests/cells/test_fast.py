"""The fast kernels against the reference loops: outputs and every gradient, every variant."""

from __future__ import annotations

import copy

import pytest
import torch

from odyssey.cells import LSTM_FAMILY, VARIANTS, build_layer, fast, reference, spec

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}

# Skipped only where no compiler exists (failed in CI); with one, a broken build fails these
# tests (impl="cpp" raises the build's error).
needs_ext = pytest.mark.requires("c++")


def _pair(variant: str, bidirectional: bool, dtype: torch.dtype, impl: str = "cpp",
          I: int = 5, H: int = 6):
    """A fast layer and a reference layer with the same weights."""
    torch.manual_seed(0)
    ref = build_layer(variant, I, H, bidirectional=bidirectional, impl="reference",
                      init_std=0.5).to(dtype)
    fst = build_layer(variant, I, H, bidirectional=bidirectional, impl=impl).to(dtype)
    fst.load_state_dict(ref.state_dict())
    return fst, ref


def _run(layer, x, lengths, dy):
    """Output and gradients of x and every parameter, for upstream gradient dy."""
    x = x.clone().requires_grad_(True)
    y = layer(x, lengths)
    y.backward(dy)
    grads = {n: p.grad for n, p in layer.named_parameters()}
    return y.detach(), x.grad, grads


def _assert_runs_agree(runs, args, x, params, dy):
    """Each run's output and gradients of x and params equal the first run's (float64)."""
    outs = []
    for run in runs:
        y = run(*args)
        outs.append((y, *torch.autograd.grad(y, [x, *params], dy)))
    for other in outs[1:]:
        for a, b in zip(outs[0], other, strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def _assert_same(fst, ref, dtype, T=7, B=4, lengths=(7, 3, 5, 1)):
    torch.manual_seed(1)
    x = torch.randn(T, B, fst.input_size, dtype=dtype)
    lengths = torch.tensor(lengths) if lengths is not None else None
    dy = torch.randn(T, B, fst.output_size, dtype=dtype)
    y1, dx1, g1 = _run(fst, x, lengths, dy)
    y2, dx2, g2 = _run(ref, x, lengths, dy)
    tol = TOL[dtype]
    torch.testing.assert_close(y1, y2, atol=tol, rtol=tol)
    torch.testing.assert_close(dx1, dx2, atol=tol, rtol=tol)
    assert g1.keys() == g2.keys()
    for name in g1:
        assert g1[name] is not None, name
        torch.testing.assert_close(g1[name], g2[name], atol=tol, rtol=tol, msg=name)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_equals_reference(variant, bidirectional, dtype):
    fst, ref = _pair(variant, bidirectional, dtype)
    _assert_same(fst, ref, dtype)


@needs_ext
@pytest.mark.parametrize("variant", LSTM_FAMILY)
def test_other_paths_equal_reference(variant):
    """The device-generic (ATen-op) path that CUDA takes and the no-BLAS fallback, on CPU."""
    torch.manual_seed(0)
    s = spec(variant)
    cell = build_layer(variant, 4, 5, impl="reference", init_std=0.5).double().directions[0]
    params = [cell.weight_ih, cell.weight_hh, cell.bias, *cell.peepholes().values()]
    if cell.weight_gg is not None:
        params.append(cell.weight_gg)
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(6, 3, 5, dtype=torch.float64)
    runs = (reference.lstm_sequence,
            lambda *a: fast.lstm_sequence(*a, mode="generic"),
            lambda *a: fast.lstm_sequence(*a, mode="aten-mm"),
            fast.lstm_sequence)
    args = (s, x, cell.weight_ih, cell.weight_hh, cell.bias, cell.peepholes(), cell.weight_gg)
    _assert_runs_agree(runs, args, x, params, dy)


@needs_ext
@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_gru_rnn_paths_equal_reference(kind):
    """C++ GRU / RNN (BLAS and ATen products) and PyTorch's kernels against the reference."""
    torch.manual_seed(0)
    cell = build_layer(kind, 4, 5, impl="reference", init_std=0.5).double().directions[0]
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(6, 3, 5, dtype=torch.float64)
    ref = getattr(reference, f"{kind}_sequence")
    fst = getattr(fast, f"{kind}_sequence")
    runs = (ref, *(lambda *a, m=m: fst(*a, mode=m) for m in ("fast", "aten-mm", "torch")))
    _assert_runs_agree(runs, (x, *params), x, params, dy)
    x3 = torch.randn(4, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *p: fst(x, *p), (x3, *params), eps=1e-6,
                                    atol=1e-7)


@needs_ext
@pytest.mark.parametrize("variant", LSTM_FAMILY)
def test_gradcheck(variant):
    """Analytic gradients of the C++ backward against finite differences (float64)."""
    torch.manual_seed(0)
    s = spec(variant)
    cell = build_layer(variant, 3, 4, impl="cpp", init_std=0.5).double().directions[0]
    peep = cell.peepholes()
    names = list(peep)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)

    def f(x, w_ih, w_hh, b, w_gg, *p):
        return fast.lstm_sequence(s, x, w_ih, w_hh, b, dict(zip(names, p, strict=True)), w_gg)

    inputs = (x, cell.weight_ih, cell.weight_hh, cell.bias, cell.weight_gg, *peep.values())
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_paper_sizes_and_extreme_preactivations(dtype):
    """Larger sizes (H not a multiple of the vector width) and saturated gates.

    float32 gets a milder scale: at std 3 the float32 reference itself is 3e-4 away from
    the float64 one (the recurrence amplifies rounding), so 1e-5 would test nothing. Even
    at std 1, gradients of size ~10 carry float32 rounding of a few 1e-5 in both float32
    paths, which sum in different orders (the AVX-512 gemm); so float32 is judged against
    the float64 truth, relative to each tensor's size, and the float32 reference must meet
    the same bound.
    """
    fst, ref = _pair("V", True, dtype, I=88, H=37)
    scale = 6.0 if dtype == torch.float64 else 2.0  # weights std 3 or 1: saturated gates
    with torch.no_grad():
        for a, b in zip(fst.parameters(), ref.parameters(), strict=True):
            a.mul_(scale)
            b.mul_(scale)
    if dtype == torch.float64:
        _assert_same(fst, ref, dtype, T=30, B=3, lengths=(30, 11, 0))
        return
    truth = copy.deepcopy(ref).to(torch.float64)
    torch.manual_seed(1)
    x = torch.randn(30, 3, 88)
    lengths = torch.tensor((30, 11, 0))
    dy = torch.randn(30, 3, fst.output_size)
    y0, dx0, g0 = _run(truth, x.double(), lengths, dy.double())
    for label, layer in (("fast", fst), ("reference", ref)):
        y, dx, g = _run(layer, x, lengths, dy)
        pairs = {"y": (y, y0), "dx": (dx, dx0), **{n: (g[n], g0[n]) for n in g}}
        for name, (a, b) in pairs.items():
            err = (a.double() - b).abs().max().item()
            assert err <= 1e-5 * max(1.0, b.abs().max().item()), (label, name, err)


@needs_ext
def test_empty_and_full_lengths():
    for variant in ("V", "FGR", "GRU"):
        fst, ref = _pair(variant, True, torch.float64)
        _assert_same(fst, ref, torch.float64, T=4, B=2, lengths=None)
        x = torch.zeros(0, 2, fst.input_size, dtype=torch.float64)
        assert fst(x).shape == (0, 2, fst.output_size)


def test_np_fast_equals_nn_lstm():
    """NP through the default impl, with nn.LSTM's weights, gives nn.LSTM's outputs."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 6)
    layer = build_layer("NP", 5, 6)
    cell = layer.directions[0]
    # nn.LSTM's gate order is i, f, g(z), o; ours is z, i, f, o; it has two bias vectors
    order = [2, 0, 1, 3]
    with torch.no_grad():
        for ours, theirs in ((cell.weight_ih, lstm.weight_ih_l0),
                             (cell.weight_hh, lstm.weight_hh_l0)):
            ours.copy_(torch.cat([theirs.chunk(4)[k] for k in order]))
        b = lstm.bias_ih_l0 + lstm.bias_hh_l0
        cell.bias.copy_(torch.cat([b.chunk(4)[k] for k in order]))
    x = torch.randn(8, 3, 5)
    torch.testing.assert_close(layer(x), lstm(x)[0], atol=1e-5, rtol=1e-5)


def test_impl_choice_and_unknown_impl():
    layer = build_layer("V", 3, 4, impl="reference")
    assert layer.directions[0].impl == "reference"
    with pytest.raises(ValueError, match="unknown impl"):
        build_layer("V", 3, 4, impl="cuda-magic")


def test_failed_build_warns_once_and_falls_back(monkeypatch):
    """With the extension unavailable, "auto" warns once and runs the reference loop."""
    monkeypatch.setattr(fast, "_state", {"tried": False, "ops": None, "error": None})

    def broken():
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(fast, "_build", broken)
    torch.manual_seed(0)
    auto = build_layer("CIFG", 3, 4)
    ref = build_layer("CIFG", 3, 4, impl="reference")
    ref.load_state_dict(auto.state_dict())
    x = torch.randn(5, 2, 3)
    with pytest.warns(RuntimeWarning, match="reference implementation"):
        y = auto(x)
    torch.testing.assert_close(y, ref(x))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto(x)  # no second warning
    with pytest.raises(RuntimeError, match="fast kernels are unavailable"):
        build_layer("CIFG", 3, 4, impl="cpp")(x)


@needs_ext
@pytest.mark.parametrize("variant", ["V", "FGR", "GRU", "RNN"])
@pytest.mark.parametrize(("B", "H"), [(1, 1), (2, 15), (3, 16), (5, 17), (8, 47), (9, 49),
                                      (17, 130)])
def test_float32_gemm_tiles_against_float64(variant, B, H):
    """Batch and hidden sizes around the float gemm's tile edges (8 rows, 16-column blocks):
    the float32 fast path stays within float32 rounding of the float64 reference: 1e-5 of
    each tensor's size, or twice the float32 reference loop's own error where that is larger
    (at H=130 with weights of std 0.5 the tanh RNN's float32 rounding alone is 3e-5)."""
    fst, ref = _pair(variant, False, torch.float32, I=33, H=H)
    truth = copy.deepcopy(ref).to(torch.float64)
    torch.manual_seed(2)
    x = torch.randn(6, B, 33)
    dy = torch.randn(6, B, H)
    y0, dx0, g0 = _run(truth, x.double(), None, dy.double())
    runs = {label: _run(layer, x, None, dy) for label, layer in (("fast", fst), ("ref", ref))}

    def errors(run):
        y, dx, g = run
        pairs = {"y": (y, y0), "dx": (dx, dx0), **{n: (g[n], g0[n]) for n in g}}
        return {n: ((a.double() - b).abs().max().item(), b.abs().max().item())
                for n, (a, b) in pairs.items()}

    fast_err, ref_err = errors(runs["fast"]), errors(runs["ref"])
    for name, (err, size) in fast_err.items():
        assert err <= max(1e-5 * max(1.0, size), 2 * ref_err[name][0]), (name, err)


@needs_ext
@pytest.mark.parametrize("variant, batch, hidden", [("V", 16, 200), ("NIAF", 16, 200),
                                                    ("FGR", 64, 47), ("CIFG", 64, 47),
                                                    ("NOAF", 32, 100), ("NP", 32, 40),
                                                    ("FGR", 1, 200), ("V", 1, 200)])
def test_results_do_not_depend_on_the_thread_count(variant, batch, hidden):
    """The float gemm splits large products over torch's threads by columns, and the time
    loop of large steps splits its units over the threads (products and gate pass); every
    element is the same arithmetic, so outputs and gradients are bitwise equal with 1, 2 and
    3 threads (3: ranges that are not halves, more threads than this machine's cores)."""
    torch.manual_seed(0)
    layer = build_layer(variant, 88, hidden, impl="cpp")
    x = torch.randn(20, batch, 88)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            y, dx, g = _run(layer, x, None, torch.ones(20, batch, hidden))
            runs.append((y, dx, *(v.clone() for v in g.values())))
            layer.zero_grad(set_to_none=True)
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert torch.equal(a, b)


@needs_ext
@pytest.mark.parametrize("variant", ["V", "NP", "FGR"])
def test_a_sequence_alone_equals_its_row_in_a_batch(variant):
    """At B=1 the per-step products read the weights in blocks of rows (sgemm_serial's
    matrix-vector path) and at B=2 in column tiles: the same FMA chains, so a sequence's
    outputs and input gradients are bitwise those of its row in a batch."""
    torch.manual_seed(3)
    layer = build_layer(variant, 88, 100, impl="cpp")
    x = torch.randn(12, 1, 88)
    dy = torch.randn(12, 1, 100)
    y1, dx1, _ = _run(layer, x, None, dy)
    layer.zero_grad(set_to_none=True)
    y2, dx2, _ = _run(layer, torch.cat([x, torch.randn(12, 1, 88)], 1), None,
                      torch.cat([dy, torch.randn(12, 1, 100)], 1))
    assert torch.equal(y1[:, 0], y2[:, 0]) and torch.equal(dx1[:, 0], dx2[:, 0])


@needs_ext
def test_a_lock_left_by_a_killed_build_does_not_hang_the_next_process():
    """PyTorch's build lock is a bare file; a worker killed inside the extension's load
    leaves it behind. The next process must load the extension anyway (it used to wait for
    that file forever)."""
    import subprocess
    import sys

    assert fast.extension() is not None  # built and cached
    stale = fast.build_directory() / "lock"
    stale.touch()
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from odyssey.cells import fast; "
             "assert fast.extension(required=True) is not None"],
            timeout=300, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert not stale.exists()
    finally:
        stale.unlink(missing_ok=True)


def test_the_build_name_hashes_every_source_part(tmp_path, monkeypatch):
    """The extension is one translation unit in parts (csrc/*.h included by the .cpp): a
    change to any part names a new build, so a stale build is never loaded."""
    import shutil

    csrc = tmp_path / "csrc"
    shutil.copytree(fast._CSRC, csrc)
    monkeypatch.setattr(fast, "_CSRC", csrc)
    before = fast.source_hash()
    assert before == fast.source_hash() and len(before) == 10
    included = [line.split('"')[1] for line in (csrc / "lstm_family.cpp").read_text().splitlines()
                if line.startswith('#include "')]
    assert len(included) >= 6 and all((csrc / name).is_file() for name in included)
    part = csrc / included[-1]
    part.write_text(part.read_text() + "\n// a changed part\n")
    assert fast.source_hash() != before
