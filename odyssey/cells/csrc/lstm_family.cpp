// Fused recurrences (Odyssey, DESIGN §2): the whole time loop and its backward pass in C++,
// for the vanilla LSTM and its eight one-change variants, and for the GRU and tanh RNN in
// PyTorch's parameterisation (at the end of the file).
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

#include <ATen/ATen.h>
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// The BLAS that PyTorch itself links (MKL on x86 wheels) exports the Fortran gemm; calling
// it directly skips ~3 us of ATen dispatch per call, which at B = 1 is most of a step.
// Weak symbols: where a torch build does not export them, the ATen fallback runs instead.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*,
            const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*,
            const int*) __attribute__((weak));
}

namespace {

#if defined(__AVX512F__)
// ---------------------------------------------------------------------------------------
// float gemm for AVX-512 CPUs, by hand. Measured on the project's AMD EPYC (Zen 5, one
// thread): the MKL inside the torch wheel reaches 85-100 GFLOP/s on the recurrent products
// (it takes a narrower code path on AMD CPUs), oneDNN's nn.LSTM about 170, this kernel
// 230-240 (issue 14). Row-major C (M x N) = A (M x K) B (K x N) [+ C]. A tile of R rows x
// CB*16 columns lives in registers over the whole k loop; every element of C is one
// sequential FMA chain over k, so its value does not depend on M, on its row's position or
// on the tiling (a trial's numbers are the same alone and packed with others).
template <int R, int CB>
inline void sgemm_tile(int64_t K, const float* A, int64_t ars, int64_t aks, const float* B,
                       int64_t ldb, float* C, int64_t ldc, bool accumulate, int64_t ncols) {
  __mmask16 m[CB];
#pragma GCC unroll 8
  for (int j = 0; j < CB; ++j) {
    const int64_t left = ncols - 16 * j;
    m[j] = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
  }
  __m512 c[R][CB];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < CB; ++j) {
      c[r][j] = accumulate ? _mm512_maskz_loadu_ps(m[j], C + r * ldc + 16 * j) : _mm512_setzero_ps();
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    __m512 w[CB];
#pragma GCC unroll 8
    for (int j = 0; j < CB; ++j) w[j] = _mm512_maskz_loadu_ps(m[j], b + 16 * j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * ars + k * aks]);
#pragma GCC unroll 8
      for (int j = 0; j < CB; ++j) c[r][j] = _mm512_fmadd_ps(a, w[j], c[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < CB; ++j) _mm512_mask_storeu_ps(C + r * ldc + 16 * j, m[j], c[r][j]);
  }
}

// The last columns of a row block: a tile just wide enough (its last 16 masked).
template <int R, int CB>
inline void sgemm_tail(int64_t cb, int64_t K, const float* A, int64_t ars, int64_t aks,
                       const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
                       int64_t ncols) {
  if constexpr (CB > 0) {
    if (cb == CB) return sgemm_tile<R, CB>(K, A, ars, aks, B, ldb, C, ldc, accumulate, ncols);
    sgemm_tail<R, CB - 1>(cb, K, A, ars, aks, B, ldb, C, ldc, accumulate, ncols);
  }
}

// Rows R at a time, columns CB*16 at a time, then the tail.
template <int R, int CB>
inline void sgemm_rows(int64_t N, int64_t K, const float* A, int64_t ars, int64_t aks,
                       const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  int64_t n = 0;
  for (; n + 16 * CB <= N; n += 16 * CB) {
    sgemm_tile<R, CB>(K, A, ars, aks, B + n, ldb, C + n, ldc, accumulate, 16 * CB);
  }
  if (n < N) {
    sgemm_tail<R, CB>((N - n + 15) / 16, K, A, ars, aks, B + n, ldb, C + n, ldc, accumulate,
                      N - n);
  }
}

constexpr int64_t kGemvRows = 48;  // measured: 8 and 128 slower than 48 (FGR B=1 H=200)
constexpr int64_t kGemvMinElems = 16384;  // K x N of at least 64 KB of float32

// 8-row tiles of 48 columns (24 accumulators), then 4, 2 and 1 rows with wider tiles so
// that a small batch (B = 1: a matrix-vector product) still has 8+ independent FMA chains.
// op(A) = A, or A^T when `ta` (A then K x M with leading dimension lda): the tile reads A
// through strides, so a transposed operand needs no copy.
// One row (B = 1) against a matrix larger than the L1 cache: k in blocks of kGemvRows rows,
// each block swept over all columns with C stored between blocks, so that B is read a few
// whole rows at a time (streams the prefetchers follow) instead of one 512-byte slab of every
// row per column tile. Each element's FMA chain over k is the same, in the same order, so
// the numbers are too. Issue 14: FGR at B=1, H=200 streams 2 MB of weights per step from L3.
inline void sgemm_serial(bool ta, int64_t M, int64_t N, int64_t K, const float* A,
                         int64_t lda, const float* B, int64_t ldb, bool accumulate, float* C,
                         int64_t ldc) {
  const int64_t ars = ta ? 1 : lda, aks = ta ? lda : 1;
  if (M == 1 && K * N >= kGemvMinElems) {
    for (int64_t k0 = 0; k0 < K; k0 += kGemvRows) {
      sgemm_rows<1, 8>(N, std::min(kGemvRows, K - k0), A + k0 * aks, ars, aks, B + k0 * ldb,
                       ldb, C, ldc, accumulate || k0 > 0);
    }
    return;
  }
  int64_t i = 0;
  for (; i + 8 <= M; i += 8) {
    sgemm_rows<8, 3>(N, K, A + i * ars, ars, aks, B, ldb, C + i * ldc, ldc, accumulate);
  }
  if (i + 4 <= M) {
    sgemm_rows<4, 4>(N, K, A + i * ars, ars, aks, B, ldb, C + i * ldc, ldc, accumulate);
    i += 4;
  }
  if (i + 2 <= M) {
    sgemm_rows<2, 8>(N, K, A + i * ars, ars, aks, B, ldb, C + i * ldc, ldc, accumulate);
    i += 2;
  }
  if (i < M) sgemm_rows<1, 8>(N, K, A + i * ars, ars, aks, B, ldb, C + i * ldc, ldc, accumulate);
}

