// AVX2 + FMA micro-kernel of the built-in GEMM (see gemm.h): a 6 x 16 tile,
// 12 ymm accumulators, two B vectors and one broadcast A value per step (15
// of the 16 registers). Its target attribute lets it run from a portable
// build on any CPU that reports AVX2 and FMA (checked in gemm.cc).
#include "gemm.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define CAPSNET_AVX2_FMA __attribute__((target("avx2,fma")))

namespace capsnet {
namespace gemm {
namespace {

constexpr int kMr = 6, kNr = 16;

CAPSNET_AVX2_FMA void microKernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                                  float beta) {
  __m256 acc[kMr][2];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; i++) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kMr;
    b += kNr;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 6
    for (int i = 0; i < kMr; i++) {
      _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
      _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; i++) {
      float* row = c + i * ldc;
      _mm256_storeu_ps(row, _mm256_fmadd_ps(va, acc[i][0], _mm256_mul_ps(vb, _mm256_loadu_ps(row))));
      _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(va, acc[i][1], _mm256_mul_ps(vb, _mm256_loadu_ps(row + 8))));
    }
  }
}

}  // namespace

const Kernel* avx2Kernel() {
  // kc * 16 floats of B (16 KB at kc 256) stay in L1 across the A strips of a block.
  static const Kernel k{"avx2", kMr, kNr, 256, 96, 4096, microKernel};
  return &k;
}

}  // namespace gemm
}  // namespace capsnet

#else

namespace capsnet {
namespace gemm {
const Kernel* avx2Kernel() { return nullptr; }
}  // namespace gemm
}  // namespace capsnet

#endif
