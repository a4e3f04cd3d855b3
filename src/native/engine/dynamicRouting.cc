// Fused dynamic routing (Procedure 1 of "Dynamic Routing Between Capsules")
// and its gradient, for src/native/kernels/dynamicRouting.ts; the reference is
// dynamicRoutingReference in src/capsules/dynamicRouting.ts.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "entry.h"
#include "parallel.h"
#include "simd.h"
#include "squash.h"

namespace capsnet {
namespace {

// One example's routing state. The forward pass keeps every iteration's
// couplings, pre-squash sums and outputs so that the gradient can walk the
// iterations backwards.
struct RoutingScratch {
  std::vector<float> logits;  // [I, J]
  std::vector<float> c;       // [R, I, J] couplings of each iteration
  std::vector<float> s;       // [R, J, D] weighted sums
  std::vector<float> v;       // [R, J, D] outputs
  std::vector<float> gb;      // [R, I, J] gradients of the logits b^r (backward only)
  std::vector<float> gs;      // [R, J, D] gradients of s^r (backward only)
  std::vector<float> gv;      // [J, D]
  std::vector<float> gc;      // [J]
  RoutingScratch(int64_t R, int64_t I, int64_t J, int64_t D, bool backward)
      : logits(I * J), c(R * I * J), s(R * J * D), v(R * J * D), gb(backward ? R * I * J : 0), gs(backward ? R * J * D : 0), gv(J * D), gc(J) {}
};

// Row helpers of the routing loops. A row holds J capsules of D values; the
// D = 16 case (CapsNet's digit capsules) has an AVX2 path where each
// capsule is two registers.

// out[j] = a_j . b_j
inline void rowDots(const float* a, const float* b, int64_t J, int64_t D, float* out) {
#if CAPSNET_AVX2
  if (D == 16) {
    auto product = [&](int64_t j) {
      const float* pa = a + j * 16;
      const float* pb = b + j * 16;
      return _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), _mm256_mul_ps(_mm256_loadu_ps(pa + 8), _mm256_loadu_ps(pb + 8)));
    };
    int64_t j = 0;
    for (; j + 8 <= J; j += 8) {
      __m256 t[8];
      for (int k = 0; k < 8; k++) t[k] = product(j + k);
      _mm256_storeu_ps(out + j, simd::hsum8(t));
    }
    for (; j < J; j++) out[j] = simd::hsum(product(j));
    return;
  }
#endif
  for (int64_t j = 0; j < J; j++) {
    float dot = 0;
    for (int64_t k = 0; k < D; k++) dot += a[j * D + k] * b[j * D + k];
    out[j] = dot;
  }
}

// s_j += c_j a_j
inline void rowAxpy(float* s, const float* c, const float* a, int64_t J, int64_t D) {
#if CAPSNET_AVX2
  if (D == 16) {
    for (int64_t j = 0; j < J; j++) {
      const __m256 cj = _mm256_set1_ps(c[j]);
      float* sj = s + j * 16;
      const float* aj = a + j * 16;
      _mm256_storeu_ps(sj, _mm256_fmadd_ps(cj, _mm256_loadu_ps(aj), _mm256_loadu_ps(sj)));
      _mm256_storeu_ps(sj + 8, _mm256_fmadd_ps(cj, _mm256_loadu_ps(aj + 8), _mm256_loadu_ps(sj + 8)));
    }
    return;
  }
#endif
  for (int64_t j = 0; j < J; j++) {
    const float cj = c[j];
    for (int64_t k = 0; k < D; k++) s[j * D + k] += cj * a[j * D + k];
  }
}

inline void softmaxRow(const float* x, float* y, int64_t n) {
  float m = x[0];
  for (int64_t j = 1; j < n; j++) m = std::max(m, x[j]);
  float sum = 0;
#if CAPSNET_AVX2
  const __m256 mv = _mm256_set1_ps(m);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv));
    _mm256_storeu_ps(y + j, e);
    sum += simd::hsum(e);
  }
  if (j < n) {
    float shifted[8];
    for (int64_t k = j; k < n; k++) shifted[k - j] = x[k] - m;
    simd::expSmall(shifted, y + j, static_cast<int>(n - j));
    for (int64_t k = j; k < n; k++) sum += y[k];
  }
