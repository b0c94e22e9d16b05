// The LSTM family's steps: gate layout, one forward and one backward step over (B, H),
// the time loop (threaded by units) and the dispatch on variant flags.
// Part of lstm_family.cpp's one translation unit (included there, in order), so the
// compiler sees the same code as when it was one file.
#pragma once

#include "activations.h"
#include "flags.h"
#include "gemm.h"

namespace {

template <int64_t F>
struct Layout {
  static constexpr bool ig = F & IG, fg = F & FG, cpl = F & CPL, og = F & OG;
  static constexpr bool iact = F & IACT, oact = F & OACT, peep = F & PEEP, fgr = F & FGR;
  static constexpr int ki = ig ? 1 : -1;
  static constexpr int kf = fg ? 1 + ig : -1;
  static constexpr int ko = og ? 1 + ig + fg : -1;
  static constexpr int G = 1 + ig + fg + og;
};

// Gate block k of row b: rows are G*H long, block k starts at k*H (null if absent).
template <typename T>
inline T* block(T* base, int64_t b, int64_t GH, int k, int64_t H) {
  return k < 0 ? nullptr : base + b * GH + k * H;
}

// The gate pass of step_forward over n units, the pointers q offset to its first unit. Not
// inlined: one compiled copy of the loop, whatever calls it (the serial and the threaded
// time loop), so that a unit's numbers never depend on the thread count -- two inlined copies
// were once compiled differently, and a thread-count test caught it.
template <typename T, int64_t F>
__attribute__((noinline)) void gates_forward(int64_t n, const std::array<T*, 11>& q) {
  using L = Layout<F>;
  T* __restrict az = q[0];
  T* __restrict ai = q[1];
  T* __restrict af = q[2];
  T* __restrict ao = q[3];
  const T* __restrict cp = q[4];
  T* __restrict cn = q[5];
  T* __restrict hc = q[6];
  T* __restrict y = q[7];
  const T* __restrict pi = q[8];
  const T* __restrict pf = q[9];
  const T* __restrict po = q[10];
#pragma GCC ivdep
  for (int64_t h = 0; h < n; ++h) {
    T z = az[h];
    if constexpr (L::iact) z = tanh_(z);
    T i = T(1), f = T(1), o = T(1);
    if constexpr (L::ig) {
      T pre = ai[h];
      if constexpr (L::peep) pre += pi[h] * cp[h];
      i = sigm(pre);
    }
    if constexpr (L::cpl) {
      f = T(1) - i;
    } else if constexpr (L::fg) {
      T pre = af[h];
      if constexpr (L::peep) pre += pf[h] * cp[h];
      f = sigm(pre);
    }
    const T c = z * i + cp[h] * f;
    if constexpr (L::og) {
      T pre = ao[h];
      if constexpr (L::peep) pre += po[h] * c;  // the output gate peeps at the new c
      o = sigm(pre);
    }
    T hcv = c;
    if constexpr (L::oact) hcv = tanh_(c);
    az[h] = z;
    if constexpr (L::ig) ai[h] = i;
    if constexpr (L::fg) af[h] = f;
    if constexpr (L::og) ao[h] = o;
    cn[h] = c;
    hc[h] = hcv;
    y[h] = hcv * o;
  }
}

// One forward step over (B, H): acts_t holds pre-activations on entry, activations on exit.
// The inner loop has unit-stride accesses only and no branches, so GCC vectorises it.
// Units [h0, h1) of every row; each element's arithmetic is the same whatever the range.
template <typename T, int64_t F>
void step_forward(int64_t B, int64_t H, int64_t h0, int64_t h1, T* acts_t,
                  const T* c_prev, T* c_t, T* hc_t, T* y_t, const T* pi, const T* pf,
                  const T* po) {
  using L = Layout<F>;
  const int64_t GH = L::G * H;
  auto at = [h0](const T* v) { return v ? const_cast<T*>(v) + h0 : nullptr; };
  for (int64_t b = 0; b < B; ++b) {
    const std::array<T*, 11> q{
        at(block(acts_t, b, GH, 0, H)), at(block(acts_t, b, GH, L::ki, H)),
        at(block(acts_t, b, GH, L::kf, H)), at(block(acts_t, b, GH, L::ko, H)),
        at(c_prev + b * H), at(c_t + b * H), at(hc_t + b * H), at(y_t + b * H),
        at(L::peep ? pi : nullptr), at(L::peep ? pf : nullptr), at(L::peep ? po : nullptr)};
    gates_forward<T, F>(h1 - h0, q);
  }
}

// One backward step over (B, H). dy_t + dh: dL/dy_t (output gradient, recurrent part);
// dc: dL/dc_t from step t+1 on entry, dL/dc_{t-1} on exit; dg: FGR's dL/d[i;f;o]_t from
// step t+1 (B, 3H) or null; dpre_t (B, G*H) receives dL/d(pre-activation); dpi/dpf/dpo
// accumulate the peephole gradients.
template <typename T, int64_t F>
void step_backward(int64_t B, int64_t H, int64_t h0, int64_t h1, const T* acts_t,
                   const T* __restrict c_prev,
                   const T* __restrict c_t, const T* __restrict hc_t,
                   const T* __restrict dy_t, const T* __restrict dh, T* __restrict dc,
                   const T* dg, T* dpre_t, const T* __restrict pi, const T* __restrict pf,
                   const T* __restrict po, T* __restrict dpi, T* __restrict dpf,
                   T* __restrict dpo) {
  using L = Layout<F>;
  const int64_t GH = L::G * H;
  for (int64_t b = 0; b < B; ++b) {
    const T* __restrict az = block(acts_t, b, GH, 0, H);
    const T* __restrict ai = block(acts_t, b, GH, L::ki, H);
    const T* __restrict af = block(acts_t, b, GH, L::kf, H);
    const T* __restrict ao = block(acts_t, b, GH, L::ko, H);
    T* __restrict dz_ = block(dpre_t, b, GH, 0, H);
    T* __restrict di_ = block(dpre_t, b, GH, L::ki, H);
    T* __restrict df_ = block(dpre_t, b, GH, L::kf, H);
    T* __restrict do_ = block(dpre_t, b, GH, L::ko, H);
    const T* __restrict gi = L::fgr ? dg + b * 3 * H : nullptr;
    const T* __restrict gf = L::fgr ? gi + H : nullptr;
    const T* __restrict go = L::fgr ? gi + 2 * H : nullptr;
    const T* __restrict cp = c_prev + b * H;
    const T* __restrict cn = c_t + b * H;
    const T* __restrict hc = hc_t + b * H;
    const T* __restrict dyo = dy_t + b * H;
    const T* __restrict dyr = dh + b * H;
    T* __restrict dcb = dc + b * H;
#pragma GCC ivdep
    for (int64_t h = h0; h < h1; ++h) {
      const T z = az[h];
      T i = T(1), f = T(1), o = T(1);
      if constexpr (L::ig) i = ai[h];
      if constexpr (L::fg) f = af[h];
      if constexpr (L::cpl) f = T(1) - i;
      if constexpr (L::og) o = ao[h];
      const T hcv = hc[h];
      const T cprev = cp[h];
      const T dyv = dyo[h] + dyr[h];
      T dc_ = dyv * o;
      if constexpr (L::oact) dc_ *= T(1) - hcv * hcv;
      dc_ += dcb[h];
      if constexpr (L::og) {
        T dov = dyv * hcv;
        if constexpr (L::fgr) dov += go[h];
        const T dao = dov * o * (T(1) - o);
        do_[h] = dao;
        if constexpr (L::peep) {
          dc_ += dao * po[h];
          dpo[h] += dao * cn[h];
        }
      }
      T dcp = dc_ * f;
      T dz = dc_ * i;
      if constexpr (L::iact) dz *= T(1) - z * z;
      dz_[h] = dz;
      if constexpr (L::ig) {
        T di = dc_ * z;
        if constexpr (L::cpl) di -= dc_ * cprev;
        if constexpr (L::fgr) di += gi[h];
        const T dai = di * i * (T(1) - i);
        di_[h] = dai;
        if constexpr (L::peep) {
          dcp += dai * pi[h];
          dpi[h] += dai * cprev;
        }
      }
      if constexpr (L::fg) {
        T df = dc_ * cprev;
        if constexpr (L::fgr) df += gf[h];
        const T daf = df * f * (T(1) - f);
        df_[h] = daf;
        if constexpr (L::peep) {
          dcp += daf * pf[h];
          dpf[h] += daf * cprev;
        }
      }
      dcb[h] = dcp;
    }
  }
}

// The time loop of a recurrence, forward (t = 0 .. T-1) or backward: body(t, h0, h1) runs
// step t for units [h0, h1) -- its share of the recurrent products' columns, then its gate
// pass. With `split` (float steps on the hand gemm whose recurrent products are at least
// 2^17 multiply-adds: B x H units times unit_macs each) and two or more torch threads, the
// threads run the whole loop in one parallel region, each on its own 16-unit-aligned units, with one barrier per step (the next step's products read every
// unit). Issue 14: splitting the product and the gate pass in separate fork-joins cost two
// fork-joins per step, and at B=16, H=200 on two threads that overhead lost to oneDNN's
// LSTM. Units are independent (peephole gradients accumulate per unit) and every product
// element is the same FMA chain whatever its column range, so the split changes no number.
// The threshold was first 512 units (B x H; measured: steps of 512-2,048 units gain 5-15 %
// split), which is 2^17 multiply-adds at H=64; in multiply-adds it also splits a batch-1
// step of H=200 (V: 160 k, FGR: 520 k), whose weights then stream from two cores' caches.
template <typename Fn>
void time_loop(int64_t T, int64_t B, int64_t H, int64_t unit_macs, bool reverse, bool split,
               Fn&& body) {
  constexpr int64_t kMinMacs = int64_t(1) << 17;  // per step, below it: one thread
  const int64_t blocks = (H + 15) / 16;
  int64_t threads = 1;
#ifdef _OPENMP
  if (split && B * H * unit_macs >= kMinMacs && !at::in_parallel_region()) {
    threads = std::min<int64_t>(at::get_num_threads(), blocks);
  }
#endif
  if (threads < 2) {
    for (int64_t s = 0; s < T; ++s) body(reverse ? T - 1 - s : s, int64_t(0), H);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(int(threads))
  {
    const int64_t id = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t h0 = std::min(H, 16 * (blocks * id / n));
    const int64_t h1 = std::min(H, 16 * (blocks * (id + 1) / n));
    for (int64_t s = 0; s < T; ++s) {
      body(reverse ? T - 1 - s : s, h0, h1);
#pragma omp barrier
    }
  }
#endif
}

// The nine variants' flags, for the compile-time dispatch below.
constexpr int64_t V_ = IG | FG | OG | IACT | OACT | PEEP;
constexpr int64_t KNOWN[] = {
    V_,                 V_ & ~IG,           V_ & ~FG,           V_ & ~OG,
    V_ & ~IACT,         V_ & ~OACT,         V_ & ~PEEP,         (V_ & ~FG) | CPL,
    V_ | FGR,
};

template <typename Fn>
void dispatch_flags(int64_t flags, Fn&& fn) {
  switch (flags) {
    case KNOWN[0]: return fn(std::integral_constant<int64_t, KNOWN[0]>{});
    case KNOWN[1]: return fn(std::integral_constant<int64_t, KNOWN[1]>{});
    case KNOWN[2]: return fn(std::integral_constant<int64_t, KNOWN[2]>{});
    case KNOWN[3]: return fn(std::integral_constant<int64_t, KNOWN[3]>{});
    case KNOWN[4]: return fn(std::integral_constant<int64_t, KNOWN[4]>{});
    case KNOWN[5]: return fn(std::integral_constant<int64_t, KNOWN[5]>{});
    case KNOWN[6]: return fn(std::integral_constant<int64_t, KNOWN[6]>{});
    case KNOWN[7]: return fn(std::integral_constant<int64_t, KNOWN[7]>{});
    case KNOWN[8]: return fn(std::integral_constant<int64_t, KNOWN[8]>{});
    default: TORCH_CHECK(false, "odyssey_lstm: unsupported variant flags ", flags);
  }
}

int64_t gate_count(int64_t flags) {
  return 1 + bool(flags & IG) + bool(flags & FG) + bool(flags & OG);
}

// Multiply-adds per unit and step of a variant's recurrent products (time_loop's split):
// G columns of H, and FGR's three of 3H.
int64_t unit_macs(int64_t flags, int64_t H) {
  return (gate_count(flags) + (flags & FGR ? 9 : 0)) * H;
}

void check_inputs(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
                  const at::Tensor& bias, int64_t flags) {
  TORCH_CHECK(x.dim() == 3, "odyssey_lstm: x must be (T, B, I), got ", x.sizes());
  const int64_t H = w_hh.size(1), G = gate_count(flags);
  TORCH_CHECK(w_ih.dim() == 2 && w_ih.size(0) == G * H && w_ih.size(1) == x.size(2),
              "odyssey_lstm: weight_ih must be (", G * H, ", ", x.size(2), "), got ",
              w_ih.sizes());
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == G * H, "odyssey_lstm: weight_hh must be (",
              G * H, ", ", H, "), got ", w_hh.sizes());
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == G * H, "odyssey_lstm: bias must be (", G * H,
              "), got ", bias.sizes());
  TORCH_CHECK(!(flags & FGR) || G == 4, "odyssey_lstm: FGR needs all three gates");
  TORCH_CHECK(x.scalar_type() == w_ih.scalar_type() && x.scalar_type() == w_hh.scalar_type()
                  && x.scalar_type() == bias.scalar_type(),
              "odyssey_lstm: x and the weights must share a dtype");
}

at::Tensor peep_or_empty(const c10::optional<at::Tensor>& p, bool used, int64_t H,
                         const at::Tensor& like, const char* name) {
  if (!used) return at::Tensor();
  TORCH_CHECK(p.has_value() && p->defined() && p->dim() == 1 && p->size(0) == H,
              "odyssey_lstm: ", name, " must be a vector of length ", H);
  return p->to(like.options()).contiguous();
}

}  // namespace
