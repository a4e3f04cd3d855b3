// Batched matrix products on sgemm (the fused matmul's bias and activation
// follow in biasActivation.cc).
#include <algorithm>
#include <string>

#include "blas.h"
#include "entry.h"
#include "parallel.h"

namespace capsnet {
namespace {

// batchMatMul({ a, b, out, batchA, batchB, M, N, K, transA = false,
// transB = false }): out[i] = op(a[i % batchA]) op(b[i % batchB]) for
// i < max(batchA, batchB), the batch broadcasting rule of tfjs's
// BatchMatMul.
CAPSNET_ENTRY(batchMatMul, "a", "b", "out", "batchA", "batchB", "M", "N", "K", "transA", "transB") {
  int64_t batchA = a.integer("batchA", 1, INT32_MAX);
  int64_t batchB = a.integer("batchB", 1, INT32_MAX);
  int64_t M = a.integer("M", 0, INT32_MAX);
  int64_t N = a.integer("N", 0, INT32_MAX);
  int64_t K = a.integer("K", 0, INT32_MAX);
  bool transA = a.boolean("transA", false);
  bool transB = a.boolean("transB", false);
  int64_t batch = std::max(batchA, batchB);
  View<float> A = a.f32("a", checkedMul(batchA, checkedMul(M, K, "a"), "a"));
  View<float> B = a.f32("b", checkedMul(batchB, checkedMul(K, N, "b"), "b"));
  View<float> C = a.f32("out", checkedMul(batch, checkedMul(M, N, "out"), "out"));
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

// gemm({ transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc }):
// the engine's sgemmParallel exactly as the kernels call it, leading
// dimensions and all, for tests against a float64 reference and for the
// benchmark.
CAPSNET_ENTRY(gemm, "transA", "transB", "M", "N", "K", "alpha", "a", "lda", "b", "ldb", "beta", "c", "ldc") {
  bool transA = a.boolean("transA");
  bool transB = a.boolean("transB");
  int64_t M = a.integer("M", 0, INT32_MAX);
  int64_t N = a.integer("N", 0, INT32_MAX);
  int64_t K = a.integer("K", 0, INT32_MAX);
  float alpha = static_cast<float>(a.number("alpha"));
  int64_t lda = a.integer("lda", 1, INT32_MAX);
  int64_t ldb = a.integer("ldb", 1, INT32_MAX);
  float beta = static_cast<float>(a.number("beta"));
  int64_t ldc = a.integer("ldc", 1, INT32_MAX);
  View<float> A = a.f32("a", spanOf(transA ? K : M, transA ? M : K, lda, "a"));
  View<float> B = a.f32("b", spanOf(transB ? N : K, transB ? K : N, ldb, "b"));
  View<float> C = a.f32("c", spanOf(M, N, ldc, "c"));
  requireDisjoint(C, A, "gemm");
  requireDisjoint(C, B, "gemm");
  sgemmParallel(transA, transB, M, N, K, alpha, A.data, lda, B.data, ldb, beta, C.data, ldc);
}

}  // namespace

}  // namespace capsnet