#else
  for (int64_t j = 0; j < n; j++) {
    y[j] = std::exp(x[j] - m);
    sum += y[j];
  }
#endif
  float inv = 1.0f / sum;
  for (int64_t k = 0; k < n; k++) y[k] *= inv;
}

#if CAPSNET_AVX2
// Iteration r > 0 of routeForward for one row when D = 16 and J <= 16, with
// the row's logits and couplings held in two registers throughout:
//   li += u_i . vPrev;  ci = softmax(li);  s += ci u_i
inline void agreeSoftmaxAccumulate16(const float* ui, const float* vPrev, float* li, float* ci, float* s, int64_t J) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(J)), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(J) - 8), lane);
  __m256 t[16];
  for (int64_t j = 0; j < 16; j++) {
    if (j < J) {
      const float* a = ui + j * 16;
      const float* b = vPrev + j * 16;
      t[j] = _mm256_fmadd_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b), _mm256_mul_ps(_mm256_loadu_ps(a + 8), _mm256_loadu_ps(b + 8)));
    } else {
      t[j] = _mm256_setzero_ps();
    }
  }
  __m256 l0 = _mm256_add_ps(_mm256_maskload_ps(li, m0), simd::hsum8(t));
  __m256 l1 = _mm256_add_ps(_mm256_maskload_ps(li + 8, m1), simd::hsum8(t + 8));
  _mm256_maskstore_ps(li, m0, l0);
  _mm256_maskstore_ps(li + 8, m1, l1);
  const __m256 negInf = _mm256_set1_ps(-__builtin_inff());
  l0 = _mm256_blendv_ps(negInf, l0, _mm256_castsi256_ps(m0));
  l1 = _mm256_blendv_ps(negInf, l1, _mm256_castsi256_ps(m1));
  const float m = simd::hmax(_mm256_max_ps(l0, l1));
  const __m256 mv = _mm256_set1_ps(m);
  // exp(-inf) = 0 for the lanes beyond J.
  __m256 e0 = simd::exp(_mm256_sub_ps(l0, mv));
  __m256 e1 = simd::exp(_mm256_sub_ps(l1, mv));
  const __m256 inv = _mm256_set1_ps(1.0f / simd::hsum(_mm256_add_ps(e0, e1)));
  e0 = _mm256_mul_ps(e0, inv);
  e1 = _mm256_mul_ps(e1, inv);
  _mm256_maskstore_ps(ci, m0, e0);
  _mm256_maskstore_ps(ci + 8, m1, e1);
  alignas(32) float c[16];
  _mm256_store_ps(c, e0);
  _mm256_store_ps(c + 8, e1);
  for (int64_t j = 0; j < J; j++) {
    const __m256 cj = _mm256_set1_ps(c[j]);
    float* sj = s + j * 16;
    const float* aj = ui + j * 16;
    _mm256_storeu_ps(sj, _mm256_fmadd_ps(cj, _mm256_loadu_ps(aj), _mm256_loadu_ps(sj)));
    _mm256_storeu_ps(sj + 8, _mm256_fmadd_ps(cj, _mm256_loadu_ps(aj + 8), _mm256_loadu_ps(sj + 8)));
  }
}
#endif

