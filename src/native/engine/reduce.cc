// Reductions over one contiguous block of axes, and softmax.
//
// The JS side brings every reduction to the form x[outer, r, inner] ->
// out[outer, inner] (transposing first when the reduced axes are not
// adjacent). Sums accumulate in double, as tfjs's cpu kernels (which sum in
// JS numbers) effectively do.
#include <algorithm>
#include <cmath>
#include <vector>

#include "entry.h"
#include "parallel.h"

namespace capsnet {
namespace {

// The reductions, named as tfjs names their kernels (JS takes the codes
// from opTables(), see entry.h). ArgMax and ArgMin write an Int32Array.
enum class ReduceOp { Sum, Mean, Max, Min, Prod, ArgMax, ArgMin, Count };
constexpr const char* kReduceOpNames[] = {"Sum", "Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin"};
CAPSNET_OP_TABLE(reduce, ReduceOp, kReduceOpNames);

double sumRow(const float* x, int64_t n) {
  // Independent lanes so that the loop vectorizes without reassociating.
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) lane[k] += x[i + k];
  double s = 0;
  for (; i < n; i++) s += x[i];
  return s + ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// NaN wins, as in tfjs's cpu Max/Min.
inline float pickMax(float m, float v) { return (v != v || v > m) ? v : m; }
inline float pickMin(float m, float v) { return (v != v || v < m) ? v : m; }

// reduce({ op, x, outer, r, inner, out }): out[o, i] = op over j of
// x[o, j, i], for x [outer, r, inner].
CAPSNET_ENTRY(reduce, "op", "x", "outer", "r", "inner", "out") {
  ReduceOp op = a.op<ReduceOp>("op");
  int64_t outer = a.integer("outer", 0, INT64_MAX / 2);
  int64_t r = a.integer("r", 1, INT64_MAX / 2);
  int64_t inner = a.integer("inner", 0, INT64_MAX / 2);
  int64_t total = checkedMul(checkedMul(outer, r, "reduce"), inner, "reduce");
  View<float> x = a.f32("x", total);
  int64_t outLen = checkedMul(outer, inner, "reduce");
  const float* xs = x.data;

  if (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin) {
    View<int32_t> out = a.array<int32_t>("out", outLen);
    if (r > INT32_MAX) fail("reduce: axis too long for int32 indices");
    bool isMax = op == ReduceOp::ArgMax;
    parallelFor(outLen, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; k++) {
        int64_t o = k / inner, i = k % inner;
        const float* p = xs + o * r * inner + i;
        float best = p[0];
        int32_t at = 0;
        for (int64_t j = 1; j < r; j++) {
          float v = p[j * inner];
          if (isMax ? v > best : v < best) {
            best = v;
            at = static_cast<int32_t>(j);
          }
        }
        out.data[k] = at;
      }
    });
    return;
  }

  View<float> out = a.f32("out", outLen);
  float* ys = out.data;
  if (outLen == 0) return;

  if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
    const double scale = op == ReduceOp::Mean ? 1.0 / static_cast<double>(r) : 1.0;
    if (inner == 1) {
      if (outer >= threadCount()) {
        parallelFor(outer, std::max<int64_t>(1, 16384 / r), [&](int64_t begin, int64_t end) {
          for (int64_t o = begin; o < end; o++) ys[o] = static_cast<float>(sumRow(xs + o * r, r) * scale);
        });
      } else {
        // Few long rows: split each row over the threads.
        for (int64_t o = 0; o < outer; o++) {
          const float* row = xs + o * r;
          int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threadCount(), r / 32768)));
          std::vector<double> partial(parts, 0.0);
          parallelTasks(parts, [&](int64_t p, int) {
            int64_t b = r * p / parts, e = r * (p + 1) / parts;
            partial[p] = sumRow(row + b, e - b);
          });
          double s = 0;
          for (double v : partial) s += v;
          ys[o] = static_cast<float>(s * scale);
        }
      }
      return;
    }
    // Column sums: accumulate whole rows of `inner` values at a time.
    auto columns = [&](int64_t o, int64_t begin, int64_t end) {
      const float* block = xs + o * r * inner;
      float* dst = ys + o * inner;
      std::vector<double> acc(end - begin, 0.0);
      double* ac = acc.data();
      int64_t w = end - begin;
      for (int64_t j = 0; j < r; j++) {
        const float* row = block + j * inner + begin;
        for (int64_t i = 0; i < w; i++) ac[i] += row[i];
      }
      for (int64_t i = 0; i < w; i++) dst[begin + i] = static_cast<float>(ac[i] * scale);
    };
    if (outer >= threadCount()) {
      parallelFor(outer, std::max<int64_t>(1, 16384 / (r * inner)), [&](int64_t begin, int64_t end) {
        for (int64_t o = begin; o < end; o++) columns(o, 0, inner);
      });
    } else {
      // Few blocks: split the inner range over the threads.
      for (int64_t o = 0; o < outer; o++) parallelFor(inner, 64, [&](int64_t b, int64_t e) { columns(o, b, e); });
    }
    return;
  }

  parallelFor(outLen, std::max<int64_t>(1, 16384 / r), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; k++) {
      int64_t o = k / inner, i = k % inner;
      const float* p = xs + o * r * inner + i;
      if (op == ReduceOp::Prod) {
        double acc = 1.0;
        for (int64_t j = 0; j < r; j++) acc *= p[j * inner];
        ys[k] = static_cast<float>(acc);
      } else {
        float m = p[0];
        if (op == ReduceOp::Max)
          for (int64_t j = 1; j < r; j++) m = pickMax(m, p[j * inner]);
        else
          for (int64_t j = 1; j < r; j++) m = pickMin(m, p[j * inner]);
        ys[k] = m;
      }
    }
  });
}

// softmax({ x, rows, cols, out, log = false }): softmax (or log-softmax)
// over the last axis of x [rows, cols].
CAPSNET_ENTRY(softmax, "x", "rows", "cols", "out", "log") {
  int64_t rows = a.integer("rows", 0, INT64_MAX / 2);
  int64_t cols = a.integer("cols", 1, INT64_MAX / 2);
  int64_t total = checkedMul(rows, cols, "softmax");
  View<float> x = a.f32("x", total);
  View<float> out = a.f32("out", total);
  bool log = a.boolean("log", false);
  const float* xs = x.data;
  float* ys = out.data;
  parallelFor(rows, std::max<int64_t>(1, 8192 / cols), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; row++) {
      const float* p = xs + row * cols;
      float* q = ys + row * cols;
      float m = p[0];
      for (int64_t j = 1; j < cols; j++) m = pickMax(m, p[j]);
      double s = 0;
      if (log) {
        for (int64_t j = 0; j < cols; j++) s += std::exp(static_cast<double>(p[j] - m));
        float ls = static_cast<float>(std::log(s));
        for (int64_t j = 0; j < cols; j++) q[j] = p[j] - m - ls;
      } else {
        for (int64_t j = 0; j < cols; j++) {
          float e = std::exp(p[j] - m);
          q[j] = e;
          s += e;
        }
        float inv = static_cast<float>(1.0 / s);
        for (int64_t j = 0; j < cols; j++) q[j] *= inv;
      }
    }
  });
}

}  // namespace

}  // namespace capsnet
