// Fused capsule kernels: squash, prediction vectors, dynamic routing (each
// with its analytic gradient) and the Adam update. They compute exactly what
// the plain-tfjs references in src/capsules and src/training compute, in one
// pass over memory instead of a chain of ops.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "common.h"
#include "parallel.h"

namespace capsnet {
namespace {

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

// squash(s, out, dim): squash every run of `dim` values.
void squash(Args& a) {
  int64_t D = a.integer(2, "dim", 1, INT32_MAX);
  View<float> s = a.f32(0, "s");
  View<float> v = a.f32(1, "out", s.length);
  require(s.length % D == 0, "squash", "length is not a multiple of the capsule dimension");
  int64_t rows = s.length / D;
  parallelFor(rows, std::max<int64_t>(1, 4096 / D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) squashVector(s.data + r * D, v.data + r * D, D);
  });
}

// squashGrad(dy, s, ds, dim)
void squashGrad(Args& a) {
  int64_t D = a.integer(3, "dim", 1, INT32_MAX);
  View<float> dy = a.f32(0, "dy");
  View<float> s = a.f32(1, "s", dy.length);
  View<float> ds = a.f32(2, "ds", dy.length);
  require(s.length % D == 0, "squashGrad", "length is not a multiple of the capsule dimension");
  int64_t rows = s.length / D;
  parallelFor(rows, std::max<int64_t>(1, 4096 / D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) squashGradVector(s.data + r * D, dy.data + r * D, ds.data + r * D, D);
  });
}

struct CapsDims {
  int64_t B, I, J, Dout, Din;
  int64_t JD() const { return J * Dout; }
};

// Arguments from index `first`: batch, inCaps, outCaps, outDim, inDim.
CapsDims readCapsDims(const Args& a, size_t first) {
  CapsDims d;
  d.B = a.integer(first, "batch", 0, INT32_MAX);
  d.I = a.integer(first + 1, "inCaps", 0, INT32_MAX);
  d.J = a.integer(first + 2, "outCaps", 0, INT32_MAX);
  d.Dout = a.integer(first + 3, "outDim", 0, INT32_MAX);
  d.Din = a.integer(first + 4, "inDim", 0, INT32_MAX);
  checkedMul(checkedMul(checkedMul(d.B, d.I, "capsules"), d.J, "capsules"), checkedMul(d.Dout, d.Din + 1, "capsules"), "capsules");
  return d;
}

// predictionVectors(u, W, uHat, B, I, J, Dout, Din):
// uHat[b, i, j, :] = W[i, j] u[b, i], W[i, j] being Dout x Din.
void predictionVectors(Args& a) {
  CapsDims d = readCapsDims(a, 3);
  const int64_t JD = d.JD(), Din = d.Din;
  View<float> u = a.f32(0, "u", d.B * d.I * Din);
  View<float> W = a.f32(1, "W", d.I * JD * Din);
  View<float> out = a.f32(2, "uHat", d.B * d.I * JD);
  requireDisjoint(out, u, "predictionVectors");
  requireDisjoint(out, W, "predictionVectors");
  if (out.length == 0) return;
  parallelFor(d.I, 8, [&](int64_t i0, int64_t i1) {
    // W[i] transposed to [Din, JD], so that the inner loop runs along the
    // contiguous output.
    std::vector<float> wt(Din * JD);
    for (int64_t i = i0; i < i1; i++) {
      const float* w = W.data + i * JD * Din;
      for (int64_t r = 0; r < JD; r++)
        for (int64_t k = 0; k < Din; k++) wt[k * JD + r] = w[r * Din + k];
      for (int64_t b = 0; b < d.B; b++) {
        const float* ub = u.data + (b * d.I + i) * Din;
        float* o = out.data + (b * d.I + i) * JD;
        std::fill(o, o + JD, 0.0f);
        for (int64_t k = 0; k < Din; k++) {
          const float uk = ub[k];
          const float* wk = wt.data() + k * JD;
          for (int64_t r = 0; r < JD; r++) o[r] += uk * wk[r];
        }
      }
    }
  });
}