// Backward walk, one row i of iteration r >= 1: with gc_j = gs_j . u_j,
//   gb_j = c_j (gc_j - sum_k c_k gc_k) [+ gbNext_j]   (b^r's gradient)
//   gv_j += gb_j u_j                                   (v^(r-1)'s gradient)
// gbNext is b^(r+1)'s gradient (null for the last iteration).
inline void gradRow(const float* ui, const float* ci, const float* gbNext, const float* gs, float* gb, float* gv, float* gc,
                    int64_t J, int64_t D) {
#if CAPSNET_AVX2
  if (D == 16 && J <= 16) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(J)), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(J) - 8), lane);
    __m256 t[16];
    for (int64_t j = 0; j < 16; j++) {
      if (j < J) {
        const float* a = ui + j * 16;
        const float* b = gs + j * 16;
        t[j] = _mm256_fmadd_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b), _mm256_mul_ps(_mm256_loadu_ps(a + 8), _mm256_loadu_ps(b + 8)));
      } else {
        t[j] = _mm256_setzero_ps();
      }
    }
    const __m256 gc0 = simd::hsum8(t), gc1 = simd::hsum8(t + 8);
    const __m256 c0 = _mm256_maskload_ps(ci, m0), c1 = _mm256_maskload_ps(ci + 8, m1);
    const __m256 dot = _mm256_set1_ps(simd::hsum(_mm256_fmadd_ps(c0, gc0, _mm256_mul_ps(c1, gc1))));
    __m256 g0 = _mm256_mul_ps(c0, _mm256_sub_ps(gc0, dot));
    __m256 g1 = _mm256_mul_ps(c1, _mm256_sub_ps(gc1, dot));
    if (gbNext) {
      g0 = _mm256_add_ps(g0, _mm256_maskload_ps(gbNext, m0));
      g1 = _mm256_add_ps(g1, _mm256_maskload_ps(gbNext + 8, m1));
    }
    _mm256_maskstore_ps(gb, m0, g0);
    _mm256_maskstore_ps(gb + 8, m1, g1);
    alignas(32) float g[16];
    _mm256_store_ps(g, g0);
    _mm256_store_ps(g + 8, g1);
    for (int64_t j = 0; j < J; j++) {
      const __m256 gbj = _mm256_set1_ps(g[j]);
      _mm256_storeu_ps(gv + j * 16, _mm256_fmadd_ps(gbj, _mm256_loadu_ps(ui + j * 16), _mm256_loadu_ps(gv + j * 16)));
      _mm256_storeu_ps(gv + j * 16 + 8, _mm256_fmadd_ps(gbj, _mm256_loadu_ps(ui + j * 16 + 8), _mm256_loadu_ps(gv + j * 16 + 8)));
    }
    return;
  }
#endif
  rowDots(ui, gs, J, D, gc);
  float dot = 0;
  for (int64_t j = 0; j < J; j++) dot += ci[j] * gc[j];
  for (int64_t j = 0; j < J; j++) {
    gb[j] = ci[j] * (gc[j] - dot) + (gbNext ? gbNext[j] : 0.0f);
    for (int64_t k = 0; k < D; k++) gv[j * D + k] += gb[j] * ui[j * D + k];
  }
}

// The gradient of row i of u, written once after the backward walk:
//   gu_j = sum over r >= r0 of c^r_j gs^r_j  [+ sum over r >= 1 of gb^r_j v^(r-1)_j]
// where c, gb hold [R, I, J] and gs, v hold [R, J, D]. The bracketed
// agreement terms are left out when the inner iterations pass no gradient
// (stopGradientInner, r0 = R - 1).
inline void writeGradRow(float* gui, const float* c, const float* gb, const float* gs, const float* v, int64_t i, int64_t I,
                         int64_t J, int64_t D, int64_t R, int64_t r0, bool agreement) {
#if CAPSNET_AVX2
  if (D == 16) {
    for (int64_t j = 0; j < J; j++) {
      __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
      for (int64_t r = r0; r < R; r++) {
        const __m256 cr = _mm256_set1_ps(c[(r * I + i) * J + j]);
        const float* g = gs + r * J * 16 + j * 16;
        lo = _mm256_fmadd_ps(cr, _mm256_loadu_ps(g), lo);
        hi = _mm256_fmadd_ps(cr, _mm256_loadu_ps(g + 8), hi);
        if (agreement && r >= 1) {
          const __m256 br = _mm256_set1_ps(gb[(r * I + i) * J + j]);
          const float* vp = v + (r - 1) * J * 16 + j * 16;
          lo = _mm256_fmadd_ps(br, _mm256_loadu_ps(vp), lo);
          hi = _mm256_fmadd_ps(br, _mm256_loadu_ps(vp + 8), hi);
        }
      }
      _mm256_storeu_ps(gui + j * 16, lo);
      _mm256_storeu_ps(gui + j * 16 + 8, hi);
    }
    return;
  }
#endif
  for (int64_t j = 0; j < J; j++) {
    for (int64_t k = 0; k < D; k++) {
      float acc = 0;
      for (int64_t r = r0; r < R; r++) {
        acc += c[(r * I + i) * J + j] * gs[(r * J + j) * D + k];
        if (agreement && r >= 1) acc += gb[(r * I + i) * J + j] * v[((r - 1) * J + j) * D + k];
      }
      gui[j * D + k] = acc;
    }
  }
}

