// Fused prediction vectors u_hat_j|i = W_ij u_i (Eq. 2 of "Dynamic Routing
// Between Capsules") and their two gradients, for
// src/native/kernels/predictionVectors.ts; the reference is predictionVectorsReference
// in src/capsules/predictionVectors.ts.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "entry.h"
#include "parallel.h"
#include "simd.h"

namespace capsnet {
namespace {

struct CapsDims {
  int64_t B, I, J, Dout, Din;
  int64_t JD() const { return J * Dout; }
};

// The size settings of the three entries.
#define CAPSNET_CAPSULE_SIZES "batch", "inCaps", "outCaps", "outDim", "inDim"

CapsDims readCapsDims(Args& a) {
  CapsDims d;
  d.B = a.integer("batch", 0, INT32_MAX);
  d.I = a.integer("inCaps", 0, INT32_MAX);
  d.J = a.integer("outCaps", 0, INT32_MAX);
  d.Dout = a.integer("outDim", 0, INT32_MAX);
  d.Din = a.integer("inDim", 0, INT32_MAX);
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

// predictionVectors({ u, W, uHat, batch, inCaps, outCaps, outDim, inDim }):
// uHat[b, i, j, :] = W[i, j] u[b, i], W[i, j] being Dout x Din.
CAPSNET_ENTRY(predictionVectors, "u", "W", "uHat", CAPSNET_CAPSULE_SIZES) {
  CapsDims d = readCapsDims(a);
  View<float> u = a.f32("u", d.B * d.I * d.Din);
  View<float> W = a.f32("W", d.I * d.JD() * d.Din);
  View<float> out = a.f32("uHat", d.B * d.I * d.JD());
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

// predictionVectorsGradInput({ dy, W, du, batch, inCaps, outCaps, outDim, inDim }):
// du[b, i, :] = sum over (j, d) of W[i, j, d, :] dy[b, i, j, d].
CAPSNET_ENTRY(predictionVectorsGradInput, "dy", "W", "du", CAPSNET_CAPSULE_SIZES) {
  CapsDims d = readCapsDims(a);
  View<float> dy = a.f32("dy", d.B * d.I * d.JD());
  View<float> W = a.f32("W", d.I * d.JD() * d.Din);
  View<float> du = a.f32("du", d.B * d.I * d.Din);
  requireDisjoint(du, dy, "predictionVectorsGradInput");
  requireDisjoint(du, W, "predictionVectorsGradInput");
  if (du.length == 0) return;
#if CAPSNET_AVX2
  if (d.Din == 8) return predictionVectorsGradInput8(d, dy.data, W.data, du.data);
#endif
  if (d.Din == 8) predictionVectorsGradInputImpl<8>(d, dy.data, W.data, du.data);
  else predictionVectorsGradInputImpl<0>(d, dy.data, W.data, du.data);
}

// predictionVectorsGradWeights({ dy, u, dW, batch, inCaps, outCaps, outDim, inDim }):
// dW[i, j, d, :] = sum over b of dy[b, i, j, d] u[b, i, :].
CAPSNET_ENTRY(predictionVectorsGradWeights, "dy", "u", "dW", CAPSNET_CAPSULE_SIZES) {
  CapsDims d = readCapsDims(a);
  View<float> dy = a.f32("dy", d.B * d.I * d.JD());
  View<float> u = a.f32("u", d.B * d.I * d.Din);
  View<float> dW = a.f32("dW", d.I * d.JD() * d.Din);
  requireDisjoint(dW, dy, "predictionVectorsGradWeights");
  requireDisjoint(dW, u, "predictionVectorsGradWeights");
  if (dW.length == 0) return;
#if CAPSNET_AVX2
  if (d.Din == 8) return predictionVectorsGradWeights8(d, dy.data, u.data, dW.data);
#endif
  if (d.Din == 8) predictionVectorsGradWeightsImpl<8>(d, dy.data, u.data, dW.data);
  else predictionVectorsGradWeightsImpl<0>(d, dy.data, u.data, dW.data);
}

}  // namespace


}  // namespace capsnet