// With several torch threads, large products split their columns (16-column blocks) over
// the threads; every element is still the same FMA chain, so results do not depend on the
// thread count. Below ~0.5 M multiply-adds a fork-join costs more than it saves.
inline void sgemm_avx512(bool ta, int64_t M, int64_t N, int64_t K, const float* A,
                         int64_t lda, const float* B, int64_t ldb, bool accumulate, float* C,
                         int64_t ldc) {
  const int64_t threads = at::get_num_threads(), blocks = (N + 15) / 16;
  if (threads < 2 || blocks < 2 || M * N * K < (int64_t(1) << 19) || at::in_parallel_region()) {
    return sgemm_serial(ta, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
  }
  const int64_t grain = (blocks + threads - 1) / threads;
  at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
    const int64_t n0 = 16 * b0, n1 = std::min(N, 16 * b1);
    sgemm_serial(ta, M, n1 - n0, K, A, lda, B + n0, ldb, accumulate, C + n0, ldc);
  });
}
constexpr bool kOwnSgemm = true;

// dst (R x C, row-major) = the transpose of src (C x R, leading dimension lds), in 16 x 16
// blocks transposed in registers (edge blocks through masked loads and stores). Issue 13: at
// the paper's batch size of 1 the weights are transposed for every sequence (input and head
// projections, recurrent products), and ATen's transposing copy (~9 GB/s here) took ~10 % of
// a training step. A copy: the values are the same.
inline void transpose_avx512(int64_t R, int64_t C, const float* src, int64_t lds, float* dst) {
  __m512 r[16], t[16];
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    const int64_t cn = std::min<int64_t>(16, C - c0);
    const __mmask16 cmask = __mmask16((1u << cn) - 1);
    for (int64_t r0 = 0; r0 < R; r0 += 16) {
      const int64_t rn = std::min<int64_t>(16, R - r0);
      const __mmask16 rmask = __mmask16((1u << rn) - 1);
      for (int i = 0; i < 16; ++i) {
        r[i] = i < cn ? _mm512_maskz_loadu_ps(rmask, src + (c0 + i) * lds + r0)
                      : _mm512_setzero_ps();
      }
      for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 16; i += 4) {
        const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
      }
      for (int h = 0; h < 2; ++h) {
        for (int i = 0; i < 4; ++i) {
          t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0x88);
          t[8 * h + 4 + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0xdd);
        }
      }
      for (int i = 0; i < 8; ++i) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
      }
      for (int i = 0; i < rn; ++i) _mm512_mask_storeu_ps(dst + (r0 + i) * C + c0, cmask, r[i]);
    }
  }
}
#else
inline void sgemm_avx512(bool, int64_t, int64_t, int64_t, const float*, int64_t,
                         const float*, int64_t, bool, float*, int64_t) {}
inline void transpose_avx512(int64_t, int64_t, const float*, int64_t, float*) {}
constexpr bool kOwnSgemm = false;
#endif

// A 2-D tensor in row-major order: a transposed view of a float CPU matrix (a weight's .t())
// through transpose_avx512, anything else through ATen's contiguous().
at::Tensor row_major(const at::Tensor& b) {
  if (kOwnSgemm && b.dim() == 2 && b.scalar_type() == at::kFloat && b.device().is_cpu() &&
      b.stride(0) == 1 && b.stride(1) >= b.size(0) && b.size(0) > 1 && b.size(1) > 1) {
    at::Tensor out = at::empty(b.sizes(), b.options());
    transpose_avx512(b.size(0), b.size(1), b.data_ptr<float>(), b.stride(1),
                     out.data_ptr<float>());
    return out;
  }
  return b.contiguous();
}

// Row-major C (M x N, leading dim ldc) = op(A) op(B) [+ C when accumulate], with op a
// transpose where ta / tb. With `blas`: float products without transposes through the
// AVX-512 kernel above where the build has it, the rest through the BLAS that PyTorch links
// where it exports the symbol; else (and for the "aten-mm" check mode) through ATen.
template <typename T>
void gemm(bool blas, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A,
          int64_t lda, const T* B, int64_t ldb, bool accumulate, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (kOwnSgemm && blas && !tb) return sgemm_avx512(ta, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
  }
  const T one = T(1), beta = accumulate ? T(1) : T(0);
  // column-major view: C^T (N x M) = op(B)^T op(A)^T
  const char fa = tb ? 'T' : 'N', fb = ta ? 'T' : 'N';
  const int m = int(N), n = int(M), k = int(K), l1 = int(ldb), l2 = int(lda), l3 = int(ldc);
  if constexpr (std::is_same_v<T, float>) {
    if (blas && sgemm_ && K > 0) return sgemm_(&fa, &fb, &m, &n, &k, &one, B, &l1, A, &l2,
                                                &beta, C, &l3);
  } else {
    if (blas && dgemm_ && K > 0) return dgemm_(&fa, &fb, &m, &n, &k, &one, B, &l1, A, &l2,
                                                &beta, C, &l3);
  }
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  at::Tensor a = at::from_blob(const_cast<T*>(A), {ta ? K : M, ta ? M : K}, {lda, 1}, opts);
  at::Tensor b = at::from_blob(const_cast<T*>(B), {tb ? N : K, tb ? K : N}, {ldb, 1}, opts);
  at::Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, opts);
  at::Tensor prod = at::mm(ta ? a.t() : a, tb ? b.t() : b);
  if (accumulate) c.add_(prod); else c.copy_(prod);
}

constexpr int64_t kGemmChunk = 256;  // k rows per chunk of a whole-sequence product

