// Denormal (subnormal) floats are flushed to zero inside the engine.
//
// On x86, an arithmetic instruction that reads or produces a denormal (a
// nonzero magnitude below 1.18e-38 in float32) takes a microcode assist of
// about a hundred cycles instead of one. Training gradients reach that range:
// the paper CapsNet's gradients at the primary capsules are around 1e-8, and
// their frequency-domain products with small twiddles and filter spectra fall
// below it. Measured on a Xeon (SkylakeX) machine, the primary capsules'
// input gradient took 230 ms a batch on real gradients against 115 ms on the
// same gradients scaled by 1e6, and the whole training step 611 ms.
//
// Flushing changes a result only where an input or an intermediate value is
// below 1.18e-38 in magnitude, and then as if that value were 0: a product
// that would be denormal is 0, and so is a denormal input, so that an op
// which magnifies it differs from IEEE (1e-40 * 1e30 gives 0, not 1e-10;
// log, division, square root, sign and comparisons see 0). The models keep
// clear of that range: every log, division and square root has a floor in
// the normal range (squash's 1e-12, EM's variance floor, Adam's epsilon),
// softmax and routing normalise after subtracting the maximum, and the
// float64 fixtures never reach it.
//
// The mode is per thread. Pool workers set it once when they start (they run
// only engine code; started from inside a call, they would inherit it, but
// nothing should depend on that). The JS thread sets it for each call into
// the engine and restores its own afterwards: JavaScript's doubles must keep
// IEEE semantics, denormals included.
//
// x86 only (MXCSR's FTZ and DAZ bits); elsewhere this is a no-op and
// denormals are computed exactly.
#pragma once

#if defined(__SSE2__) || defined(__x86_64__)
#include <immintrin.h>
#define CAPSNET_HAVE_MXCSR 1
#endif

namespace capsnet {

#ifdef CAPSNET_HAVE_MXCSR
constexpr bool kFlushesDenormals = true;
// MXCSR bits: flush-to-zero (denormal results become 0) and
// denormals-are-zero (denormal inputs are read as 0).
constexpr unsigned kFlushToZero = 0x8000;
constexpr unsigned kDenormalsAreZero = 0x0040;
#else
constexpr bool kFlushesDenormals = false;
#endif

// For a thread that runs only engine code.
inline void flushDenormalsOnThisThread() {
#ifdef CAPSNET_HAVE_MXCSR
  _mm_setcsr(_mm_getcsr() | kFlushToZero | kDenormalsAreZero);
#endif
}

// For the span of one call from JS: sets the flush mode, restores the
// caller's on exit (exceptions included).
class DenormalsFlushed {
 public:
#ifdef CAPSNET_HAVE_MXCSR
  DenormalsFlushed() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~DenormalsFlushed() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#else
  DenormalsFlushed() {}
#endif
  DenormalsFlushed(const DenormalsFlushed&) = delete;
  DenormalsFlushed& operator=(const DenormalsFlushed&) = delete;
};

}  // namespace capsnet