// predictionVectorsGradInput(dy, W, du, B, I, J, Dout, Din):
// du[b, i, :] = sum over (j, d) of W[i, j, d, :] dy[b, i, j, d].
void predictionVectorsGradInput(Args& a) {
  CapsDims d = readCapsDims(a, 3);
  const int64_t JD = d.JD(), Din = d.Din;
  View<float> dy = a.f32(0, "dy", d.B * d.I * JD);
  View<float> W = a.f32(1, "W", d.I * JD * Din);
  View<float> du = a.f32(2, "du", d.B * d.I * Din);
  requireDisjoint(du, dy, "predictionVectorsGradInput");
  requireDisjoint(du, W, "predictionVectorsGradInput");
  if (du.length == 0) return;
  parallelFor(d.I, 8, [&](int64_t i0, int64_t i1) {
    std::vector<float> acc(Din);
    for (int64_t i = i0; i < i1; i++) {
      const float* w = W.data + i * JD * Din;
      for (int64_t b = 0; b < d.B; b++) {
        const float* g = dy.data + (b * d.I + i) * JD;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t r = 0; r < JD; r++) {
          const float gr = g[r];
          const float* wr = w + r * Din;
          for (int64_t k = 0; k < Din; k++) acc[k] += gr * wr[k];
        }
        std::copy(acc.begin(), acc.end(), du.data + (b * d.I + i) * Din);
      }
    }
  });
}

// predictionVectorsGradWeights(dy, u, dW, B, I, J, Dout, Din):
// dW[i, j, d, :] = sum over b of dy[b, i, j, d] u[b, i, :].
void predictionVectorsGradWeights(Args& a) {
  CapsDims d = readCapsDims(a, 3);
  const int64_t JD = d.JD(), Din = d.Din;
  View<float> dy = a.f32(0, "dy", d.B * d.I * JD);
  View<float> u = a.f32(1, "u", d.B * d.I * Din);
  View<float> dW = a.f32(2, "dW", d.I * JD * Din);
  requireDisjoint(dW, dy, "predictionVectorsGradWeights");
  requireDisjoint(dW, u, "predictionVectorsGradWeights");
  if (dW.length == 0) return;
  parallelFor(d.I, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      float* acc = dW.data + i * JD * Din;
      std::fill(acc, acc + JD * Din, 0.0f);
      for (int64_t b = 0; b < d.B; b++) {
        const float* g = dy.data + (b * d.I + i) * JD;
        const float* ub = u.data + (b * d.I + i) * Din;
        for (int64_t r = 0; r < JD; r++) {
          const float gr = g[r];
          float* ar = acc + r * Din;
          for (int64_t k = 0; k < Din; k++) ar[k] += gr * ub[k];
        }
      }
    }
  });
}

// One example's routing state. The forward pass keeps every iteration's
// couplings, pre-squash sums and outputs so that the gradient can walk the
// iterations backwards.
struct RoutingScratch {
  std::vector<float> logits;  // [I, J]
  std::vector<float> c;       // [R, I, J]
  std::vector<float> s;       // [R, J, D]
  std::vector<float> v;       // [R, J, D]
  std::vector<float> gb;      // [I, J]
  std::vector<float> gs, gv;  // [J, D]
  std::vector<float> gc;      // [J]
  RoutingScratch(int64_t R, int64_t I, int64_t J, int64_t D)
      : logits(I * J), c(R * I * J), s(R * J * D), v(R * J * D), gb(I * J), gs(J * D), gv(J * D), gc(J) {}
};

inline void softmaxRow(const float* x, float* y, int64_t n) {
  float m = x[0];
  for (int64_t j = 1; j < n; j++) m = std::max(m, x[j]);
  float sum = 0;
  for (int64_t j = 0; j < n; j++) {
    y[j] = std::exp(x[j] - m);
    sum += y[j];
  }
  float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; j++) y[j] *= inv;
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
      if (r == 0) {
        for (int64_t j = 0; j < J; j++) ci[j] = 1.0f / static_cast<float>(J);
      } else {
        for (int64_t j = 0; j < J; j++) {
          float dot = 0;
          for (int64_t k = 0; k < D; k++) dot += ui[j * D + k] * vPrev[j * D + k];
          li[j] += dot;
        }
        softmaxRow(li, ci, J);
      }
      for (int64_t j = 0; j < J; j++) {
        const float cij = ci[j];
        for (int64_t k = 0; k < D; k++) s[j * D + k] += cij * ui[j * D + k];
      }
    }
    float* v = w.v.data() + r * JD;
    for (int64_t j = 0; j < J; j++) squashVector(s + j * D, v + j * D, D);
  }
}

