// The task losses computed in C++ (BCE, cross-entropy) and the music task's scores.
// Part of lstm_family.cpp's one translation unit (included there, in order), so the
// compiler sees the same code as when it was one file.
#pragma once

#include "pack.h"

namespace {

// ------------------------------------------------------------------------- task losses
// The framewise losses of the music and speech tasks (`Task.kernel_loss` in Python), so that
// a packed step runs no Python per trial: kBCE, binary cross-entropy with logits summed over
// the outputs of every real frame (t < length); kCE, cross-entropy summed over the real
// frames whose target is not ignore_index. A trial's loss is divided by its sequence count
// (the paper's per-sequence sum) or, with per_step, by its counted frames (at least 1), as
// Task.sequence_loss / Task.loss do; the gradient is autograd's formula for the same loss:
// (sigmoid(z) - y) and (softmax(z) - onehot(y)), times that scale.
constexpr int64_t kBCE = 0, kCE = 1;

// log(1 + e) for e in [0, 1] without a scalar libm call (the BCE loop runs it once per
// output): Cephes' logf polynomial on the mantissa of u = 1 + e, and Kahan's correction
// log1p(e) = log(u) e / (u - 1), exact where u rounds to 1. Double uses std::log1p.
inline float vlog1p(float e) {
  const float u = 1.0f + e;
  int32_t bits;
  std::memcpy(&bits, &u, sizeof bits);
  float ex = float(((bits >> 23) & 0xff) - 126);
  bits = (bits & 0x807fffff) | 0x3f000000;  // mantissa in [0.5, 1)
  float m;
  std::memcpy(&m, &bits, sizeof m);
  const bool low = m < 0.707106781186547524f;
  ex = low ? ex - 1.0f : ex;
  const float x = low ? m + m - 1.0f : m - 1.0f;
  const float z = x * x;
  float y = 7.0376836292e-2f;
  y = y * x - 1.1514610310e-1f;
  y = y * x + 1.1676998740e-1f;
  y = y * x - 1.2420140846e-1f;
  y = y * x + 1.4249322787e-1f;
  y = y * x - 1.6668057665e-1f;
  y = y * x + 2.0000714765e-1f;
  y = y * x - 2.4999993993e-1f;
  y = y * x + 3.3333331174e-1f;
  y = y * x * z;
  y += -2.12194440e-4f * ex;
  y += -0.5f * z;
  const float lu = x + y + 0.693359375f * ex;
  return u == 1.0f ? e : lu * (e / (u - 1.0f));
}

inline double vlog1p(double e) { return std::log1p(e); }

// One frame of O outputs: returns its loss, writes the unscaled gradient. The elementwise
// loops have no reduction, so they vectorise; the sums run after them, in output order.
template <typename T>
double bce_frame(const T* __restrict z, const T* __restrict y, T* __restrict g,
                 T* __restrict term, int64_t O) {
  for (int64_t o = 0; o < O; ++o) {
    const T a = z[o], e = vexp(-std::abs(a));  // sigmoid(a) from the same e = exp(-|a|)
    term[o] = std::max(a, T(0)) - a * y[o] + vlog1p(e);
    g[o] = (a >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e)) - y[o];
  }
  double sum = 0;
  for (int64_t o = 0; o < O; ++o) sum += term[o];
  return sum;
}

template <typename T>
double ce_frame(const T* __restrict z, int64_t target, T* __restrict g, int64_t O) {
  T top = z[0];
  for (int64_t o = 1; o < O; ++o) top = std::max(top, z[o]);
  for (int64_t o = 0; o < O; ++o) g[o] = vexp(z[o] - top);
  double total = 0;
  for (int64_t o = 0; o < O; ++o) total += g[o];
  const T inv = T(1 / total);
  for (int64_t o = 0; o < O; ++o) g[o] *= inv;
  g[target] -= T(1);
  return double(top) + std::log(total) - double(z[target]);
}

