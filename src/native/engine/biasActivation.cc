// The bias + activation epilogue (biasActivation.h), and the entry point
// that runs it on its own.
#include "biasActivation.h"

#include <algorithm>
#include <cmath>

#include "entry.h"
#include "parallel.h"

namespace capsnet {
namespace {

constexpr const char* kActivationNames[] = {"linear", "relu", "relu6", "leakyrelu", "sigmoid", "elu"};
CAPSNET_OP_TABLE(activation, Activation, kActivationNames);

template <typename F>
void epilogue(float* y, int64_t rows, int64_t cols, const float* bias, int64_t biasLen, F f) {
  parallelFor(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
    const F act = f;  // local, so that captured parameters do not alias y
    for (int64_t r = begin; r < end; r++) {
      float* row = y + r * cols;
      if (biasLen == cols) {
        for (int64_t c = 0; c < cols; c++) row[c] = act(row[c] + bias[c]);
      } else if (biasLen == 1) {
        float b0 = bias[0];
        for (int64_t c = 0; c < cols; c++) row[c] = act(row[c] + b0);
      } else {
        for (int64_t c = 0; c < cols; c++) row[c] = act(row[c]);
      }
    }
  });
}

}  // namespace

void biasActivation(float* y, int64_t rows, int64_t cols, const float* bias, int64_t biasLen, Activation activation, float alpha) {
  switch (activation) {
    case Activation::Linear:
      if (biasLen == 0) return;
      epilogue(y, rows, cols, bias, biasLen, [](float v) { return v; });
      break;
    case Activation::Relu: epilogue(y, rows, cols, bias, biasLen, [](float v) { return v < 0.0f ? 0.0f : v; }); break;
    case Activation::Relu6:
      epilogue(y, rows, cols, bias, biasLen, [](float v) { return v != v ? v : std::min(std::max(v, 0.0f), 6.0f); });
      break;
    case Activation::LeakyRelu: epilogue(y, rows, cols, bias, biasLen, [alpha](float v) { return v < 0.0f ? alpha * v : v; }); break;
    case Activation::Sigmoid: epilogue(y, rows, cols, bias, biasLen, [](float v) { return 1.0f / (1.0f + std::exp(-v)); }); break;
    case Activation::Elu: epilogue(y, rows, cols, bias, biasLen, [](float v) { return v >= 0.0f ? v : std::expm1(v); }); break;
    case Activation::Count: fail("unknown activation");
  }
}

namespace {

// biasActivation({ y, rows, cols, bias, activation = linear, alpha = 0 }):
// the epilogue on its own, in place; bias is a Float32Array of cols
// entries, one, or none (empty or absent).
CAPSNET_ENTRY(biasActivation, "y", "rows", "cols", "bias", "activation", "alpha") {
  int64_t rows = a.integer("rows", 0, INT64_MAX / 2);
  int64_t cols = a.integer("cols", 0, INT64_MAX / 2);
  View<float> y = a.f32("y", checkedMul(rows, cols, "biasActivation"));
  View<float> bias = a.optionalF32("bias");
  require(bias.length == 0 || bias.length == 1 || bias.length == cols, "biasActivation", "bias must have 0, 1 or cols entries");
  Activation act = a.op<Activation>("activation", Activation::Linear);
  float alpha = static_cast<float>(a.number("alpha", 0.0));
  biasActivation(y.data, rows, cols, bias.data, bias.length, act, alpha);
}

}  // namespace

}  // namespace capsnet
