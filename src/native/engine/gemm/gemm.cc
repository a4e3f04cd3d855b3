// The built-in GEMM's driver: cache blocking, packing, edge tiles, a direct
// path for products too thin to pay for packing, the portable micro-kernel,
// and the CPU feature checks that pick a kernel at run time (see gemm.h).
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace capsnet {
namespace gemm {
namespace {

// --- Packing ---------------------------------------------------------------
// Four floats, for the 4 x 4 transposes of the packing (GCC's and clang's
// vector extension: SSE on x86-64, NEON on arm64).
typedef float Quad __attribute__((vector_size(16)));
#if defined(__clang__)
#define CAPSNET_SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define CAPSNET_SHUFFLE(a, b, ...) __builtin_shuffle(a, b, (__attribute__((vector_size(16))) int){__VA_ARGS__})
#endif

// dst[k * stride + r] = src[r * ld + k] for r, k < 4: four rows of four
// consecutive values become four groups of one value per row. Packing an
// operand whose rows run along the depth is this transpose; done one float
// at a time it cost as much as half the multiply-adds of the spectral
// convolution's products.
inline void transpose4(const float* src, int64_t ld, float* dst, int64_t stride) {
  Quad r0, r1, r2, r3;
  std::memcpy(&r0, src, sizeof r0);
  std::memcpy(&r1, src + ld, sizeof r1);
  std::memcpy(&r2, src + 2 * ld, sizeof r2);
  std::memcpy(&r3, src + 3 * ld, sizeof r3);
  const Quad t0 = CAPSNET_SHUFFLE(r0, r1, 0, 4, 1, 5), t1 = CAPSNET_SHUFFLE(r0, r1, 2, 6, 3, 7);
  const Quad t2 = CAPSNET_SHUFFLE(r2, r3, 0, 4, 1, 5), t3 = CAPSNET_SHUFFLE(r2, r3, 2, 6, 3, 7);
  const Quad k0 = CAPSNET_SHUFFLE(t0, t2, 0, 1, 4, 5), k1 = CAPSNET_SHUFFLE(t0, t2, 2, 3, 6, 7);
  const Quad k2 = CAPSNET_SHUFFLE(t1, t3, 0, 1, 4, 5), k3 = CAPSNET_SHUFFLE(t1, t3, 2, 3, 6, 7);
  std::memcpy(dst, &k0, sizeof k0);
  std::memcpy(dst + stride, &k1, sizeof k1);
  std::memcpy(dst + 2 * stride, &k2, sizeof k2);
  std::memcpy(dst + 3 * stride, &k3, sizeof k3);
}

// dst[k * stride + r] = src[r * ld + k] for r < rows, k < kc, through 4 x 4
// transposes where four rows and four values remain.
void transposeStrip(const float* src, int64_t ld, int64_t rows, int64_t kc, float* dst, int64_t stride) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) transpose4(src + r * ld + k, ld, dst + k * stride + r, stride);
    for (; k < kc; k++)
      for (int64_t q = r; q < r + 4; q++) dst[k * stride + q] = src[q * ld + k];
  }
  for (; r < rows; r++)
    for (int64_t k = 0; k < kc; k++) dst[k * stride + r] = src[r * ld + k];
}
// op(A)(i, k) and op(B)(k, j) of a row-major operand.
inline const float* elemA(bool trans, const float* A, int64_t lda, int64_t i, int64_t k) {
  return trans ? A + k * lda + i : A + i * lda + k;
}

// A block (rows [i0, i0+mc), depth [k0, k0+kc)) into MR-high strips:
// strip s holds, for each k, the MR values op(A)(i0 + s*MR + r, k0 + k).
// Rows past mc are zero, so the kernel always runs a full tile.
void packA(bool trans, const float* A, int64_t lda, int64_t i0, int64_t k0, int64_t mc, int64_t kc, int mr, float* dst) {
  for (int64_t s = 0; s < mc; s += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - s);
    float* strip = dst + s * kc;
    if (trans) {
      // op(A) rows are contiguous in memory for a fixed k.
      for (int64_t k = 0; k < kc; k++) {
        const float* src = elemA(true, A, lda, i0 + s, k0 + k);
        float* d = strip + k * mr;
        int64_t r = 0;
        for (; r < rows; r++) d[r] = src[r];
        for (; r < mr; r++) d[r] = 0.0f;
      }
    } else {
      transposeStrip(elemA(false, A, lda, i0 + s, k0), lda, rows, kc, strip, mr);
      for (int64_t r = rows; r < mr; r++)
        for (int64_t k = 0; k < kc; k++) strip[k * mr + r] = 0.0f;
    }
  }
}