// One trial's loss and dL/dlogits. logits (T, B, O); targets (T, B, O) floats for kBCE,
// (T, B) int64 for kCE.
std::pair<double, at::Tensor> trial_loss(const at::Tensor& logits, const at::Tensor& targets,
                                         const at::Tensor& lengths, int64_t kind,
                                         int64_t ignore_index, bool per_step) {
  TORCH_CHECK(kind == kBCE || kind == kCE, "odyssey_pack: unknown loss kind ", kind);
  const at::Tensor z = logits.contiguous();
  TORCH_CHECK(z.dim() == 3, "odyssey_pack: logits must be (T, B, O)");
  const int64_t T = z.size(0), B = z.size(1), O = z.size(2);
  const int64_t* len = lengths_ptr(lengths, B);
  const at::Tensor y = targets.contiguous();
  if (kind == kBCE) {
    TORCH_CHECK(y.sizes() == z.sizes() && y.scalar_type() == z.scalar_type(),
                "odyssey_pack: BCE targets must have the logits' shape and dtype");
  } else {
    TORCH_CHECK(y.dim() == 2 && y.size(0) == T && y.size(1) == B &&
                    y.scalar_type() == at::kLong,
                "odyssey_pack: cross-entropy targets must be (T, B) int64");
  }
  at::Tensor g = at::zeros_like(z);
  double total = 0, loss = 0;
  int64_t frames = 0;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "odyssey_pack_loss", [&] {
    std::vector<scalar_t> term(O);
    const scalar_t* pz = z.data_ptr<scalar_t>();
    scalar_t* pg = g.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t b = 0; b < B; ++b) {
        if (t >= len[b]) continue;
        const int64_t r = (t * B + b) * O;
        if (kind == kBCE) {
          total += bce_frame(pz + r, y.data_ptr<scalar_t>() + r, pg + r, term.data(), O);
        } else {
          const int64_t target = y.data_ptr<int64_t>()[t * B + b];
          if (target == ignore_index) continue;
          TORCH_CHECK(target >= 0 && target < O, "odyssey_pack: target ", target,
                      " out of range for ", O, " classes");
          total += ce_frame(pz + r, target, pg + r, O);
        }
        ++frames;
      }
    }
    const scalar_t scale = per_step ? scalar_t(1) / scalar_t(std::max<int64_t>(frames, 1))
                                    : scalar_t(1) / scalar_t(B);
    for (int64_t i = 0; i < g.numel(); ++i) pg[i] *= scale;
    // summed in double, reported in the logits' precision: a float32 loss beyond float's
    // range is inf (a diverged trial), as the task's own float32 sum would be
    loss = double(scalar_t(total * double(scale)));
  });
  return {loss, g};
}

// The evaluation sums of a framewise binary task (the music task's `score`) over the real
// frames (t < length) of logits and targets (T, B, O), in one pass: {BCE with logits summed,
// frames, true positives (z > 0 and y > 0.5), predicted on (z > 0), on (y > 0.5)}, float64.
// Issue 13: the same sums through ATen took ~15 element-wise passes and ~5 % of a
// paper-protocol music trial; each BCE term is trial_loss's.
at::Tensor bce_scores(const at::Tensor& logits, const at::Tensor& targets,
                      const at::Tensor& lengths) {
  const at::Tensor z = logits.contiguous(), y = targets.contiguous();
  TORCH_CHECK(z.dim() == 3 && y.sizes() == z.sizes() && y.scalar_type() == z.scalar_type() &&
                  z.device().is_cpu(),
              "odyssey bce_scores: logits and targets must be CPU tensors (T, B, O) of one "
              "shape and dtype");
  const int64_t T = z.size(0), B = z.size(1), O = z.size(2);
  const int64_t* len = lengths_ptr(lengths, B);
  double loss = 0, frames = 0, tp = 0, predicted = 0, on = 0;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "odyssey_bce_scores", [&] {
    // the BCE terms summed per output over the frames, then over the outputs: a running
    // sum per output vectorises, one running sum over every term is a chain of dependent adds
    std::vector<double> acc(O, 0.0);
    double* __restrict pa = acc.data();
    const scalar_t* pz = z.data_ptr<scalar_t>();
    const scalar_t* py = y.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t b = 0; b < B; ++b) {
        if (t >= len[b]) continue;
        const scalar_t* __restrict zr = pz + (t * B + b) * O;
        const scalar_t* __restrict yr = py + (t * B + b) * O;
        int32_t hit = 0, pos = 0, truth = 0;  // (int32: the loop vectorises)
        for (int64_t o = 0; o < O; ++o) {
          const scalar_t a = zr[o];
          pa[o] += double(std::max(a, scalar_t(0)) - a * yr[o] + vlog1p(vexp(-std::abs(a))));
        }
        for (int64_t o = 0; o < O; ++o) {
          const int32_t p = zr[o] > scalar_t(0), q = yr[o] > scalar_t(0.5);
          hit += p & q, pos += p, truth += q;
        }
        frames += 1, tp += hit, predicted += pos, on += truth;
      }
    }
    for (int64_t o = 0; o < O; ++o) loss += acc[o];
  });
  return at::tensor({loss, frames, tp, predicted, on}, at::kDouble);
}

}  // namespace
