// Packed trial steps: K trials' forward, backward and SGD step in one call.
// Part of lstm_family.cpp's one translation unit (included there, in order), so the
// compiler sees the same code as when it was one file.
#pragma once

#include "gru_rnn.h"
#include "lstm.h"

namespace {

// -------------------------------------------------------------- packed trial steps
// Training K trials at once (issue 13): one call (pack_train_step) runs every trial's
// network forward -- the recurrent layer in each direction and the linear head --, its
// loss where the task has a kernel loss, its backward pass and its SGD step; for a loss
// computed in Python, pack_forward and pack_backward_step run the parts on either side of
// it. At the paper's batch size of 1 a trial's step is a few hundred
// microseconds of arithmetic under milliseconds of Python, autograd and optimizer overhead;
// here that overhead is paid once per pack. Each trial is computed by the same functions,
// on tensors of the same shapes, as when it trains alone (a pack of one), so its numbers do
// not depend on the pack. Trials' parameters come as one flat list: kSlots per direction
// (LSTM family: weight_ih, weight_hh, bias, peephole_i, peephole_f, peephole_o, weight_gg;
// GRU / RNN: weight_ih, weight_hh, bias_ih, bias_hh; absent ones empty), then the head's
// weight (O, D*H) and bias (O). kinds[k]: the LSTM flags, or kGRU / kRNN.
constexpr int64_t kSlots = 7;
constexpr int64_t kGRU = -1, kRNN = -2;
constexpr int64_t kSavedPerDir = 5;  // the direction's input, then the cell's saved tensors

int64_t params_per_trial(int64_t D) { return kSlots * D + 2; }
int64_t saved_per_trial(int64_t D) { return 2 + kSavedPerDir * D; }

c10::optional<at::Tensor> opt(const at::Tensor& t) {
  return t.defined() && t.numel() > 0 ? c10::optional<at::Tensor>(t) : c10::nullopt;
}

// out[t, b] = x[len_b - 1 - t, b] for t < len_b, x[t, b] after: each sequence reversed
// within its own length (an involution), so the reverse direction starts at its last step.
at::Tensor reverse_within(const at::Tensor& x, const int64_t* len) {
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty_like(xc);
  const int64_t T = xc.size(0), B = xc.size(1);
  const int64_t row = xc.numel() / std::max<int64_t>(T * B, 1) * xc.element_size();
  const char* src = static_cast<const char*>(xc.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      const int64_t from = t < len[b] ? len[b] - 1 - t : t;
      std::memcpy(dst + (t * B + b) * row, src + (from * B + b) * row, row);
    }
  }
  return out;
}

// Zero the steps t >= len_b of a (T, B, F) tensor in place (the layer's padded outputs).
void zero_padding(at::Tensor& y, const int64_t* len) {
  const int64_t T = y.size(0), B = y.size(1);
  const int64_t row = y.numel() / std::max<int64_t>(T * B, 1) * y.element_size();
  char* p = static_cast<char*>(y.data_ptr());
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = std::max<int64_t>(len[b], 0); t < T; ++t) std::memset(p + (t * B + b) * row, 0, row);
  }
}

const int64_t* lengths_ptr(const at::Tensor& lengths, int64_t B) {
  TORCH_CHECK(lengths.device().is_cpu() && lengths.scalar_type() == at::kLong &&
                  lengths.is_contiguous() && lengths.numel() == B,
              "odyssey_pack: lengths must be a contiguous CPU int64 tensor of ", B, " entries");
  return lengths.data_ptr<int64_t>();
}

// One direction's cell forward: its saved tensors (y first).
std::vector<at::Tensor> cell_forward(int64_t kind, const at::Tensor& x, const at::Tensor* p,
                                     int64_t mode) {
  if (kind == kGRU) return gru_forward(x, p[0], p[1], p[2], p[3], mode);
  if (kind == kRNN) return rnn_forward(x, p[0], p[1], p[2], p[3], mode);
  return lstm_forward(x, p[0], p[1], p[2], opt(p[3]), opt(p[4]), opt(p[5]), opt(p[6]), kind,
                      mode);
}

