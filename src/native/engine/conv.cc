// 2-D convolution (NHWC input, HWIO filter) and both of its gradients, as
// im2col / col2im around sgemm; 3x3 stride-1 layers go to Winograd's
// F(4x4, 3x3) (winograd.cc) and large kernels to the frequency domain
// (spectral.cc) where those pay.
//
// The column matrix of a whole batch can be huge (the primary-capsule layer
// of CapsNet at batch 100 has 3600 x 20736 entries, 300 MB), so it is never
// built at once: each task fills a block of rows x kernel positions in a
// per-thread buffer of bounded size and multiplies it at once, while the
// block is still in cache. A column index k decomposes as (kh, kw, ci) with
// ci fastest, matching the filter's memory layout, so a block of kernel
// positions is a contiguous range of filter rows.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "blas.h"
#include "conv.h"
#include "entry.h"
#include "parallel.h"

namespace capsnet {

ConvGeometry readConvGeometry(Args& a) {
  const int64_t big = INT32_MAX;
  ConvGeometry g;
  g.B = a.integer("batchSize", 0, big);
  g.H = a.integer("inHeight", 0, big);
  g.W = a.integer("inWidth", 0, big);
  g.Ci = a.integer("inChannels", 1, big);
  g.OH = a.integer("outHeight", 0, big);
  g.OW = a.integer("outWidth", 0, big);
  g.Co = a.integer("outChannels", 1, big);
  g.KH = a.integer("filterHeight", 1, big);
  g.KW = a.integer("filterWidth", 1, big);
  g.sh = a.integer("strideHeight", 1, big);
  g.sw = a.integer("strideWidth", 1, big);
  g.dh = a.integer("dilationHeight", 1, big);
  g.dw = a.integer("dilationWidth", 1, big);
  g.padTop = a.integer("padTop", 0, big);
  g.padLeft = a.integer("padLeft", 0, big);
  // Products used as sizes and offsets must fit comfortably in int64 and
  // the GEMM dimensions in int32 (cblas's blasint).
  checkedMul(checkedMul(checkedMul(g.B, g.H, "conv"), g.W, "conv"), g.Ci, "conv input");
  checkedMul(checkedMul(g.M(), g.Co, "conv"), 1, "conv output");
  int64_t K = checkedMul(checkedMul(g.KH, g.KW, "conv"), g.Ci, "conv filter");
  checkedMul(K, g.Co, "conv filter");
  require(g.M() <= INT32_MAX && K <= INT32_MAX, "conv", "too large for 32-bit GEMM dimensions");
  return g;
}

namespace {

// Floats per thread for a column block: 4 MiB keeps two threads' blocks in
// a shared L3 while leaving the GEMMs large enough to run near peak. Tests
// lower it to exercise the blocking on small shapes.
std::atomic<int64_t> columnBlock{int64_t{1} << 20};

struct Block {
  int64_t r0, rows;  // output pixels
  int64_t p0, pn;    // kernel positions
};

// Fill col[rows, pn * Ci] with the input patches of a block; zeros where a
// patch reaches into the padding.
void im2col(const ConvGeometry& g, const float* x, const Block& blk, float* col) {
  const int64_t Ci = g.Ci, width = blk.pn * Ci;
  const int64_t ohw = g.OH * g.OW;
  for (int64_t i = 0; i < blk.rows; i++) {
    int64_t r = blk.r0 + i;
    int64_t b = r / ohw, rem = r % ohw;
    int64_t oy = rem / g.OW, ox = rem % g.OW;
    int64_t iy0 = oy * g.sh - g.padTop, ix0 = ox * g.sw - g.padLeft;
    const float* xb = x + b * g.H * g.W * Ci;
    float* dst = col + i * width;
    int64_t p = blk.p0, pEnd = blk.p0 + blk.pn;
    while (p < pEnd) {
      int64_t kh = p / g.KW, kw = p % g.KW;
      // Positions left in this filter row, within the block.
      int64_t span = std::min(g.KW - kw, pEnd - p);
      int64_t iy = iy0 + kh * g.dh;
      if (iy < 0 || iy >= g.H) {
        std::memset(dst, 0, sizeof(float) * span * Ci);
      } else if (g.dw == 1) {
        // Undilated: the span is one contiguous run of the input row.
        int64_t ixa = ix0 + kw, ixb = ixa + span;  // [ixa, ixb)
        int64_t va = std::max<int64_t>(ixa, 0), vb = std::min<int64_t>(ixb, g.W);
        if (va >= vb) {
          std::memset(dst, 0, sizeof(float) * span * Ci);
        } else {
          if (va > ixa) std::memset(dst, 0, sizeof(float) * (va - ixa) * Ci);
          std::memcpy(dst + (va - ixa) * Ci, xb + (iy * g.W + va) * Ci, sizeof(float) * (vb - va) * Ci);
          if (ixb > vb) std::memset(dst + (vb - ixa) * Ci, 0, sizeof(float) * (ixb - vb) * Ci);
        }
      } else {
        for (int64_t s = 0; s < span; s++) {
          int64_t ix = ix0 + (kw + s) * g.dw;
          float* d = dst + s * Ci;
          if (ix < 0 || ix >= g.W) std::memset(d, 0, sizeof(float) * Ci);
          else std::memcpy(d, xb + (iy * g.W + ix) * Ci, sizeof(float) * Ci);
        }
      }
      dst += span * Ci;
      p += span;
    }
  }
}

// dx += the column block scattered back onto the input positions it came
// from (the adjoint of im2col).
void col2imAdd(const ConvGeometry& g, const float* col, const Block& blk, float* dx) {
  const int64_t Ci = g.Ci, width = blk.pn * Ci;
  const int64_t ohw = g.OH * g.OW;
  for (int64_t i = 0; i < blk.rows; i++) {
    int64_t r = blk.r0 + i;
    int64_t b = r / ohw, rem = r % ohw;
    int64_t oy = rem / g.OW, ox = rem % g.OW;
    int64_t iy0 = oy * g.sh - g.padTop, ix0 = ox * g.sw - g.padLeft;
    float* xb = dx + b * g.H * g.W * Ci;
    const float* src = col + i * width;
    for (int64_t p = blk.p0; p < blk.p0 + blk.pn; p++, src += Ci) {
      int64_t iy = iy0 + (p / g.KW) * g.dh, ix = ix0 + (p % g.KW) * g.dw;
      if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
      float* d = xb + (iy * g.W + ix) * Ci;
      for (int64_t c = 0; c < Ci; c++) d[c] += src[c];
    }
  }
}

using Buffer = std::unique_ptr<float[]>;

std::vector<Buffer> scratch(int count, int64_t elements) {
  std::vector<Buffer> out;
  for (int i = 0; i < count; i++) out.emplace_back(new float[std::max<int64_t>(elements, 1)]);
  return out;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// conv2d({ x, filter, out, bias, activation = linear, alpha = 0,
// ...geometry }): out = act(conv(x, filter) + bias); bias has outChannels
// entries, one, or none (empty or absent).
CAPSNET_ENTRY(conv2d, "x", "filter", "out", "bias", "activation", "alpha", CAPSNET_CONV_GEOMETRY) {
  ConvGeometry g = readConvGeometry(a);
  View<float> x = a.f32("x", g.B * g.H * g.W * g.Ci);
  View<float> f = a.f32("filter", g.K() * g.Co);
  View<float> out = a.f32("out", g.M() * g.Co);
  View<float> bias = a.optionalF32("bias");
  require(bias.length == 0 || bias.length == 1 || bias.length == g.Co, "conv2d", "bias must have 0, 1 or outChannels entries");
  Activation activation = a.op<Activation>("activation", Activation::Linear);
  float alpha = static_cast<float>(a.number("alpha", 0.0));
  requireDisjoint(out, x, "conv2d");
  requireDisjoint(out, f, "conv2d");
  requireDisjoint(out, bias, "conv2d");
  const int64_t M = g.M(), P = g.P(), Ci = g.Ci, Co = g.Co;
  if (M == 0) return;
  if (winogradPays(g)) return winogradConv2d(g, x.data, f.data, out.data, bias.data, bias.length, activation, alpha);
  if (spectralPays(g)) return spectralConv2d(g, x.data, f.data, out.data, bias.data, bias.length, activation, alpha);
  const int64_t block = columnBlock.load();

  const int threads = threadCount();
  // Row blocks: a few per thread for balance, each at most what fits the
  // column buffer with one kernel position; position blocks: as many
  // positions as then fit.
  int64_t tasks = std::min(M, std::max<int64_t>(4 * threads, ceilDiv(M, std::max<int64_t>(16, block / Ci))));
  int64_t mc = ceilDiv(M, tasks);
  int64_t pc = std::max<int64_t>(1, std::min<int64_t>(P, block / (mc * Ci)));
  std::vector<Buffer> cols = scratch(threads, mc * pc * Ci);

  // With a short reduction (a first layer: K = 81 for CapsNet's Conv1) the
  // output dominates the traffic: multiply in row slices whose output fits
  // in L2, so that the GEMM's zeroing, its accumulation and the epilogue all
  // hit cache. With a long one, one GEMM per block keeps the filter from
  // being packed more often than needed.
  const int64_t slice = g.K() < 1024 ? std::max<int64_t>(32, 65536 / Co) : mc;
  parallelTasks(tasks, [&](int64_t t, int worker) {
    float* col = cols[worker].get();
    int64_t r0 = M * t / tasks, r1 = M * (t + 1) / tasks;
    for (int64_t rs = r0; rs < r1; rs += slice) {
      Block blk{rs, std::min(slice, r1 - rs), 0, 0};
      float* y = out.data + blk.r0 * Co;
      for (int64_t p0 = 0; p0 < P; p0 += pc) {
        blk.p0 = p0;
        blk.pn = std::min(pc, P - p0);
        im2col(g, x.data, blk, col);
        sgemm(false, false, blk.rows, Co, blk.pn * Ci, 1.0f, col, blk.pn * Ci, f.data + p0 * Ci * Co, Co,
              p0 == 0 ? 0.0f : 1.0f, y, Co);
      }
      // The epilogue runs on the block while it is still in cache.
      biasActivation(y, blk.rows, Co, bias.data, bias.length, activation, alpha);
    }
  }, threads);
}

// conv2dBackpropInput({ dy, filter, dx, ...geometry }):
// dx = col2im(dy filter^T).
CAPSNET_ENTRY(conv2dBackpropInput, "dy", "filter", "dx", CAPSNET_CONV_GEOMETRY) {
  ConvGeometry g = readConvGeometry(a);
  View<float> dy = a.f32("dy", g.M() * g.Co);
  View<float> f = a.f32("filter", g.K() * g.Co);
  View<float> dx = a.f32("dx", g.B * g.H * g.W * g.Ci);
  requireDisjoint(dx, dy, "conv2dBackpropInput");
  requireDisjoint(dx, f, "conv2dBackpropInput");
  const int64_t P = g.P(), Ci = g.Ci, Co = g.Co, ohw = g.OH * g.OW, image = g.H * g.W * Ci;
  const int64_t block = columnBlock.load();
  if (dx.length == 0) return;
  if (ohw == 0) {
    std::memset(dx.data, 0, sizeof(float) * dx.length);
    return;
  }
  if (winogradPays(g)) return winogradBackpropInput(g, dy.data, f.data, dx.data);
  if (spectralPays(g)) return spectralBackpropInput(g, dy.data, f.data, dx.data);
  const int threads = threadCount();
  // Tasks own whole images, so that their scatter-adds never overlap.
  int64_t tasks = std::min(g.B, 4 * static_cast<int64_t>(threads));
  int64_t maxRows = ceilDiv(g.B, tasks) * ohw;
  int64_t mc = std::min(maxRows, std::max<int64_t>(16, block / Ci));
  int64_t pc = std::max<int64_t>(1, std::min<int64_t>(P, block / (mc * Ci)));
  // With fewer tasks than threads (tiny batches) the GEMMs are split instead.
  bool splitGemm = tasks < threads;
  int workers = splitGemm ? 1 : threads;
  std::vector<Buffer> cols = scratch(workers, mc * pc * Ci);

  auto runTask = [&](int64_t t, int worker) {
    float* col = cols[worker].get();
    int64_t b0 = g.B * t / tasks, b1 = g.B * (t + 1) / tasks;
    if (b0 >= b1) return;
    std::memset(dx.data + b0 * image, 0, sizeof(float) * (b1 - b0) * image);
    int64_t rEnd = b1 * ohw;
    for (int64_t r0 = b0 * ohw; r0 < rEnd; r0 += mc) {
      Block blk{r0, std::min(mc, rEnd - r0), 0, 0};
      for (int64_t p0 = 0; p0 < P; p0 += pc) {
        blk.p0 = p0;
        blk.pn = std::min(pc, P - p0);
        int64_t width = blk.pn * Ci;
        // col[rows, width] = dy[rows, Co] * filter[p0.., Co]^T
        if (splitGemm)
          sgemmParallel(false, true, blk.rows, width, Co, 1.0f, dy.data + r0 * Co, Co, f.data + p0 * Ci * Co, Co, 0.0f, col, width);
        else
          sgemm(false, true, blk.rows, width, Co, 1.0f, dy.data + r0 * Co, Co, f.data + p0 * Ci * Co, Co, 0.0f, col, width);
        col2imAdd(g, col, blk, dx.data);
      }
    }
  };
  if (splitGemm) {
    for (int64_t t = 0; t < tasks; t++) runTask(t, 0);
  } else {
    parallelTasks(tasks, runTask, workers);
  }
}

// conv2dBackpropFilter({ x, dy, dw, ...geometry }): dw = im2col(x)^T dy.
CAPSNET_ENTRY(conv2dBackpropFilter, "x", "dy", "dw", CAPSNET_CONV_GEOMETRY) {
  ConvGeometry g = readConvGeometry(a);
  View<float> x = a.f32("x", g.B * g.H * g.W * g.Ci);
  View<float> dy = a.f32("dy", g.M() * g.Co);
  View<float> dw = a.f32("dw", g.K() * g.Co);
  requireDisjoint(dw, x, "conv2dBackpropFilter");
  requireDisjoint(dw, dy, "conv2dBackpropFilter");
  const int64_t M = g.M(), P = g.P(), K = g.K(), Ci = g.Ci, Co = g.Co;
  const int64_t block = columnBlock.load();
  if (dw.length == 0) return;
  if (M == 0) {
    std::memset(dw.data, 0, sizeof(float) * dw.length);
    return;
  }
  if (winogradPays(g)) return winogradBackpropFilter(g, x.data, dy.data, dw.data);
  if (spectralPays(g)) return spectralBackpropFilter(g, x.data, dy.data, dw.data);
  const int threads = threadCount();

  if (K * 4 * threads < M) {
    // Small filter, many pixels (a first layer): split the pixels into a
    // fixed set of tasks, each with its own copy of dw, and add the copies
    // in task order at the end. The copies belong to tasks, not threads, so
    // the result does not depend on which thread ran which task.
    int64_t tasks = std::min(M, 4 * static_cast<int64_t>(threads));
    int64_t mc = std::max<int64_t>(1, std::min(ceilDiv(M, tasks), block / K));
    std::vector<Buffer> cols = scratch(threads, mc * K);
    std::vector<Buffer> partial = scratch(static_cast<int>(tasks), K * Co);
    parallelTasks(tasks, [&](int64_t t, int worker) {
      float* col = cols[worker].get();
      int64_t r0 = M * t / tasks, r1 = M * (t + 1) / tasks;
      for (int64_t r = r0; r < r1; r += mc) {
        Block blk{r, std::min(mc, r1 - r), 0, P};
        im2col(g, x.data, blk, col);
        sgemm(true, false, K, Co, blk.rows, 1.0f, col, K, dy.data + blk.r0 * Co, Co, r == r0 ? 0.0f : 1.0f, partial[t].get(), Co);
      }
      if (r0 >= r1) std::memset(partial[t].get(), 0, sizeof(float) * K * Co);
    }, threads);
    parallelFor(K * Co, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        float s = 0.0f;
        for (int64_t t = 0; t < tasks; t++) s += partial[t][i];
        dw.data[i] = s;
      }
    });
    return;
  }

