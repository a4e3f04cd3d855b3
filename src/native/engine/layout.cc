// Data movement: transpose, block copies (slice, pad, concat), gather and
// dtype casts.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "entry.h"
#include "parallel.h"

namespace capsnet {
namespace {

// transpose({ x, shape, perm, out }): out = x with axes permuted, for
// 4-byte elements (Float32Array or Int32Array viewed as floats by the
// caller).
CAPSNET_ENTRY(transpose, "x", "shape", "perm", "out") {
  std::vector<int64_t> shape = a.dims("shape");
  size_t rank = shape.size();
  std::vector<int64_t> perm = a.intList("perm", 0, static_cast<int64_t>(rank) - 1, 8);
  require(perm.size() == rank, "transpose", "perm must have one entry per axis");
  std::vector<bool> used(rank, false);
  for (int64_t p : perm) {
    require(!used[p], "transpose", "perm repeats an axis");
    used[p] = true;
  }
  int64_t total = checkedProduct(shape, "transpose");
  View<float> x = a.f32("x", total);
  View<float> out = a.f32("out", total);
  requireDisjoint(x, out, "transpose");
  if (total == 0) return;

  // Input strides, then the output's axes (size > 1 only) with the input
  // stride each walks, merging neighbours that stay adjacent in the input.
  std::vector<int64_t> inStride(rank);
  for (int64_t k = static_cast<int64_t>(rank) - 1, s = 1; k >= 0; k--) {
    inStride[k] = s;
    s *= shape[k];
  }
  std::vector<int64_t> n, s;
  for (size_t k = 0; k < rank; k++) {
    int64_t d = shape[perm[k]];
    if (d == 1) continue;
    int64_t st = inStride[perm[k]];
    if (!n.empty() && s.back() == st * d) {
      n.back() *= d;
      s.back() = st;
    } else {
      n.push_back(d);
      s.push_back(st);
    }
  }
  const float* src = x.data;
  float* dst = out.data;
  if (n.size() <= 1) {
    std::memcpy(dst, src, sizeof(float) * total);
    return;
  }
  const size_t R = n.size();
  std::vector<int64_t> outStride(R);
  for (int64_t k = static_cast<int64_t>(R) - 1, st = 1; k >= 0; k--) {
    outStride[k] = st;
    st *= n[k];
  }
  const size_t L = R - 1;
  size_t C = L;
  for (size_t k = 0; k < R; k++)
    if (s[k] == 1) C = k;

  if (C == L) {
    // The last output axis is contiguous in the input: copy runs.
    int64_t run = n[L];
    int64_t rows = total / run;
    parallelFor(rows, std::max<int64_t>(1, 16384 / run), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; row++) {
        int64_t rem = row, off = 0;
        for (size_t k = L; k-- > 0;) {
          off += (rem % n[k]) * s[k];
          rem /= n[k];
        }
        std::memcpy(dst + row * run, src + off, sizeof(float) * run);
      }
    });
    return;
  }

  // Otherwise transpose tiles of the (C, L) plane for every index of the
  // remaining axes, so that both reads and writes stay in cache lines.
  constexpr int64_t T = 32;
  const int64_t nc = n[C], nl = n[L];
  const int64_t tilesC = (nc + T - 1) / T, tilesL = (nl + T - 1) / T;
  int64_t planes = total / (nc * nl);
  int64_t jobs = planes * tilesC * tilesL;
  parallelFor(jobs, 16, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end; job++) {
      int64_t plane = job / (tilesC * tilesL);
      int64_t tile = job % (tilesC * tilesL);
      int64_t c0 = (tile / tilesL) * T, l0 = (tile % tilesL) * T;
      int64_t c1 = std::min(nc, c0 + T), l1 = std::min(nl, l0 + T);
      // Offsets of this plane over the axes other than C and L.
      int64_t rem = plane, inOff = 0, outOff = 0;
      for (size_t k = R; k-- > 0;) {
        if (k == C || k == L) continue;
        int64_t i = rem % n[k];
        rem /= n[k];
        inOff += i * s[k];
        outOff += i * outStride[k];
      }
      for (int64_t c = c0; c < c1; c++) {
        float* d = dst + outOff + c * outStride[C];
        const float* sp = src + inOff + c;
        for (int64_t l = l0; l < l1; l++) d[l] = sp[l * s[L]];
      }
    }
  });
}