// One direction's parameter gradients, in slot order (absent slots empty).
std::vector<at::Tensor> cell_backward(int64_t kind, const at::Tensor& dy, const at::Tensor* s,
                                      const at::Tensor* p, int64_t mode) {
  // s: the direction's input, then the cell's saved tensors
  if (kind == kGRU) {
    auto g = gru_backward(dy, s[0], p[0], p[1], s[1], s[2], s[3], mode, false);
    return {g[1], g[2], g[3], g[4]};
  }
  if (kind == kRNN) {
    auto g = rnn_backward(dy, s[0], p[0], p[1], s[1], mode, false);
    return {g[1], g[2], g[3], g[4]};
  }
  auto g = lstm_backward(dy, s[0], p[0], p[1], opt(p[3]), opt(p[4]), opt(p[5]), opt(p[6]),
                         s[1], s[2], s[3], s[4], kind, mode, false);
  return {g[1], g[2], g[3], g[4], g[5], g[6], g[7]};
}

void check_pack(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& lengths,
                const std::vector<at::Tensor>& params, const std::vector<int64_t>& kinds,
                const std::vector<at::Tensor>& noises, const std::vector<double>& stds,
                int64_t D) {
  const int64_t K = kinds.size();
  TORCH_CHECK(D == 1 || D == 2, "odyssey_pack: directions must be 1 or 2, got ", D);
  TORCH_CHECK(int64_t(noises.size()) == K && int64_t(stds.size()) == K,
              "odyssey_pack: expected ", K, " noise tensors (empty: none) and stds, got ",
              noises.size(), " and ", stds.size());
  TORCH_CHECK(int64_t(xs.size()) == K && int64_t(lengths.size()) == K &&
                  int64_t(params.size()) == K * params_per_trial(D),
              "odyssey_pack: expected ", K, " inputs, lengths and ", K * params_per_trial(D),
              " parameters (", params_per_trial(D), " per trial), got ", xs.size(), ", ",
              lengths.size(), " and ", params.size());
  for (int64_t k = 0; k < K; ++k) {
    TORCH_CHECK(kinds[k] == kGRU || kinds[k] == kRNN || kinds[k] > 0,
                "odyssey_pack: unknown cell kind ", kinds[k]);
  }
}

// A training input with its Gaussian noise: x + std * noise at the real steps, x on the
// padding; x itself when noise is empty or std 0. noise: N(0, 1) draws of x's shape from the
// trial's generator (Python; a custom op cannot take a list of generators). The same ATen
// operations, in the same order, as the trainer's `_noisy` for autograd trials, so both see
// the same numbers; here they cost no Python call per step.
at::Tensor noisy_input(const at::Tensor& x, const at::Tensor& noise, double std,
                       const at::Tensor& lengths) {
  if (noise.numel() == 0 || std == 0.0) return x;
  TORCH_CHECK(noise.sizes() == x.sizes() && noise.scalar_type() == x.scalar_type(),
              "odyssey_pack: input noise must have the input's shape and dtype");
  if (x.size(1) == 1) return noise.mul(std).add_(x);  // one sequence: no padding
  const at::Tensor mask = at::arange(x.size(0), lengths.options()).unsqueeze(1)
                              .lt(lengths.unsqueeze(0)).unsqueeze(-1);
  return x.add(noise.mul(std).mul(mask));
}

