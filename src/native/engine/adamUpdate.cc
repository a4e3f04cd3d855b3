// Fused Adam update, for src/native/kernels/adamUpdate.ts; the reference is
// adamUpdateReference in src/training/adam.ts.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "entry.h"
#include "parallel.h"
#include "simd.h"

namespace capsnet {
namespace {

// adamUpdate({ w, g, m, v, w2, m2, v2, lrT, beta1, oneMinusBeta1, beta2,
// oneMinusBeta2, epsilon }): the update of adamUpdateReference, in the same
// float32 operation order.
CAPSNET_ENTRY(adamUpdate, "w", "g", "m", "v", "w2", "m2", "v2", "lrT", "beta1", "oneMinusBeta1", "beta2", "oneMinusBeta2", "epsilon") {
  View<float> w = a.f32("w");
  int64_t n = w.length;
  View<float> g = a.f32("g", n), m = a.f32("m", n), v = a.f32("v", n);
  View<float> w2 = a.f32("w2", n), m2 = a.f32("m2", n), v2 = a.f32("v2", n);
  const float lrT = static_cast<float>(a.number("lrT"));
  const float b1 = static_cast<float>(a.number("beta1"));
  const float c1 = static_cast<float>(a.number("oneMinusBeta1"));
  const float b2 = static_cast<float>(a.number("beta2"));
  const float c2 = static_cast<float>(a.number("oneMinusBeta2"));
  const float eps = static_cast<float>(a.number("epsilon"));
  parallelFor(n, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      float gi = g.data[i];
      float mi = m.data[i] * b1 + gi * c1;
      float vi = v.data[i] * b2 + (gi * gi) * c2;
      m2.data[i] = mi;
      v2.data[i] = vi;
      w2.data[i] = w.data[i] - (mi / (std::sqrt(vi) + eps)) * lrT;
    }
  });
}

}  // namespace


}  // namespace capsnet
