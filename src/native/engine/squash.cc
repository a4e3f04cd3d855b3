// Fused squash (Eq. 1 of "Dynamic Routing Between Capsules") and
// Efficient-CapsNet's squash, each with its gradient, for
// src/native/kernels/squash.ts. They compute what squashReference and
// efficientSquashReference in src/capsules/squash.ts compute, in one pass
// over memory.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "entry.h"
#include "parallel.h"
#include "simd.h"
#include "squash.h"

namespace capsnet {
namespace {

// squash({ s, out, dim }): squash every run of `dim` values.
CAPSNET_ENTRY(squash, "s", "out", "dim") {
  int64_t D = a.integer("dim", 1, INT32_MAX);
  View<float> s = a.f32("s");
  View<float> v = a.f32("out", s.length);
  require(s.length % D == 0, "squash", "length is not a multiple of the capsule dimension");
  int64_t rows = s.length / D;
  parallelFor(rows, std::max<int64_t>(1, 4096 / D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) squashVector(s.data + r * D, v.data + r * D, D);
  });
}

// squashGrad({ dy, s, ds, dim }): ds, the gradient of squash at s times dy.
CAPSNET_ENTRY(squashGrad, "dy", "s", "ds", "dim") {
  int64_t D = a.integer("dim", 1, INT32_MAX);
  View<float> dy = a.f32("dy");
  View<float> s = a.f32("s", dy.length);
  View<float> ds = a.f32("ds", dy.length);
  require(s.length % D == 0, "squashGrad", "length is not a multiple of the capsule dimension");
  int64_t rows = s.length / D;
  parallelFor(rows, std::max<int64_t>(1, 4096 / D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) squashGradVector(s.data + r * D, dy.data + r * D, ds.data + r * D, D);
  });
}

// efficientSquash({ s, out, dim }): Efficient-CapsNet's squash of every run
// of `dim` values.
CAPSNET_ENTRY(efficientSquash, "s", "out", "dim") {
  int64_t D = a.integer("dim", 1, INT32_MAX);
  View<float> s = a.f32("s");
  View<float> v = a.f32("out", s.length);
  require(s.length % D == 0, "efficientSquash", "length is not a multiple of the capsule dimension");
  parallelFor(s.length / D, std::max<int64_t>(1, 4096 / D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) efficientSquashVector(s.data + r * D, v.data + r * D, D);
  });
}

// efficientSquashGrad({ dy, s, ds, dim }): ds, the gradient of
// efficientSquash at s times dy.
CAPSNET_ENTRY(efficientSquashGrad, "dy", "s", "ds", "dim") {
  int64_t D = a.integer("dim", 1, INT32_MAX);
  View<float> dy = a.f32("dy");
  View<float> s = a.f32("s", dy.length);
  View<float> ds = a.f32("ds", dy.length);
  require(s.length % D == 0, "efficientSquashGrad", "length is not a multiple of the capsule dimension");
  parallelFor(s.length / D, std::max<int64_t>(1, 4096 / D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) efficientSquashGradVector(s.data + r * D, dy.data + r * D, ds.data + r * D, D);
  });
}

}  // namespace
}  // namespace capsnet