// One trial's forward: {logits (T, B, O), layer output (T, B, D*H), then per direction its
// input and the cell's saved tensors (kSavedPerDir, empty-padded)}. p: its parameters;
// noise, std: its input noise (noisy_input).
std::vector<at::Tensor> trial_forward(const at::Tensor& x_in, const at::Tensor& lengths,
                                      const at::Tensor* p, int64_t kind, int64_t D,
                                      int64_t mode, const at::Tensor& noise, double std) {
  const int64_t* len = lengths_ptr(lengths, x_in.size(1));
  const at::Tensor x = noisy_input(x_in, noise, std, lengths).contiguous();
  std::vector<at::Tensor> saved, ys;
  for (int64_t d = 0; d < D; ++d) {
    const at::Tensor xd = d == 0 ? x : reverse_within(x, len);
    std::vector<at::Tensor> s = cell_forward(kind, xd, p + d * kSlots, mode);
    ys.push_back(d == 0 ? s[0] : reverse_within(s[0], len));
    saved.push_back(xd);
    for (int64_t j = 0; j < kSavedPerDir - 1; ++j) {
      saved.push_back(j < int64_t(s.size()) ? s[j] : at::empty({0}, x.options()));
    }
  }
  const int64_t T = x.size(0), B = x.size(1);
  const bool padded = std::any_of(len, len + B, [T](int64_t l) { return l < T; });
  // the cell's own output when there is nothing to zero (its backward reads it unchanged)
  at::Tensor y = D == 2 ? at::cat(ys, 2) : padded ? ys[0].clone() : ys[0];
  zero_padding(y, len);
  const at::Tensor& w = p[kSlots * D];
  const at::Tensor& bias = p[kSlots * D + 1];
  at::Tensor logits = matmul(y.view({T * B, y.size(2)}), w.t(), bias, mode == 0)
                          .view({T, B, w.size(0)});
  std::vector<at::Tensor> out{logits, y};
  out.insert(out.end(), saved.begin(), saved.end());
  return out;
}

// Forward of every trial: trial_forward's tensors, trial after trial.
std::vector<at::Tensor> pack_forward(const std::vector<at::Tensor>& xs,
                                     const std::vector<at::Tensor>& lengths,
                                     const std::vector<at::Tensor>& params,
                                     const std::vector<int64_t>& kinds,
                                     const std::vector<at::Tensor>& noises,
                                     const std::vector<double>& stds, int64_t D,
                                     int64_t mode) {
  check_pack(xs, lengths, params, kinds, noises, stds, D);
  const int64_t K = kinds.size(), P = params_per_trial(D);
  std::vector<at::Tensor> out;
  out.reserve(K * saved_per_trial(D));
  for (int64_t k = 0; k < K; ++k) {
    for (auto& t : trial_forward(xs[k], lengths[k], params.data() + k * P, kinds[k], D, mode,
                                 noises[k], stds[k])) {
      out.push_back(t);
    }
  }
  return out;
}

