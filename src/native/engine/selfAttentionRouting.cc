// Self-attention routing of Efficient-CapsNet (Mazzia, Salvetti, Chiaberge
// 2021, Methods) and its gradient, for src/native/kernels/selfAttentionRouting.ts.
// They compute what selfAttentionRoutingReference in
// src/capsules/selfAttentionRouting.ts computes, squash included, for
// uHat [batch, n, J, D] and priors b [n, J]; per image and output capsule j,
//   T_j    = sum_k u_hat_j|k                   (so sum_k A_j[i, k] = u_hat_j|i . T_j / sqrt(D))
//   c_ij   = softmax over j of u_hat_j|i . T_j / sqrt(D)
//   s_j    = sum_i (c_ij + b_ij) u_hat_j|i
//   v_j    = efficient squash of s_j
// The gradient recomputes this forward pass (a few multiply-adds per input
// value) and walks it back:
//   ds_j   = the squash's gradient at s_j times dv_j
//   dw_ij  = u_hat_j|i . ds_j                  (w = c + b; the priors' gradient sums it over images)
//   dz_ij  = c_ij (dw_ij + dc_ij - sum_j' c_ij' (dw_ij' + dc_ij'))   (softmax; dc from the couplings output)
//   du_hat_j|i = w_ij ds_j + dz_ij T_j / sqrt(D) + sum_k dz_kj u_hat_j|k / sqrt(D)
// Images are independent tasks; the priors' gradient is summed over images
// afterwards in image order, in double, so it does not depend on threads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "entry.h"
#include "parallel.h"
#include "squash.h"

namespace capsnet {
namespace {

struct Sizes {
  int64_t B, n, J, D;
};

Sizes readSizes(Args& a) {
  const int64_t big = INT32_MAX;
  Sizes z{a.integer("batch", 0, big), a.integer("inCaps", 1, big), a.integer("outCaps", 1, big), a.integer("outDim", 1, big)};
  checkedMul(checkedMul(checkedMul(z.B, z.n, "selfAttentionRouting"), z.J, "selfAttentionRouting"), z.D, "selfAttentionRouting");
  return z;
}

// Work for one image: T, the couplings c [n, J] (softmax over J) and s
// [J, D] for uHat u [n, J, D] and priors b [n, J].
struct Forward {
  std::vector<float> T, c, s;
  Forward(const Sizes& z) : T(z.J * z.D), c(z.n * z.J), s(z.J * z.D) {}

  void run(const Sizes& z, const float* u, const float* b) {
    const int64_t n = z.n, J = z.J, D = z.D, JD = J * D;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    std::fill(T.begin(), T.end(), 0.0f);
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = 0; k < JD; k++) T[k] += u[i * JD + k];
    for (int64_t i = 0; i < n; i++) {
      float* ci = c.data() + i * J;
      float top = -INFINITY;
      for (int64_t j = 0; j < J; j++) {
        const float* uij = u + i * JD + j * D;
        const float* Tj = T.data() + j * D;
        float dot = 0.0f;
        for (int64_t d = 0; d < D; d++) dot += uij[d] * Tj[d];
        ci[j] = dot * scale;
        top = std::max(top, ci[j]);
      }
      // The softmax subtracts its maximum: large agreements saturate
      // instead of overflowing exp.
      double total = 0.0;
      for (int64_t j = 0; j < J; j++) {
        ci[j] = std::exp(ci[j] - top);
        total += ci[j];
      }
      const float inv = static_cast<float>(1.0 / total);
      for (int64_t j = 0; j < J; j++) ci[j] *= inv;
    }
    std::fill(s.begin(), s.end(), 0.0f);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < J; j++) {
        const float w = c[i * J + j] + b[i * J + j];
        const float* uij = u + i * JD + j * D;
        float* sj = s.data() + j * D;
        for (int64_t d = 0; d < D; d++) sj[d] += w * uij[d];
      }
  }
};

// selfAttentionRouting({ uHat, priors, v, couplings, batch, inCaps, outCaps,
// outDim }): v [batch, J, D] and the coupling coefficients c [batch, n, J].
CAPSNET_ENTRY(selfAttentionRouting, "uHat", "priors", "v", "couplings", "batch", "inCaps", "outCaps", "outDim") {
  const Sizes z = readSizes(a);
  const int64_t perImage = z.n * z.J * z.D;
  View<float> uHat = a.f32("uHat", z.B * perImage);
  View<float> priors = a.f32("priors", z.n * z.J);
  View<float> v = a.f32("v", z.B * z.J * z.D);
  View<float> couplings = a.f32("couplings", z.B * z.n * z.J);
  for (const View<float>* in : {&uHat, &priors}) {
    requireDisjoint(v, *in, "selfAttentionRouting");
    requireDisjoint(couplings, *in, "selfAttentionRouting");
  }
  requireDisjoint(v, couplings, "selfAttentionRouting");
  parallelFor(z.B, std::max<int64_t>(1, 8192 / perImage), [&](int64_t b0, int64_t b1) {
    Forward f(z);
    for (int64_t b = b0; b < b1; b++) {
      f.run(z, uHat.data + b * perImage, priors.data);
      std::copy(f.c.begin(), f.c.end(), couplings.data + b * z.n * z.J);
      for (int64_t j = 0; j < z.J; j++) efficientSquashVector(f.s.data() + j * z.D, v.data + (b * z.J + j) * z.D, z.D);
    }
  });
}

