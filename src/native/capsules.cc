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
#include "simd.h"

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

// The prediction-vector kernels are instantiated for the capsule input
// dimension: with DIN known at compile time (8 in CapsNet) a row of Din
// values is one SIMD register and the accumulators stay in registers; DIN = 0
// is the general case, with the dimension read at run time.
template <int DIN>
void predictionVectorsImpl(const CapsDims& d, const float* u, const float* W, float* out) {
  const int64_t JD = d.JD(), Din = DIN > 0 ? DIN : d.Din;
  parallelFor(d.I, 8, [&](int64_t i0, int64_t i1) {
    // W[i] transposed to [Din, JD], so that the inner loop runs along the
    // contiguous output.
    std::vector<float> wt(Din * JD);
    for (int64_t i = i0; i < i1; i++) {
      const float* w = W + i * JD * Din;
      for (int64_t r = 0; r < JD; r++)
        for (int64_t k = 0; k < Din; k++) wt[k * JD + r] = w[r * Din + k];
      for (int64_t b = 0; b < d.B; b++) {
        const float* ub = u + (b * d.I + i) * Din;
        float* o = out + (b * d.I + i) * JD;
        const float u0 = ub[0];
        for (int64_t r = 0; r < JD; r++) o[r] = u0 * wt[r];
        for (int64_t k = 1; k < Din; k++) {
          const float uk = ub[k];
          const float* wk = wt.data() + k * JD;
          for (int64_t r = 0; r < JD; r++) o[r] += uk * wk[r];
        }
      }
    }
  });
}

#if CAPSNET_AVX2
// Din = 8. Blocks of input capsules whose transposed matrices fit in L2,
// and for each example the block's outputs, which are contiguous, written
// with streaming stores when aligned: the 74 MB of u_hat in CapsNet go
// straight to memory instead of first being read into cache.
void predictionVectors8(const CapsDims& d, const float* u, const float* W, float* out) {
  const int64_t JD = d.JD();
  constexpr int64_t kBlock = 32;
  const int64_t blocks = (d.I + kBlock - 1) / kBlock;
  const bool stream = JD % 8 == 0 && reinterpret_cast<uintptr_t>(out) % 32 == 0;
  parallelFor(blocks, 1, [&](int64_t q0, int64_t q1) {
    std::vector<float> wt(kBlock * 8 * JD);
    for (int64_t q = q0; q < q1; q++) {
      const int64_t i0 = q * kBlock, i1 = std::min(d.I, i0 + kBlock);
      for (int64_t i = i0; i < i1; i++) {
        const float* w = W + i * JD * 8;
        float* t = wt.data() + (i - i0) * 8 * JD;
        for (int64_t r = 0; r < JD; r++)
          for (int64_t k = 0; k < 8; k++) t[k * JD + r] = w[r * 8 + k];
      }
      for (int64_t b = 0; b < d.B; b++) {
        for (int64_t i = i0; i < i1; i++) {
          const float* ub = u + (b * d.I + i) * 8;
          const float* t = wt.data() + (i - i0) * 8 * JD;
          float* o = out + (b * d.I + i) * JD;
          __m256 uk[8];
          for (int k = 0; k < 8; k++) uk[k] = _mm256_set1_ps(ub[k]);
          int64_t r = 0;
          for (; r + 8 <= JD; r += 8) {
            __m256 acc = _mm256_mul_ps(uk[0], _mm256_loadu_ps(t + r));
            for (int k = 1; k < 8; k++) acc = _mm256_fmadd_ps(uk[k], _mm256_loadu_ps(t + k * JD + r), acc);
            if (stream) _mm256_stream_ps(o + r, acc);
            else _mm256_storeu_ps(o + r, acc);
          }
          for (; r < JD; r++) {
            float acc = 0;
            for (int k = 0; k < 8; k++) acc += ub[k] * t[k * JD + r];
            o[r] = acc;
          }
        }
      }
    }
    if (stream) _mm_sfence();
  });
}
#endif

