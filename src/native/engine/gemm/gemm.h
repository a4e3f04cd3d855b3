// The engine's own single-precision GEMM: the internals shared by the driver
// (gemm.cc) and the per-instruction-set micro-kernels (gemmAvx512.cc,
// gemmAvx2.cc, and the portable one in gemm.cc).
//
// The scheme is the usual one for CPU GEMM (Goto and van de Geijn, "Anatomy
// of high-performance matrix multiplication", 2008): op(B) is packed in
// KC x NC blocks cut into NR-wide strips, op(A) in MC x KC blocks cut into
// MR-high strips, and a register-blocked micro-kernel multiplies one A strip
// by one B strip, MR x NR results held in vector registers for the whole KC
// loop. The strips are laid out in the order the kernel reads them, so the
// kernel streams through memory with unit stride.
#pragma once

#include <cstdint>

namespace capsnet {
namespace gemm {

// c[MR x NR] (row stride ldc) = alpha * sum_k a[k*MR + i] * b[k*NR + j] + beta * c.
// beta == 0 means c is not read (it may hold NaN or garbage), as in BLAS.
using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta);

struct Kernel {
  const char* isa;  // "avx512", "avx2", "portable" ("neon" on arm64)
  int mr, nr;       // register tile
  int64_t kc, mc, nc;  // cache blocks: kc*nr floats stay in L1, mc*kc in L2, kc*nc in L3
  MicroKernel run;
};

// Each returns null where that instruction set was not compiled in (a
// non-x86 build or a compiler without the target attribute).
const Kernel* avx512Kernel();
const Kernel* avx2Kernel();
const Kernel* portableKernel();

// Row-major C[M,N] = alpha * op(A) op(B) + beta * C with the given kernel, on
// the calling thread.
void run(const Kernel& k, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Whether this CPU (and its operating system) can run an instruction set.
bool cpuSupports(const char* isa);

}  // namespace gemm
}  // namespace capsnet
