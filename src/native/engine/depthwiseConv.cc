// Depthwise 2-D convolution and both of its gradients, for
// src/native/kernels/depthwiseConv.ts: NHWC input [B, H, W, C], filter
// [KH, KW, C, m] and output [B, OH, OW, C m], where input channel c feeds
// output channels c m .. c m + m - 1 (m, the channel multiplier) and nothing
// mixes the channels. Each output is KH KW multiply-adds, too few to pay for
// a GEMM's packing, so the kernels are direct loops whose innermost runs
// along the channels, contiguous in NHWC (vectorized by the compiler).
//
// Efficient-CapsNet's primary capsules are one such layer (a 9x9 kernel over
// 9x9x128 maps, one output position); tfjs's cpu kernels for its filter
// gradient took 0.5 s a training step there.
#include <algorithm>
#include <cstring>
#include <vector>

#include "conv.h"
#include "entry.h"
#include "parallel.h"

namespace capsnet {
namespace {

// Multiply-adds per parallel part: enough to outweigh the dispatch.
constexpr int64_t kGrain = int64_t{1} << 15;

struct Depthwise {
  ConvGeometry g;
  int64_t m;  // channel multiplier: g.Co / g.Ci
};

Depthwise readDepthwise(Args& a, const char* entry) {
  ConvGeometry g = readConvGeometry(a);
  require(g.Co % g.Ci == 0, entry, "outChannels must be a multiple of inChannels (the channel multiplier)");
  return {g, g.Co / g.Ci};
}

// The taps k in [0, K) whose input coordinate o stride - pad + k dilation
// lies in [0, size), as [lo, hi) (empty when none does).
void validTaps(int64_t o, int64_t stride, int64_t pad, int64_t dilation, int64_t K, int64_t size, int64_t& lo, int64_t& hi) {
  const int64_t start = o * stride - pad;
  lo = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
  hi = start > size - 1 ? 0 : std::min(K, (size - 1 - start) / dilation + 1);
  if (hi < lo) hi = lo;
}

// y[c m + q] += x[c] f[c m + q] for the C input channels of one position.
inline void multiplyAdd(float* __restrict y, const float* __restrict x, const float* __restrict f, int64_t C, int64_t m) {
  if (m == 1) {
    for (int64_t c = 0; c < C; c++) y[c] += x[c] * f[c];
    return;
  }
  for (int64_t c = 0; c < C; c++) {
    const float xc = x[c];
    for (int64_t q = 0; q < m; q++) y[c * m + q] += xc * f[c * m + q];
  }
}

// dx[c] += sum over q of dy[c m + q] f[c m + q]: the adjoint of multiplyAdd
// in x.
inline void dotAdd(float* __restrict dx, const float* __restrict dy, const float* __restrict f, int64_t C, int64_t m) {
  if (m == 1) {
    for (int64_t c = 0; c < C; c++) dx[c] += dy[c] * f[c];
    return;
  }
  for (int64_t c = 0; c < C; c++) {
    float s = 0.0f;
    for (int64_t q = 0; q < m; q++) s += dy[c * m + q] * f[c * m + q];
    dx[c] += s;
  }
}

// depthwiseConv2d({ x, filter, out, ...geometry }): out[b, oy, ox, c m + q]
// = sum over (kh, kw) of x[b, oy sh - padTop + kh dh, ox sw - padLeft + kw dw, c]
// filter[kh, kw, c, q], taps in the padding contributing nothing.
CAPSNET_ENTRY(depthwiseConv2d, "x", "filter", "out", CAPSNET_CONV_GEOMETRY) {
  const Depthwise d = readDepthwise(a, "depthwiseConv2d");
  const ConvGeometry& g = d.g;
  View<float> x = a.f32("x", g.B * g.H * g.W * g.Ci);
  View<float> f = a.f32("filter", g.P() * g.Co);
  View<float> out = a.f32("out", g.M() * g.Co);
  requireDisjoint(out, x, "depthwiseConv2d");
  requireDisjoint(out, f, "depthwiseConv2d");
  if (out.length == 0) return;
  const int64_t C = g.Ci, Co = g.Co, m = d.m;
  // One part: rows of output (b, oy).
  parallelFor(g.B * g.OH, std::max<int64_t>(1, kGrain / (g.OW * g.P() * Co)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / g.OH, oy = r % g.OH;
      int64_t khLo, khHi;
      validTaps(oy, g.sh, g.padTop, g.dh, g.KH, g.H, khLo, khHi);
      float* row = out.data + r * g.OW * Co;
      std::memset(row, 0, sizeof(float) * g.OW * Co);
      for (int64_t ox = 0; ox < g.OW; ox++) {
        int64_t kwLo, kwHi;
        validTaps(ox, g.sw, g.padLeft, g.dw, g.KW, g.W, kwLo, kwHi);
        float* y = row + ox * Co;
        for (int64_t kh = khLo; kh < khHi; kh++) {
          const int64_t iy = oy * g.sh - g.padTop + kh * g.dh;
          const float* xRow = x.data + (b * g.H + iy) * g.W * C;
          for (int64_t kw = kwLo; kw < kwHi; kw++) {
            const int64_t ix = ox * g.sw - g.padLeft + kw * g.dw;
            multiplyAdd(y, xRow + ix * C, f.data + (kh * g.KW + kw) * Co, C, m);
          }
        }
      }
    }
  });
}

// depthwiseConv2dBackpropInput({ dy, filter, dx, ...geometry }): dx, the
// gradient of depthwiseConv2d in x times dy. Gathered per input position
// (every output that read it), so that parts own rows of dx and never add
// into the same place.
CAPSNET_ENTRY(depthwiseConv2dBackpropInput, "dy", "filter", "dx", CAPSNET_CONV_GEOMETRY) {
  const Depthwise d = readDepthwise(a, "depthwiseConv2dBackpropInput");
  const ConvGeometry& g = d.g;
  View<float> dy = a.f32("dy", g.M() * g.Co);
  View<float> f = a.f32("filter", g.P() * g.Co);
  View<float> dx = a.f32("dx", g.B * g.H * g.W * g.Ci);
  requireDisjoint(dx, dy, "depthwiseConv2dBackpropInput");
  requireDisjoint(dx, f, "depthwiseConv2dBackpropInput");
  if (dx.length == 0) return;
  const int64_t C = g.Ci, Co = g.Co, m = d.m;
  parallelFor(g.B * g.H, std::max<int64_t>(1, kGrain / (g.W * g.P() * Co)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / g.H, iy = r % g.H;
      float* row = dx.data + r * g.W * C;
      std::memset(row, 0, sizeof(float) * g.W * C);
      for (int64_t kh = 0; kh < g.KH; kh++) {
        // The output row that read input row iy through tap kh, if any.
        const int64_t ty = iy + g.padTop - kh * g.dh;
        if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.OH) continue;
        const float* dyRow = dy.data + (b * g.OH + ty / g.sh) * g.OW * Co;
        for (int64_t ix = 0; ix < g.W; ix++) {
          for (int64_t kw = 0; kw < g.KW; kw++) {
            const int64_t tx = ix + g.padLeft - kw * g.dw;
            if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.OW) continue;
            dotAdd(row + ix * C, dyRow + (tx / g.sw) * Co, f.data + (kh * g.KW + kw) * Co, C, m);
          }
        }
      }
    }
  });
}

