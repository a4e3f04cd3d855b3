// Batched matrix products on sgemm, and the bias + activation epilogue that
// the fused matmul and conv kernels share.
#include <algorithm>
#include <cmath>

#include "blas.h"
#include "common.h"
#include "parallel.h"

namespace capsnet {
namespace {

// batchMatMul(a, b, out, batchA, batchB, M, N, K, transA, transB):
// out[i] = op(a[i % batchA]) op(b[i % batchB]) for i < max(batchA, batchB),
// the batch broadcasting rule of tfjs's BatchMatMul.
void batchMatMul(Args& a) {
  int64_t batchA = a.integer(3, "batchA", 1, INT32_MAX);
  int64_t batchB = a.integer(4, "batchB", 1, INT32_MAX);
  int64_t M = a.integer(5, "M", 0, INT32_MAX);
  int64_t N = a.integer(6, "N", 0, INT32_MAX);
  int64_t K = a.integer(7, "K", 0, INT32_MAX);
  bool transA = a.boolean(8, "transA");
  bool transB = a.boolean(9, "transB");
  int64_t batch = std::max(batchA, batchB);
  View<float> A = a.f32(0, "a", checkedMul(batchA, checkedMul(M, K, "a"), "a"));
  View<float> B = a.f32(1, "b", checkedMul(batchB, checkedMul(K, N, "b"), "b"));
  View<float> C = a.f32(2, "out", checkedMul(batch, checkedMul(M, N, "out"), "out"));
  requireDisjoint(C, A, "batchMatMul");
  requireDisjoint(C, B, "batchMatMul");
  if (C.length == 0) return;
  const int64_t lda = transA ? M : K;
  const int64_t ldb = transB ? K : N;
  auto one = [&](int64_t i, bool parallel) {
    const float* ai = A.data + (i % batchA) * M * K;
    const float* bi = B.data + (i % batchB) * K * N;
    float* ci = C.data + i * M * N;
    if (parallel) sgemmParallel(transA, transB, M, N, K, 1.0f, ai, lda, bi, ldb, 0.0f, ci, N);
    else sgemm(transA, transB, M, N, K, 1.0f, ai, lda, bi, ldb, 0.0f, ci, N);
  };
  double flopsEach = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (batch == 1 || flopsEach > 5e7) {
    // Few large products: split each one.
    for (int64_t i = 0; i < batch; i++) one(i, true);
  } else {
    // Many small products: one per task.
    parallelTasks(batch, [&](int64_t i, int) { one(i, false); });
  }
}

// Elements a row-major operand of rows x cols with leading dimension ld
// spans: the last row needs only cols of its ld.
int64_t spanOf(int64_t rows, int64_t cols, int64_t ld, const char* what) {
  if (ld < std::max<int64_t>(cols, 1)) fail(std::string(what) + ": leading dimension smaller than the row width");
  if (rows == 0 || cols == 0) return 0;
  return checkedMul(rows - 1, ld, what) + cols;
}

// gemm(transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc): the
// engine's sgemmParallel exactly as the kernels call it, leading dimensions
// and all, for tests against a float64 reference and for the benchmark.
void gemmEntry(Args& a) {
  bool transA = a.boolean(0, "transA");
  bool transB = a.boolean(1, "transB");
  int64_t M = a.integer(2, "M", 0, INT32_MAX);
  int64_t N = a.integer(3, "N", 0, INT32_MAX);
  int64_t K = a.integer(4, "K", 0, INT32_MAX);
  float alpha = static_cast<float>(a.number(5, "alpha"));
  int64_t lda = a.integer(7, "lda", 1, INT32_MAX);
  int64_t ldb = a.integer(9, "ldb", 1, INT32_MAX);
  float beta = static_cast<float>(a.number(10, "beta"));
  int64_t ldc = a.integer(12, "ldc", 1, INT32_MAX);
  View<float> A = a.f32(6, "a", spanOf(transA ? K : M, transA ? M : K, lda, "a"));
  View<float> B = a.f32(8, "b", spanOf(transB ? N : K, transB ? K : N, ldb, "b"));
  View<float> C = a.f32(11, "c", spanOf(M, N, ldc, "c"));
  requireDisjoint(C, A, "gemm");
  requireDisjoint(C, B, "gemm");
  sgemmParallel(transA, transB, M, N, K, alpha, A.data, lda, B.data, ldb, beta, C.data, ldc);
}

// Keep in sync with Activation in matmul.ts.
enum Activation { kLinear = 0, kRelu, kRelu6, kLeakyRelu, kSigmoid, kElu, kActivationCount };

template <typename F>
void epilogue(float* y, int64_t rows, int64_t cols, const float* bias, int64_t biasLen, F f) {
  parallelFor(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
    const F act = f;  // local, so that captured parameters do not alias y
    for (int64_t r = begin; r < end; r++) {
      float* row = y + r * cols;
      if (biasLen == cols) {
        for (int64_t c = 0; c < cols; c++) row[c] = act(row[c] + bias[c]);
      } else if (biasLen == 1) {
        float b0 = bias[0];
        for (int64_t c = 0; c < cols; c++) row[c] = act(row[c] + b0);
      } else {
        for (int64_t c = 0; c < cols; c++) row[c] = act(row[c]);
      }
    }
  });
}

}  // namespace

