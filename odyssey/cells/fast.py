"""Fast kernels behind `build_layer(impl="auto")`: a C++ extension for all eleven cells.

The extension (csrc/lstm_family.cpp) runs the whole time loop and its backward pass in C++
(the LSTM family on any device, through ATen ops off the CPU; GRU and RNN on the CPU, with
PyTorch's own kernels elsewhere). It is compiled with `torch.utils.cpp_extension.load` on
first use and cached by PyTorch (under $TORCH_EXTENSIONS_DIR, default
~/.cache/torch_extensions). Where no compiler is found or the build fails, "auto" warns once
and falls back to the reference loops (PyTorch's kernels for GRU and RNN).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

import torch
from torch import Tensor

from . import reference
from .variants import VariantSpec

# Variant flags; must match the constants in csrc/flags.h.
_IG, _FG, _CPL, _OG, _IACT, _OACT, _PEEP, _FGR = 1, 2, 4, 8, 16, 32, 64, 128

_MODES = {"fast": 0, "generic": 1, "aten-mm": 2}
_CSRC = Path(__file__).with_name("csrc")
_SOURCE = _CSRC / "lstm_family.cpp"  # one translation unit; it includes csrc/*.h
_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "ops": None, "error": None}


def flags(s: VariantSpec) -> int:
    """The extension's bit flags for an LSTM-family variant."""
    return ((_IG if s.input_gate else 0) | (_FG if s.forget_gate else 0)
            | (_CPL if s.coupled else 0) | (_OG if s.output_gate else 0)
            | (_IACT if s.input_activation else 0) | (_OACT if s.output_activation else 0)
            | (_PEEP if s.peepholes else 0) | (_FGR if s.gate_recurrence else 0))


def _cflags() -> list[str]:
    """-O3, plus AVX2/FMA and AVX-512 where this CPU has them (the build is for this machine
    only; with AVX-512 the kernels use their own float gemm, see csrc/gemm.h)."""
    # -fopenmp: at::parallel_for (the gemm's column split over torch's threads) is OpenMP
    # in PyTorch's headers and runs serially without it
    out = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"]
    try:
        cpu = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpu = ""
    if " avx2" in cpu and " fma" in cpu:
        out += ["-mavx2", "-mfma"]
        if " avx512f" in cpu:
            out += ["-mavx512f"]
    return out


def _build() -> Any:
    """Compile (or load from PyTorch's cache) the extension; returns torch.ops.odyssey_lstm."""
    from torch.utils import cpp_extension

    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise RuntimeError(f"no C++ compiler found (looked for {cxx!r} on PATH; set CXX)")
    try:  # the `ninja` package ships the build tool; put it on PATH for cpp_extension
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    cflags = _cflags()
    name = _name(cflags)
    with _build_lock(build_directory(name)):
        cpp_extension.load(name=name, sources=[str(_SOURCE)], extra_cflags=cflags,
                           extra_ldflags=["-fopenmp"], is_python_module=False, verbose=False)
    return torch.ops.odyssey_lstm


def _name(cflags: list[str]) -> str:
    """The extension's name: its instruction set and the hash of its sources (every file of
    csrc/, the .cpp and the parts it includes), so that checkouts of different versions
    (worktrees, upgrades) sharing one extensions folder never load or overwrite each other's
    builds."""
    digest = source_hash()
    return "odyssey_lstm_" + ("avx512" if "-mavx512f" in cflags
                              else "avx2" if "-mavx2" in cflags else "base") + "_" + digest


def source_hash() -> str:
    """The first 10 hex digits of the SHA-256 over every file of csrc/ (names and bytes)."""
    h = hashlib.sha256()
    for path in sorted(p for p in _CSRC.iterdir() if p.suffix in (".cpp", ".h")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:10]


def build_directory(name: str | None = None) -> Path:
    """Where PyTorch builds and caches the extension (created if missing)."""
    from torch.utils import cpp_extension

    # a private helper, but the one place that knows PyTorch's folder layout
    return Path(cpp_extension._get_build_directory(name or _name(_cflags()), False))


@contextlib.contextmanager
def _build_lock(build_dir: Path) -> Iterator[None]:
    """Hold an exclusive flock on build_dir/odyssey.flock around PyTorch's build-or-load.

    PyTorch's own lock is a file that `load` creates and deletes (even when the build is up to
    date), with no owner: a process killed inside `load` -- a sweep worker stopped at start-up
    -- leaves it behind, and every later process waits for it forever. The kernel releases a
    flock when its process dies, so under it no other Odyssey process is inside `load`, and a
    `lock` file found there is such a leftover and is removed.
    """
    if fcntl is None:  # not POSIX: PyTorch's lock alone
        yield
        return
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / "odyssey.flock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (build_dir / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def extension(required: bool = False) -> Any | None:
    """The compiled ops (torch.ops.odyssey_lstm), building them on first call; None (after
    one warning) if the build fails, or a RuntimeError when `required`."""
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                _state["ops"] = _build()
            except Exception as exc:  # any build failure means: use the reference loops
                _state["error"] = exc
                first = (str(exc).strip().splitlines() or [""])[0][:160]
                warnings.warn(
                    "odyssey: could not build the fast recurrent kernels "
                    f"({type(exc).__name__}: {first}); using the slower reference "
                    "implementation instead (PyTorch's own kernels for GRU and RNN). Install "
                    "a C++ compiler (g++) and ninja to get them; impl='cpp' raises the full "
                    "error.", RuntimeWarning, stacklevel=3)
    if _state["ops"] is None and required:
        raise RuntimeError(f"the fast kernels are unavailable: {_state['error']}")
    return _state["ops"]


def available() -> bool:
    """Whether the compiled LSTM-family kernels can be used (builds them if needed)."""
    return extension() is not None


