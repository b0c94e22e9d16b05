// Vectorisable exp, sigmoid and tanh for the gate passes.
// Part of lstm_family.cpp's one translation unit (included there, in order), so the
// compiler sees the same code as when it was one file.
#pragma once

#include "gemm.h"

namespace {

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

}  // namespace
