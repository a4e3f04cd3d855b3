// Module entry: exports every entry point registered with CAPSNET_ENTRY and
// the op tables registered with CAPSNET_OP_TABLE (see entry.h), plus the
// engine's configuration calls.
#include <algorithm>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "blas.h"
#include "denormals.h"
#include "entry.h"
#include "parallel.h"

namespace capsnet {

std::vector<const EntryPoint*>& entryPoints() {
  static std::vector<const EntryPoint*> all;
  return all;
}

std::vector<const OpTable*>& opTables() {
  static std::vector<const OpTable*> all;
  return all;
}

napi_value invoke(napi_env env, napi_callback_info info) {
  // The entry and the values it was given, in one call for entries of up to
  // kFirstRead settings (all but the largest), else in a second one; an
  // extra value is refused below.
  constexpr size_t kFirstRead = 16;
  napi_value argv[kMaxSettings];
  size_t argc = kFirstRead;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok || data == nullptr) {
    napi_throw_error(env, "ERR_CAPSNET_NATIVE", "native engine: unreadable call");
    return nullptr;
  }
  const EntryPoint& entry = *static_cast<const EntryPoint*>(data);
  if (argc > kFirstRead && entry.settings.size() > kFirstRead) {
    size_t given = std::min(argc, entry.settings.size());
    if (napi_get_cb_info(env, info, &given, argv, nullptr, nullptr) != napi_ok) {
      napi_throw_error(env, "ERR_CAPSNET_NATIVE", "native engine: unreadable call");
      return nullptr;
    }
  }
  try {
    // For this call only (see denormals.h); restored before a catch below
    // creates the JS error.
    DenormalsFlushed flushed;
    Args args(env, entry.name, entry.settings, argc, argv);
    entry.fn(args);
    args.requireAllRead();
    return args.result;
  } catch (const ArgError& e) {
    napi_throw_type_error(env, "ERR_CAPSNET_NATIVE_ARG", e.what());
  } catch (const std::bad_alloc&) {
    napi_throw_range_error(env, "ERR_CAPSNET_NATIVE_MEMORY", "native engine: out of memory");
  } catch (const std::exception& e) {
    napi_throw_error(env, "ERR_CAPSNET_NATIVE", e.what());
  } catch (...) {
    napi_throw_error(env, "ERR_CAPSNET_NATIVE", "native engine: unknown error");
  }
  return nullptr;
}

namespace {

napi_value makeString(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return v;
}

std::string& gemmWarning() {
  static std::string warning;
  return warning;
}

// info() -> { gemm, gemmIsa, gemmIsas, gemmDefault, openblas, gemmWarning, threads, simd,
// flushesDenormals }: the GEMM in use and its instruction set (see blas.h),
// the builtin kernels this CPU runs, OpenBLAS's configuration when linked
// (else ""), why an environment override was ignored (else ""), the SIMD
// level the rest of the engine was compiled for, and whether it flushes
// denormals (denormals.h).
CAPSNET_ENTRY(info) {
  napi_env env = a.env();
  napi_value obj, threads;
  napi_create_object(env, &obj);
  GemmInfo g = gemmInfo();
  napi_set_named_property(env, obj, "gemm", makeString(env, g.gemm));
  napi_set_named_property(env, obj, "gemmIsa", makeString(env, g.isa));
  napi_set_named_property(env, obj, "gemmIsas", makeString(env, g.isas));
  napi_set_named_property(env, obj, "gemmDefault", makeString(env, g.defaultLibrary));
  napi_set_named_property(env, obj, "openblas", makeString(env, g.openblasConfig));
  napi_set_named_property(env, obj, "gemmWarning", makeString(env, gemmWarning()));
  napi_create_int32(env, threadCount(), &threads);
  napi_set_named_property(env, obj, "threads", threads);
#if defined(__AVX2__) && defined(__FMA__)
  const char* simd = "avx2+fma";
#elif defined(__AVX__)
  const char* simd = "avx";
#elif defined(__ARM_NEON)
  const char* simd = "neon";
#else
  const char* simd = "baseline";
#endif
  napi_set_named_property(env, obj, "simd", makeString(env, simd));
  napi_value flushes;
  napi_get_boolean(env, kFlushesDenormals, &flushes);
  napi_set_named_property(env, obj, "flushesDenormals", flushes);
  a.result = obj;
}

// setGemm({ library, isa = '' }): 'builtin' or 'openblas'; isa '' (best)
// or 'avx512' | 'avx2' | 'portable' for builtin. Throws when unavailable.
CAPSNET_ENTRY(setGemm, "library", "isa") { capsnet::setGemm(a.string("library"), a.string("isa", "")); }

// setThreads({ threads }): threads for every parallel kernel, the caller
// included.
CAPSNET_ENTRY(setThreads, "threads") { setThreadCount(static_cast<int>(a.integer("threads", 1, 256))); }

// opTables() -> { unary: [...names], binary: [...], ... }: every op family
// registered with CAPSNET_OP_TABLE, each op's name at its code. JS resolves
// the names it uses to codes once, when the addon loads.
CAPSNET_ENTRY(opTables) {
  napi_env env = a.env();
  napi_value all;
  napi_create_object(env, &all);
  for (const OpTable* t : capsnet::opTables()) {
    napi_value names;
    napi_create_array_with_length(env, t->count, &names);
    for (size_t i = 0; i < t->count; i++) napi_set_element(env, names, static_cast<uint32_t>(i), makeString(env, t->names[i]));
    napi_set_named_property(env, all, t->family, names);
  }
  a.result = all;
}

}  // namespace

}  // namespace capsnet

static napi_value Init(napi_env env, napi_value exports) {
  using namespace capsnet;
  gemmWarning() = initBlas();
  // A name registered twice would silently shadow the other entry or table.
  std::set<std::string> entryNames, tableNames;
  for (const OpTable* t : opTables()) {
    if (!tableNames.insert(t->family).second) {
      napi_throw_error(env, nullptr, (std::string("capsnet native: op table '") + t->family + "' is registered twice").c_str());
      return nullptr;
    }
  }
  for (const EntryPoint* e : entryPoints()) {
    if (!entryNames.insert(e->name).second) {
      napi_throw_error(env, nullptr, (std::string("capsnet native: entry '") + e->name + "' is registered twice").c_str());
      return nullptr;
    }
    if (e->settings.size() > kMaxSettings) {
      napi_throw_error(env, nullptr, (std::string("capsnet native: entry '") + e->name + "' declares too many settings").c_str());
      return nullptr;
    }
    // The function, and the names of its settings in the order it takes
    // their values (fn.settings), from which the loader builds its
    // one-object form.
    napi_value fn, settings;
    bool ok = napi_create_function(env, e->name, NAPI_AUTO_LENGTH, invoke, const_cast<EntryPoint*>(e), &fn) == napi_ok &&
              napi_create_array_with_length(env, e->settings.size(), &settings) == napi_ok;
    for (size_t i = 0; ok && i < e->settings.size(); i++) ok = napi_set_element(env, settings, static_cast<uint32_t>(i), makeString(env, e->settings[i])) == napi_ok;
    ok = ok && napi_set_named_property(env, fn, "settings", settings) == napi_ok && napi_set_named_property(env, exports, e->name, fn) == napi_ok;
    if (!ok) {
      napi_throw_error(env, nullptr, "capsnet native: could not export functions");
      return nullptr;
    }
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
