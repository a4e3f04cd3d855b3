#include "blas.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common.h"
#include "gemm.h"
#include "memory.h"
#include "parallel.h"

#ifdef CAPSNET_WITH_OPENBLAS
extern "C" {
// cblas enums are passed as int: CblasRowMajor = 101, CblasNoTrans = 111,
// CblasTrans = 112. Declared here so that the build depends only on the
// library, not on where a distribution puts cblas.h.
void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc);
void openblas_set_num_threads(int n);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}
#endif

namespace capsnet {

namespace {

#if defined(CAPSNET_WITH_OPENBLAS) && defined(CAPSNET_DEFAULT_OPENBLAS)
constexpr bool kDefaultOpenblas = true;
#else
constexpr bool kDefaultOpenblas = false;
#endif
#ifdef CAPSNET_WITH_OPENBLAS
constexpr bool kHaveOpenblas = true;
#else
constexpr bool kHaveOpenblas = false;
#endif

// The kernel in use; null while OpenBLAS is selected. Set once per process
// when the addon first loads (a worker thread loading it again keeps the
// choice) and by setGemm, which JS calls only between kernels.
std::atomic<const gemm::Kernel*> active{nullptr};
std::atomic<bool> initialised{false};

// The built-in kernels' names, best first. The last is this build's
// portable kernel: "neon" on arm64, "portable" elsewhere (see gemm.cc).
std::vector<const char*> isaNames() { return {"avx512", "avx2", gemm::portableKernel()->isa}; }

// Null for a name this build does not compile (AVX on arm64).
const gemm::Kernel* kernelFor(const std::string& isa) {
  if (isa == "avx512") return gemm::avx512Kernel();
  if (isa == "avx2") return gemm::avx2Kernel();
  if (isa == gemm::portableKernel()->isa) return gemm::portableKernel();
  return nullptr;
}

const gemm::Kernel* bestKernel() {
  for (const char* isa : isaNames())
    if (gemm::cpuSupports(isa)) return kernelFor(isa);
  return gemm::portableKernel();
}

int asInt(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) fail(std::string("sgemm: ") + what + " out of range");
  return static_cast<int>(v);
}

}  // namespace

void setGemm(const std::string& library, const std::string& isa) {
  if (library == "openblas") {
    if (!kHaveOpenblas) fail("setGemm: this build does not link OpenBLAS (rebuild with CAPSNET_BLAS=openblas or auto)");
    if (!isa.empty()) fail("setGemm: an instruction set can only be chosen for the builtin GEMM");
    active = nullptr;
    return;
  }
  if (library != "builtin") fail("setGemm: library must be 'builtin' or 'openblas', got '" + library + "'");
  if (isa.empty()) {
    active = bestKernel();
    return;
  }
  const std::vector<const char*> names = isaNames();
  if (std::find(names.begin(), names.end(), isa) == names.end())
    fail(std::string("setGemm: instruction set must be avx512, avx2 or ") + names.back() + ", got '" + isa + "'");
  if (!gemm::cpuSupports(isa.c_str())) fail("setGemm: this CPU cannot run the " + isa + " GEMM kernel");
  active = kernelFor(isa);
}

std::string initBlas() {
#ifdef CAPSNET_WITH_OPENBLAS
  openblas_set_num_threads(1);
#endif
  if (initialised.exchange(true)) return "";
  active = kDefaultOpenblas ? nullptr : bestKernel();
  const char* lib = std::getenv("CAPSNET_GEMM");
  const char* isa = std::getenv("CAPSNET_GEMM_ISA");
  if (!(lib && *lib) && !(isa && *isa)) return "";
  if (lib && *lib && isa && *isa && std::string(lib) != "builtin")
    return std::string("CAPSNET_GEMM_ISA=") + isa + " chooses a built-in kernel, CAPSNET_GEMM=" + lib + " another GEMM: both ignored";
  // A forced instruction set implies the builtin GEMM.
  std::string library = isa && *isa ? "builtin" : lib;
  try {
    setGemm(library, isa ? isa : "");
  } catch (const std::exception& e) {
    // Runs while the module loads, where a throw would end the process: keep
    // the default and let JS print why.
    return std::string("CAPSNET_GEMM / CAPSNET_GEMM_ISA ignored: ") + e.what();
  }
  return "";
}

