// The LSTM family's whole-sequence forward and backward.
// Part of lstm_family.cpp's one translation unit (included there, in order), so the
// compiler sees the same code as when it was one file.
#pragma once

#include "lstm_steps.h"

namespace {

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

}  // namespace
