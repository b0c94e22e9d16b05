// Matrix products: the AVX-512 float gemm by hand, the BLAS that PyTorch links, ATen.
// Part of lstm_family.cpp's one translation unit (included there, in order), so the
// compiler sees the same code as when it was one file.
#pragma once

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

}  // namespace