  // Large filter: split the kernel positions, so that each task owns rows
  // of dw, and walk all pixels in row blocks. With fewer positions than
  // threads (1x1 filters) the GEMMs are split instead.
  int64_t tasks = std::min(P, 4 * static_cast<int64_t>(threads));
  bool splitGemm = tasks < threads;
  int workers = splitGemm ? 1 : threads;
  int64_t pc = ceilDiv(P, tasks);
  int64_t mc = std::max<int64_t>(16, std::min(M, block / (pc * Ci)));
  std::vector<Buffer> cols = scratch(workers, mc * pc * Ci);
  auto runTask = [&](int64_t t, int worker) {
    float* col = cols[worker].get();
    int64_t p0 = P * t / tasks, p1 = P * (t + 1) / tasks;
    if (p0 >= p1) return;
    Block blk{0, 0, p0, p1 - p0};
    int64_t width = blk.pn * Ci;
    float* dst = dw.data + blk.p0 * Ci * Co;
    for (int64_t r0 = 0; r0 < M; r0 += mc) {
      blk.r0 = r0;
      blk.rows = std::min(mc, M - r0);
      im2col(g, x.data, blk, col);
      float beta = r0 == 0 ? 0.0f : 1.0f;
      if (splitGemm)
        sgemmParallel(true, false, width, Co, blk.rows, 1.0f, col, width, dy.data + r0 * Co, Co, beta, dst, Co);
      else
        sgemm(true, false, width, Co, blk.rows, 1.0f, col, width, dy.data + r0 * Co, Co, beta, dst, Co);
    }
  };
  if (splitGemm) {
    for (int64_t t = 0; t < tasks; t++) runTask(t, 0);
  } else {
    parallelTasks(tasks, runTask, workers);
  }
}

// setSpectralMode({ mode }): 'never' use the frequency-domain path, 'auto'
// where it pays (default), 'always' wherever the geometry allows (tests
// compare the paths).
CAPSNET_ENTRY(setSpectralMode, "mode") {
  const std::string mode = a.string("mode");
  if (mode == "never") capsnet::setSpectralMode(SpectralMode::Never);
  else if (mode == "auto") capsnet::setSpectralMode(SpectralMode::Auto);
  else if (mode == "always") capsnet::setSpectralMode(SpectralMode::Always);
  else fail("setSpectralMode: mode must be 'never', 'auto' or 'always', got '" + mode + "'");
}

// setWinogradMode({ mode }): 'never' use Winograd's F(4x4, 3x3) for 3x3
// stride-1 convolutions, 'auto' where it pays (default), 'always' wherever
// the geometry allows (tests compare the paths).
CAPSNET_ENTRY(setWinogradMode, "mode") {
  const std::string mode = a.string("mode");
  if (mode == "never") capsnet::setWinogradMode(WinogradMode::Never);
  else if (mode == "auto") capsnet::setWinogradMode(WinogradMode::Auto);
  else if (mode == "always") capsnet::setWinogradMode(WinogradMode::Always);
  else fail("setWinogradMode: mode must be 'never', 'auto' or 'always', got '" + mode + "'");
}

// setColumnBlock({ floats }): the per-thread column buffer size (at least
// 1024).
CAPSNET_ENTRY(setColumnBlock, "floats") { columnBlock.store(a.integer("floats", 1024, int64_t{1} << 30)); }

// setSpectralColumns({ columns }): at most this many spectrum columns per
// block on the frequency-domain path, 0 for as many as its memory budget
// allows.
CAPSNET_ENTRY(setSpectralColumns, "columns") { capsnet::setSpectralColumns(a.integer("columns", 0, 1 << 20)); }

}  // namespace

}  // namespace capsnet