// a (M x K) b (K x N) [+ add, a bias (N) or an (M x N) matrix]: the whole-sequence products
// (input projections, parameter and input gradients). Float CPU tensors with `fast` take the
// AVX-512 kernel: `a` as it is when its rows or its columns are contiguous (a transposed
// view), else a copy; `b` row-major (row_major: a transposed weight is copied).
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& add, bool fast) {
  if (kOwnSgemm && fast && a.device().is_cpu() && a.scalar_type() == at::kFloat) {
    const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    const bool ta = a.stride(0) == 1 && a.stride(1) >= M && M > 1;
    const at::Tensor ac = ta || a.stride(1) == 1 ? a : a.contiguous();
    const at::Tensor bc = row_major(b);
    at::Tensor out = at::empty({M, N}, a.options());
    if (add.defined() && add.dim() == 1) {  // a bias: copied into every row (no ATen copy)
      const at::Tensor bias = add.contiguous();
      float* po = out.data_ptr<float>();
      for (int64_t i = 0; i < M; ++i) std::memcpy(po + i * N, bias.data_ptr<float>(), N * 4);
    } else if (add.defined()) {
      out.copy_(add.expand({M, N}));
    }
    // k in chunks (C stored between them: the same FMA chains, so the same numbers): each
    // chunk's slabs of A and B stay in L2 while every tile sweeps them. The weight gradients
    // of long sequences (K = T x B) otherwise stream both from L3 once per tile.
    const int64_t lda = ta ? ac.stride(1) : ac.stride(0);
    const float* pa = ac.data_ptr<float>();
    const float* pb = bc.data_ptr<float>();
    for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += kGemmChunk) {
      const int64_t kn = std::min(kGemmChunk, K - k0);
      sgemm_avx512(ta, M, N, kn, pa + (ta ? k0 * lda : k0), lda, pb + k0 * N, N,
                   add.defined() || k0 > 0, out.data_ptr<float>(), N);
    }
    return out;
  }
  return add.defined() ? at::addmm(add, a, b) : at::mm(a, b);
}

// Variant flags; must match odyssey/cells/fast.py.
constexpr int64_t IG = 1;      // input gate
constexpr int64_t FG = 2;      // forget gate (own parameters)
constexpr int64_t CPL = 4;     // coupled: f = 1 - i
constexpr int64_t OG = 8;      // output gate
constexpr int64_t IACT = 16;   // g = tanh (else identity)
constexpr int64_t OACT = 32;   // h = tanh (else identity)
constexpr int64_t PEEP = 64;   // peepholes
constexpr int64_t FGR = 128;   // full gate recurrence

// ---------------------------------------------------------------------------------------
// Vectorisable exp: the loops below call it once per gate element, and glibc's scalar
// exp/tanh are not vectorised without -ffast-math (which would also break exactness).
// Cody-Waite range reduction x = n ln2 + r and a minimax polynomial for e^r (Cephes), then
// 2^n through the exponent bits; only arithmetic and integer ops, so GCC vectorises it.
// Accurate to a few ulp, well inside the tests' tolerances against torch's own exp.
inline float vexp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float n = x * 1.44269504088896341f + shifter;
  n -= shifter;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline double vexp(double x) {
  x = std::min(std::max(x, -708.0), 709.0);
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52
  double n = x * 1.4426950408889634074 + shifter;
  n -= shifter;
  double r = x - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  // Cephes exp: e^r = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2))
  const double rr = r * r;
  double p = 1.26177193074810590878e-4;
  p = p * rr + 3.02994407707441961300e-2;
  p = p * rr + 9.99999999999999999910e-1;
  p = p * r;
  double q = 3.00198505138664455042e-6;
  q = q * rr + 2.52448340349684104192e-3;
  q = q * rr + 2.27265548208155028766e-1;
  q = q * rr + 2.00000000000000000009e0;
  const double e = 1.0 + 2.0 * p / (q - p);
  int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return e * scale;
}

template <typename T>
inline T sigm(T x) {
  return T(1) / (T(1) + vexp(-x));
}

template <typename T>
inline T tanh_(T x) {
  // tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|): stable for large |x|
  const T e = vexp(T(-2) * std::abs(x));
  return std::copysign((T(1) - e) / (T(1) + e), x);
}

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

