// Fused matrix-capsule votes and their two gradients, for
// src/native/kernels/matrixVotes.ts; the reference is matrixVotes in
// src/capsules/matrixVotes.ts.
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

// Votes of matrix capsules ("Matrix capsules with EM routing", section 2):
// V[r, n, j] = M[r, n] W[n, j], 4x4 matrices stored row-major as 16 floats,
// for R rows (batch x parent positions), N child slots and J parent types.
// W is shared by the rows, as a convolution kernel is by positions.
struct VoteDims {
  int64_t R, N, J;
};

// The size settings of the three entries.
#define CAPSNET_VOTE_SIZES "rows", "slots", "types"

VoteDims readVoteDims(Args& a) {
  VoteDims d;
  d.R = a.integer("rows", 0, INT32_MAX);
  d.N = a.integer("slots", 0, INT32_MAX);
  d.J = a.integer("types", 0, INT32_MAX);
  checkedMul(checkedMul(checkedMul(d.R, d.N, "matrixVotes"), d.J, "matrixVotes"), 16, "matrixVotes");
  return d;
}

// matrixVotes({ M, W, V, rows, slots, types }): the votes above.
CAPSNET_ENTRY(matrixVotes, "M", "W", "V", CAPSNET_VOTE_SIZES) {
  VoteDims d = readVoteDims(a);
  View<float> M = a.f32("M", d.R * d.N * 16);
  View<float> W = a.f32("W", d.N * d.J * 16);
  View<float> V = a.f32("V", d.R * d.N * d.J * 16);
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

// matrixVotesGradInput({ dV, W, dM, rows, slots, types }):
// dM[r, n] = sum_j dV[r, n, j] W[n, j]^T.
CAPSNET_ENTRY(matrixVotesGradInput, "dV", "W", "dM", CAPSNET_VOTE_SIZES) {
  VoteDims d = readVoteDims(a);
  View<float> dV = a.f32("dV", d.R * d.N * d.J * 16);
  View<float> W = a.f32("W", d.N * d.J * 16);
  View<float> dM = a.f32("dM", d.R * d.N * 16);
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

// matrixVotesGradWeights({ dV, M, dW, rows, slots, types }):
// dW[n, j] = sum_r M[r, n]^T dV[r, n, j].
// One task per slot n sums over the rows in order, so the result does not
// depend on the thread count.
CAPSNET_ENTRY(matrixVotesGradWeights, "dV", "M", "dW", CAPSNET_VOTE_SIZES) {
  VoteDims d = readVoteDims(a);
  View<float> dV = a.f32("dV", d.R * d.N * d.J * 16);
  View<float> M = a.f32("M", d.R * d.N * 16);
  View<float> dW = a.f32("dW", d.N * d.J * 16);
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

}  // namespace


}  // namespace capsnet