GemmInfo gemmInfo() {
  GemmInfo g;
  g.defaultLibrary = kDefaultOpenblas ? "openblas" : "builtin";
  for (const char* isa : isaNames()) {
    if (!gemm::cpuSupports(isa)) continue;
    if (!g.isas.empty()) g.isas += ",";
    g.isas += isa;
  }
#ifdef CAPSNET_WITH_OPENBLAS
  const char* config = openblas_get_config();
  g.openblasConfig = config ? config : "OpenBLAS";
#endif
  if (const gemm::Kernel* k = active.load()) {
    g.gemm = "builtin";
    g.isa = k->isa;
  } else {
    g.gemm = "openblas";
#ifdef CAPSNET_WITH_OPENBLAS
    const char* core = openblas_get_corename();
    g.isa = core ? core : "unknown";
#endif
  }
  return g;
}

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (const gemm::Kernel* k = active.load(std::memory_order_relaxed)) {
    gemm::run(*k, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#ifdef CAPSNET_WITH_OPENBLAS
  if (K == 0 || alpha == 0.0f) {
    // C = beta C, without reading A or B, as the BLAS reference defines it.
    // Explicit here: OpenBLAS 0.3.21's SkylakeX kernels still multiply A and
    // B when alpha is 0, so a NaN in them reached C (seen in the GEMM tests
    // on a Xeon).
    if (beta == 1.0f) return;
    for (int64_t i = 0; i < M; i++) {
      float* row = C + i * ldc;
      if (beta == 0.0f) std::memset(row, 0, sizeof(float) * N);
      else for (int64_t j = 0; j < N; j++) row[j] *= beta;
    }
    return;
  }
  cblas_sgemm(101, transA ? 112 : 111, transB ? 112 : 111, asInt(M, "M"), asInt(N, "N"), asInt(K, "K"), alpha, A,
              asInt(lda, "lda"), B, asInt(ldb, "ldb"), beta, C, asInt(ldc, "ldc"));
#else
  (void)asInt;
  fail("sgemm: no GEMM selected");  // unreachable: without OpenBLAS a kernel is always active
#endif
}

void sgemmParallel(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // A long depth with a small result (a dense layer on a wide input: the CNN
  // baseline's 100352 -> 328 layer at batch 100): split the depth into
  // parts of kDepthPart, spread over the threads, each into its own copy of
  // C, added up in order. Split by rows or columns instead, every thread
  // would read and pack all of the operand on the other side. The parts
  // depend on K alone, and a single thread (or a call from inside a parallel
  // region) runs the same parts in turn, so the result does not depend on
  // the thread count, as with the row and column splits.
  constexpr int64_t kDepthPart = 16384;
  if (K >= 2 * kDepthPart && K >= 8 * std::max(M, N) && M * N <= (int64_t{1} << 20)) {
    const int64_t parts = (K + kDepthPart - 1) / kDepthPart;
    ScratchFloats partial((parts - 1) * M * N);  // parts 1.. each write M x N, ldc N
    const auto part = [&](int64_t p, int) {
      const int64_t k0 = p * kDepthPart, k1 = std::min(K, k0 + kDepthPart);
      const float* a = transA ? A + k0 * lda : A + k0;
      const float* b = transB ? B + k0 : B + k0 * ldb;
      if (p == 0)
        sgemm(transA, transB, M, N, k1 - k0, alpha, a, lda, b, ldb, beta, C, ldc);
      else
        sgemm(transA, transB, M, N, k1 - k0, alpha, a, lda, b, ldb, 0.0f, partial.get() + (p - 1) * M * N, N);
    };
    if (threadCount() > 1 && !inParallelRegion())
      parallelTasks(parts, part);
    else
      for (int64_t p = 0; p < parts; p++) part(p, 0);
    for (int64_t p = 1; p < parts; p++) {
      const float* sum = partial.get() + (p - 1) * M * N;
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) C[i * ldc + j] += sum[i * N + j];
    }
    return;
  }
  int threads = threadCount();
  double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  // Below a few MFLOP the split costs more than it saves.
  if (threads <= 1 || flops < 4e6 || inParallelRegion()) {
    sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger of M and N into two blocks per thread (so that a
  // preempted thread costs less), aligned to the micro-kernel's register
  // tile so that no block ends in a ragged edge (OpenBLAS's tiles divide 16).
  bool byRows = M >= N;
  const gemm::Kernel* k = active.load(std::memory_order_relaxed);
  const int64_t align = k ? (byRows ? k->mr : k->nr) : 16;
  int64_t extent = byRows ? M : N;
  int64_t parts = std::min<int64_t>(2 * static_cast<int64_t>(threads), std::max<int64_t>(1, extent / align));
  if (parts <= 1) {
    sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int64_t blocks = (extent + align - 1) / align;
  parallelTasks(parts, [&](int64_t p, int) {
    int64_t begin = std::min(extent, blocks * p / parts * align);
    int64_t end = std::min(extent, blocks * (p + 1) / parts * align);
    if (begin >= end) return;
    if (byRows) {
      const float* a = transA ? A + begin : A + begin * lda;
      sgemm(transA, transB, end - begin, N, K, alpha, a, lda, B, ldb, beta, C + begin * ldc, ldc);
    } else {
      const float* b = transB ? B + begin * ldb : B + begin;
      sgemm(transA, transB, M, end - begin, K, alpha, A, lda, b, ldb, beta, C + begin, ldc);
    }
  });
}

}  // namespace capsnet