// y[r, c] = act(y[r, c] + bias[c]) in place; bias has cols entries, one, or
// none. Used by the fused matmul and conv kernels.
void biasActivation(float* y, int64_t rows, int64_t cols, const float* bias, int64_t biasLen, int activation,
                    float alpha) {
  switch (activation) {
    case kLinear:
      if (biasLen == 0) return;
      epilogue(y, rows, cols, bias, biasLen, [](float v) { return v; });
      break;
    case kRelu: epilogue(y, rows, cols, bias, biasLen, [](float v) { return v < 0.0f ? 0.0f : v; }); break;
    case kRelu6:
      epilogue(y, rows, cols, bias, biasLen, [](float v) { return v != v ? v : std::min(std::max(v, 0.0f), 6.0f); });
      break;
    case kLeakyRelu: epilogue(y, rows, cols, bias, biasLen, [alpha](float v) { return v < 0.0f ? alpha * v : v; }); break;
    case kSigmoid: epilogue(y, rows, cols, bias, biasLen, [](float v) { return 1.0f / (1.0f + std::exp(-v)); }); break;
    case kElu: epilogue(y, rows, cols, bias, biasLen, [](float v) { return v >= 0.0f ? v : std::expm1(v); }); break;
    default: fail("unknown activation");
  }
}

namespace {

// biasActivation(y, rows, cols, bias, activation, alpha): the epilogue on
// its own, in place; bias is a Float32Array of cols entries, one, or none.
void biasActivationEntry(Args& a) {
  int64_t rows = a.integer(1, "rows", 0, INT64_MAX / 2);
  int64_t cols = a.integer(2, "cols", 0, INT64_MAX / 2);
  View<float> y = a.f32(0, "y", checkedMul(rows, cols, "biasActivation"));
  View<float> bias = a.f32(3, "bias");
  require(bias.length == 0 || bias.length == 1 || bias.length == cols, "biasActivation", "bias must have 0, 1 or cols entries");
  int act = static_cast<int>(a.integer(4, "activation", 0, kActivationCount - 1));
  float alpha = static_cast<float>(a.number(5, "alpha"));
  biasActivation(y.data, rows, cols, bias.data, bias.length, act, alpha);
}

}  // namespace

void addMatmulExports(std::vector<Export>& out) {
  out.push_back({"batchMatMul", entry<batchMatMul>});
  out.push_back({"gemm", entry<gemmEntry>});
  out.push_back({"biasActivation", entry<biasActivationEntry>});
}

}  // namespace capsnet
