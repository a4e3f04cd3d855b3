// OpenBLAS, used single-threaded from the engine's own pool (see parallel.h).
// The few symbols needed are declared here so that the build depends only on
// the library, not on where a distribution puts cblas.h.
#pragma once

#include <cstdint>
#include <string>

namespace capsnet {

// Load-time setup: OpenBLAS runs one thread per call.
void initBlas();
// openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ...".
std::string blasConfig();
// openblas_get_corename(): the kernel set chosen for this CPU, e.g. "Zen".
std::string blasCore();

// Row-major C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C on the calling
// thread. Leading dimensions are in elements, as in cblas.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same product split over the pool by rows or columns of C.
void sgemmParallel(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace capsnet
