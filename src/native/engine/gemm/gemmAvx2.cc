// AVX2 + FMA micro-kernel of the built-in GEMM (see gemm.h): a 6 x 16 tile,
// 12 ymm accumulators, two B vectors and one broadcast A value per step (15
// of the 16 registers). Its target attribute lets it run from a portable
// build on any CPU that reports AVX2 and FMA (checked in gemm.cc).
#include "gemm.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define CAPSNET_GEMM_TARGET __attribute__((target("avx2,fma")))

namespace capsnet {
namespace gemm {
namespace {

struct Vec {
  using V = __m256;
  static constexpr int kLanes = 8;
  CAPSNET_GEMM_TARGET static V zero() { return _mm256_setzero_ps(); }
  CAPSNET_GEMM_TARGET static V load(const float* p) { return _mm256_load_ps(p); }
  CAPSNET_GEMM_TARGET static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  CAPSNET_GEMM_TARGET static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  CAPSNET_GEMM_TARGET static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  CAPSNET_GEMM_TARGET static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  CAPSNET_GEMM_TARGET static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};

}  // namespace
}  // namespace gemm
}  // namespace capsnet

#include "gemmMicroKernel.h"

namespace capsnet {
namespace gemm {

const Kernel* avx2Kernel() {
  // kc * 16 floats of B (16 KB at kc 256) stay in L1 across the A strips of a block.
  static const Kernel k{"avx2", 6, 2 * Vec::kLanes, 256, 96, 4096, microKernel<Vec, 6>};
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