// --------------------------------------------------------------------------- forward
std::vector<at::Tensor> lstm_forward(const at::Tensor& x_in, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh_in, const at::Tensor& bias,
                                     const c10::optional<at::Tensor>& peep_i,
                                     const c10::optional<at::Tensor>& peep_f,
                                     const c10::optional<at::Tensor>& peep_o,
                                     const c10::optional<at::Tensor>& w_gg_in, int64_t flags,
                                     int64_t mode) {
  check_inputs(x_in, w_ih, w_hh_in, bias, flags);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor w_hh = w_hh_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  const int64_t G = gate_count(flags), GH = G * H;
  const bool peep = flags & PEEP, fgr = flags & FGR;
  const at::Tensor pi = peep_or_empty(peep_i, peep && (flags & IG), H, x, "peephole_i");
  const at::Tensor pf = peep_or_empty(peep_f, peep && (flags & FG), H, x, "peephole_f");
  const at::Tensor po = peep_or_empty(peep_o, peep && (flags & OG), H, x, "peephole_o");
  at::Tensor w_gg;
  if (fgr) {
    TORCH_CHECK(w_gg_in.has_value() && w_gg_in->defined() && w_gg_in->sizes() ==
                    at::IntArrayRef({3 * H, 3 * H}),
                "odyssey_lstm: FGR needs weight_gg of shape (", 3 * H, ", ", 3 * H, ")");
    w_gg = w_gg_in->contiguous();
  }
  const bool blas = mode == 0;
  // several threads share the time loop only on the hand float gemm (time_loop)
  const bool split = kOwnSgemm && blas && x.scalar_type() == at::kFloat;
  // all steps' input projections (plus bias) in one matrix product
  at::Tensor acts = matmul(x.view({T * B, I}), w_ih.t(), bias, blas).view({T, B, GH});
  at::Tensor c = at::empty({T, B, H}, x.options());
  at::Tensor hc = at::empty({T, B, H}, x.options());
  at::Tensor y = at::empty({T, B, H}, x.options());
  if (T == 0 || B == 0) return {y, acts, c, hc};
  const at::Tensor zeros = at::zeros({B, H}, x.options());
  const at::Tensor w_hh_t = w_hh.t();
  const at::Tensor w_gg_t = fgr ? w_gg.t() : at::Tensor();

  if (mode != 1 && x.device().is_cpu()) {
    // the recurrent weights transposed once per sequence, so each step's product is
    // y' (B x H) times a row-major (H x G*H) matrix (the layout the hand kernel streams)
    const at::Tensor w_hh_tc = row_major(w_hh_t);
    const at::Tensor w_gg_tc = fgr ? row_major(w_gg_t) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "odyssey_lstm_forward", [&] {
      const scalar_t* ppi = pi.defined() ? pi.data_ptr<scalar_t>() : nullptr;
      const scalar_t* ppf = pf.defined() ? pf.data_ptr<scalar_t>() : nullptr;
      const scalar_t* ppo = po.defined() ? po.data_ptr<scalar_t>() : nullptr;
      scalar_t* pacts = acts.data_ptr<scalar_t>();
      scalar_t* pc = c.data_ptr<scalar_t>();
      scalar_t* phc = hc.data_ptr<scalar_t>();
      scalar_t* py = y.data_ptr<scalar_t>();
      const scalar_t* pz = zeros.data_ptr<scalar_t>();
      const scalar_t* pw_hh = w_hh_tc.data_ptr<scalar_t>();
      const scalar_t* pw_gg = fgr ? w_gg_tc.data_ptr<scalar_t>() : nullptr;
      dispatch_flags(flags, [&](auto fl) {
        constexpr int64_t Fl = decltype(fl)::value;
        time_loop(T, B, H, unit_macs(flags, H), false, split,
                  [&](int64_t t, int64_t h0, int64_t h1) {
          scalar_t* acts_t = pacts + t * B * GH;
          if (t > 0) {  // recurrent products: pre += y' W_hh^T (+ [i;f;o]' W_gg^T for FGR)
            const scalar_t* yp = py + (t - 1) * B * H;
            const scalar_t* gp = acts_t - B * GH + H;  // FGR: [i;f;o] of step t-1
            if (h0 == 0 && h1 == H) {  // all units: one product over every gate's columns
              gemm<scalar_t>(blas, false, false, B, GH, H, yp, H, pw_hh, GH, true, acts_t, GH);
              if constexpr (bool(Fl & FGR)) {
                gemm<scalar_t>(blas, false, false, B, 3 * H, 3 * H, gp, GH, pw_gg, 3 * H, true,
                               acts_t + H, GH);
              }
            } else {  // units [h0, h1): their columns in each gate block
              for (int64_t g = 0; g < G; ++g) {
                gemm<scalar_t>(blas, false, false, B, h1 - h0, H, yp, H, pw_hh + g * H + h0,
                               GH, true, acts_t + g * H + h0, GH);
              }
              if constexpr (bool(Fl & FGR)) {
                for (int64_t g = 0; g < 3; ++g) {
                  gemm<scalar_t>(blas, false, false, B, h1 - h0, 3 * H, gp, GH,
                                 pw_gg + g * H + h0, 3 * H, true, acts_t + (1 + g) * H + h0, GH);
                }
              }
            }
          }
          step_forward<scalar_t, Fl>(B, H, h0, h1, acts_t, t > 0 ? pc + (t - 1) * B * H : pz,
                                     pc + t * B * H, phc + t * B * H, py + t * B * H, ppi, ppf,
                                     ppo);
        });
      });
    });
    return {y, acts, c, hc};
  }

  // device-generic path: the same recurrence through ATen ops
  const bool ig = flags & IG, fg = flags & FG, cpl = flags & CPL, og = flags & OG;
  const bool iact = flags & IACT, oact = flags & OACT;
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor a = acts[t];
    if (t > 0) {
      a.addmm_(y[t - 1], w_hh_t);
      if (fgr) a.narrow(1, H, 3 * H).addmm_(acts[t - 1].narrow(1, H, 3 * H), w_gg_t);
    }
    const at::Tensor cp = t > 0 ? c[t - 1] : zeros;
    int64_t k = 1;
    at::Tensor z = a.narrow(1, 0, H);
    if (iact) z.tanh_();
    at::Tensor i, f, o;
    if (ig) {
      i = a.narrow(1, k++ * H, H);
      if (peep) i.addcmul_(pi, cp);
      i.sigmoid_();
    }
    if (fg) {
      f = a.narrow(1, k++ * H, H);
      if (peep) f.addcmul_(pf, cp);
      f.sigmoid_();
    }
    at::Tensor ct = c[t];
    ct.copy_(ig ? z * i : z);
    if (cpl) {
      ct.addcmul_(cp, 1 - i);
    } else if (fg) {
      ct.addcmul_(cp, f);
    } else {
      ct.add_(cp);
    }
    at::Tensor hct = hc[t];
    if (oact) at::tanh_out(hct, ct); else hct.copy_(ct);
    if (og) {
      o = a.narrow(1, k * H, H);
      if (peep) o.addcmul_(po, ct);
      o.sigmoid_();
      at::Tensor yt = y[t];
      at::mul_out(yt, hct, o);
    } else {
      y[t].copy_(hct);
    }
  }
  return {y, acts, c, hc};
}

