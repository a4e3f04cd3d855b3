// AVX2 helpers for the capsule kernels: 8-wide dot-product reductions and
// an exp for softmax. Only compiled when the build targets AVX2 + FMA (see
// scripts/native-config.mjs); every user has a portable fallback.
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#define CAPSNET_AVX2 1
#include <immintrin.h>

#include <cstdint>

namespace capsnet {
namespace simd {

// Sum of the 8 lanes.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Largest of the 8 lanes (no NaN handling: callers feed finite values or -inf).
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lane k of the result is the sum of the 8 lanes of t[k].
inline __m256 hsum8(const __m256* t) {
  __m256 a = _mm256_hadd_ps(t[0], t[1]);
  __m256 b = _mm256_hadd_ps(t[2], t[3]);
  __m256 c = _mm256_hadd_ps(t[4], t[5]);
  __m256 d = _mm256_hadd_ps(t[6], t[7]);
  __m256 ab = _mm256_hadd_ps(a, b);  // low half: partial sums of t0..t3 over lanes 0-3; high: over lanes 4-7
  __m256 cd = _mm256_hadd_ps(c, d);
  __m256 lo = _mm256_permute2f128_ps(ab, cd, 0x20);
  __m256 hi = _mm256_permute2f128_ps(ab, cd, 0x31);
  return _mm256_add_ps(lo, hi);
}

// exp(x) to about 2 ulp for x in [-88, 88] (Cephes' single-precision
// polynomial on a range reduction by ln 2); 0 below, +inf above.
inline __m256 exp(__m256 x) {
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 input = x;
  const __m256 hiLimit = _mm256_set1_ps(88.3762626647949f);
  const __m256 loLimit = _mm256_set1_ps(-88.3762626647949f);
  __m256 over = _mm256_cmp_ps(x, hiLimit, _CMP_GT_OQ);
  __m256 under = _mm256_cmp_ps(x, loLimit, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, loLimit), hiLimit);
  __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i n = _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127));
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(n, 23)));
  y = _mm256_andnot_ps(under, y);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), over);
  return _mm256_blendv_ps(y, input, nan);  // NaN stays NaN
}

// The same exp for n < 8 values, through a padded vector.
inline void expSmall(const float* x, float* y, int n) {
  alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int k = 0; k < n; k++) buf[k] = x[k];
  _mm256_store_ps(buf, exp(_mm256_load_ps(buf)));
  for (int k = 0; k < n; k++) y[k] = buf[k];
}

}  // namespace simd
}  // namespace capsnet
#endif