// B block (depth [k0, k0+kc), columns [j0, j0+nc)) into NR-wide strips:
// strip s holds, for each k, the NR values op(B)(k0 + k, j0 + s*NR + c).
void packB(bool trans, const float* B, int64_t ldb, int64_t k0, int64_t j0, int64_t kc, int64_t nc, int nr, float* dst) {
  for (int64_t s = 0; s < nc; s += nr) {
    const int64_t cols = std::min<int64_t>(nr, nc - s);
    float* strip = dst + s * kc;
    if (!trans) {
      for (int64_t k = 0; k < kc; k++) {
        const float* src = B + (k0 + k) * ldb + j0 + s;
        float* d = strip + k * nr;
        int64_t c = 0;
        for (; c < cols; c++) d[c] = src[c];
        for (; c < nr; c++) d[c] = 0.0f;
      }
    } else {
      // op(B)(k, j) = B[j, k]: each column of the strip is a contiguous row of B.
      transposeStrip(B + (j0 + s) * ldb + k0, ldb, cols, kc, strip, nr);
      for (int64_t c = cols; c < nr; c++)
        for (int64_t k = 0; k < kc; k++) strip[k * nr + c] = 0.0f;
    }
  }
}

// Per-thread packing space, grown on demand and kept: every pool thread and
// the JS thread has its own, so concurrent GEMMs never share a buffer.
struct Scratch {
  float* data = nullptr;
  size_t floats = 0;
  ~Scratch() { std::free(data); }
  float* get(size_t n) {
    if (n > floats) {
      std::free(data);
      data = nullptr;
      floats = 0;
      // 64-byte aligned, for the kernels' aligned loads of packed strips.
      size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      data = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data) throw std::bad_alloc();
      floats = n;
    }
    return data;
  }
};
thread_local Scratch scratchA, scratchB;

// C = beta * C, with beta == 0 writing zeros (C is not read: BLAS semantics).
void scaleC(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  if (beta == 1.0f) return;
  for (int64_t i = 0; i < M; i++) {
    float* row = C + i * ldc;
    if (beta == 0.0f) std::memset(row, 0, sizeof(float) * N);
    else for (int64_t j = 0; j < N; j++) row[j] *= beta;
  }
}

// Products with a side too thin for a register tile (a single image through
// a dense layer, a matrix-vector product): packing would cost as much as the
// arithmetic and pad a row to MR, so multiply straight from the operands.
void direct(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  scaleC(M, N, beta, C, ldc);
  for (int64_t i = 0; i < M; i++) {
    float* c = C + i * ldc;
    if (!transB) {
      // C row += alpha * A(i,k) * B row k: unit stride, vectorised by the compiler.
      for (int64_t k = 0; k < K; k++) {
        const float s = alpha * *elemA(transA, A, lda, i, k);
        const float* b = B + k * ldb;
        for (int64_t j = 0; j < N; j++) c[j] += s * b[j];
      }
    } else {
      // C(i,j) += alpha * <A row i, B row j>, summed in 8 lanes so that the
      // loop vectorises without reassociation flags.
      for (int64_t j = 0; j < N; j++) {
        const float* b = B + j * ldb;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t k = 0;
        if (!transA) {
          const float* a = A + i * lda;
          for (; k + 8 <= K; k += 8)
            for (int l = 0; l < 8; l++) acc[l] += a[k + l] * b[k + l];
        }
        float sum = 0.0f;
        for (; k < K; k++) sum += *elemA(transA, A, lda, i, k) * b[k];
        for (int l = 0; l < 8; l++) sum += acc[l];
        c[j] += alpha * sum;
      }
    }
  }
}