// Procedure 1 for one example. Iteration r > 0 folds the agreement update of
// iteration r - 1, the softmax and the weighted sum into one pass over u.
void routeForward(const float* u, int64_t I, int64_t J, int64_t D, int64_t R, RoutingScratch& w) {
  const int64_t JD = J * D;
  std::fill(w.logits.begin(), w.logits.end(), 0.0f);
  for (int64_t r = 0; r < R; r++) {
    float* c = w.c.data() + r * I * J;
    float* s = w.s.data() + r * JD;
    const float* vPrev = r > 0 ? w.v.data() + (r - 1) * JD : nullptr;
    std::fill(s, s + JD, 0.0f);
    for (int64_t i = 0; i < I; i++) {
      const float* ui = u + i * JD;
      float* li = w.logits.data() + i * J;
      float* ci = c + i * J;
#if CAPSNET_AVX2
      if (r > 0 && D == 16 && J <= 16) {
        agreeSoftmaxAccumulate16(ui, vPrev, li, ci, s, J);
        continue;
      }
#endif
      if (r == 0) {
        for (int64_t j = 0; j < J; j++) ci[j] = 1.0f / static_cast<float>(J);
      } else {
        rowDots(ui, vPrev, J, D, w.gc.data());
        for (int64_t j = 0; j < J; j++) li[j] += w.gc[j];
        softmaxRow(li, ci, J);
      }
      rowAxpy(s, ci, ui, J, D);
    }
    float* v = w.v.data() + r * JD;
    for (int64_t j = 0; j < J; j++) squashVector(s + j * D, v + j * D, D);
  }
}

struct RoutingArgs {
  int64_t B, I, J, D, R;
  bool stopInner;
};

// The settings both entries share.
#define CAPSNET_ROUTING_SETTINGS "batch", "inCaps", "outCaps", "outDim", "iterations", "stopGradientInner"

RoutingArgs readRouting(Args& a) {
  RoutingArgs r;
  r.B = a.integer("batch", 0, INT32_MAX);
  r.I = a.integer("inCaps", 1, INT32_MAX);
  r.J = a.integer("outCaps", 1, INT32_MAX);
  r.D = a.integer("outDim", 1, INT32_MAX);
  r.R = a.integer("iterations", 1, 1000);
  r.stopInner = a.boolean("stopGradientInner");
  checkedMul(checkedMul(checkedMul(r.B, r.I, "routing"), r.J, "routing"), checkedMul(r.D, r.R + 1, "routing"), "routing");
  return r;
}

// dynamicRouting({ uHat, v, couplings, batch, inCaps, outCaps, outDim,
// iterations, stopGradientInner }):
// couplings is an array of R Float32Arrays [B, I, J], one per iteration.
CAPSNET_ENTRY(dynamicRouting, "uHat", "v", "couplings", CAPSNET_ROUTING_SETTINGS) {
  RoutingArgs p = readRouting(a);
  const int64_t IJ = p.I * p.J, JD = p.J * p.D;
  View<float> uHat = a.f32("uHat", p.B * p.I * JD);
  View<float> v = a.f32("v", p.B * JD);
  std::vector<View<float>> cOut = a.f32List("couplings", p.R, p.B * IJ);
  requireDisjoint(v, uHat, "dynamicRouting");
  for (const View<float>& c : cOut) {
    requireDisjoint(c, uHat, "dynamicRouting");
    requireDisjoint(c, v, "dynamicRouting");
  }
  for (size_t r = 0; r < cOut.size(); r++)
    for (size_t q = r + 1; q < cOut.size(); q++) requireDisjoint(cOut[r], cOut[q], "dynamicRouting");
  if (p.B == 0) return;
  int threads = threadCount();
  std::vector<std::unique_ptr<RoutingScratch>> scratch;
  for (int t = 0; t < threads; t++) scratch.emplace_back(new RoutingScratch(p.R, p.I, p.J, p.D, false));
  parallelTasks(p.B, [&](int64_t b, int worker) {
    RoutingScratch& w = *scratch[worker];
    routeForward(uHat.data + b * p.I * JD, p.I, p.J, p.D, p.R, w);
    std::memcpy(v.data + b * JD, w.v.data() + (p.R - 1) * JD, sizeof(float) * JD);
    for (int64_t r = 0; r < p.R; r++) std::memcpy(cOut[r].data + b * IJ, w.c.data() + r * IJ, sizeof(float) * IJ);
  }, threads);
}