// -------------------------------------------------------------------------- backward
// Returns {dx, dweight_ih, dweight_hh, dbias, dpeephole_i, dpeephole_f, dpeephole_o,
// dweight_gg}; absent parameters get empty tensors.
std::vector<at::Tensor> lstm_backward(const at::Tensor& dy_in, const at::Tensor& x_in,
                                      const at::Tensor& w_ih, const at::Tensor& w_hh_in,
                                      const c10::optional<at::Tensor>& peep_i,
                                      const c10::optional<at::Tensor>& peep_f,
                                      const c10::optional<at::Tensor>& peep_o,
                                      const c10::optional<at::Tensor>& w_gg_in,
                                      const at::Tensor& y, const at::Tensor& acts,
                                      const at::Tensor& c, const at::Tensor& hc, int64_t flags,
                                      int64_t mode, bool need_dx = true) {
  const at::Tensor x = x_in.contiguous();
  const at::Tensor w_hh = w_hh_in.contiguous();
  const at::Tensor dy = dy_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  const int64_t G = gate_count(flags), GH = G * H;
  const bool ig = flags & IG, fg = flags & FG, cpl = flags & CPL, og = flags & OG;
  const bool iact = flags & IACT, oact = flags & OACT, peep = flags & PEEP;
  const bool fgr = flags & FGR;
  const at::Tensor pi = peep_or_empty(peep_i, peep && ig, H, x, "peephole_i");
  const at::Tensor pf = peep_or_empty(peep_f, peep && fg, H, x, "peephole_f");
  const at::Tensor po = peep_or_empty(peep_o, peep && og, H, x, "peephole_o");
  const at::Tensor w_gg = fgr ? w_gg_in->contiguous() : at::Tensor();

  at::Tensor dpre = at::empty({T, B, GH}, x.options());  // every block is written
  at::Tensor dpi = pi.defined() ? at::zeros({H}, x.options()) : at::Tensor();
  at::Tensor dpf = pf.defined() ? at::zeros({H}, x.options()) : at::Tensor();
  at::Tensor dpo = po.defined() ? at::zeros({H}, x.options()) : at::Tensor();
  if (T > 0 && B > 0) {
    const at::Tensor zeros = at::zeros({B, H}, x.options());
    at::Tensor dc = at::zeros({B, H}, x.options());
    at::Tensor dh = at::zeros({B, H}, x.options());
    at::Tensor dg = fgr ? at::zeros({B, 3 * H}, x.options()) : at::Tensor();

    const bool blas = mode == 0;
    // several threads share the time loop only on the hand float gemm (time_loop)
    const bool split = kOwnSgemm && blas && x.scalar_type() == at::kFloat;
    if (mode != 1 && x.device().is_cpu()) {
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "odyssey_lstm_backward", [&] {
        using acc_t = at::acc_type<scalar_t, false>;
        const auto acc_opts = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
        at::Tensor api = at::zeros({H}, acc_opts), apf = at::zeros({H}, acc_opts);
        at::Tensor apo = at::zeros({H}, acc_opts);
        // peephole sums over a few steps in scalar_t (vectorised), then in acc_t
        constexpr int64_t kFlush = 8;
        at::Tensor spi = at::zeros({H}, x.options()), spf = at::zeros({H}, x.options());
        at::Tensor spo = at::zeros({H}, x.options());
        scalar_t *pspi = spi.data_ptr<scalar_t>(), *pspf = spf.data_ptr<scalar_t>();
        scalar_t* pspo = spo.data_ptr<scalar_t>();
        acc_t *papi = api.data_ptr<acc_t>(), *papf = apf.data_ptr<acc_t>();
        acc_t* papo = apo.data_ptr<acc_t>();
        const scalar_t* ppi = pi.defined() ? pi.data_ptr<scalar_t>() : nullptr;
        const scalar_t* ppf = pf.defined() ? pf.data_ptr<scalar_t>() : nullptr;
        const scalar_t* ppo = po.defined() ? po.data_ptr<scalar_t>() : nullptr;
        const scalar_t* pacts = acts.data_ptr<scalar_t>();
        const scalar_t* pc = c.data_ptr<scalar_t>();
        const scalar_t* phc = hc.data_ptr<scalar_t>();
        const scalar_t* pz = zeros.data_ptr<scalar_t>();
        scalar_t* pdpre = dpre.data_ptr<scalar_t>();
        scalar_t* pdc = dc.data_ptr<scalar_t>();
        scalar_t* pdh = dh.data_ptr<scalar_t>();
        scalar_t* pdg = fgr ? dg.data_ptr<scalar_t>() : nullptr;
        const scalar_t* pdy = dy.data_ptr<scalar_t>();
        const scalar_t* pw_hh = w_hh.data_ptr<scalar_t>();
        const scalar_t* pw_gg = fgr ? w_gg.data_ptr<scalar_t>() : nullptr;
        dispatch_flags(flags, [&](auto fl) {
          constexpr int64_t Fl = decltype(fl)::value;
          time_loop(T, B, H, unit_macs(flags, H), true, split,
                    [&](int64_t t, int64_t h0, int64_t h1) {
            if (t < T - 1) {  // dL/dy_t from step t+1: dpre_{t+1} W_hh (and FGR's W_gg)
              const scalar_t* dnext = pdpre + (t + 1) * B * GH;
              // units [h0, h1): their columns of dh (and of each of dg's three blocks)
              gemm<scalar_t>(blas, false, false, B, h1 - h0, GH, dnext, GH, pw_hh + h0, H,
                             false, pdh + h0, H);
              if constexpr (bool(Fl & FGR)) {
                if (h0 == 0 && h1 == H) {
                  gemm<scalar_t>(blas, false, false, B, 3 * H, 3 * H, dnext + H, GH, pw_gg,
                                 3 * H, false, pdg, 3 * H);
                } else {
                  for (int64_t g = 0; g < 3; ++g) {
                    gemm<scalar_t>(blas, false, false, B, h1 - h0, 3 * H, dnext + H, GH,
                                   pw_gg + g * H + h0, 3 * H, false, pdg + g * H + h0, 3 * H);
                  }
                }
              }
            }
            step_backward<scalar_t, Fl>(
                B, H, h0, h1, pacts + t * B * GH, t > 0 ? pc + (t - 1) * B * H : pz,
                pc + t * B * H, phc + t * B * H, pdy + t * B * H, pdh, pdc, pdg,
                pdpre + t * B * GH, ppi, ppf, ppo, pspi, pspf, pspo);
            if (peep && (t % kFlush == 0)) {  // fold the step sums into acc_t totals
              for (int64_t h = h0; h < h1; ++h) {
                papi[h] += pspi[h], papf[h] += pspf[h], papo[h] += pspo[h];
                pspi[h] = pspf[h] = pspo[h] = scalar_t(0);
              }
            }
          });
        });
        if (dpi.defined()) dpi.copy_(api);
        if (dpf.defined()) dpf.copy_(apf);
        if (dpo.defined()) dpo.copy_(apo);
      });
    } else {
      for (int64_t t = T - 1; t >= 0; --t) {
        if (t < T - 1) {
          at::addmm_out(dh, dy[t], dpre[t + 1], w_hh);
          if (fgr) at::mm_out(dg, dpre[t + 1].narrow(1, H, 3 * H), w_gg);
        } else {
          dh.copy_(dy[t]);
        }
        const at::Tensor a = acts[t];
        const at::Tensor cp = t > 0 ? c[t - 1] : zeros;
        const at::Tensor ct = c[t], hct = hc[t];
        at::Tensor d = dpre[t];
        int64_t k = 1;
        const at::Tensor z = a.narrow(1, 0, H);
        const at::Tensor i = ig ? a.narrow(1, k++ * H, H) : at::Tensor();
        const at::Tensor f = fg ? a.narrow(1, k++ * H, H) : at::Tensor();
        const at::Tensor o = og ? a.narrow(1, k * H, H) : at::Tensor();
        at::Tensor dhc = og ? dh * o : dh;
        if (oact) dhc = dhc * (1 - hct * hct);
        dc.add_(dhc);
        if (og) {
          at::Tensor do_ = dh * hct;
          if (fgr) do_ += dg.narrow(1, 2 * H, H);
          const at::Tensor dao = do_ * o * (1 - o);
          d.narrow(1, k * H, H).copy_(dao);
          if (peep) {
            dc.addcmul_(dao, po);
            dpo.add_((dao * ct).sum(0));
          }
        }
        at::Tensor dcp = cpl ? dc * (1 - i) : (fg ? dc * f : dc.clone());
        const at::Tensor dz = ig ? dc * i : dc;
        d.narrow(1, 0, H).copy_(iact ? dz * (1 - z * z) : dz);
        k = 1;
        if (ig) {
          at::Tensor di = dc * z;
          if (cpl) di -= dc * cp;
          if (fgr) di += dg.narrow(1, 0, H);
          const at::Tensor dai = di * i * (1 - i);
          d.narrow(1, k++ * H, H).copy_(dai);
          if (peep) {
            dcp.addcmul_(dai, pi);
            dpi.add_((dai * cp).sum(0));
          }
        }
        if (fg) {
          at::Tensor df = dc * cp;
          if (fgr) df += dg.narrow(1, H, H);
          const at::Tensor daf = df * f * (1 - f);
          d.narrow(1, k * H, H).copy_(daf);
          if (peep) {
            dcp.addcmul_(daf, pf);
            dpf.add_((daf * cp).sum(0));
          }
        }
        dc.copy_(dcp);
      }
    }
  }
  // parameter and input gradients: one matrix product each over all steps
  const bool fast = mode == 0;
  const at::Tensor none_add;
  const at::Tensor dpre2 = dpre.view({T * B, GH});
  // (packed training discards the input gradient: need_dx false skips its product)
  at::Tensor dx = need_dx ? matmul(dpre2, w_ih, none_add, fast).view({T, B, I}) : at::Tensor();
  at::Tensor dw_ih = matmul(dpre2.t(), x.view({T * B, I}), none_add, fast);
  at::Tensor dbias = dpre2.sum(0);
  at::Tensor dw_hh, dw_gg;
  if (T < 2 || B == 0) {  // no step has a previous one
    dw_hh = at::zeros({GH, H}, x.options());
    if (fgr) dw_gg = at::zeros({3 * H, 3 * H}, x.options());
  } else {
    const at::Tensor later = dpre.narrow(0, 1, T - 1).reshape({(T - 1) * B, GH});
    dw_hh = matmul(later.t(), y.narrow(0, 0, T - 1).reshape({(T - 1) * B, H}), none_add, fast);
    if (fgr) {
      const at::Tensor gates = acts.narrow(0, 0, T - 1).reshape({(T - 1) * B, GH});
      dw_gg = matmul(later.narrow(1, H, 3 * H).t(), gates.narrow(1, H, 3 * H), none_add, fast);
    }
  }
  // absent parameters: empty tensors (the dispatcher's Tensor[] cannot hold undefined ones)
  const at::Tensor none = at::empty({0}, x.options());
  return {dx, dw_ih, dw_hh, dbias, dpi.defined() ? dpi : none, dpf.defined() ? dpf : none,
          dpo.defined() ? dpo : none, dw_gg.defined() ? dw_gg : none};
}