struct RoutingArgs {
  int64_t B, I, J, D, R;
  bool stopInner;
};

RoutingArgs readRouting(const Args& a, size_t first) {
  RoutingArgs r;
  r.B = a.integer(first, "batch", 0, INT32_MAX);
  r.I = a.integer(first + 1, "inCaps", 1, INT32_MAX);
  r.J = a.integer(first + 2, "outCaps", 1, INT32_MAX);
  r.D = a.integer(first + 3, "outDim", 1, INT32_MAX);
  r.R = a.integer(first + 4, "iterations", 1, 1000);
  r.stopInner = a.boolean(first + 5, "stopGradientInner");
  checkedMul(checkedMul(checkedMul(r.B, r.I, "routing"), r.J, "routing"), checkedMul(r.D, r.R + 1, "routing"), "routing");
  return r;
}

// dynamicRouting(uHat, v, couplings, B, I, J, D, R, stopGradientInner):
// couplings is an array of R Float32Arrays [B, I, J], one per iteration.
void dynamicRouting(Args& a) {
  RoutingArgs p = readRouting(a, 3);
  const int64_t IJ = p.I * p.J, JD = p.J * p.D;
  View<float> uHat = a.f32(0, "uHat", p.B * p.I * JD);
  View<float> v = a.f32(1, "v", p.B * JD);
  std::vector<View<float>> cOut = a.f32List(2, "couplings", p.R, p.B * IJ);
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
  for (int t = 0; t < threads; t++) scratch.emplace_back(new RoutingScratch(p.R, p.I, p.J, p.D));
  parallelTasks(p.B, [&](int64_t b, int worker) {
    RoutingScratch& w = *scratch[worker];
    routeForward(uHat.data + b * p.I * JD, p.I, p.J, p.D, p.R, w);
    std::memcpy(v.data + b * JD, w.v.data() + (p.R - 1) * JD, sizeof(float) * JD);
    for (int64_t r = 0; r < p.R; r++) std::memcpy(cOut[r].data + b * IJ, w.c.data() + r * IJ, sizeof(float) * IJ);
  }, threads);
}

