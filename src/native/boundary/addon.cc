// Module entry: collects the entry points of every source file and exports
// them, plus the engine's configuration calls.
#include <new>
#include <string>
#include <vector>

#include "blas.h"
#include "common.h"
#include "denormals.h"
#include "parallel.h"

namespace capsnet {

napi_value invoke(napi_env env, napi_callback_info info, Entry fn) {
  try {
    // For this call only (see denormals.h); restored before a catch below
    // creates the JS error.
    DenormalsFlushed flushed;
    Args args(env, info);
    fn(args);
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
void info(Args& a) {
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

// setGemm(library, isa): 'builtin' or 'openblas'; isa '' (best) or
// 'avx512' | 'avx2' | 'portable' for builtin. Throws when unavailable.
void setGemmEntry(Args& a) { setGemm(a.string(0, "library"), a.string(1, "isa")); }

// setThreads(n): threads for every parallel kernel, the caller included.
void setThreads(Args& a) { setThreadCount(static_cast<int>(a.integer(0, "threads", 1, 256))); }

}  // namespace

void addExports(std::vector<Export>& out) {
  out.push_back({"info", entry<info>});
  out.push_back({"setThreads", entry<setThreads>});
  out.push_back({"setGemm", entry<setGemmEntry>});
}

}  // namespace capsnet

static napi_value Init(napi_env env, napi_value exports) {
  using namespace capsnet;
  gemmWarning() = initBlas();
  std::vector<Export> all;
  addExports(all);
  addElementwiseExports(all);
  addReduceExports(all);
  addLayoutExports(all);
  addMatmulExports(all);
  addConvExports(all);
  addSquashExports(all);
  addPredictionVectorsExports(all);
  addMatrixVotesExports(all);
  addDynamicRoutingExports(all);
  addAdamUpdateExports(all);
  addBiasReluExports(all);
  addEmRoutingExports(all);
  addMemoryExports(all);
  for (const Export& e : all) {
    napi_value fn;
    if (napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.fn, nullptr, &fn) != napi_ok ||
        napi_set_named_property(env, exports, e.name, fn) != napi_ok) {
      napi_throw_error(env, nullptr, "capsnet native: could not export functions");
      return nullptr;
    }
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
