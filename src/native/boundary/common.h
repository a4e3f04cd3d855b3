// Shared pieces of the native engine: argument checking at the N-API
// boundary and checked size arithmetic.
//
// Every entry point receives typed arrays and integers from JS. Nothing from
// JS is trusted: each array's element type and length are checked against
// the shape it is supposed to have before any pointer is dereferenced, and a
// mismatch becomes a JS exception (never a crash or an out-of-bounds access).
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace capsnet {

// Thrown for bad arguments; the entry wrapper turns it into a JS Error.
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

// Element type of a JS typed array, as N-API reports it.
template <typename T>
struct TypedArrayKind;
template <>
struct TypedArrayKind<float> {
  static constexpr napi_typedarray_type value = napi_float32_array;
  static constexpr const char* name = "Float32Array";
};
template <>
struct TypedArrayKind<int32_t> {
  static constexpr napi_typedarray_type value = napi_int32_array;
  static constexpr const char* name = "Int32Array";
};
template <>
struct TypedArrayKind<uint8_t> {
  static constexpr napi_typedarray_type value = napi_uint8_array;
  static constexpr const char* name = "Uint8Array";
};

// The arguments of one call, read and checked on demand.
class Args {
 public:
  Args(napi_env env, napi_callback_info info) : env_(env) {
    size_t argc = kMaxArgs;
    napi_value argv[kMaxArgs];
    check(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    if (argc > kMaxArgs) fail("too many arguments");
    args_.assign(argv, argv + argc);
  }

  napi_env env() const { return env_; }
  size_t count() const { return args_.size(); }

  napi_value raw(size_t i) const {
    if (i >= args_.size()) fail("argument " + std::to_string(i) + " is missing");
    return args_[i];
  }

  // A typed array of element type T with exactly `expected` elements
  // (expected < 0: any length).
  template <typename T>
  View<T> array(size_t i, const char* name, int64_t expected = -1) const {
    return typedArray<T>(raw(i), name, expected);
  }

  template <typename T>
  View<T> typedArray(napi_value v, const char* name, int64_t expected) const {
    bool isTyped = false;
    check(napi_is_typedarray(env_, v, &isTyped));
    if (!isTyped) fail(std::string(name) + ": expected a " + TypedArrayKind<T>::name);
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value buffer;
    size_t offset = 0;
    check(napi_get_typedarray_info(env_, v, &type, &length, &data, &buffer, &offset));
    if (type != TypedArrayKind<T>::value) fail(std::string(name) + ": expected a " + TypedArrayKind<T>::name);
    if (expected >= 0 && static_cast<int64_t>(length) != expected) {
      fail(std::string(name) + ": expected " + std::to_string(expected) + " elements, got " + std::to_string(length));
    }
    if (length > 0 && data == nullptr) fail(std::string(name) + ": detached buffer");
    View<T> out;
    out.data = static_cast<T*>(data);
    out.length = static_cast<int64_t>(length);
    return out;
  }

  View<float> f32(size_t i, const char* name, int64_t expected = -1) const { return array<float>(i, name, expected); }

  // A JS array of exactly `count` Float32Arrays of `expected` elements each.
  std::vector<View<float>> f32List(size_t i, const char* name, int64_t count, int64_t expected) const {
    napi_value list = raw(i);
    bool isArray = false;
    check(napi_is_array(env_, list, &isArray));
    if (!isArray) fail(std::string(name) + ": expected an array of Float32Arrays");
    uint32_t n = 0;
    check(napi_get_array_length(env_, list, &n));
    if (static_cast<int64_t>(n) != count) fail(std::string(name) + ": expected " + std::to_string(count) + " arrays, got " + std::to_string(n));
    std::vector<View<float>> out;
    for (uint32_t k = 0; k < n; k++) {
      napi_value e;
      check(napi_get_element(env_, list, k, &e));
      out.push_back(typedArray<float>(e, name, expected));
    }
    return out;
  }

  double number(size_t i, const char* name) const {
    napi_value v = raw(i);
    napi_valuetype t;
    check(napi_typeof(env_, v, &t));
    if (t != napi_number) fail(std::string(name) + ": expected a number");
    double d = 0;
    check(napi_get_value_double(env_, v, &d));
    return d;
  }

  // An integer in [lo, hi].
  int64_t integer(size_t i, const char* name, int64_t lo, int64_t hi) const {
    double d = number(i, name);
    if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d))) {
      fail(std::string(name) + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(d));
    }
    return static_cast<int64_t>(d);
  }

  bool boolean(size_t i, const char* name) const {
    napi_value v = raw(i);
    napi_valuetype t;
    check(napi_typeof(env_, v, &t));
    if (t != napi_boolean) fail(std::string(name) + ": expected a boolean");
    bool b = false;
    check(napi_get_value_bool(env_, v, &b));
    return b;
  }

  // A JS string of at most 63 bytes (names of settings).
  std::string string(size_t i, const char* name) const {
    napi_value v = raw(i);
    napi_valuetype t;
    check(napi_typeof(env_, v, &t));
    if (t != napi_string) fail(std::string(name) + ": expected a string");
    char buf[65];
    size_t len = 0;
    check(napi_get_value_string_utf8(env_, v, buf, sizeof(buf), &len));
    if (len >= 64) fail(std::string(name) + ": string too long");
    return std::string(buf, len);
  }

  // A JS array of non-negative integers (a shape), at most maxRank long.
  std::vector<int64_t> dims(size_t i, const char* name, size_t maxRank = 8) const {
    return intList(i, name, 0, INT32_MAX, maxRank);
  }

  std::vector<int64_t> intList(size_t i, const char* name, int64_t lo, int64_t hi, size_t maxLength = 8) const {
    napi_value v = raw(i);
    bool isArray = false;
    check(napi_is_array(env_, v, &isArray));
    if (!isArray) fail(std::string(name) + ": expected an array of integers");
    uint32_t n = 0;
    check(napi_get_array_length(env_, v, &n));
    if (n > maxLength) fail(std::string(name) + ": too many entries");
    std::vector<int64_t> out(n);
    for (uint32_t k = 0; k < n; k++) {
      napi_value e;
      check(napi_get_element(env_, v, k, &e));
      napi_valuetype t;
      check(napi_typeof(env_, e, &t));
      if (t != napi_number) fail(std::string(name) + ": expected integers");
      double d = 0;
      check(napi_get_value_double(env_, e, &d));
      if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d))) {
        fail(std::string(name) + ": entry out of range");
      }
      out[k] = static_cast<int64_t>(d);
    }
    return out;
  }

  // What the call returns to JS (undefined unless set).
  napi_value result = nullptr;

 private:
  static constexpr size_t kMaxArgs = 24;
  void check(napi_status s) const {
    if (s != napi_ok) fail("N-API call failed");
  }
  napi_env env_;
  std::vector<napi_value> args_;
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

using Entry = void (*)(Args&);

struct Export {
  const char* name;
  napi_callback fn;
};

napi_value invoke(napi_env env, napi_callback_info info, Entry fn);

// The N-API callback for entry F: runs it and converts C++ exceptions into JS
// errors.
template <Entry F>
napi_value entry(napi_env env, napi_callback_info info) {
  return invoke(env, info, F);
}

// Each source file adds its entry points here.
void addExports(std::vector<Export>& out);
void addElementwiseExports(std::vector<Export>& out);
void addReduceExports(std::vector<Export>& out);
void addLayoutExports(std::vector<Export>& out);
void addMatmulExports(std::vector<Export>& out);
void addConvExports(std::vector<Export>& out);
void addSquashExports(std::vector<Export>& out);
void addPredictionVectorsExports(std::vector<Export>& out);
void addMatrixVotesExports(std::vector<Export>& out);
void addDynamicRoutingExports(std::vector<Export>& out);
void addAdamUpdateExports(std::vector<Export>& out);
void addBiasReluExports(std::vector<Export>& out);
void addEmRoutingExports(std::vector<Export>& out);
void addMemoryExports(std::vector<Export>& out);

}  // namespace capsnet
