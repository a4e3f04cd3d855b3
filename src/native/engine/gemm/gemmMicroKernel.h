// The register-blocked micro-kernel of the built-in GEMM (see gemm.h),
// written once for every vector width. Each instruction set's file
// (gemmAvx512.cc, gemmAvx2.cc, and gemm.cc for the portable kernel, with an
// empty target) defines, before including this header,
//
//   CAPSNET_GEMM_TARGET  the function attribute of its instruction set, and
//   struct Vec           the vector type and its few operations (zero, load,
//                        loadu, storeu, broadcast, fma, mul), each with that
//                        attribute, and kLanes floats per vector,
//
// and instantiates microKernel<Vec, MR> in its own anonymous namespace, so
// that each copy is compiled for its instruction set only.
//
// The tile is MR rows by two vectors: MR * 2 accumulators stay in registers
// for the whole depth loop, which per step loads two vectors of the packed B
// strip and broadcasts one value of the packed A strip per row.
#pragma once

#include <cstdint>

namespace capsnet {
namespace gemm {
namespace {

template <typename Vec, int MR>
CAPSNET_GEMM_TARGET void microKernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                                     float beta) {
  using V = typename Vec::V;
  constexpr int L = Vec::kLanes;
  V acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = Vec::zero();
  for (int64_t k = 0; k < kc; k++) {
    const V b0 = Vec::load(b);
    const V b1 = Vec::load(b + L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const V ai = Vec::broadcast(a + i);
      acc[i][0] = Vec::fma(ai, b0, acc[i][0]);
      acc[i][1] = Vec::fma(ai, b1, acc[i][1]);
    }
    a += MR;
    b += 2 * L;
  }
  const V va = Vec::broadcast(&alpha);
  if (beta == 0.0f) {
    // C is not read: it may hold NaN (BLAS semantics).
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      Vec::storeu(c + i * ldc, Vec::mul(va, acc[i][0]));
      Vec::storeu(c + i * ldc + L, Vec::mul(va, acc[i][1]));
    }
  } else {
    const V vb = Vec::broadcast(&beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      float* row = c + i * ldc;
      Vec::storeu(row, Vec::fma(va, acc[i][0], Vec::mul(vb, Vec::loadu(row))));
      Vec::storeu(row + L, Vec::fma(va, acc[i][1], Vec::mul(vb, Vec::loadu(row + L))));
    }
  }
}

}  // namespace
}  // namespace gemm
}  // namespace capsnet