// The dtype conversions of cast(), named "from>to" (JS takes the codes from
// opTables(), see entry.h).
enum class CastKind { Float32ToInt32, Int32ToFloat32, BoolToFloat32, Float32ToBool, Int32ToBool, BoolToInt32, Count };
constexpr const char* kCastKindNames[] = {"float32>int32", "int32>float32", "bool>float32", "float32>bool", "int32>bool", "bool>int32"};
CAPSNET_OP_TABLE(cast, CastKind, kCastKindNames);

// JS's ToInt32, which tfjs's cpu Cast applies through Int32Array: NaN and
// infinities become 0, other values are truncated and wrapped mod 2^32.
inline int32_t toInt32(float v) {
  if (!std::isfinite(v)) return 0;
  double t = std::trunc(static_cast<double>(v));
  if (t >= -2147483648.0 && t <= 2147483647.0) return static_cast<int32_t>(t);
  double m = std::fmod(t, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<int32_t>(static_cast<uint32_t>(m));
}

// copyBlock({ src, srcShape, srcBegin, dst, dstShape, dstBegin, block }):
// copy the block of shape `block` at srcBegin in src to dstBegin in dst, for
// 4-byte elements. Slice, pad and concat are each one or more such copies.
CAPSNET_ENTRY(copyBlock, "src", "srcShape", "srcBegin", "dst", "dstShape", "dstBegin", "block") {
  std::vector<int64_t> srcShape = a.dims("srcShape");
  std::vector<int64_t> srcBegin = a.dims("srcBegin");
  std::vector<int64_t> dstShape = a.dims("dstShape");
  std::vector<int64_t> dstBegin = a.dims("dstBegin");
  std::vector<int64_t> block = a.dims("block");
  const int64_t rank = static_cast<int64_t>(block.size());
  require(rank >= 1 && static_cast<int64_t>(srcShape.size()) == rank && static_cast<int64_t>(srcBegin.size()) == rank && static_cast<int64_t>(dstShape.size()) == rank &&
              static_cast<int64_t>(dstBegin.size()) == rank,
          "copyBlock", "every shape and offset needs one entry per axis");
  for (int64_t k = 0; k < rank; k++) {
    require(srcBegin[k] + block[k] <= srcShape[k], "copyBlock", "the block leaves the source");
    require(dstBegin[k] + block[k] <= dstShape[k], "copyBlock", "the block leaves the destination");
  }
  View<float> src = a.f32("src", checkedProduct(srcShape, "copyBlock source"));
  View<float> dst = a.f32("dst", checkedProduct(dstShape, "copyBlock destination"));
  requireDisjoint(src, dst, "copyBlock");
  const int64_t total = checkedProduct(block, "copyBlock block");
  if (total == 0) return;
  std::vector<int64_t> srcStride(rank), dstStride(rank);
  for (int64_t k = rank - 1, ss = 1, ds = 1; k >= 0; k--) {
    srcStride[k] = ss;
    dstStride[k] = ds;
    ss *= srcShape[k];
    ds *= dstShape[k];
  }
  // One contiguous run covers axes [axis, rank): every axis after `axis` is
  // whole in the block, the source and the destination.
  int64_t axis = rank - 1;
  int64_t run = block[axis];
  while (axis > 0 && block[axis] == srcShape[axis] && block[axis] == dstShape[axis]) {
    axis--;
    run *= block[axis];
  }
  int64_t srcBase = 0, dstBase = 0;
  for (int64_t k = 0; k < rank; k++) {
    srcBase += srcBegin[k] * srcStride[k];
    dstBase += dstBegin[k] * dstStride[k];
  }
  const int64_t rows = total / run;
  parallelFor(rows, std::max<int64_t>(1, (1 << 15) / run), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      // r over the block's axes [0, axis), last axis fastest.
      int64_t rem = r, so = srcBase, dO = dstBase;
      for (int64_t k = axis - 1; k >= 0; k--) {
        const int64_t i = rem % block[k];
        rem /= block[k];
        so += i * srcStride[k];
        dO += i * dstStride[k];
      }
      std::memcpy(dst.data + dO, src.data + so, sizeof(float) * run);
    }
  });
}