#if CAPSNET_AVX2
// Din = 8: a row of W[i] is one register; four accumulators hide the FMA
// latency.
void predictionVectorsGradInput8(const CapsDims& d, const float* dy, const float* W, float* du) {
  const int64_t JD = d.JD();
  parallelFor(d.I, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float* w = W + i * JD * 8;
      for (int64_t b = 0; b < d.B; b++) {
        const float* g = dy + (b * d.I + i) * JD;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t r = 0;
        for (; r + 4 <= JD; r += 4) {
          a0 = _mm256_fmadd_ps(_mm256_set1_ps(g[r]), _mm256_loadu_ps(w + r * 8), a0);
          a1 = _mm256_fmadd_ps(_mm256_set1_ps(g[r + 1]), _mm256_loadu_ps(w + r * 8 + 8), a1);
          a2 = _mm256_fmadd_ps(_mm256_set1_ps(g[r + 2]), _mm256_loadu_ps(w + r * 8 + 16), a2);
          a3 = _mm256_fmadd_ps(_mm256_set1_ps(g[r + 3]), _mm256_loadu_ps(w + r * 8 + 24), a3);
        }
        for (; r < JD; r++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(g[r]), _mm256_loadu_ps(w + r * 8), a0);
        _mm256_storeu_ps(du + (b * d.I + i) * 8, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
      }
    }
  });
}

// Din = 8: eight rows of dW[i] stay in registers while the batch streams by.
void predictionVectorsGradWeights8(const CapsDims& d, const float* dy, const float* u, float* dW) {
  const int64_t JD = d.JD();
  parallelFor(d.I, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      float* acc = dW + i * JD * 8;
      int64_t r0 = 0;
      for (; r0 + 8 <= JD; r0 += 8) {
        __m256 a[8];
        for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
        for (int64_t b = 0; b < d.B; b++) {
          const float* g = dy + (b * d.I + i) * JD + r0;
          const __m256 ub = _mm256_loadu_ps(u + (b * d.I + i) * 8);
          for (int k = 0; k < 8; k++) a[k] = _mm256_fmadd_ps(_mm256_set1_ps(g[k]), ub, a[k]);
        }
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(acc + (r0 + k) * 8, a[k]);
      }
      for (int64_t r = r0; r < JD; r++) {
        __m256 a = _mm256_setzero_ps();
        for (int64_t b = 0; b < d.B; b++)
          a = _mm256_fmadd_ps(_mm256_set1_ps(dy[(b * d.I + i) * JD + r]), _mm256_loadu_ps(u + (b * d.I + i) * 8), a);
        _mm256_storeu_ps(acc + r * 8, a);
      }
    }
  });
}
#endif

template <int DIN>
void predictionVectorsGradInputImpl(const CapsDims& d, const float* dy, const float* W, float* du) {
  const int64_t JD = d.JD(), Din = DIN > 0 ? DIN : d.Din;
  parallelFor(d.I, 8, [&](int64_t i0, int64_t i1) {
    std::vector<float> accBuffer(DIN > 0 ? 0 : Din);
    for (int64_t i = i0; i < i1; i++) {
      const float* w = W + i * JD * Din;
      for (int64_t b = 0; b < d.B; b++) {
        const float* g = dy + (b * d.I + i) * JD;
        float local[DIN > 0 ? DIN : 1];
        float* acc = DIN > 0 ? local : accBuffer.data();
        for (int64_t k = 0; k < Din; k++) acc[k] = 0.0f;
        for (int64_t r = 0; r < JD; r++) {
          const float gr = g[r];
          const float* wr = w + r * Din;
          for (int64_t k = 0; k < Din; k++) acc[k] += gr * wr[k];
        }
        float* dst = du + (b * d.I + i) * Din;
        for (int64_t k = 0; k < Din; k++) dst[k] = acc[k];
      }
    }
  });
}

template <int DIN>
void predictionVectorsGradWeightsImpl(const CapsDims& d, const float* dy, const float* u, float* dW) {
  const int64_t JD = d.JD(), Din = DIN > 0 ? DIN : d.Din;
  parallelFor(d.I, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      float* acc = dW + i * JD * Din;
      std::fill(acc, acc + JD * Din, 0.0f);
      for (int64_t b = 0; b < d.B; b++) {
        const float* g = dy + (b * d.I + i) * JD;
        float ub[DIN > 0 ? DIN : 1];
        const float* uRow = u + (b * d.I + i) * Din;
        if (DIN > 0)
          for (int64_t k = 0; k < Din; k++) ub[k] = uRow[k];
        const float* uk = DIN > 0 ? ub : uRow;
        for (int64_t r = 0; r < JD; r++) {
          const float gr = g[r];
          float* ar = acc + r * Din;
          for (int64_t k = 0; k < Din; k++) ar[k] += gr * uk[k];
        }
      }
    }
  });
}

