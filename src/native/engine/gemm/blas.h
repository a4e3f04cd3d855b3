// The engine's matrix product. Every GEMM of the engine (matmul, im2col
// convolution, the frequency-domain convolution) calls sgemm or
// sgemmParallel here, which run one of two implementations:
//
// - builtin: the engine's own packed GEMM (gemm.h) with micro-kernels for
//   AVX-512, AVX2 + FMA and portable C++ (NEON intrinsics on arm64), picked at
//   load time from the CPU's features. Needs nothing but a C++ compiler, and is the default.
// - openblas: OpenBLAS's cblas_sgemm, single-threaded (the engine splits
//   work over its own pool, see parallel.h). Present when the build linked
//   OpenBLAS (CAPSNET_BLAS=openblas, or auto with OpenBLAS found).
//
// CAPSNET_GEMM=builtin|openblas and CAPSNET_GEMM_ISA=avx512|avx2|portable
// (neon on arm64, where the portable kernel is the NEON one) override the
// choice when the addon loads; setGemm does the same at run time.
#pragma once

#include <cstdint>
#include <string>

namespace capsnet {

// Load-time setup: OpenBLAS (when linked) runs one thread per call; the
// environment overrides above are applied. Returns why an override was
// ignored (unknown name, missing library or instruction set), else "".
std::string initBlas();

struct GemmInfo {
  std::string gemm;     // "builtin" or "openblas"
  std::string isa;      // builtin: its kernel's instruction set; openblas: its core name, e.g. "Haswell"
  std::string openblasConfig;  // openblas_get_config(), empty when not linked
  std::string isas;     // builtin kernels this CPU can run, best first, comma-separated
  std::string defaultLibrary;  // the build's default
};
GemmInfo gemmInfo();

// Choose the implementation (and, for builtin, the kernel; an empty isa is
// the best this CPU runs). Fails with a clear message when the library was
// not linked or the CPU lacks the instruction set.
void setGemm(const std::string& library, const std::string& isa);

// Row-major C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C on the calling
// thread. Leading dimensions are in elements, as in cblas; beta == 0 means C
// is not read.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same product split over the pool by rows or columns of C.
void sgemmParallel(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace capsnet
