// Fused recurrences (Odyssey, DESIGN §2): the whole time loop and its backward pass in C++,
// for the vanilla LSTM and its eight one-change variants, and for the GRU and tanh RNN in
// PyTorch's parameterisation; packed training steps of several trials and the task losses.
//
// Why by hand: PyTorch fuses only the peephole-free LSTM (nn.LSTM); a per-step Python cell
// pays ~10 ATen dispatches per step forward and as many autograd nodes backward, which
// dominates at the paper's batch size of 1. Here each step is one matrix product (two for
// FGR) plus one pass of raw loops over the (B, H) elements, and the input projections of
// all steps are one matrix product. On devices other than the CPU the same recurrence runs
// through ATen ops (device-generic path).
//
// Layout: acts (T, B, G*H) hold the gate blocks in storage order z, [i], [f], [o] -- the
// pre-activations first, overwritten in place by the activations. c and hc (T, B, H) hold
// the cell state and h(c); y (T, B, H) the block output.
//
// One translation unit in parts, one per concern, included in this order: gemm.h (matrix
// products), flags.h (variant flags), activations.h, lstm_steps.h (one step, the time loop),
// lstm.h (whole-sequence forward and backward), gru_rnn.h, pack.h (packed trial steps and
// SGD), losses.h (task losses); this file holds the ops that span them and the registration.
// The extension's build name hashes every file of this folder (odyssey/cells/fast.py).

#include "gemm.h"
#include "flags.h"
#include "activations.h"
#include "lstm_steps.h"
#include "lstm.h"
#include "gru_rnn.h"
#include "pack.h"
#include "losses.h"

namespace {

// Every trial's loss: {losses (K, float64), then each trial's dL/dlogits}.
std::vector<at::Tensor> pack_loss(const std::vector<at::Tensor>& logits,
                                  const std::vector<at::Tensor>& targets,
                                  const std::vector<at::Tensor>& lengths, int64_t kind,
                                  int64_t ignore_index, bool per_step) {
  const int64_t K = logits.size();
  TORCH_CHECK(int64_t(targets.size()) == K && int64_t(lengths.size()) == K,
              "odyssey_pack: expected ", K, " targets and lengths, got ", targets.size(),
              " and ", lengths.size());
  at::Tensor losses = at::empty({K}, at::kDouble);
  std::vector<at::Tensor> out{losses};
  for (int64_t k = 0; k < K; ++k) {
    auto [loss, g] = trial_loss(logits[k], targets[k], lengths[k], kind, ignore_index, per_step);
    losses.data_ptr<double>()[k] = loss;
    out.push_back(g);
  }
  return out;
}

// A whole training step of every trial whose task has a kernel loss, in one call: forward,
// loss, backward and SGD step of one trial, then the next -- so a trial's activations are
// still in cache for its backward pass, and Python runs once per pack step. Same arithmetic
// as pack_forward + pack_loss + pack_backward_step. A trial whose loss is not finite (it
// diverged) is not updated. Returns the losses (K, float64).
at::Tensor pack_train_step(const std::vector<at::Tensor>& xs,
                           const std::vector<at::Tensor>& lengths,
                           const std::vector<at::Tensor>& targets,
                           std::vector<at::Tensor> params, std::vector<at::Tensor> bufs,
                           const std::vector<double>& lrs, const std::vector<double>& momenta,
                           const std::vector<int64_t>& kinds,
                           const std::vector<at::Tensor>& noises,
                           const std::vector<double>& stds, int64_t D, int64_t mode,
                           int64_t loss_kind, int64_t ignore_index, bool per_step) {
  check_pack(xs, lengths, params, kinds, noises, stds, D);
  const int64_t K = kinds.size(), P = params_per_trial(D);
  TORCH_CHECK(int64_t(targets.size()) == K && int64_t(bufs.size()) == K * P &&
                  int64_t(lrs.size()) == K && int64_t(momenta.size()) == K,
              "odyssey_pack: train step got lists of mismatched lengths");
  at::Tensor losses = at::empty({K}, at::kDouble);
  for (int64_t k = 0; k < K; ++k) {
    at::Tensor* p = params.data() + k * P;
    const std::vector<at::Tensor> saved =
        trial_forward(xs[k], lengths[k], p, kinds[k], D, mode, noises[k], stds[k]);
    auto [loss, g] = trial_loss(saved[0], targets[k], lengths[k], loss_kind, ignore_index,
                                per_step);
    losses.data_ptr<double>()[k] = loss;
    if (std::isfinite(loss)) {
      trial_backward_step(g, lengths[k], saved.data(), p, bufs.data() + k * P, lrs[k],
                          momenta[k], kinds[k], D, mode);
    }
  }
  return losses;
}

// The registered backward ops (always computing the input gradient).
std::vector<at::Tensor> lstm_backward_op(
    const at::Tensor& dy, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const c10::optional<at::Tensor>& p_i, const c10::optional<at::Tensor>& p_f,
    const c10::optional<at::Tensor>& p_o, const c10::optional<at::Tensor>& w_gg,
    const at::Tensor& y, const at::Tensor& acts, const at::Tensor& c, const at::Tensor& hc,
    int64_t flags, int64_t mode) {
  return lstm_backward(dy, x, w_ih, w_hh, p_i, p_f, p_o, w_gg, y, acts, c, hc, flags, mode);
}

std::vector<at::Tensor> gru_backward_op(const at::Tensor& dy, const at::Tensor& x,
                                        const at::Tensor& w_ih, const at::Tensor& w_hh,
                                        const at::Tensor& y, const at::Tensor& acts,
                                        const at::Tensor& hn, int64_t mode) {
  return gru_backward(dy, x, w_ih, w_hh, y, acts, hn, mode);
}

std::vector<at::Tensor> rnn_backward_op(const at::Tensor& dy, const at::Tensor& x,
                                        const at::Tensor& w_ih, const at::Tensor& w_hh,
                                        const at::Tensor& y, int64_t mode) {
  return rnn_backward(dy, x, w_ih, w_hh, y, mode);
}

}  // namespace