// ------------------------------------------------------------------- GRU and tanh RNN
// PyTorch's parameterisation (nn.GRU / nn.RNN: gates r, z, n; bias_ih and bias_hh), CPU
// only -- on other devices Python calls PyTorch's own kernels. PyTorch's CPU GRU is a chain
// of ATen ops per step (no oneDNN kernel as for nn.LSTM), so the same fusion pays here.

void check_torch_params(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
                        const at::Tensor& b_ih, const at::Tensor& b_hh, int64_t gates) {
  TORCH_CHECK(x.dim() == 3 && x.device().is_cpu(), "odyssey_lstm: x must be a CPU (T, B, I)");
  const int64_t H = w_hh.size(1);
  TORCH_CHECK(w_ih.dim() == 2 && w_ih.size(0) == gates * H && w_ih.size(1) == x.size(2) &&
                  w_hh.size(0) == gates * H && b_ih.numel() == gates * H &&
                  b_hh.numel() == gates * H,
              "odyssey_lstm: GRU/RNN parameter shapes do not match");
  TORCH_CHECK(x.scalar_type() == w_ih.scalar_type() && x.scalar_type() == w_hh.scalar_type()
                  && x.scalar_type() == b_ih.scalar_type() && x.scalar_type() ==
                  b_hh.scalar_type(), "odyssey_lstm: x and the weights must share a dtype");
}