// depthwiseConv2dBackpropFilter({ x, dy, dw, ...geometry }): dw, the
// gradient of depthwiseConv2d in the filter times dy. Tasks own a kernel
// position and a block of channels of dw, so no two add into the same
// place and the result does not depend on the thread count; each sums a
// row of outputs in float and the rows in double.
CAPSNET_ENTRY(depthwiseConv2dBackpropFilter, "x", "dy", "dw", CAPSNET_CONV_GEOMETRY) {
  const Depthwise d = readDepthwise(a, "depthwiseConv2dBackpropFilter");
  const ConvGeometry& g = d.g;
  View<float> x = a.f32("x", g.B * g.H * g.W * g.Ci);
  View<float> dy = a.f32("dy", g.M() * g.Co);
  View<float> dw = a.f32("dw", g.P() * g.Co);
  requireDisjoint(dw, x, "depthwiseConv2dBackpropFilter");
  requireDisjoint(dw, dy, "depthwiseConv2dBackpropFilter");
  if (dw.length == 0) return;
  const int64_t C = g.Ci, Co = g.Co, m = d.m, P = g.P();
  // Channel blocks: enough tasks for every thread when the kernel has few
  // positions (a 1x1 or 3x3 kernel), blocks of at least 16 channels.
  const int64_t wanted = 4 * static_cast<int64_t>(threadCount());
  const int64_t blocks = std::max<int64_t>(1, std::min((wanted + P - 1) / P, C / 16));
  parallelTasks(P * blocks, [&](int64_t t, int) {
    const int64_t p = t / blocks, blk = t % blocks;
    const int64_t c0 = C * blk / blocks, c1 = C * (blk + 1) / blocks, width = (c1 - c0) * m;
    const int64_t kh = p / g.KW, kw = p % g.KW;
    std::vector<float> rowSum(static_cast<size_t>(width));
    std::vector<double> sum(static_cast<size_t>(width), 0.0);
    // The outputs whose tap (kh, kw) lies inside the input.
    int64_t oyLo = 0, oyHi = 0, oxLo = 0, oxHi = 0;
    for (int64_t oy = 0; oy < g.OH; oy++) {
      int64_t lo, hi;
      validTaps(oy, g.sh, g.padTop, g.dh, g.KH, g.H, lo, hi);
      if (kh >= lo && kh < hi) {
        if (oyHi == oyLo) oyLo = oy;
        oyHi = oy + 1;
      }
    }
    for (int64_t ox = 0; ox < g.OW; ox++) {
      int64_t lo, hi;
      validTaps(ox, g.sw, g.padLeft, g.dw, g.KW, g.W, lo, hi);
      if (kw >= lo && kw < hi) {
        if (oxHi == oxLo) oxLo = ox;
        oxHi = ox + 1;
      }
    }
    for (int64_t b = 0; b < g.B; b++) {
      for (int64_t oy = oyLo; oy < oyHi; oy++) {
        const int64_t iy = oy * g.sh - g.padTop + kh * g.dh;
        const float* xRow = x.data + (b * g.H + iy) * g.W * C + c0;
        const float* dyRow = dy.data + (b * g.OH + oy) * g.OW * Co + c0 * m;
        std::fill(rowSum.begin(), rowSum.end(), 0.0f);
        for (int64_t ox = oxLo; ox < oxHi; ox++) {
          const int64_t ix = ox * g.sw - g.padLeft + kw * g.dw;
          multiplyAdd(rowSum.data(), xRow + ix * C, dyRow + ox * Co, c1 - c0, m);
        }
        for (int64_t k = 0; k < width; k++) sum[k] += rowSum[k];
      }
    }
    float* out = dw.data + p * Co + c0 * m;
    for (int64_t k = 0; k < width; k++) out[k] = static_cast<float>(sum[k]);
  });
}

}  // namespace
}  // namespace capsnet