// fill({ dst, value }): every element of dst (4-byte) set to value, as a
// float.
CAPSNET_ENTRY(fill, "dst", "value") {
  View<float> dst = a.f32("dst");
  const float v = static_cast<float>(a.number("value"));
  parallelFor(dst.length, 1 << 16, [&](int64_t begin, int64_t end) { std::fill(dst.data + begin, dst.data + end, v); });
}

// gather({ x, outer, dim, inner, indices, out }):
// out[o, k, :] = x[o, indices[k], :] for 4-byte elements; every index must
// lie in [0, dim).
CAPSNET_ENTRY(gather, "x", "outer", "dim", "inner", "indices", "out") {
  const int64_t outer = a.integer("outer", 0, INT32_MAX);
  const int64_t dim = a.integer("dim", 0, INT32_MAX);
  const int64_t inner = a.integer("inner", 0, INT32_MAX);
  View<float> x = a.f32("x", checkedProduct({outer, dim, inner}, "gather input"));
  View<int32_t> idx = a.array<int32_t>("indices");
  View<float> out = a.f32("out", checkedProduct({outer, idx.length, inner}, "gather output"));
  requireDisjoint(x, out, "gather");
  for (int64_t k = 0; k < idx.length; k++) {
    if (idx.data[k] < 0 || idx.data[k] >= dim) fail("gather: index " + std::to_string(idx.data[k]) + " is not in [0, " + std::to_string(dim) + ")");
  }
  const int64_t K = idx.length;
  if (outer == 0 || K == 0 || inner == 0) return;
  parallelFor(outer * K, std::max<int64_t>(1, (1 << 15) / inner), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t o = r / K, k = r % K;
      std::memcpy(out.data + r * inner, x.data + (o * dim + idx.data[k]) * inner, sizeof(float) * inner);
    }
  });
}

// cast({ kind, x, out }): x converted from one dtype to another, as tfjs's
// cpu Cast does; bool is a Uint8Array of 0 and 1.
CAPSNET_ENTRY(cast, "kind", "x", "out") {
  CastKind kind = a.op<CastKind>("kind");
  constexpr int64_t grain = 1 << 15;
  switch (kind) {
    case CastKind::Float32ToInt32: {
      View<float> x = a.f32("x");
      View<int32_t> y = a.array<int32_t>("out", x.length);
      parallelFor(x.length, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) y.data[i] = toInt32(x.data[i]);
      });
      break;
    }
    case CastKind::Int32ToFloat32: {
      View<int32_t> x = a.array<int32_t>("x");
      View<float> y = a.f32("out", x.length);
      parallelFor(x.length, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) y.data[i] = static_cast<float>(x.data[i]);
      });
      break;
    }
    case CastKind::BoolToFloat32: {
      View<uint8_t> x = a.array<uint8_t>("x");
      View<float> y = a.f32("out", x.length);
      parallelFor(x.length, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) y.data[i] = x.data[i] ? 1.0f : 0.0f;
      });
      break;
    }
    case CastKind::Float32ToBool: {
      View<float> x = a.f32("x");
      View<uint8_t> y = a.array<uint8_t>("out", x.length);
      parallelFor(x.length, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) y.data[i] = x.data[i] != 0.0f;
      });
      break;
    }
    case CastKind::Int32ToBool: {
      View<int32_t> x = a.array<int32_t>("x");
      View<uint8_t> y = a.array<uint8_t>("out", x.length);
      parallelFor(x.length, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) y.data[i] = x.data[i] != 0;
      });
      break;
    }
    case CastKind::BoolToInt32: {
      View<uint8_t> x = a.array<uint8_t>("x");
      View<int32_t> y = a.array<int32_t>("out", x.length);
      parallelFor(x.length, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) y.data[i] = x.data[i] ? 1 : 0;
      });
      break;
    }
    case CastKind::Count: fail("cast: unknown kind");
  }
}

}  // namespace

}  // namespace capsnet
