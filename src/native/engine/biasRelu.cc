// Fused bias + ReLU and its gradient, for src/native/kernels/biasRelu.ts. They
// compute what biasReluReference in src/layers/biasRelu.ts computes, each in
// one pass over memory: tfjs's unfused path in training (Add, Relu, then
// Step, Multiply and a Sum for the gradient) goes through the layer's output
// five times.
#include <algorithm>
#include <cstring>
#include <vector>

#include "entry.h"
#include "parallel.h"

namespace capsnet {
namespace {

// biasRelu({ x, bias, y }): y[r, c] = max(x[r, c] + bias[c], 0) for every row r
// of bias.length channels.
CAPSNET_ENTRY(biasRelu, "x", "bias", "y") {
  View<float> x = a.f32("x");
  View<float> bias = a.f32("bias");
  View<float> y = a.f32("y", x.length);
  const int64_t C = bias.length;
  require(C > 0 && x.length % C == 0, "biasRelu", "length is not a multiple of the channel count");
  requireDisjoint(y, bias, "biasRelu");
  parallelFor(x.length / C, std::max<int64_t>(1, 8192 / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* __restrict in = x.data + r * C;
      float* __restrict out = y.data + r * C;
      for (int64_t c = 0; c < C; c++) out[c] = std::max(in[c] + bias.data[c], 0.0f);
    }
  });
}

// Rows whose bias-gradient partial sums are added together: a fixed split,
// so that the sum's order, and so its rounding, does not depend on threads.
constexpr int64_t kRowsPerPartial = 256;

// biasReluGrad({ dy, y, dx, dbias }): dx = dy where y > 0, else 0 (ReLU's
// gradient, read from its output: y > 0 exactly where x + bias > 0), and
// dbias[c] = sum over rows of dx[r, c], summed in double.
CAPSNET_ENTRY(biasReluGrad, "dy", "y", "dx", "dbias") {
  View<float> dy = a.f32("dy");
  View<float> y = a.f32("y", dy.length);
  View<float> dx = a.f32("dx", dy.length);
  View<float> dbias = a.f32("dbias");
  const int64_t C = dbias.length;
  require(C > 0 && dy.length % C == 0, "biasReluGrad", "length is not a multiple of the channel count");
  requireDisjoint(dx, y, "biasReluGrad");
  requireDisjoint(dbias, dy, "biasReluGrad");
  requireDisjoint(dbias, y, "biasReluGrad");
  requireDisjoint(dbias, dx, "biasReluGrad");
  const int64_t rows = dy.length / C;
  const int64_t parts = (rows + kRowsPerPartial - 1) / kRowsPerPartial;
  std::vector<double> partial(static_cast<size_t>(std::max<int64_t>(parts, 1) * C), 0.0);
  parallelTasks(parts, [&](int64_t p, int) {
    double* sum = partial.data() + p * C;
    const int64_t r1 = std::min(rows, (p + 1) * kRowsPerPartial);
    for (int64_t r = p * kRowsPerPartial; r < r1; r++) {
      const float* __restrict g = dy.data + r * C;
      const float* __restrict out = y.data + r * C;
      float* __restrict d = dx.data + r * C;
      for (int64_t c = 0; c < C; c++) {
        d[c] = out[c] > 0.0f ? g[c] : 0.0f;
        sum[c] += d[c];
      }
    }
  });
  for (int64_t c = 0; c < C; c++) {
    double s = 0.0;
    for (int64_t p = 0; p < parts; p++) s += partial[p * C + c];
    dbias.data[c] = static_cast<float>(s);
  }
}

}  // namespace


}  // namespace capsnet
