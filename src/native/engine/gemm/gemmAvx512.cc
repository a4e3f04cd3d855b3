// AVX-512 micro-kernel of the built-in GEMM (see gemm.h): a 12 x 32 tile,
// 24 zmm accumulators, two B vectors and one broadcast A value per step, so
// all 32 registers but a few do arithmetic. The functions carry their own
// target attribute, so this file is built with the engine's ordinary flags
// and the kernel only runs where the CPU reports AVX-512 (gemm.cc).
#include "gemm.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define CAPSNET_GEMM_TARGET __attribute__((target("avx512f")))

namespace capsnet {
namespace gemm {
namespace {

struct Vec {
  using V = __m512;
  static constexpr int kLanes = 16;
  CAPSNET_GEMM_TARGET static V zero() { return _mm512_setzero_ps(); }
  CAPSNET_GEMM_TARGET static V load(const float* p) { return _mm512_load_ps(p); }
  CAPSNET_GEMM_TARGET static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  CAPSNET_GEMM_TARGET static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  CAPSNET_GEMM_TARGET static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  CAPSNET_GEMM_TARGET static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  CAPSNET_GEMM_TARGET static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
};

}  // namespace
}  // namespace gemm
}  // namespace capsnet

#include "gemmMicroKernel.h"

namespace capsnet {
namespace gemm {

const Kernel* avx512Kernel() {
  // kc * 32 floats of B (32 KB at kc 256) stay in L1 across the A strips of a block.
  static const Kernel k{"avx512", 12, 2 * Vec::kLanes, 256, 144, 4096, microKernel<Vec, 12>};
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
