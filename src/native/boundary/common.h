// Shared pieces of the native engine: the error an entry point throws for
// bad settings, checked size arithmetic, and views of the arrays it was
// given. Nothing here touches N-API (args.h reads the settings, entry.h
// registers the entry points).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace capsnet {

// Thrown for bad settings; invoke() (entry.h) turns it into a JS TypeError.
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& message) { throw ArgError(message); }

inline void require(bool ok, const char* what, const std::string& detail = "") {
  if (!ok) fail(detail.empty() ? std::string(what) : std::string(what) + ": " + detail);
}

// Product of dimensions, failing on negative dims or 64-bit overflow.
inline int64_t checkedProduct(const std::vector<int64_t>& dims, const char* what) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) fail(std::string(what) + ": negative dimension");
    if (d != 0 && n > INT64_MAX / d) fail(std::string(what) + ": size overflows");
    n *= d;
  }
  return n;
}

inline int64_t checkedMul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0) fail(std::string(what) + ": negative size");
  if (a != 0 && b > INT64_MAX / a) fail(std::string(what) + ": size overflows");
  return a * b;
}

template <typename T>
struct View {
  T* data = nullptr;
  int64_t length = 0;
};

// Outputs must not share memory with inputs for kernels that read inputs
// after writing outputs.
template <typename A, typename B>
inline void requireDisjoint(const View<A>& a, const View<B>& b, const char* what) {
  if (a.length == 0 || b.length == 0) return;
  auto a0 = reinterpret_cast<uintptr_t>(a.data), a1 = a0 + sizeof(A) * static_cast<uintptr_t>(a.length);
  auto b0 = reinterpret_cast<uintptr_t>(b.data), b1 = b0 + sizeof(B) * static_cast<uintptr_t>(b.length);
  if (a0 < b1 && b0 < a1) fail(std::string(what) + ": output overlaps an input");
}

}  // namespace capsnet