// dynamicRoutingGrad({ uHat, dv, duHat, batch, inCaps, outCaps, outDim,
// iterations, stopGradientInner }):
// the gradient of v with respect to uHat through all iterations (or only
// the last one with stopGradientInner), from a recomputed forward pass.
CAPSNET_ENTRY(dynamicRoutingGrad, "uHat", "dv", "duHat", CAPSNET_ROUTING_SETTINGS) {
  RoutingArgs p = readRouting(a);
  const int64_t I = p.I, J = p.J, D = p.D, R = p.R, IJ = I * J, JD = J * D;
  View<float> uHat = a.f32("uHat", p.B * I * JD);
  View<float> dv = a.f32("dv", p.B * JD);
  View<float> duHat = a.f32("duHat", p.B * I * JD);
  requireDisjoint(duHat, uHat, "dynamicRoutingGrad");
  requireDisjoint(duHat, dv, "dynamicRoutingGrad");
  if (p.B == 0) return;
  int threads = threadCount();
  std::vector<std::unique_ptr<RoutingScratch>> scratch;
  for (int t = 0; t < threads; t++) scratch.emplace_back(new RoutingScratch(R, I, J, D, true));
  parallelTasks(p.B, [&](int64_t b, int worker) {
    RoutingScratch& w = *scratch[worker];
    const float* u = uHat.data + b * I * JD;
    float* gu = duHat.data + b * I * JD;
    routeForward(u, I, J, D, R, w);
    // Walk the iterations backwards. Iteration r >= 1 reads u once to get
    // b^r's gradient (row by row) and v^(r-1)'s (summed over rows); u's own
    // gradient is a sum of per-row scalars times per-iteration vectors, so
    // it is written in one final pass instead of being updated in each.
    for (int64_t j = 0; j < J; j++)
      squashGradVector(w.s.data() + (R - 1) * JD + j * D, dv.data + b * JD + j * D, w.gs.data() + (R - 1) * JD + j * D, D);
    // With stopGradientInner only the last iteration's weighted sum passes a
    // gradient to u: no walk through the agreements.
    const bool agreement = !p.stopInner;
    const int64_t r0 = agreement ? 0 : R - 1;
    for (int64_t r = R - 1; agreement && r >= 1; r--) {
      const float* gs = w.gs.data() + r * JD;
      const float* gbNext = r < R - 1 ? w.gb.data() + (r + 1) * IJ : nullptr;
      float* gb = w.gb.data() + r * IJ;
      float* gv = w.gv.data();
      std::fill(gv, gv + JD, 0.0f);
      for (int64_t i = 0; i < I; i++)
        gradRow(u + i * JD, w.c.data() + r * IJ + i * J, gbNext ? gbNext + i * J : nullptr, gs, gb + i * J, gv, w.gc.data(), J, D);
      for (int64_t j = 0; j < J; j++) squashGradVector(w.s.data() + (r - 1) * JD + j * D, gv + j * D, w.gs.data() + (r - 1) * JD + j * D, D);
    }
    for (int64_t i = 0; i < I; i++) writeGradRow(gu + i * JD, w.c.data(), w.gb.data(), w.gs.data(), w.v.data(), i, I, J, D, R, r0, agreement);
  }, threads);
}

}  // namespace


}  // namespace capsnet