TORCH_LIBRARY(odyssey_lstm, m) {
  m.def("forward(Tensor x, Tensor weight_ih, Tensor weight_hh, Tensor bias, Tensor? peephole_i,"
        " Tensor? peephole_f, Tensor? peephole_o, Tensor? weight_gg, int flags, int mode)"
        " -> Tensor[]");
  m.def("backward(Tensor dy, Tensor x, Tensor weight_ih, Tensor weight_hh, Tensor? peephole_i,"
        " Tensor? peephole_f, Tensor? peephole_o, Tensor? weight_gg, Tensor y, Tensor acts,"
        " Tensor c, Tensor hc, int flags, int mode) -> Tensor[]");
  m.def("gru_forward(Tensor x, Tensor weight_ih, Tensor weight_hh, Tensor bias_ih,"
        " Tensor bias_hh, int mode) -> Tensor[]");
  m.def("gru_backward(Tensor dy, Tensor x, Tensor weight_ih, Tensor weight_hh, Tensor y,"
        " Tensor acts, Tensor hn, int mode) -> Tensor[]");
  m.def("rnn_forward(Tensor x, Tensor weight_ih, Tensor weight_hh, Tensor bias_ih,"
        " Tensor bias_hh, int mode) -> Tensor[]");
  m.def("rnn_backward(Tensor dy, Tensor x, Tensor weight_ih, Tensor weight_hh, Tensor y,"
        " int mode) -> Tensor[]");
  m.def("pack_forward(Tensor[] xs, Tensor[] lengths, Tensor[] params, int[] kinds,"
        " Tensor[] noises, float[] noise_stds, int directions, int mode) -> Tensor[]");
  m.def("pack_backward_step(Tensor[] dlogits, Tensor[] lengths, Tensor[] saved,"
        " Tensor(a!)[] params, Tensor(b!)[] buffers, float[] lrs, float[] momenta, int[] kinds,"
        " int directions, int mode) -> ()");
  m.def("bce_scores(Tensor logits, Tensor targets, Tensor lengths) -> Tensor");
  m.def("pack_loss(Tensor[] logits, Tensor[] targets, Tensor[] lengths, int kind,"
        " int ignore_index, bool per_step) -> Tensor[]");
  m.def("pack_train_step(Tensor[] xs, Tensor[] lengths, Tensor[] targets, Tensor(a!)[] params,"
        " Tensor(b!)[] buffers, float[] lrs, float[] momenta, int[] kinds, Tensor[] noises,"
        " float[] noise_stds, int directions, int mode, int loss, int ignore_index,"
        " bool per_step) -> Tensor");
  m.impl("pack_forward", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(pack_forward));
  m.impl("pack_loss", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(pack_loss));
  m.impl("bce_scores", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(bce_scores));
  m.impl("pack_train_step", c10::DispatchKey::CompositeExplicitAutograd,
         TORCH_FN(pack_train_step));
  m.impl("pack_backward_step", c10::DispatchKey::CompositeExplicitAutograd,
         TORCH_FN(pack_backward_step));
  m.impl("gru_forward", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(gru_forward));
  m.impl("gru_backward", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(gru_backward_op));
  m.impl("rnn_forward", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(rnn_forward));
  m.impl("rnn_backward", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(rnn_backward_op));
  m.impl("forward", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(lstm_forward));
  m.impl("backward", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(lstm_backward_op));
}
