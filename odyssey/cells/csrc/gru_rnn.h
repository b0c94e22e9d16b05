// The GRU and tanh RNN in PyTorch's parameterisation, forward and backward.
// Part of lstm_family.cpp's one translation unit (included there, in order), so the
// compiler sees the same code as when it was one file.
#pragma once

#include "lstm_steps.h"

namespace {

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

}  // namespace