// dynamicRoutingGrad(uHat, dv, duHat, B, I, J, D, R, stopGradientInner):
// the gradient of v with respect to uHat through all iterations (or only
// the last one with stopGradientInner), from a recomputed forward pass.
void dynamicRoutingGrad(Args& a) {
  RoutingArgs p = readRouting(a, 3);
  const int64_t I = p.I, J = p.J, D = p.D, R = p.R, IJ = I * J, JD = J * D;
  View<float> uHat = a.f32(0, "uHat", p.B * I * JD);
  View<float> dv = a.f32(1, "dv", p.B * JD);
  View<float> duHat = a.f32(2, "duHat", p.B * I * JD);
  requireDisjoint(duHat, uHat, "dynamicRoutingGrad");
  requireDisjoint(duHat, dv, "dynamicRoutingGrad");
  if (p.B == 0) return;
  int threads = threadCount();
  std::vector<std::unique_ptr<RoutingScratch>> scratch;
  for (int t = 0; t < threads; t++) scratch.emplace_back(new RoutingScratch(R, I, J, D));
  parallelTasks(p.B, [&](int64_t b, int worker) {
    RoutingScratch& w = *scratch[worker];
    const float* u = uHat.data + b * I * JD;
    float* gu = duHat.data + b * I * JD;
    routeForward(u, I, J, D, R, w);
    float* gs = w.gs.data();
    for (int64_t j = 0; j < J; j++) squashGradVector(w.s.data() + (R - 1) * JD + j * D, dv.data + b * JD + j * D, gs + j * D, D);
    // Inner iterations only matter when gradients flow through them.
    int64_t rLast = p.stopInner ? R - 1 : 0;
    for (int64_t r = R - 1; r >= rLast; r--) {
      const float* c = w.c.data() + r * IJ;
      const bool carry = r < R - 1;          // b^r also feeds b^(r+1)
      const bool toPrev = r > 0 && !p.stopInner;  // b^r came from v^(r-1)
      const float* vPrev = toPrev ? w.v.data() + (r - 1) * JD : nullptr;
      float* gv = w.gv.data();
      if (toPrev) std::fill(gv, gv + JD, 0.0f);
      for (int64_t i = 0; i < I; i++) {
        const float* ui = u + i * JD;
        float* gui = gu + i * JD;
        const float* ci = c + i * J;
        float* gbi = w.gb.data() + i * J;
        // Through s^r = sum_i c_ij u_ij: the couplings' gradient, then the
        // softmax's, plus what b^(r+1) passes back.
        float dot = 0;
        for (int64_t j = 0; j < J; j++) {
          float g = 0;
          for (int64_t k = 0; k < D; k++) g += gs[j * D + k] * ui[j * D + k];
          w.gc[j] = g;
          dot += ci[j] * g;
        }
        for (int64_t j = 0; j < J; j++) gbi[j] = ci[j] * (w.gc[j] - dot) + (carry ? gbi[j] : 0.0f);
        for (int64_t j = 0; j < J; j++) {
          const float cij = ci[j];
          const float gbij = gbi[j];
          const float* gsj = gs + j * D;
          const float* uij = ui + j * D;
          float* guij = gui + j * D;
          if (toPrev) {
            // b^r = b^(r-1) + u . v^(r-1)
            const float* vj = vPrev + j * D;
            float* gvj = gv + j * D;
            for (int64_t k = 0; k < D; k++) {
              float val = cij * gsj[k] + gbij * vj[k];
              guij[k] = r == R - 1 ? val : guij[k] + val;
              gvj[k] += gbij * uij[k];
            }
          } else {
            for (int64_t k = 0; k < D; k++) guij[k] = r == R - 1 ? cij * gsj[k] : guij[k] + cij * gsj[k];
          }
        }
      }
      if (toPrev)
        for (int64_t j = 0; j < J; j++) squashGradVector(w.s.data() + (r - 1) * JD + j * D, gv + j * D, gs + j * D, D);
    }
  }, threads);
}

// adamUpdate(w, g, m, v, w2, m2, v2, lrT, beta1, oneMinusBeta1, beta2,
// oneMinusBeta2, epsilon): the update of adamUpdateReference, in the same
// float32 operation order.
void adamUpdate(Args& a) {
  View<float> w = a.f32(0, "w");
  int64_t n = w.length;
  View<float> g = a.f32(1, "g", n), m = a.f32(2, "m", n), v = a.f32(3, "v", n);
  View<float> w2 = a.f32(4, "w2", n), m2 = a.f32(5, "m2", n), v2 = a.f32(6, "v2", n);
  const float lrT = static_cast<float>(a.number(7, "lrT"));
  const float b1 = static_cast<float>(a.number(8, "beta1"));
  const float c1 = static_cast<float>(a.number(9, "oneMinusBeta1"));
  const float b2 = static_cast<float>(a.number(10, "beta2"));
  const float c2 = static_cast<float>(a.number(11, "oneMinusBeta2"));
  const float eps = static_cast<float>(a.number(12, "epsilon"));
  parallelFor(n, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      float gi = g.data[i];
      float mi = m.data[i] * b1 + gi * c1;
      float vi = v.data[i] * b2 + (gi * gi) * c2;
      m2.data[i] = mi;
      v2.data[i] = vi;
      w2.data[i] = w.data[i] - (mi / (std::sqrt(vi) + eps)) * lrT;
    }
  });
}

}  // namespace

void addCapsuleExports(std::vector<Export>& out) {
  out.push_back({"squash", entry<squash>});
  out.push_back({"squashGrad", entry<squashGrad>});
  out.push_back({"predictionVectors", entry<predictionVectors>});
  out.push_back({"predictionVectorsGradInput", entry<predictionVectorsGradInput>});
  out.push_back({"predictionVectorsGradWeights", entry<predictionVectorsGradWeights>});
  out.push_back({"dynamicRouting", entry<dynamicRouting>});
  out.push_back({"dynamicRoutingGrad", entry<dynamicRoutingGrad>});
  out.push_back({"adamUpdate", entry<adamUpdate>});
}

}  // namespace capsnet
