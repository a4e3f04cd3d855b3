// Elementwise kernels: unary maps and binary ops with numpy-style
// broadcasting, float32 in, float32 (or uint8 for comparisons) out.
//
// NaN handling follows tfjs's cpu kernels (which use Math.max and friends):
// NaN in, NaN out.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"
#include "parallel.h"

namespace capsnet {
namespace {

// Keep in sync with UnaryOp in elementwise.ts.
enum UnaryOp {
  kNeg = 0,
  kAbs,
  kSquare,
  kSqrt,
  kRsqrt,
  kExp,
  kLog,
  kLog1p,
  kExpm1,
  kReciprocal,
  kRelu,
  kRelu6,
  kSigmoid,
  kTanh,
  kStep,
  kLeakyRelu,
  kElu,
  kFloor,
  kCeil,
  kRound,
  kSign,
  kSin,
  kCos,
  kClip,
  kUnaryCount
};

// Keep in sync with BinaryOp in elementwise.ts.
enum BinaryOp {
  kAdd = 0,
  kSub,
  kMul,
  kDiv,
  kMaximum,
  kMinimum,
  kPow,
  kSquaredDifference,
  kGreater,
  kGreaterEqual,
  kLess,
  kLessEqual,
  kEqual,
  kNotEqual,
  kBinaryCount
};

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

// unary(op, x, y, alpha, beta): y = op(x). alpha: Step's value for x <= 0,
// LeakyRelu's slope, Clip's lower bound; beta: Clip's upper bound.
void unary(Args& a) {
  int op = static_cast<int>(a.integer(0, "op", 0, kUnaryCount - 1));
  View<float> x = a.f32(1, "x");
  View<float> y = a.f32(2, "y", x.length);
  float alpha = static_cast<float>(a.number(3, "alpha"));
  float beta = static_cast<float>(a.number(4, "beta"));
  const float* xs = x.data;
  float* ys = y.data;
  int64_t n = x.length;
  switch (op) {
    case kNeg: mapUnary(xs, ys, n, [](float v) { return -v; }); break;
    case kAbs: mapUnary(xs, ys, n, [](float v) { return std::fabs(v); }); break;
    case kSquare: mapUnary(xs, ys, n, [](float v) { return v * v; }); break;
    case kSqrt: mapUnary(xs, ys, n, [](float v) { return std::sqrt(v); }); break;
    case kRsqrt: mapUnary(xs, ys, n, [](float v) { return 1.0f / std::sqrt(v); }); break;
    case kExp: mapUnary(xs, ys, n, [](float v) { return std::exp(v); }); break;
    case kLog: mapUnary(xs, ys, n, [](float v) { return std::log(v); }); break;
    case kLog1p: mapUnary(xs, ys, n, [](float v) { return std::log1p(v); }); break;
    case kExpm1: mapUnary(xs, ys, n, [](float v) { return std::expm1(v); }); break;
    case kReciprocal: mapUnary(xs, ys, n, [](float v) { return 1.0f / v; }); break;
    case kRelu: mapUnary(xs, ys, n, [](float v) { return v < 0.0f ? 0.0f : v; }); break;
    case kRelu6: mapUnary(xs, ys, n, [](float v) { return v != v ? v : std::min(std::max(v, 0.0f), 6.0f); }); break;
    case kSigmoid: mapUnary(xs, ys, n, [](float v) { return 1.0f / (1.0f + std::exp(-v)); }); break;
    case kTanh: mapUnary(xs, ys, n, [](float v) { return std::tanh(v); }); break;
    case kStep: mapUnary(xs, ys, n, [alpha](float v) { return v != v ? v : (v > 0.0f ? 1.0f : alpha); }); break;
    case kLeakyRelu: mapUnary(xs, ys, n, [alpha](float v) { return v < 0.0f ? alpha * v : v; }); break;
    case kElu: mapUnary(xs, ys, n, [](float v) { return v >= 0.0f ? v : std::expm1(v); }); break;
    case kFloor: mapUnary(xs, ys, n, [](float v) { return std::floor(v); }); break;
    case kCeil: mapUnary(xs, ys, n, [](float v) { return std::ceil(v); }); break;
    // Half to even, as tfjs rounds.
    case kRound: mapUnary(xs, ys, n, [](float v) { return std::nearbyint(v); }); break;
    case kSign: mapUnary(xs, ys, n, [](float v) { return v < 0.0f ? -1.0f : (v > 0.0f ? 1.0f : 0.0f); }); break;
    case kSin: mapUnary(xs, ys, n, [](float v) { return std::sin(v); }); break;
    case kCos: mapUnary(xs, ys, n, [](float v) { return std::cos(v); }); break;
    case kClip: mapUnary(xs, ys, n, [alpha, beta](float v) { return v != v ? v : std::min(std::max(v, alpha), beta); }); break;
    default: fail("unary: unknown op");
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

// binary(op, a, aShape, b, bShape, out, outShape): out = a op b with
// broadcasting; out is a Float32Array, or a Uint8Array for comparisons.
void binary(Args& args) {
  int op = static_cast<int>(args.integer(0, "op", 0, kBinaryCount - 1));
  std::vector<int64_t> aShape = args.dims(2, "aShape");
  std::vector<int64_t> bShape = args.dims(4, "bShape");
  std::vector<int64_t> outShape = args.dims(6, "outShape");
  View<float> a = args.f32(1, "a", checkedProduct(aShape, "a"));
  View<float> b = args.f32(3, "b", checkedProduct(bShape, "b"));
  Plan p = plan(aShape, bShape, outShape);
  if (p.total == 0) {
    if (op >= kGreater) args.array<uint8_t>(5, "out", 0);
    else args.f32(5, "out", 0);
    return;
  }
  if (op >= kGreater) {
    View<uint8_t> out = args.array<uint8_t>(5, "out", p.total);
    uint8_t* o = out.data;
    switch (op) {
      case kGreater: broadcastBinary(p, a.data, b.data, o, [](float x, float y) -> uint8_t { return x > y; }); break;
      case kGreaterEqual: broadcastBinary(p, a.data, b.data, o, [](float x, float y) -> uint8_t { return x >= y; }); break;
      case kLess: broadcastBinary(p, a.data, b.data, o, [](float x, float y) -> uint8_t { return x < y; }); break;
      case kLessEqual: broadcastBinary(p, a.data, b.data, o, [](float x, float y) -> uint8_t { return x <= y; }); break;
      case kEqual: broadcastBinary(p, a.data, b.data, o, [](float x, float y) -> uint8_t { return x == y; }); break;
      case kNotEqual: broadcastBinary(p, a.data, b.data, o, [](float x, float y) -> uint8_t { return x != y; }); break;
      default: fail("binary: unknown comparison");
    }
    return;
  }
  View<float> out = args.f32(5, "out", p.total);
  float* o = out.data;
  switch (op) {
    case kAdd: broadcastBinary(p, a.data, b.data, o, [](float x, float y) { return x + y; }); break;
    case kSub: broadcastBinary(p, a.data, b.data, o, [](float x, float y) { return x - y; }); break;
    case kMul: broadcastBinary(p, a.data, b.data, o, [](float x, float y) { return x * y; }); break;
    case kDiv: broadcastBinary(p, a.data, b.data, o, [](float x, float y) { return x / y; }); break;
    case kMaximum: broadcastBinary(p, a.data, b.data, o, nanMax); break;
    case kMinimum: broadcastBinary(p, a.data, b.data, o, nanMin); break;
    case kPow:
      broadcastBinary(p, a.data, b.data, o, [](float x, float y) { return static_cast<float>(std::pow(static_cast<double>(x), static_cast<double>(y))); });
      break;
    case kSquaredDifference: broadcastBinary(p, a.data, b.data, o, [](float x, float y) { return (x - y) * (x - y); }); break;
    default: fail("binary: unknown op");
  }
}

}  // namespace

void addElementwiseExports(std::vector<Export>& out) {
  out.push_back({"unary", entry<unary>});
  out.push_back({"binary", entry<binary>});
}

}  // namespace capsnet