// Votes of matrix capsules ("Matrix capsules with EM routing", section 2):
// V[r, n, j] = M[r, n] W[n, j], 4x4 matrices stored row-major as 16 floats,
// for R rows (batch x parent positions), N child slots and J parent types.
// W is shared by the rows, as a convolution kernel is by positions.
struct VoteDims {
  int64_t R, N, J;
};

VoteDims readVoteDims(const Args& a, size_t first) {
  VoteDims d;
  d.R = a.integer(first, "rows", 0, INT32_MAX);
  d.N = a.integer(first + 1, "slots", 0, INT32_MAX);
  d.J = a.integer(first + 2, "types", 0, INT32_MAX);
  checkedMul(checkedMul(checkedMul(d.R, d.N, "matrixVotes"), d.J, "matrixVotes"), 16, "matrixVotes");
  return d;
}

// matrixVotes(M, W, V, R, N, J).
void matrixVotes(Args& a) {
  VoteDims d = readVoteDims(a, 3);
  View<float> M = a.f32(0, "M", d.R * d.N * 16);
  View<float> W = a.f32(1, "W", d.N * d.J * 16);
  View<float> V = a.f32(2, "V", d.R * d.N * d.J * 16);
  requireDisjoint(V, M, "matrixVotes");
  requireDisjoint(V, W, "matrixVotes");
  if (V.length == 0) return;
  parallelFor(d.R * d.N, std::max<int64_t>(1, 2048 / std::max<int64_t>(d.J, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t rn = begin; rn < end; rn++) {
      const int64_t n = rn % d.N;
      const float* m = M.data + rn * 16;
      for (int64_t j = 0; j < d.J; j++) {
        const float* w = W.data + (n * d.J + j) * 16;
        float* v = V.data + (rn * d.J + j) * 16;
        for (int r = 0; r < 4; r++)
          for (int e = 0; e < 4; e++) v[r * 4 + e] = m[r * 4] * w[e] + m[r * 4 + 1] * w[4 + e] + m[r * 4 + 2] * w[8 + e] + m[r * 4 + 3] * w[12 + e];
      }
    }
  });
}

// matrixVotesGradInput(dV, W, dM, R, N, J): dM[r, n] = sum_j dV[r, n, j] W[n, j]^T.
void matrixVotesGradInput(Args& a) {
  VoteDims d = readVoteDims(a, 3);
  View<float> dV = a.f32(0, "dV", d.R * d.N * d.J * 16);
  View<float> W = a.f32(1, "W", d.N * d.J * 16);
  View<float> dM = a.f32(2, "dM", d.R * d.N * 16);
  requireDisjoint(dM, dV, "matrixVotesGradInput");
  requireDisjoint(dM, W, "matrixVotesGradInput");
  if (dM.length == 0) return;
  parallelFor(d.R * d.N, std::max<int64_t>(1, 2048 / std::max<int64_t>(d.J, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t rn = begin; rn < end; rn++) {
      const int64_t n = rn % d.N;
      float acc[16] = {0};
      for (int64_t j = 0; j < d.J; j++) {
        const float* w = W.data + (n * d.J + j) * 16;
        const float* g = dV.data + (rn * d.J + j) * 16;
        for (int r = 0; r < 4; r++)
          for (int c = 0; c < 4; c++) acc[r * 4 + c] += g[r * 4] * w[c * 4] + g[r * 4 + 1] * w[c * 4 + 1] + g[r * 4 + 2] * w[c * 4 + 2] + g[r * 4 + 3] * w[c * 4 + 3];
      }
      std::memcpy(dM.data + rn * 16, acc, sizeof(acc));
    }
  });
}

// matrixVotesGradWeights(dV, M, dW, R, N, J): dW[n, j] = sum_r M[r, n]^T dV[r, n, j].
// One task per slot n sums over the rows in order, so the result does not
// depend on the thread count.
void matrixVotesGradWeights(Args& a) {
  VoteDims d = readVoteDims(a, 3);
  View<float> dV = a.f32(0, "dV", d.R * d.N * d.J * 16);
  View<float> M = a.f32(1, "M", d.R * d.N * 16);
  View<float> dW = a.f32(2, "dW", d.N * d.J * 16);
  requireDisjoint(dW, dV, "matrixVotesGradWeights");
  requireDisjoint(dW, M, "matrixVotesGradWeights");
  if (dW.length == 0) return;
  parallelTasks(d.N, [&](int64_t n, int) {
    float* acc = dW.data + n * d.J * 16;
    std::fill(acc, acc + d.J * 16, 0.0f);
    for (int64_t r = 0; r < d.R; r++) {
      const float* m = M.data + (r * d.N + n) * 16;
      const float* g = dV.data + (r * d.N + n) * d.J * 16;
      for (int64_t j = 0; j < d.J; j++) {
        float* aj = acc + j * 16;
        const float* gj = g + j * 16;
        for (int c = 0; c < 4; c++)
          for (int e = 0; e < 4; e++) aj[c * 4 + e] += m[c] * gj[e] + m[4 + c] * gj[4 + e] + m[8 + c] * gj[8 + e] + m[12 + c] * gj[12 + e];
      }
    }
  });
}

