// Squash of one capsule vector and its gradient, shared by the squash
// kernels (squash.cc) and the routings (dynamicRouting.cc,
// selfAttentionRouting.cc): Eq. 1 of "Dynamic Routing Between Capsules" and
// the squash of Efficient-CapsNet.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace capsnet {

// Squash of one capsule, in the overflow-safe form of squash.ts: with
// m = max(max_k |s_k|, 1e-12), t = s / m and r2 = |t|^2 + 1e-12,
//   v = t sqrt(r2) / (m^-2 + r2).
// Scalars are carried in double; the vector stays float.
constexpr double kTinyMax = 1e-12;
constexpr double kEps = 1e-12;

struct SquashScalars {
  double m, r2, invM2;
};

inline SquashScalars squashScalars(const float* s, int64_t D) {
  double m = 0;
  for (int64_t d = 0; d < D; d++) m = std::max(m, static_cast<double>(std::fabs(s[d])));
  m = std::max(m, kTinyMax);
  double r2 = kEps;
  for (int64_t d = 0; d < D; d++) {
    double t = s[d] / m;
    r2 += t * t;
  }
  return {m, r2, 1.0 / (m * m)};
}

inline void squashVector(const float* s, float* v, int64_t D) {
  SquashScalars q = squashScalars(s, D);
  double factor = std::sqrt(q.r2) / (q.invM2 + q.r2) / q.m;
  for (int64_t d = 0; d < D; d++) v[d] = static_cast<float>(s[d] * factor);
}

// Gradient of squashVector at s for upstream dv. With m held constant (v
// does not depend on it), F = sqrt(r2) / (m^-2 + r2) and
// G = (m^-2 - r2) / (sqrt(r2) (m^-2 + r2)^2):
//   ds_k = (dv_k F + t_k (t . dv) G) / m.
inline void squashGradVector(const float* s, const float* dv, float* ds, int64_t D) {
  SquashScalars q = squashScalars(s, D);
  double sr = std::sqrt(q.r2), den = q.invM2 + q.r2;
  double F = sr / den;
  double G = (q.invM2 - q.r2) / (sr * den * den);
  double tdv = 0;
  for (int64_t d = 0; d < D; d++) tdv += (s[d] / q.m) * dv[d];
  for (int64_t d = 0; d < D; d++) ds[d] = static_cast<float>((dv[d] * F + (s[d] / q.m) * tdv * G) / q.m);
}

// Efficient-CapsNet's squash (Mazzia, Salvetti, Chiaberge 2021, Methods),
// v = (1 - 1/e^|s|) s/|s|, in the form of efficientSquashReference in
// squash.ts: with m = max(max_k |s_k|, 1e-12) (so that |s|^2 cannot
// overflow), r = sqrt(|s/m|^2 + 1e-12) and n = m r (|s|, kept above 0),
//   v = g(n) s,  g(n) = (1 - e^-n) / n = -expm1(-n) / n,
// where expm1 keeps g exact for small n (g -> 1 as n -> 0: v ~ s).
struct EfficientSquashScalars {
  double m, r, n, g;
};

inline EfficientSquashScalars efficientSquashScalars(const float* s, int64_t D) {
  double m = 0;
  for (int64_t d = 0; d < D; d++) m = std::max(m, static_cast<double>(std::fabs(s[d])));
  m = std::max(m, kTinyMax);
  double r2 = kEps;
  for (int64_t d = 0; d < D; d++) {
    double t = s[d] / m;
    r2 += t * t;
  }
  const double r = std::sqrt(r2), n = m * r;
  return {m, r, n, -std::expm1(-n) / n};
}

inline void efficientSquashVector(const float* s, float* v, int64_t D) {
  const double g = efficientSquashScalars(s, D).g;
  for (int64_t d = 0; d < D; d++) v[d] = static_cast<float>(s[d] * g);
}

// Gradient of efficientSquashVector at s for upstream dv. With m held
// constant, dn/ds_l = (s_l / m) / r, and
//   ds_l = g dv_l + (s_l / m) / r g'(n) (s . dv),  g'(n) = (e^-n - g) / n.
// Below n = 1e-3, g' is its series -1/2 + n/3 - n^2/8 + n^3/30 (error under
// 1e-14): the closed form subtracts two numbers near 1 there and loses
// every digit as n -> 0 (at s = 0, n = 1e-18).
inline void efficientSquashGradVector(const float* s, const float* dv, float* ds, int64_t D) {
  const EfficientSquashScalars q = efficientSquashScalars(s, D);
  const double gPrime = q.n < 1e-3 ? -0.5 + q.n * (1.0 / 3.0 - q.n * (1.0 / 8.0 - q.n / 30.0)) : (std::exp(-q.n) - q.g) / q.n;
  double sdv = 0;
  for (int64_t d = 0; d < D; d++) sdv += static_cast<double>(s[d]) * dv[d];
  const double k = gPrime * sdv / (q.m * q.r);
  for (int64_t d = 0; d < D; d++) ds[d] = static_cast<float>(q.g * dv[d] + s[d] * k);
}

}  // namespace capsnet
