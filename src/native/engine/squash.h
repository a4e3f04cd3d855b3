// Squash of one capsule vector and its gradient, shared by the squash
// kernel (squash.cc) and dynamic routing (dynamicRouting.cc).
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

}  // namespace capsnet
