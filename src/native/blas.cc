#include "blas.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "common.h"
#include "parallel.h"

extern "C" {
// cblas enums are passed as int: CblasRowMajor = 101, CblasNoTrans = 111,
// CblasTrans = 112.
void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc);
void openblas_set_num_threads(int n);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace capsnet {

void initBlas() { openblas_set_num_threads(1); }

std::string blasConfig() {
  const char* config = openblas_get_config();
  return config ? config : "OpenBLAS";
}

std::string blasCore() {
  const char* core = openblas_get_corename();
  return core ? core : "unknown";
}

namespace {
int asInt(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) fail(std::string("sgemm: ") + what + " out of range");
  return static_cast<int>(v);
}
}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    // cblas leaves C untouched-but-scaled here; be explicit.
    for (int64_t i = 0; i < M; i++) {
      float* row = C + i * ldc;
      if (beta == 0.0f) std::memset(row, 0, sizeof(float) * N);
      else for (int64_t j = 0; j < N; j++) row[j] *= beta;
    }
    return;
  }
  cblas_sgemm(101, transA ? 112 : 111, transB ? 112 : 111, asInt(M, "M"), asInt(N, "N"), asInt(K, "K"), alpha, A,
              asInt(lda, "lda"), B, asInt(ldb, "ldb"), beta, C, asInt(ldc, "ldc"));
}

void sgemmParallel(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  int threads = threadCount();
  double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  // Below a few MFLOP the split costs more than it saves.
  if (threads <= 1 || flops < 4e6 || inParallelRegion()) {
    sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger of M and N into two blocks per thread (so that a
  // preempted thread costs less), aligned to the micro-kernel's register
  // tile so that no block ends in a ragged edge.
  const int64_t align = 16;
  bool byRows = M >= N;
  int64_t extent = byRows ? M : N;
  int64_t parts = std::min<int64_t>(2 * static_cast<int64_t>(threads), std::max<int64_t>(1, extent / align));
  if (parts <= 1) {
    sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int64_t blocks = (extent + align - 1) / align;
  parallelTasks(parts, [&](int64_t p, int) {
    int64_t begin = std::min(extent, blocks * p / parts * align);
    int64_t end = std::min(extent, blocks * (p + 1) / parts * align);
    if (begin >= end) return;
    if (byRows) {
      const float* a = transA ? A + begin : A + begin * lda;
      sgemm(transA, transB, end - begin, N, K, alpha, a, lda, B, ldb, beta, C + begin * ldc, ldc);
    } else {
      const float* b = transB ? B + begin * ldb : B + begin;
      sgemm(transA, transB, M, end - begin, K, alpha, A, lda, b, ldb, beta, C + begin, ldc);
    }
  });
}

}  // namespace capsnet