// predictionVectors(u, W, uHat, B, I, J, Dout, Din):
// uHat[b, i, j, :] = W[i, j] u[b, i], W[i, j] being Dout x Din.
void predictionVectors(Args& a) {
  CapsDims d = readCapsDims(a, 3);
  View<float> u = a.f32(0, "u", d.B * d.I * d.Din);
  View<float> W = a.f32(1, "W", d.I * d.JD() * d.Din);
  View<float> out = a.f32(2, "uHat", d.B * d.I * d.JD());
  requireDisjoint(out, u, "predictionVectors");
  requireDisjoint(out, W, "predictionVectors");
  if (out.length == 0) return;
  if (d.Din == 0) {
    std::fill(out.data, out.data + out.length, 0.0f);
    return;
  }
#if CAPSNET_AVX2
  if (d.Din == 8) return predictionVectors8(d, u.data, W.data, out.data);
#endif
  if (d.Din == 8) predictionVectorsImpl<8>(d, u.data, W.data, out.data);
  else predictionVectorsImpl<0>(d, u.data, W.data, out.data);
}

// predictionVectorsGradInput(dy, W, du, B, I, J, Dout, Din):
// du[b, i, :] = sum over (j, d) of W[i, j, d, :] dy[b, i, j, d].
void predictionVectorsGradInput(Args& a) {
  CapsDims d = readCapsDims(a, 3);
  View<float> dy = a.f32(0, "dy", d.B * d.I * d.JD());
  View<float> W = a.f32(1, "W", d.I * d.JD() * d.Din);
  View<float> du = a.f32(2, "du", d.B * d.I * d.Din);
  requireDisjoint(du, dy, "predictionVectorsGradInput");
  requireDisjoint(du, W, "predictionVectorsGradInput");
  if (du.length == 0) return;
#if CAPSNET_AVX2
  if (d.Din == 8) return predictionVectorsGradInput8(d, dy.data, W.data, du.data);
#endif
  if (d.Din == 8) predictionVectorsGradInputImpl<8>(d, dy.data, W.data, du.data);
  else predictionVectorsGradInputImpl<0>(d, dy.data, W.data, du.data);
}

// predictionVectorsGradWeights(dy, u, dW, B, I, J, Dout, Din):
// dW[i, j, d, :] = sum over b of dy[b, i, j, d] u[b, i, :].
void predictionVectorsGradWeights(Args& a) {
  CapsDims d = readCapsDims(a, 3);
  View<float> dy = a.f32(0, "dy", d.B * d.I * d.JD());
  View<float> u = a.f32(1, "u", d.B * d.I * d.Din);
  View<float> dW = a.f32(2, "dW", d.I * d.JD() * d.Din);
  requireDisjoint(dW, dy, "predictionVectorsGradWeights");
  requireDisjoint(dW, u, "predictionVectorsGradWeights");
  if (dW.length == 0) return;
#if CAPSNET_AVX2
  if (d.Din == 8) return predictionVectorsGradWeights8(d, dy.data, u.data, dW.data);
#endif
  if (d.Din == 8) predictionVectorsGradWeightsImpl<8>(d, dy.data, u.data, dW.data);
  else predictionVectorsGradWeightsImpl<0>(d, dy.data, u.data, dW.data);
}

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
  for (int t = 0; t < threads; t++) scratch.emplace_back(new RoutingScratch(p.R, p.I, p.J, p.D, false));
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
  out.push_back({"matrixVotes", entry<matrixVotes>});
  out.push_back({"matrixVotesGradInput", entry<matrixVotesGradInput>});
  out.push_back({"matrixVotesGradWeights", entry<matrixVotesGradWeights>});
  out.push_back({"dynamicRouting", entry<dynamicRouting>});
  out.push_back({"dynamicRoutingGrad", entry<dynamicRoutingGrad>});
  out.push_back({"adamUpdate", entry<adamUpdate>});
}

}  // namespace capsnet
