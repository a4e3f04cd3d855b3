// The settings of one call into the engine, read by name.
//
// Every entry point declares the names of its settings where it is defined
// (CAPSNET_ENTRY(squash, "s", "out", "dim"), see entry.h), and JS calls it
// with one object of those settings, addon.squash({ s, out, dim }): the
// loader (src/native/boundary/addon.ts) refuses a setting the entry does not
// declare, naming it, and hands the values over in the declared order, so
// that no code anyone writes passes anything by position. The entry reads
// each setting by name; one it needs that the object lacks is an error
// naming it ("conv2d: missing setting 'filter'").
//
// Nothing from JS is trusted: each setting's type is checked as it is read,
// each array's element type and length are checked against the shape it is
// supposed to have before any pointer is dereferenced, and a mismatch becomes
// a JS exception (never a crash or an out-of-bounds access).
#pragma once

#include <node_api.h>

#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace capsnet {

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

class Args {
 public:
  // The call of entry `entry`, whose settings are declared as `names`, with
  // `argc` values: those of the settings, in that order, in `argv`. Fewer
  // values than names leave the rest absent; more is an error.
  Args(napi_env env, const char* entry, const std::vector<const char*>& names, size_t argc, const napi_value* argv)
      : env_(env), entry_(entry), names_(names), argc_(argc), argv_(argv) {
    if (argc > names.size()) {
      fail(std::string(entry) + ": takes " + std::to_string(names.size()) + " settings, got " + std::to_string(argc) + " values");
    }
  }

  napi_env env() const { return env_; }
  const char* entry() const { return entry_; }

  // ---- Required settings: absent (or undefined) is an error naming them.

  // A typed array of element type T with exactly `expected` elements
  // (expected < 0: any length).
  template <typename T>
  View<T> array(const char* name, int64_t expected = -1) {
    return typedArray<T>(name, lookup(name, true), expected);
  }

  View<float> f32(const char* name, int64_t expected = -1) { return array<float>(name, expected); }

  // A JS array of exactly `count` Float32Arrays of `expected` elements each.
  std::vector<View<float>> f32List(const char* name, int64_t count, int64_t expected) {
    Value list = lookup(name, true);
    bool isArray = false;
    check(napi_is_array(env_, list.v, &isArray));
    if (!isArray) bad(name, "expected an array of Float32Arrays");
    uint32_t n = 0;
    check(napi_get_array_length(env_, list.v, &n));
    if (static_cast<int64_t>(n) != count) bad(name, "expected " + std::to_string(count) + " arrays, got " + std::to_string(n));
    std::vector<View<float>> out;
    for (uint32_t k = 0; k < n; k++) {
      Value e;
      check(napi_get_element(env_, list.v, k, &e.v));
      check(napi_typeof(env_, e.v, &e.type));
      out.push_back(typedArray<float>(name, e, expected));
    }
    return out;
  }

  double number(const char* name) { return toNumber(name, lookup(name, true)); }

  // An integer in [lo, hi].
  int64_t integer(const char* name, int64_t lo, int64_t hi) { return toInteger(name, lookup(name, true), lo, hi); }

  // An op code of `Op`, an enum class whose last member is Count (see
  // CAPSNET_OP_TABLE in entry.h): JS takes the codes from the addon's op
  // tables, so a code is checked only for its range here.
  template <typename Op>
  Op op(const char* name) {
    return static_cast<Op>(integer(name, 0, static_cast<int64_t>(Op::Count) - 1));
  }

  bool boolean(const char* name) { return toBoolean(name, lookup(name, true)); }

  // A JS string of at most 63 bytes (names of settings).
  std::string string(const char* name) { return toString(name, lookup(name, true)); }

  // A JS array of non-negative integers (a shape), at most maxRank long.
  std::vector<int64_t> dims(const char* name, size_t maxRank = 8) { return intList(name, 0, INT32_MAX, maxRank); }

  std::vector<int64_t> intList(const char* name, int64_t lo, int64_t hi, size_t maxLength = 8) {
    Value list = lookup(name, true);
    bool isArray = false;
    check(napi_is_array(env_, list.v, &isArray));
    if (!isArray) bad(name, "expected an array of integers");
    uint32_t n = 0;
    check(napi_get_array_length(env_, list.v, &n));
    if (n > maxLength) bad(name, "too many entries");
    std::vector<int64_t> out(n);
    for (uint32_t k = 0; k < n; k++) {
      napi_value e;
      check(napi_get_element(env_, list.v, k, &e));
      napi_valuetype t;
      check(napi_typeof(env_, e, &t));
      if (t != napi_number) bad(name, "expected integers");
      double d = 0;
      check(napi_get_value_double(env_, e, &d));
      if (!isIntegerIn(d, lo, hi)) bad(name, "entry out of range");
      out[k] = static_cast<int64_t>(d);
    }
    return out;
  }

  // Any JS value, for entries that check it themselves (an ArrayBuffer).
  napi_value value(const char* name) { return lookup(name, true).v; }

  // ---- Optional settings: absent (or undefined) gives the fallback.

  double number(const char* name, double fallback) {
    Value v = lookup(name, false);
    return v.v ? toNumber(name, v) : fallback;
  }

