// AVX-512 micro-kernel of the built-in GEMM (see gemm.h): a 12 x 32 tile,
// 24 zmm accumulators, two B vectors and one broadcast A value per step, so
// all 32 registers but a few do arithmetic. The functions carry their own
// target attribute, so this file is built with the engine's ordinary flags
// and the kernel only runs where the CPU reports AVX-512 (gemm.cc).
#include "gemm.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define CAPSNET_AVX512 __attribute__((target("avx512f")))

namespace capsnet {
namespace gemm {
namespace {

constexpr int kMr = 12, kNr = 32;

CAPSNET_AVX512 void microKernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                                float beta) {
  __m512 acc[kMr][2];
#pragma GCC unroll 12
  for (int i = 0; i < kMr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
    for (int i = 0; i < kMr; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kMr;
    b += kNr;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 12
    for (int i = 0; i < kMr; i++) {
      _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
      _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < kMr; i++) {
      float* row = c + i * ldc;
      _mm512_storeu_ps(row, _mm512_fmadd_ps(va, acc[i][0], _mm512_mul_ps(vb, _mm512_loadu_ps(row))));
      _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(va, acc[i][1], _mm512_mul_ps(vb, _mm512_loadu_ps(row + 16))));
    }
  }
}

}  // namespace

const Kernel* avx512Kernel() {
  // kc * 32 floats of B (32 KB at kc 256) stay in L1 across the A strips of a block.
  static const Kernel k{"avx512", kMr, kNr, 256, 144, 4096, microKernel};
  return &k;
}

}  // namespace gemm
}  // namespace capsnet

#else

namespace capsnet {
namespace gemm {
const Kernel* avx512Kernel() { return nullptr; }
}  // namespace gemm
}  // namespace capsnet

#endif