// Nesterov SGD as torch.optim.SGD (dampening 0): buf = m buf + g; p -= lr (g + m buf);
// plain SGD when m is 0. Elementwise, so a trial's update does not depend on its pack.
template <typename T>
void sgd_step(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t n, T lr, T m) {
  if (m == T(0)) {
    for (int64_t i = 0; i < n; ++i) p[i] -= lr * g[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const T b = m * buf[i] + g[i];
    buf[i] = b;
    p[i] -= lr * (g[i] + m * b);
  }
}

void apply_sgd(at::Tensor& param, const at::Tensor& grad, at::Tensor& buf, double lr,
               double m) {
  TORCH_CHECK(param.is_contiguous() && buf.is_contiguous() && buf.sizes() == param.sizes() &&
                  grad.sizes() == param.sizes(),
              "odyssey_pack: a parameter, its gradient and its momentum buffer must be "
              "contiguous and of one shape");
  const at::Tensor g = grad.contiguous();
  AT_DISPATCH_FLOATING_TYPES(param.scalar_type(), "odyssey_pack_sgd", [&] {
    sgd_step<scalar_t>(param.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(),
                       buf.data_ptr<scalar_t>(), param.numel(), scalar_t(lr), scalar_t(m));
  });
}

// One trial's backward from dL/dlogits, then its SGD step (parameters p and momentum
// buffers buf updated in place). s: its trial_forward tensors.
void trial_backward_step(const at::Tensor& dlogits, const at::Tensor& lengths,
                         const at::Tensor* s, at::Tensor* p, at::Tensor* buf, double lr,
                         double momentum, int64_t kind, int64_t D, int64_t mode) {
  const at::Tensor& y = s[1];
  const int64_t T = y.size(0), B = y.size(1), DH = y.size(2), H = DH / D;
  const int64_t* len = lengths_ptr(lengths, B);
  const at::Tensor dl = dlogits.contiguous().view({T * B, -1});
  const int64_t O = dl.size(1);
  const bool fast = mode == 0;
  const at::Tensor none;
  // head: dW = dl^T y, db = column sums of dl (in step order), dy = dl W
  at::Tensor dw_head = matmul(dl.t(), y.view({T * B, DH}), none, fast);
  at::Tensor db_head = at::zeros({O}, dl.options());
  AT_DISPATCH_FLOATING_TYPES(dl.scalar_type(), "odyssey_pack_head_bias", [&] {
    scalar_t* acc = db_head.data_ptr<scalar_t>();
    const scalar_t* src = dl.data_ptr<scalar_t>();
    for (int64_t r = 0; r < T * B; ++r) {
      for (int64_t o = 0; o < O; ++o) acc[o] += src[r * O + o];
    }
  });
  at::Tensor dy = matmul(dl, p[kSlots * D], none, fast).view({T, B, DH});
  zero_padding(dy, len);  // the layer's padded outputs are constant zeros
  std::vector<std::vector<at::Tensor>> grads;
  for (int64_t d = 0; d < D; ++d) {
    at::Tensor dyd = D == 1 ? dy : dy.narrow(2, d * H, H).contiguous();
    if (d == 1) dyd = reverse_within(dyd, len);
    grads.push_back(cell_backward(kind, dyd, s + 2 + d * kSavedPerDir, p + d * kSlots, mode));
  }
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t j = 0; j < int64_t(grads[d].size()); ++j) {
      at::Tensor& param = p[d * kSlots + j];
      if (param.defined() && param.numel() > 0) {
        apply_sgd(param, grads[d][j], buf[d * kSlots + j], lr, momentum);
      }
    }
  }
  apply_sgd(p[kSlots * D], dw_head, buf[kSlots * D], lr, momentum);
  apply_sgd(p[kSlots * D + 1], db_head, buf[kSlots * D + 1], lr, momentum);
}

// trial_backward_step of every trial; saved: pack_forward's output.
void pack_backward_step(const std::vector<at::Tensor>& dlogits,
                        const std::vector<at::Tensor>& lengths,
                        const std::vector<at::Tensor>& saved, std::vector<at::Tensor> params,
                        std::vector<at::Tensor> bufs, const std::vector<double>& lrs,
                        const std::vector<double>& momenta, const std::vector<int64_t>& kinds,
                        int64_t D, int64_t mode) {
  const int64_t K = kinds.size(), P = params_per_trial(D), S = saved_per_trial(D);
  TORCH_CHECK(int64_t(dlogits.size()) == K && int64_t(lengths.size()) == K &&
                  int64_t(saved.size()) == K * S && int64_t(params.size()) == K * P &&
                  int64_t(bufs.size()) == K * P && int64_t(lrs.size()) == K &&
                  int64_t(momenta.size()) == K,
              "odyssey_pack: backward got lists of mismatched lengths");
  for (int64_t k = 0; k < K; ++k) {
    trial_backward_step(dlogits[k], lengths[k], saved.data() + k * S, params.data() + k * P,
                        bufs.data() + k * P, lrs[k], momenta[k], kinds[k], D, mode);
  }
}

}  // namespace
