// Engine memory shared by tensors and kernel scratch (see memory.cc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace capsnet {

// Uninitialized floats for the length of one kernel call, from the same
// store as tensor memory: blocks from 1 MB go back to it when the call
// ends and serve the next call that asks for the same size, so the page
// faults of fresh memory are paid once rather than on every call. (The
// frequency-domain convolution's spectra are 40-64 MB, and fresh pages were
// a quarter of its time.)
class ScratchFloats {
 public:
  explicit ScratchFloats(int64_t n);
  ~ScratchFloats();
  ScratchFloats(const ScratchFloats&) = delete;
  ScratchFloats& operator=(const ScratchFloats&) = delete;
  float* get() const { return data_; }

 private:
  void* origin_;
  float* data_;
  size_t bytes_;
};

}  // namespace capsnet