// Returns {y (T, B, H), acts (T, B, 3H): r, z, n, hn (T, B, H): W_hn h' + b_hn}.
std::vector<at::Tensor> gru_forward(const at::Tensor& x_in, const at::Tensor& w_ih,
                                    const at::Tensor& w_hh_in, const at::Tensor& b_ih,
                                    const at::Tensor& b_hh_in, int64_t mode) {
  check_torch_params(x_in, w_ih, w_hh_in, b_ih, b_hh_in, 3);
  const at::Tensor x = x_in.contiguous(), w_hh = w_hh_in.contiguous();
  const at::Tensor b_hh = b_hh_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1), H3 = 3 * H;
  at::Tensor acts = matmul(x.view({T * B, I}), w_ih.t(), b_ih, mode == 0).view({T, B, H3});
  at::Tensor y = at::empty({T, B, H}, x.options());
  at::Tensor hn = at::empty({T, B, H}, x.options());
  if (T == 0 || B == 0) return {y, acts, hn};
  at::Tensor hp = at::empty({B, H3}, x.options());
  const at::Tensor zeros = at::zeros({B, H}, x.options());
  const at::Tensor w_hh_tc = row_major(w_hh.t());  // (H x 3H): see lstm_forward
  const bool blas = mode == 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "odyssey_gru_forward", [&] {
    using T_ = scalar_t;
    T_* pa = acts.data_ptr<T_>();
    T_* py = y.data_ptr<T_>();
    T_* phn = hn.data_ptr<T_>();
    T_* php = hp.data_ptr<T_>();
    const T_* pb = b_hh.data_ptr<T_>();
    const T_* pw = w_hh_tc.data_ptr<T_>();
    const T_* pz0 = zeros.data_ptr<T_>();
    for (int64_t t = 0; t < T; ++t) {
      const T_* hprev = t > 0 ? py + (t - 1) * B * H : pz0;
      for (int64_t b = 0; b < B; ++b) std::memcpy(php + b * H3, pb, H3 * sizeof(T_));
      if (t > 0) gemm<T_>(blas, false, false, B, H3, H, hprev, H, pw, H3, true, php, H3);
      for (int64_t b = 0; b < B; ++b) {
        T_* __restrict ar = pa + (t * B + b) * H3;
        T_* __restrict az = ar + H;
        T_* __restrict an = ar + 2 * H;
        const T_* __restrict hr = php + b * H3;
        const T_* __restrict hz = hr + H;
        const T_* __restrict hnv = hr + 2 * H;
        const T_* __restrict hp_ = hprev + b * H;
        T_* __restrict yo = py + (t * B + b) * H;
        T_* __restrict hno = phn + (t * B + b) * H;
_Pragma("GCC ivdep")  // (a pragma inside the dispatch macro)
        for (int64_t h = 0; h < H; ++h) {
          const T_ r = sigm(ar[h] + hr[h]);
          const T_ z = sigm(az[h] + hz[h]);
          const T_ n = tanh_(an[h] + r * hnv[h]);
          ar[h] = r, az[h] = z, an[h] = n;
          hno[h] = hnv[h];
          yo[h] = (T_(1) - z) * n + z * hp_[h];
        }
      }
    }
  });
  return {y, acts, hn};
}

// Returns {dx, dweight_ih, dweight_hh, dbias_ih, dbias_hh}.
std::vector<at::Tensor> gru_backward(const at::Tensor& dy_in, const at::Tensor& x_in,
                                     const at::Tensor& w_ih, const at::Tensor& w_hh_in,
                                     const at::Tensor& y, const at::Tensor& acts,
                                     const at::Tensor& hn, int64_t mode, bool need_dx = true) {
  const at::Tensor x = x_in.contiguous(), w_hh = w_hh_in.contiguous();
  const at::Tensor dy = dy_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1), H3 = 3 * H;
  at::Tensor dxp = at::empty({T, B, H3}, x.options());  // d(input pre-activations)
  at::Tensor dhp = at::empty({T, B, H3}, x.options());  // d(W_hh h' + b_hh); both written
  if (T > 0 && B > 0) {
    at::Tensor dh = at::zeros({B, H}, x.options());      // recurrent part from step t+1
    at::Tensor carry = at::zeros({B, H}, x.options());   // z * dh from step t+1
    const at::Tensor zeros = at::zeros({B, H}, x.options());
    const bool blas = mode == 0;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "odyssey_gru_backward", [&] {
      using T_ = scalar_t;
      const T_* pa = acts.data_ptr<T_>();
      const T_* py = y.data_ptr<T_>();
      const T_* phn = hn.data_ptr<T_>();
      const T_* pdy = dy.data_ptr<T_>();
      const T_* pw = w_hh.data_ptr<T_>();
      const T_* pz0 = zeros.data_ptr<T_>();
      T_* pdxp = dxp.data_ptr<T_>();
      T_* pdhp = dhp.data_ptr<T_>();
      T_* pdh = dh.data_ptr<T_>();
      T_* pc = carry.data_ptr<T_>();
      for (int64_t t = T - 1; t >= 0; --t) {
        if (t < T - 1) gemm<T_>(blas, false, false, B, H, H3, pdhp + (t + 1) * B * H3, H3, pw,
                                H, false, pdh, H);
        const T_* hprev = t > 0 ? py + (t - 1) * B * H : pz0;
        for (int64_t b = 0; b < B; ++b) {
          const T_* __restrict r_ = pa + (t * B + b) * H3;
          const T_* __restrict z_ = r_ + H;
          const T_* __restrict n_ = r_ + 2 * H;
          const T_* __restrict hnv = phn + (t * B + b) * H;
          const T_* __restrict hp_ = hprev + b * H;
          const T_* __restrict dyo = pdy + (t * B + b) * H;
          const T_* __restrict dyr = pdh + b * H;
          T_* __restrict cb = pc + b * H;
          T_* __restrict dxr = pdxp + (t * B + b) * H3;
          T_* __restrict dxz = dxr + H;
          T_* __restrict dxn = dxr + 2 * H;
          T_* __restrict dhr = pdhp + (t * B + b) * H3;
          T_* __restrict dhz = dhr + H;
          T_* __restrict dhn = dhr + 2 * H;
_Pragma("GCC ivdep")  // (a pragma inside the dispatch macro)
          for (int64_t h = 0; h < H; ++h) {
            const T_ r = r_[h], z = z_[h], n = n_[h];
            const T_ g = dyo[h] + dyr[h] + cb[h];
            const T_ dan = g * (T_(1) - z) * (T_(1) - n * n);
            const T_ daz = g * (hp_[h] - n) * z * (T_(1) - z);
            const T_ dar = dan * hnv[h] * r * (T_(1) - r);
            dxr[h] = dar, dxz[h] = daz, dxn[h] = dan;
            dhr[h] = dar, dhz[h] = daz, dhn[h] = dan * r;
            cb[h] = g * z;
          }
        }
      }
    });
  }
  const at::Tensor dxp2 = dxp.view({T * B, H3}), dhp2 = dhp.view({T * B, H3});
  const bool fast = mode == 0;
  const at::Tensor none_add;
  at::Tensor dx = need_dx ? matmul(dxp2, w_ih, none_add, fast).view({T, B, I}) : at::Tensor();
  at::Tensor dw_ih = matmul(dxp2.t(), x.view({T * B, I}), none_add, fast);
  at::Tensor dw_hh;
  if (T < 2 || B == 0) {
    dw_hh = at::zeros({H3, H}, x.options());
  } else {
    dw_hh = matmul(dhp.narrow(0, 1, T - 1).reshape({(T - 1) * B, H3}).t(),
                   y.narrow(0, 0, T - 1).reshape({(T - 1) * B, H}), none_add, fast);
  }
  return {dx, dw_ih, dw_hh, dxp2.sum(0), dhp2.sum(0)};
}

