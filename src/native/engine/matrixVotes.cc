// Fused matrix-capsule votes and their two gradients, for
// src/native/kernels/matrixVotes.ts; the reference is matrixVotes in
// src/capsules/matrixVotes.ts.
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

}  // namespace

void addMatrixVotesExports(std::vector<Export>& out) {
  out.push_back({"matrixVotes", entry<matrixVotes>});
  out.push_back({"matrixVotesGradInput", entry<matrixVotesGradInput>});
  out.push_back({"matrixVotesGradWeights", entry<matrixVotesGradWeights>});
}

}  // namespace capsnet