  int64_t integer(const char* name, int64_t lo, int64_t hi, int64_t fallback) {
    Value v = lookup(name, false);
    return v.v ? toInteger(name, v, lo, hi) : fallback;
  }

  template <typename Op>
  Op op(const char* name, Op fallback) {
    Value v = lookup(name, false);
    return v.v ? static_cast<Op>(toInteger(name, v, 0, static_cast<int64_t>(Op::Count) - 1)) : fallback;
  }

  bool boolean(const char* name, bool fallback) {
    Value v = lookup(name, false);
    return v.v ? toBoolean(name, v) : fallback;
  }

  std::string string(const char* name, const std::string& fallback) {
    Value v = lookup(name, false);
    return v.v ? toString(name, v) : fallback;
  }

  // A Float32Array, or an empty view when absent.
  View<float> optionalF32(const char* name) {
    Value v = lookup(name, false);
    return v.v ? typedArray<float>(name, v, -1) : View<float>{};
  }

  // Fails naming the first declared setting the entry did not read: called
  // by invoke() after the entry returns, so that a declaration and the reads
  // it declares cannot drift apart (every entry reads all its settings on
  // every call).
  void requireAllRead() const {
    for (size_t i = 0; i < names_.size(); i++) {
      if (!(read_ >> i & 1)) fail(std::string(entry_) + ": declares setting '" + names_[i] + "' but did not read it");
    }
  }

  // What the call returns to JS (undefined unless set).
  napi_value result = nullptr;

 private:
  struct Value {
    napi_value v = nullptr;
    napi_valuetype type = napi_undefined;
  };

  static constexpr size_t kMaxNameBytes = 63;

  void check(napi_status s) const {
    if (s != napi_ok) fail(std::string(entry_) + ": N-API call failed");
  }

  [[noreturn]] void bad(const char* name, const std::string& what) const { fail(std::string(entry_) + ": " + name + ": " + what); }

  static bool isIntegerIn(double d, int64_t lo, int64_t hi) {
    return d >= static_cast<double>(lo) && d <= static_cast<double>(hi) && d == static_cast<double>(static_cast<int64_t>(d));
  }

  // Setting `name`: its value, or a null value when absent (an error when
  // required).
  Value lookup(const char* name, bool required) {
    // The declaration and the reads use the same string literals, which the
    // compiler merges: comparing addresses finds the name without a call to
    // strcmp, which is kept for literals it did not merge.
    size_t i = 0;
    while (i < names_.size() && names_[i] != name) i++;
    if (i == names_.size()) {
      i = 0;
      while (i < names_.size() && std::strcmp(names_[i], name) != 0) i++;
    }
    if (i == names_.size()) fail(std::string(entry_) + ": reads setting '" + name + "', which its CAPSNET_ENTRY does not declare");
    read_ |= uint64_t{1} << i;
    Value out;
    if (i < argc_) {
      out.v = argv_[i];
      check(napi_typeof(env_, out.v, &out.type));
    }
    if (out.type == napi_undefined) {
      if (required) fail(std::string(entry_) + ": missing setting '" + name + "'");
      return Value{};
    }
    return out;
  }

  template <typename T>
  View<T> typedArray(const char* name, const Value& v, int64_t expected) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value buffer;
    size_t offset = 0;
    // Fails (napi_invalid_arg) for anything but a typed array.
    if (v.type != napi_object || napi_get_typedarray_info(env_, v.v, &type, &length, &data, &buffer, &offset) != napi_ok ||
        type != TypedArrayKind<T>::value) {
      bad(name, std::string("expected a ") + TypedArrayKind<T>::name);
    }
    if (expected >= 0 && static_cast<int64_t>(length) != expected) {
      bad(name, "expected " + std::to_string(expected) + " elements, got " + std::to_string(length));
    }
    if (length > 0 && data == nullptr) bad(name, "detached buffer");
    View<T> out;
    out.data = static_cast<T*>(data);
    out.length = static_cast<int64_t>(length);
    return out;
  }

  double toNumber(const char* name, const Value& v) const {
    if (v.type != napi_number) bad(name, "expected a number");
    double d = 0;
    check(napi_get_value_double(env_, v.v, &d));
    return d;
  }

  int64_t toInteger(const char* name, const Value& v, int64_t lo, int64_t hi) const {
    double d = toNumber(name, v);
    if (!isIntegerIn(d, lo, hi)) {
      bad(name, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(d));
    }
    return static_cast<int64_t>(d);
  }

  bool toBoolean(const char* name, const Value& v) const {
    if (v.type != napi_boolean) bad(name, "expected a boolean");
    bool b = false;
    check(napi_get_value_bool(env_, v.v, &b));
    return b;
  }

  std::string toString(const char* name, const Value& v) const {
    if (v.type != napi_string) bad(name, "expected a string");
    char buf[kMaxNameBytes + 2];
    size_t len = 0;
    check(napi_get_value_string_utf8(env_, v.v, buf, sizeof(buf), &len));
    if (len > kMaxNameBytes) bad(name, "string too long");
    return std::string(buf, len);
  }

  napi_env env_;
  const char* entry_;
  const std::vector<const char*>& names_;
  size_t argc_;
  const napi_value* argv_;
  // Bit i: names_[i] was read.
  uint64_t read_ = 0;
};

}  // namespace capsnet