// Returns {y (T, B, H)}.
std::vector<at::Tensor> rnn_forward(const at::Tensor& x_in, const at::Tensor& w_ih,
                                    const at::Tensor& w_hh_in, const at::Tensor& b_ih,
                                    const at::Tensor& b_hh, int64_t mode) {
  check_torch_params(x_in, w_ih, w_hh_in, b_ih, b_hh, 1);
  const at::Tensor x = x_in.contiguous(), w_hh = w_hh_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  at::Tensor y = matmul(x.view({T * B, I}), w_ih.t(), b_ih + b_hh, mode == 0).view({T, B, H});
  if (T == 0 || B == 0) return {y};
  const at::Tensor w_hh_tc = row_major(w_hh.t());  // (H x H)^T: see lstm_forward
  const bool blas = mode == 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "odyssey_rnn_forward", [&] {
    using T_ = scalar_t;
    T_* py = y.data_ptr<T_>();
    const T_* pw = w_hh_tc.data_ptr<T_>();
    for (int64_t t = 0; t < T; ++t) {
      T_* __restrict yt = py + t * B * H;
      if (t > 0) gemm<T_>(blas, false, false, B, H, H, yt - B * H, H, pw, H, true, yt, H);
_Pragma("GCC ivdep")  // (a pragma inside the dispatch macro)
      for (int64_t k = 0; k < B * H; ++k) yt[k] = tanh_(yt[k]);
    }
  });
  return {y};
}

// Returns {dx, dweight_ih, dweight_hh, dbias_ih, dbias_hh}.
std::vector<at::Tensor> rnn_backward(const at::Tensor& dy_in, const at::Tensor& x_in,
                                     const at::Tensor& w_ih, const at::Tensor& w_hh_in,
                                     const at::Tensor& y, int64_t mode, bool need_dx = true) {
  const at::Tensor x = x_in.contiguous(), w_hh = w_hh_in.contiguous();
  const at::Tensor dy = dy_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  at::Tensor da = at::zeros({T, B, H}, x.options());
  if (T > 0 && B > 0) {
    at::Tensor dh = at::zeros({B, H}, x.options());
    const bool blas = mode == 0;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "odyssey_rnn_backward", [&] {
      using T_ = scalar_t;
      const T_* py = y.data_ptr<T_>();
      const T_* pdy = dy.data_ptr<T_>();
      const T_* pw = w_hh.data_ptr<T_>();
      T_* pda = da.data_ptr<T_>();
      T_* pdh = dh.data_ptr<T_>();
      for (int64_t t = T - 1; t >= 0; --t) {
        if (t < T - 1) gemm<T_>(blas, false, false, B, H, H, pda + (t + 1) * B * H, H, pw, H,
                                false, pdh, H);
        const T_* __restrict yt = py + t * B * H;
        const T_* __restrict dyt = pdy + t * B * H;
        T_* __restrict dat = pda + t * B * H;
_Pragma("GCC ivdep")  // (a pragma inside the dispatch macro)
        for (int64_t k = 0; k < B * H; ++k) dat[k] = (dyt[k] + pdh[k]) * (T_(1) - yt[k] * yt[k]);
      }
    });
  }
  const at::Tensor da2 = da.view({T * B, H});
  const bool fast = mode == 0;
  const at::Tensor none_add;
  at::Tensor dx = need_dx ? matmul(da2, w_ih, none_add, fast).view({T, B, I}) : at::Tensor();
  at::Tensor dw_ih = matmul(da2.t(), x.view({T * B, I}), none_add, fast);
  at::Tensor dw_hh;
  if (T < 2 || B == 0) {
    dw_hh = at::zeros({H, H}, x.options());
  } else {
    dw_hh = matmul(da.narrow(0, 1, T - 1).reshape({(T - 1) * B, H}).t(),
                   y.narrow(0, 0, T - 1).reshape({(T - 1) * B, H}), none_add, fast);
  }
  at::Tensor db = da2.sum(0);
  return {dx, dw_ih, dw_hh, db, db.clone()};
}

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