// selfAttentionRoutingGrad({ uHat, priors, dv, dcouplings, duHat, dpriors,
// batch, inCaps, outCaps, outDim }): the gradients in uHat and the priors
// for upstream dv and, when given, dcouplings.
CAPSNET_ENTRY(selfAttentionRoutingGrad, "uHat", "priors", "dv", "dcouplings", "duHat", "dpriors", "batch", "inCaps", "outCaps", "outDim") {
  const Sizes z = readSizes(a);
  const int64_t n = z.n, J = z.J, D = z.D, JD = J * D, perImage = n * JD;
  View<float> uHat = a.f32("uHat", z.B * perImage);
  View<float> priors = a.f32("priors", n * J);
  View<float> dv = a.f32("dv", z.B * JD);
  View<float> dc = a.optionalF32("dcouplings");
  require(dc.length == 0 || dc.length == z.B * n * J, "selfAttentionRoutingGrad", "dcouplings must be [batch, inCaps, outCaps]");
  View<float> duHat = a.f32("duHat", z.B * perImage);
  View<float> dpriors = a.f32("dpriors", n * J);
  for (const View<float>* in : {&uHat, &priors, &dv, &dc}) {
    requireDisjoint(duHat, *in, "selfAttentionRoutingGrad");
    requireDisjoint(dpriors, *in, "selfAttentionRoutingGrad");
  }
  requireDisjoint(duHat, dpriors, "selfAttentionRoutingGrad");
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  // dw of every image, summed over images for the priors afterwards.
  std::vector<float> dwAll(static_cast<size_t>(z.B * n * J));
  parallelFor(z.B, std::max<int64_t>(1, 4096 / perImage), [&](int64_t b0, int64_t b1) {
    Forward f(z);
    std::vector<float> ds(JD), dz(n * J), dT(JD);
    for (int64_t b = b0; b < b1; b++) {
      const float* u = uHat.data + b * perImage;
      float* du = duHat.data + b * perImage;
      float* dw = dwAll.data() + b * n * J;
      f.run(z, u, priors.data);
      for (int64_t j = 0; j < J; j++) efficientSquashGradVector(f.s.data() + j * D, dv.data + (b * J + j) * D, ds.data() + j * D, D);
      for (int64_t i = 0; i < n; i++) {
        const float* ci = f.c.data() + i * J;
        float* dzi = dz.data() + i * J;
        double weighted = 0.0;
        for (int64_t j = 0; j < J; j++) {
          const float* uij = u + i * JD + j * D;
          const float* dsj = ds.data() + j * D;
          float dot = 0.0f;
          for (int64_t d = 0; d < D; d++) dot += uij[d] * dsj[d];
          dw[i * J + j] = dot;
          dzi[j] = dot + (dc.length ? dc.data[(b * n + i) * J + j] : 0.0f);
          weighted += static_cast<double>(ci[j]) * dzi[j];
        }
        for (int64_t j = 0; j < J; j++) dzi[j] = ci[j] * (dzi[j] - static_cast<float>(weighted));
      }
      std::fill(dT.begin(), dT.end(), 0.0f);
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < J; j++) {
          const float g = dz[i * J + j] * scale;
          const float* uij = u + i * JD + j * D;
          float* dTj = dT.data() + j * D;
          for (int64_t d = 0; d < D; d++) dTj[d] += g * uij[d];
        }
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < J; j++) {
          const float w = f.c[i * J + j] + priors.data[i * J + j];
          const float g = dz[i * J + j] * scale;
          const float* Tj = f.T.data() + j * D;
          const float* dsj = ds.data() + j * D;
          const float* dTj = dT.data() + j * D;
          float* duij = du + i * JD + j * D;
          for (int64_t d = 0; d < D; d++) duij[d] = w * dsj[d] + g * Tj[d] + dTj[d];
        }
    }
  });
  for (int64_t k = 0; k < n * J; k++) {
    double sum = 0.0;
    for (int64_t b = 0; b < z.B; b++) sum += dwAll[b * n * J + k];
    dpriors.data[k] = static_cast<float>(sum);
  }
}

}  // namespace
}  // namespace capsnet
