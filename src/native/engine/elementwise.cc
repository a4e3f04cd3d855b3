// Elementwise kernels: unary maps and binary ops with numpy-style
// broadcasting, float32 in, float32 (or uint8 for comparisons) out.
//
// NaN handling follows tfjs's cpu kernels (which use Math.max and friends):
// NaN in, NaN out.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "entry.h"
#include "parallel.h"

namespace capsnet {
namespace {

// The unary ops, named as tfjs names their kernels; JS takes the codes from
// opTables() (see entry.h), never from its own numbering.
enum class UnaryOp {
  Neg,
  Abs,
  Square,
  Sqrt,
  Rsqrt,
  Exp,
  Log,
  Log1p,
  Expm1,
  Reciprocal,
  Relu,
  Relu6,
  Sigmoid,
  Tanh,
  Step,
  LeakyRelu,
  Elu,
  Floor,
  Ceil,
  Round,
  Sign,
  Sin,
  Cos,
  ClipByValue,
  Count
};
constexpr const char* kUnaryOpNames[] = {
    "Neg", "Abs", "Square", "Sqrt", "Rsqrt", "Exp", "Log", "Log1p", "Expm1", "Reciprocal", "Relu", "Relu6",
    "Sigmoid", "Tanh", "Step", "LeakyRelu", "Elu", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "ClipByValue"};
CAPSNET_OP_TABLE(unary, UnaryOp, kUnaryOpNames);

// The binary ops; the comparisons (from Greater on) write a Uint8Array.
enum class BinaryOp {
  Add,
  Sub,
  Multiply,
  RealDiv,
  Maximum,
  Minimum,
  Pow,
  SquaredDifference,
  Greater,
  GreaterEqual,
  Less,
  LessEqual,
  Equal,
  NotEqual,
  Count
};
constexpr const char* kBinaryOpNames[] = {
    "Add", "Sub", "Multiply", "RealDiv", "Maximum", "Minimum", "Pow",
    "SquaredDifference", "Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"};
CAPSNET_OP_TABLE(binary, BinaryOp, kBinaryOpNames);

constexpr int64_t kGrain = 1 << 15;

template <typename F>
void mapUnary(const float* x, float* y, int64_t n, F f) {
  parallelFor(n, kGrain, [&](int64_t begin, int64_t end) {
    // A local copy: captured parameters (alpha) then provably do not alias
    // the output, and the loop vectorizes.
    const F op = f;
    for (int64_t i = begin; i < end; i++) y[i] = op(x[i]);
  });
}

inline float nanMax(float a, float b) { return (a != a || b != b) ? NAN : (a > b ? a : b); }
inline float nanMin(float a, float b) { return (a != a || b != b) ? NAN : (a < b ? a : b); }

// unary({ op, x, y, alpha = 0, beta = 0 }): y = op(x). alpha: Step's value
// for x <= 0, LeakyRelu's slope, ClipByValue's lower bound; beta:
// ClipByValue's upper bound.
CAPSNET_ENTRY(unary, "op", "x", "y", "alpha", "beta") {
  UnaryOp op = a.op<UnaryOp>("op");
  View<float> x = a.f32("x");
  View<float> y = a.f32("y", x.length);
  float alpha = static_cast<float>(a.number("alpha", 0.0));
  float beta = static_cast<float>(a.number("beta", 0.0));
  const float* xs = x.data;
  float* ys = y.data;
  int64_t n = x.length;
  switch (op) {
    case UnaryOp::Neg: mapUnary(xs, ys, n, [](float v) { return -v; }); break;
    case UnaryOp::Abs: mapUnary(xs, ys, n, [](float v) { return std::fabs(v); }); break;
    case UnaryOp::Square: mapUnary(xs, ys, n, [](float v) { return v * v; }); break;
    case UnaryOp::Sqrt: mapUnary(xs, ys, n, [](float v) { return std::sqrt(v); }); break;
    case UnaryOp::Rsqrt: mapUnary(xs, ys, n, [](float v) { return 1.0f / std::sqrt(v); }); break;
    case UnaryOp::Exp: mapUnary(xs, ys, n, [](float v) { return std::exp(v); }); break;
    case UnaryOp::Log: mapUnary(xs, ys, n, [](float v) { return std::log(v); }); break;
    case UnaryOp::Log1p: mapUnary(xs, ys, n, [](float v) { return std::log1p(v); }); break;
    case UnaryOp::Expm1: mapUnary(xs, ys, n, [](float v) { return std::expm1(v); }); break;
    case UnaryOp::Reciprocal: mapUnary(xs, ys, n, [](float v) { return 1.0f / v; }); break;
    case UnaryOp::Relu: mapUnary(xs, ys, n, [](float v) { return v < 0.0f ? 0.0f : v; }); break;
    case UnaryOp::Relu6: mapUnary(xs, ys, n, [](float v) { return v != v ? v : std::min(std::max(v, 0.0f), 6.0f); }); break;
    case UnaryOp::Sigmoid: mapUnary(xs, ys, n, [](float v) { return 1.0f / (1.0f + std::exp(-v)); }); break;
    case UnaryOp::Tanh: mapUnary(xs, ys, n, [](float v) { return std::tanh(v); }); break;
    case UnaryOp::Step: mapUnary(xs, ys, n, [alpha](float v) { return v != v ? v : (v > 0.0f ? 1.0f : alpha); }); break;
    case UnaryOp::LeakyRelu: mapUnary(xs, ys, n, [alpha](float v) { return v < 0.0f ? alpha * v : v; }); break;
    case UnaryOp::Elu: mapUnary(xs, ys, n, [](float v) { return v >= 0.0f ? v : std::expm1(v); }); break;
    case UnaryOp::Floor: mapUnary(xs, ys, n, [](float v) { return std::floor(v); }); break;
    case UnaryOp::Ceil: mapUnary(xs, ys, n, [](float v) { return std::ceil(v); }); break;
    // Half to even, as tfjs rounds.
    case UnaryOp::Round: mapUnary(xs, ys, n, [](float v) { return std::nearbyint(v); }); break;
    case UnaryOp::Sign: mapUnary(xs, ys, n, [](float v) { return v < 0.0f ? -1.0f : (v > 0.0f ? 1.0f : 0.0f); }); break;
    case UnaryOp::Sin: mapUnary(xs, ys, n, [](float v) { return std::sin(v); }); break;
    case UnaryOp::Cos: mapUnary(xs, ys, n, [](float v) { return std::cos(v); }); break;
    case UnaryOp::ClipByValue: mapUnary(xs, ys, n, [alpha, beta](float v) { return v != v ? v : std::min(std::max(v, alpha), beta); }); break;
    case UnaryOp::Count: fail("unary: unknown op");
  }
}

// Broadcast iteration plan: the output shape collapsed to as few dims as
// possible, with each input's stride per dim (0 where it is broadcast).
struct Plan {
  std::vector<int64_t> shape;
  std::vector<int64_t> strideA, strideB;
  int64_t total = 1;
};

Plan plan(const std::vector<int64_t>& aShape, const std::vector<int64_t>& bShape, const std::vector<int64_t>& outShape) {
  size_t rank = outShape.size();
  if (aShape.size() > rank || bShape.size() > rank) fail("binary: input rank exceeds output rank");
  std::vector<int64_t> sa(rank, 0), sb(rank, 0);
  // Right-align the input shapes with the output shape.
  auto strides = [&](const std::vector<int64_t>& in, std::vector<int64_t>& s, const char* name) {
    size_t off = rank - in.size();
    int64_t stride = 1;
    for (size_t k = in.size(); k-- > 0;) {
      int64_t d = in[k], o = outShape[off + k];
      if (d == o) {
        s[off + k] = d == 1 ? 0 : stride;
      } else if (d == 1) {
        s[off + k] = 0;
      } else {
        fail(std::string("binary: ") + name + " does not broadcast to the output shape");
      }
      stride *= d;
    }
  };
  strides(aShape, sa, "a");
  strides(bShape, sb, "b");
  Plan p;
  for (size_t k = 0; k < rank; k++) {
    int64_t d = outShape[k];
    if (d == 1) continue;
    if (!p.shape.empty()) {
      // Merge with the previous dim when both inputs walk the pair as one.
      size_t j = p.shape.size() - 1;
      bool mergeA = p.strideA[j] == sa[k] * d;
      bool mergeB = p.strideB[j] == sb[k] * d;
      if (mergeA && mergeB) {
        p.shape[j] *= d;
        p.strideA[j] = sa[k];
        p.strideB[j] = sb[k];
        continue;
      }
    }
    p.shape.push_back(d);
    p.strideA.push_back(sa[k]);
    p.strideB.push_back(sb[k]);
  }
  if (p.shape.empty()) {
    p.shape.push_back(1);
    p.strideA.push_back(0);
    p.strideB.push_back(0);
  }
  p.total = checkedProduct(outShape, "binary output");
  return p;
}

template <typename Out, typename F>
inline void runInner(const float* a, int64_t sa, const float* b, int64_t sb, Out* out, int64_t n, F f) {
  // The common stride patterns get their own loops so that they vectorize.
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; i++) out[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    float bv = b[0];
    for (int64_t i = 0; i < n; i++) out[i] = f(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    float av = a[0];
    for (int64_t i = 0; i < n; i++) out[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++) out[i] = f(a[i * sa], b[i * sb]);
  }
}

template <typename Out, typename F>
void broadcastBinary(const Plan& p, const float* a, const float* b, Out* out, F f) {
  const size_t rank = p.shape.size();
  const int64_t inner = p.shape[rank - 1];
  const int64_t isa = p.strideA[rank - 1], isb = p.strideB[rank - 1];
  parallelFor(p.total, kGrain, [&](int64_t begin, int64_t end) {
    // Coordinates of `begin` in the collapsed shape.
    std::vector<int64_t> idx(rank, 0);
    int64_t rem = begin;
    for (size_t k = rank; k-- > 0;) {
      idx[k] = rem % p.shape[k];
      rem /= p.shape[k];
    }
    int64_t offA = 0, offB = 0;
    for (size_t k = 0; k < rank; k++) {
      offA += idx[k] * p.strideA[k];
      offB += idx[k] * p.strideB[k];
    }
    int64_t pos = begin;
    while (pos < end) {
      int64_t run = std::min(inner - idx[rank - 1], end - pos);
      runInner(a + offA, isa, b + offB, isb, out + pos, run, f);
      pos += run;
      offA += run * isa;
      offB += run * isb;
      idx[rank - 1] += run;
      // Carry into the outer dims.
      for (size_t k = rank - 1; k > 0 && idx[k] == p.shape[k]; k--) {
        offA -= idx[k] * p.strideA[k];
        offB -= idx[k] * p.strideB[k];
        idx[k] = 0;
        idx[k - 1]++;
        offA += p.strideA[k - 1];
        offB += p.strideB[k - 1];
      }
    }
  });
}

// binary({ op, a, aShape, b, bShape, out, outShape }): out = a op b with
// broadcasting; out is a Float32Array, or a Uint8Array for comparisons.
CAPSNET_ENTRY(binary, "op", "a", "aShape", "b", "bShape", "out", "outShape") {
  BinaryOp op = a.op<BinaryOp>("op");
  const bool comparison = op >= BinaryOp::Greater;
  std::vector<int64_t> aShape = a.dims("aShape");
  std::vector<int64_t> bShape = a.dims("bShape");
  std::vector<int64_t> outShape = a.dims("outShape");
  View<float> lhs = a.f32("a", checkedProduct(aShape, "a"));
  View<float> rhs = a.f32("b", checkedProduct(bShape, "b"));
  Plan p = plan(aShape, bShape, outShape);
  if (p.total == 0) {
    if (comparison) a.array<uint8_t>("out", 0);
    else a.f32("out", 0);
    return;
  }
  if (comparison) {
    View<uint8_t> out = a.array<uint8_t>("out", p.total);
    uint8_t* o = out.data;
    switch (op) {
      case BinaryOp::Greater: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) -> uint8_t { return x > y; }); break;
      case BinaryOp::GreaterEqual: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) -> uint8_t { return x >= y; }); break;
      case BinaryOp::Less: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) -> uint8_t { return x < y; }); break;
      case BinaryOp::LessEqual: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) -> uint8_t { return x <= y; }); break;
      case BinaryOp::Equal: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) -> uint8_t { return x == y; }); break;
      case BinaryOp::NotEqual: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) -> uint8_t { return x != y; }); break;
      default: fail("binary: unknown comparison");
    }
    return;
  }
  View<float> out = a.f32("out", p.total);
  float* o = out.data;
  switch (op) {
    case BinaryOp::Add: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) { return x + y; }); break;
    case BinaryOp::Sub: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) { return x - y; }); break;
    case BinaryOp::Multiply: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) { return x * y; }); break;
    case BinaryOp::RealDiv: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) { return x / y; }); break;
    case BinaryOp::Maximum: broadcastBinary(p, lhs.data, rhs.data, o, nanMax); break;
    case BinaryOp::Minimum: broadcastBinary(p, lhs.data, rhs.data, o, nanMin); break;
    case BinaryOp::Pow:
      broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) { return static_cast<float>(std::pow(static_cast<double>(x), static_cast<double>(y))); });
      break;
    case BinaryOp::SquaredDifference: broadcastBinary(p, lhs.data, rhs.data, o, [](float x, float y) { return (x - y) * (x - y); }); break;
    default: fail("binary: unknown op");
  }
}

}  // namespace

}  // namespace capsnet
