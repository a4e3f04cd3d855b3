// Fused squash (Eq. 1 of "Dynamic Routing Between Capsules") and its
// gradient, for src/native/kernels/squash.ts. They compute what squashReference in
// src/capsules/squash.ts computes, in one pass over memory.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "common.h"
#include "parallel.h"
#include "simd.h"
#include "squash.h"

namespace capsnet {
namespace {

// squash(s, out, dim): squash every run of `dim` values.
void squash(Args& a) {
  int64_t D = a.integer(2, "dim", 1, INT32_MAX);
  View<float> s = a.f32(0, "s");
  View<float> v = a.f32(1, "out", s.length);
  require(s.length % D == 0, "squash", "length is not a multiple of the capsule dimension");
  int64_t rows = s.length / D;
  parallelFor(rows, std::max<int64_t>(1, 4096 / D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) squashVector(s.data + r * D, v.data + r * D, D);
  });
}

// squashGrad(dy, s, ds, dim)
void squashGrad(Args& a) {
  int64_t D = a.integer(3, "dim", 1, INT32_MAX);
  View<float> dy = a.f32(0, "dy");
  View<float> s = a.f32(1, "s", dy.length);
  View<float> ds = a.f32(2, "ds", dy.length);
  require(s.length % D == 0, "squashGrad", "length is not a multiple of the capsule dimension");
  int64_t rows = s.length / D;
  parallelFor(rows, std::max<int64_t>(1, 4096 / D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) squashGradVector(s.data + r * D, dy.data + r * D, ds.data + r * D, D);
  });
}

}  // namespace

void addSquashExports(std::vector<Export>& out) {
  out.push_back({"squash", entry<squash>});
  out.push_back({"squashGrad", entry<squashGrad>});
}

}  // namespace capsnet