// Portable micro-kernel, on 4-wide vectors. On arm64 it is written with NEON
// intrinsics and named "neon": 8 x 8, since AArch64 has 32 vector registers
// (16 accumulators, two B vectors and a broadcast use 19), and vfmaq_f32 is a
// fused multiply-add (one rounding per step, like the AVX kernels' FMA).
// Elsewhere it uses GCC's and clang's vector extension (SSE2 on any x86-64;
// the engine's supported compilers all have it): 6 x 8, so that 12
// accumulators, two B vectors and a broadcast fit the 16 registers of the
// smallest of those targets.
#if defined(__aarch64__) && defined(__ARM_NEON)
constexpr const char* kPortableIsa = "neon";
constexpr int kPortableMr = 8, kPortableNr = 8;
struct PortableVec {
  using V = float32x4_t;
  static constexpr int kLanes = 4;
  static V zero() { return vdupq_n_f32(0.0f); }
  static V load(const float* p) { return vld1q_f32(p); }
  static V loadu(const float* p) { return vld1q_f32(p); }
  static void storeu(float* p, V v) { vst1q_f32(p, v); }
  static V broadcast(const float* p) { return vld1q_dup_f32(p); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
};
#else
constexpr const char* kPortableIsa = "portable";
constexpr int kPortableMr = 6, kPortableNr = 8;
struct PortableVec {
  typedef float V __attribute__((vector_size(16)));
  static constexpr int kLanes = 4;
  static V zero() { return V{0, 0, 0, 0}; }
  static V load(const float* p) { return loadu(p); }
  static V loadu(const float* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static void storeu(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }
  static V broadcast(const float* p) { return V{*p, *p, *p, *p}; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V mul(V a, V b) { return a * b; }
};
#endif


}  // namespace
}  // namespace gemm
}  // namespace capsnet

#define CAPSNET_GEMM_TARGET
#include "gemmMicroKernel.h"

namespace capsnet {
namespace gemm {


const Kernel* portableKernel() {
  static const Kernel k{kPortableIsa, kPortableMr, kPortableNr, 256, 120, 4096, microKernel<PortableVec, kPortableMr>};
  return &k;
}

void run(const Kernel& kern, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    // Nothing to add: only the scaling of C remains (A and B are not read,
    // so NaN in them does not reach C, as in reference BLAS).
    scaleC(M, N, beta, C, ldc);
    return;
  }
  const int mr = kern.mr, nr = kern.nr;
  if (M < mr / 2 || N < nr / 2 || M * N * K < 4096) {
    direct(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t KC = kern.kc;
  // Blocks are whole tiles (the packed strips of a block are padded to a
  // full tile, so a block that is not would overrun its buffer), shrunk for
  // small problems so the buffers stay small.
  const auto tiles = [](int64_t n, int64_t tile) { return (n + tile - 1) / tile * tile; };
  const int64_t MC = std::min(std::max<int64_t>(mr, kern.mc / mr * mr), tiles(M, mr));
  const int64_t NC = std::min(std::max<int64_t>(nr, kern.nc / nr * nr), tiles(N, nr));
  float* pa = scratchA.get(static_cast<size_t>(MC * std::min<int64_t>(KC, K)));
  float* pb = scratchB.get(static_cast<size_t>(NC * std::min<int64_t>(KC, K)));
  alignas(64) float edge[32 * 32];  // an edge tile, computed whole then copied in
  if (mr * nr > 32 * 32) throw std::logic_error("gemm: register tile larger than the edge buffer");

  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      // Later depth blocks add to what the first one wrote.
      const float betaBlock = pc == 0 ? beta : 1.0f;
      packB(transB, B, ldb, pc, jc, kc, nc, nr, pb);
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        packA(transA, A, lda, ic, pc, mc, kc, mr, pa);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const int64_t cols = std::min<int64_t>(nr, nc - jr);
          const float* bs = pb + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += mr) {
            const int64_t rows = std::min<int64_t>(mr, mc - ir);
            const float* as = pa + ir * kc;
            float* c = C + (ic + ir) * ldc + jc + jr;
            if (rows == mr && cols == nr) {
              kern.run(kc, as, bs, c, ldc, alpha, betaBlock);
            } else {
              kern.run(kc, as, bs, edge, nr, 1.0f, 0.0f);
              for (int64_t i = 0; i < rows; i++) {
                float* dst = c + i * ldc;
                const float* src = edge + i * nr;
                if (betaBlock == 0.0f) for (int64_t j = 0; j < cols; j++) dst[j] = alpha * src[j];
                else for (int64_t j = 0; j < cols; j++) dst[j] = alpha * src[j] + betaBlock * dst[j];
              }
            }
          }
        }
      }
    }
  }
}

bool cpuSupports(const char* isa) {
  // The portable kernel runs on every CPU of its architecture.
  if (std::strcmp(isa, kPortableIsa) == 0) return true;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  // __builtin_cpu_supports also checks that the OS saves the wider
  // registers (XCR0), so a kernel it allows cannot fault.
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx512") == 0) return __builtin_cpu_supports("avx512f") && avx512Kernel() != nullptr;
  if (std::strcmp(isa, "avx2") == 0)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && avx2Kernel() != nullptr;
#endif
  return false;
}

}  // namespace gemm
}  // namespace capsnet