class _LSTMFamily(torch.autograd.Function):
    """The C++ recurrence; forward saves activations, cell states and outputs for backward."""

    @staticmethod
    def forward(ctx: Any, fl: int, mode: int, x: Tensor, weight_ih: Tensor,
                weight_hh: Tensor, bias: Tensor, peephole_i: Tensor | None,
                peephole_f: Tensor | None, peephole_o: Tensor | None,
                weight_gg: Tensor | None) -> Tensor:
        ops = extension(required=True)
        y, acts, c, hc = ops.forward(x, weight_ih, weight_hh, bias, peephole_i, peephole_f,
                                     peephole_o, weight_gg, fl, mode)
        ctx.fl, ctx.mode = fl, mode
        ctx.save_for_backward(x, weight_ih, weight_hh, peephole_i, peephole_f, peephole_o,
                              weight_gg, y, acts, c, hc)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, w_ih, w_hh, p_i, p_f, p_o, w_gg, y, acts, c, hc = ctx.saved_tensors
        grads = extension(required=True).backward(dy, x, w_ih, w_hh, p_i, p_f, p_o, w_gg, y,
                                                  acts, c, hc, ctx.fl, ctx.mode)
        dx, dw_ih, dw_hh, db, dp_i, dp_f, dp_o, dw_gg = grads
        return (None, None, dx, dw_ih, dw_hh, db,
                dp_i if p_i is not None else None, dp_f if p_f is not None else None,
                dp_o if p_o is not None else None, dw_gg if w_gg is not None else None)


def lstm_sequence(s: VariantSpec, x: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                  bias: Tensor, peep: dict[str, Tensor], weight_gg: Tensor | None = None,
                  *, mode: str = "fast") -> Tensor:
    """Same contract as `reference.lstm_sequence`, computed by the C++ kernels.

    `mode` is "fast" (fused loops, BLAS called directly; non-CPU devices take the generic
    path anyway), "generic" (the device-generic ATen-op path that CUDA runs) or "aten-mm"
    (fused loops with ATen matrix products, the fallback where BLAS is not exported); the
    last two exist so that tests can run them on the CPU.
    """
    if mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(_MODES)}")
    return _LSTMFamily.apply(flags(s), _MODES[mode], x, weight_ih, weight_hh, bias,
                             peep.get("i"), peep.get("f"), peep.get("o"), weight_gg)


class _GRU(torch.autograd.Function):
    """The C++ GRU recurrence (CPU); forward saves gate activations and W_hn h' + b_hn."""

    @staticmethod
    def forward(ctx: Any, mode: int, x: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                bias_ih: Tensor, bias_hh: Tensor) -> Tensor:
        y, acts, hn = extension(required=True).gru_forward(x, weight_ih, weight_hh, bias_ih,
                                                           bias_hh, mode)
        ctx.mode = mode
        ctx.save_for_backward(x, weight_ih, weight_hh, y, acts, hn)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, w_ih, w_hh, y, acts, hn = ctx.saved_tensors
        grads = extension(required=True).gru_backward(dy, x, w_ih, w_hh, y, acts, hn, ctx.mode)
        return (None, *grads)


class _RNN(torch.autograd.Function):
    """The C++ tanh-RNN recurrence (CPU); forward saves the outputs."""

    @staticmethod
    def forward(ctx: Any, mode: int, x: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                bias_ih: Tensor, bias_hh: Tensor) -> Tensor:
        (y,) = extension(required=True).rnn_forward(x, weight_ih, weight_hh, bias_ih, bias_hh,
                                                    mode)
        ctx.mode = mode
        ctx.save_for_backward(x, weight_ih, weight_hh, y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, w_ih, w_hh, y = ctx.saved_tensors
        grads = extension(required=True).rnn_backward(dy, x, w_ih, w_hh, y, ctx.mode)
        return (None, *grads)


def _torch_params_sequence(kind: str, x: Tensor, weights: list[Tensor], mode: str) -> Tensor:
    """GRU / tanh RNN over x: the C++ kernels on the CPU, PyTorch's own elsewhere."""
    if mode not in (*_MODES, "torch") or mode == "generic":
        raise ValueError(f"unknown mode {mode!r}; expected fast, aten-mm or torch")
    if mode != "torch" and x.device.type == "cpu":
        fn = _GRU if kind == "gru" else _RNN
        return fn.apply(_MODES[mode], x, *weights)
    if x.shape[0] == 0 or x.shape[1] == 0:  # PyTorch's kernels refuse empty input
        return (reference.gru_sequence if kind == "gru" else reference.rnn_sequence)(x, *weights)
    h0 = x.new_zeros(1, x.shape[1], weights[1].shape[1])
    run = torch._VF.gru if kind == "gru" else torch._VF.rnn_tanh
    y, _ = run(x, h0, weights, True, 1, 0.0, torch.is_grad_enabled(), False, False)
    return y


def gru_sequence(x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor,
                 bias_hh: Tensor, *, mode: str = "fast") -> Tensor:
    """Same contract as `reference.gru_sequence` (nn.GRU's parameterisation).

    `mode`: "fast" (C++ loops, BLAS called directly), "aten-mm" (C++ loops, ATen matrix
    products) or "torch" (PyTorch's own GRU kernel, which non-CPU devices always take).
    """
    return _torch_params_sequence("gru", x, [weight_ih, weight_hh, bias_ih, bias_hh], mode)


def rnn_sequence(x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor,
                 bias_hh: Tensor, *, mode: str = "fast") -> Tensor:
    """Same contract as `reference.rnn_sequence` (nn.RNN's parameterisation); `mode` as for
    `gru_sequence`."""
    return _torch_params_sequence("rnn", x, [weight_ih, weight_hh, bias_ih, bias_hh], mode)
