// 3x3 stride-1 convolutions and both their gradients by Winograd's minimal
// filtering, F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", CVPR 2016), for the layers where it takes
// far fewer operations than im2col + GEMM: Efficient-CapsNet's backbone
// (32 -> 64 and 64 -> 64 channels on 24x24 and 22x22 maps).
//
// Each 4x4 block of outputs (a tile) reads a 6x6 block d of the input, and
//   Y = A^T [ (G g G^T) . (B^T d B) ] A
// gives it exactly (in exact arithmetic) for a 3x3 filter g, with . the
// elementwise product of 6x6 matrices: 36 multiplies per tile and channel
// pair instead of 144. With xi one of the 36 entries, the sum over input
// channels is one GEMM per xi:
//   forward:          M_xi [tiles x Co] = V_xi [tiles x Ci] U_xi [Ci x Co],
//                     V = B^T d B (inputs), U = G g G^T (filter), Y = A^T M A;
//   input gradient:   the adjoint of that map: Mg = A dY A^T,
//                     dV_xi = Mg_xi U_xi^T, dd = B dV B^T added into dx;
//   filter gradient:  dU_xi = sum over tiles of V_xi^T Mg_xi, dg = G^T dU G.
// Tiles reaching past the output (when 4 does not divide it) compute
// values that are dropped, and their dY is zero; taps in the padding read 0.
//
// The transforms are short sums with small integer (or 1/6, 1/24)
// coefficients, vectorized along the channels (contiguous in NHWC and HWIO).
// Their rounding is a few times float32's epsilon relative to the sums'
// magnitudes (the points 0, +-1, +-2 keep the coefficients small).
//
// Images are processed in groups (tasks) whose transformed tiles fit a few
// megabytes; a group's GEMMs run on the thread that transformed it. The
// filter gradient sums one partial dU per group, in group order, so that
// the result does not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "blas.h"
#include "conv.h"
#include "memory.h"
#include "parallel.h"

namespace capsnet {

namespace {

std::atomic<WinogradMode> winogradMode{WinogradMode::Auto};

constexpr int64_t kTile = 4;   // outputs per tile side
constexpr int64_t kSide = 6;   // inputs per tile side: kTile + 3 - 1
constexpr int64_t kXi = 36;    // kSide * kSide transformed entries
// Floats of transformed tiles (inputs and products) per group of images:
// 2 MB, so that two threads' groups stay in a shared 8 MB L3 between the
// transforms and the products. With 8 MB groups the 64 -> 64 layer's
// forward pass took 47 ms at batch 100 on one thread of a 2-core AMD EPYC,
// with 2 MB 37 ms; 1 MB and 0.5 MB were no faster.
constexpr int64_t kGroupFloats = int64_t{1} << 19;
constexpr int64_t kMinTasks = 8;

typedef float Vec8 __attribute__((vector_size(32)));
// The same vector at float alignment, for unaligned loads and stores that
// alias only floats (a memcpy would alias everything, and the compiler would
// then reload every size and pointer of the loops after each store).
typedef float Vec8u __attribute__((vector_size(32), aligned(4)));

template <typename T>
inline T load(const float* p);
template <>
inline float load<float>(const float* p) {
  return *p;
}
template <>
inline Vec8 load<Vec8>(const float* p) {
  return *reinterpret_cast<const Vec8u*>(p);
}
inline void store(float* p, float v) { *p = v; }
inline void store(float* p, const Vec8& v) { *reinterpret_cast<Vec8u*>(p) = v; }
inline void addStore(float* p, float v) { *p += v; }
inline void addStore(float* p, const Vec8& v) { *reinterpret_cast<Vec8u*>(p) += v; }

// body(T{}, c) for 8-channel vectors covering [0, C), then single channels.
template <typename Body>
__attribute__((always_inline)) inline void forChannels(int64_t C, Body body) {
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) body(Vec8{}, c);
  for (; c < C; c++) body(0.0f, c);
}

// The 1-D transforms, on 6 (or 4, 3) values at a stride. With the points
// 0, 1, -1, 2, -2 and infinity:
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// Each adjoint is the transposed matrix, for the gradients.

// o = B^T d (6 -> 6).
template <typename T>
inline void inputT(const T* d, int64_t ds, T* o, int64_t os) {
  const T d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
  o[0] = d0 * 4.0f - d2 * 5.0f + d4;
  o[os] = d3 + d4 - (d1 + d2) * 4.0f;
  o[2 * os] = (d1 - d2) * 4.0f - d3 + d4;
  o[3 * os] = (d3 - d1) * 2.0f - d2 + d4;
  o[4 * os] = (d1 - d3) * 2.0f - d2 + d4;
  o[5 * os] = d1 * 4.0f - d3 * 5.0f + d5;
}

// o = B v (6 -> 6), the adjoint of inputT.
template <typename T>
inline void inputAdjoint(const T* v, int64_t vs, T* o, int64_t os) {
  const T v0 = v[0], v1 = v[vs], v2 = v[2 * vs], v3 = v[3 * vs], v4 = v[4 * vs], v5 = v[5 * vs];
  o[0] = v0 * 4.0f;
  o[os] = (v2 - v1 + v5) * 4.0f + (v4 - v3) * 2.0f;
  o[2 * os] = -(v0 * 5.0f) - (v1 + v2) * 4.0f - v3 - v4;
  o[3 * os] = v1 - v2 + (v3 - v4) * 2.0f - v5 * 5.0f;
  o[4 * os] = v0 + v1 + v2 + v3 + v4;
  o[5 * os] = v5;
}

// o = A^T m (6 -> 4).
template <typename T>
inline void outputT(const T* m, int64_t ms, T* o, int64_t os) {
  const T m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms], m5 = m[5 * ms];
  const T p12 = m1 + m2, n12 = m1 - m2, p34 = m3 + m4, n34 = m3 - m4;
  o[0] = m0 + p12 + p34;
  o[os] = n12 + n34 * 2.0f;
  o[2 * os] = p12 + p34 * 4.0f;
  o[3 * os] = n12 + n34 * 8.0f + m5;
}

// o = A y (4 -> 6), the adjoint of outputT.
template <typename T>
inline void outputAdjoint(const T* y, int64_t ys, T* o, int64_t os) {
  const T y0 = y[0], y1 = y[ys], y2 = y[2 * ys], y3 = y[3 * ys];
  const T e = y0 + y2, odd = y1 + y3;
  const T e4 = y0 + y2 * 4.0f, odd4 = y1 * 2.0f + y3 * 8.0f;
  o[0] = y0;
  o[os] = e + odd;
  o[2 * os] = e - odd;
  o[3 * os] = e4 + odd4;
  o[4 * os] = e4 - odd4;
  o[5 * os] = y3;
}

// o = G g (3 -> 6).
template <typename T>
inline void filterT(const T* g, int64_t gs, T* o, int64_t os) {
  const T g0 = g[0], g1 = g[gs], g2 = g[2 * gs];
  const T outer = g0 + g2;
  o[0] = g0 * 0.25f;
  o[os] = (outer + g1) * (-1.0f / 6.0f);
  o[2 * os] = (outer - g1) * (-1.0f / 6.0f);
  o[3 * os] = g0 * (1.0f / 24.0f) + g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
  o[4 * os] = g0 * (1.0f / 24.0f) - g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
  o[5 * os] = g2;
}

// o = G^T u (6 -> 3), the adjoint of filterT.
template <typename T>
inline void filterAdjoint(const T* u, int64_t us, T* o, int64_t os) {
  const T u0 = u[0], u1 = u[us], u2 = u[2 * us], u3 = u[3 * us], u4 = u[4 * us], u5 = u[5 * us];
  o[0] = u0 * 0.25f - (u1 + u2) * (1.0f / 6.0f) + (u3 + u4) * (1.0f / 24.0f);
  o[os] = (u2 - u1) * (1.0f / 6.0f) + (u3 - u4) * (1.0f / 12.0f);
  o[2 * os] = (u3 + u4 - u1 - u2) * (1.0f / 6.0f) + u5;
}

struct Tiling {
  int64_t ty, tx, T;  // tiles along y and x, per image
  int64_t group;      // images per task
  int64_t tasks;
  Tiling(const ConvGeometry& g) {
    ty = (g.OH + kTile - 1) / kTile;
    tx = (g.OW + kTile - 1) / kTile;
    T = ty * tx;
    // At least kMinTasks groups where the batch allows, for the threads to
    // share; the split depends on the geometry alone, never on the thread
    // count (the filter gradient's sums follow it).
    group = std::max<int64_t>(1, std::min((g.B + kMinTasks - 1) / kMinTasks, kGroupFloats / (kXi * T * (g.Ci + g.Co))));
    tasks = (g.B + group - 1) / group;
  }
};

// U [36][Ci][Co] = G g G^T of every (ci, co) of the HWIO filter.
void filterTransform(const ConvGeometry& g, const float* filter, float* U) {
  const int64_t Ci = g.Ci, Co = g.Co;
  parallelFor(Ci, std::max<int64_t>(1, 4096 / Co), [&](int64_t c0, int64_t c1) {
    for (int64_t ci = c0; ci < c1; ci++) {
      forChannels(Co, [&](auto zero, int64_t co) {
        using T = decltype(zero);
        T w[9], t[18], u[kXi];
        for (int64_t k = 0; k < 9; k++) w[k] = load<T>(filter + (k * Ci + ci) * Co + co);
        for (int64_t kw = 0; kw < 3; kw++) filterT(w + kw, 3, t + kw, 3);  // t [6][3] = G g
        for (int64_t i = 0; i < kSide; i++) filterT(t + i * 3, 1, u + i * kSide, 1);  // u [6][6] = (G g) G^T
        for (int64_t xi = 0; xi < kXi; xi++) store(U + (xi * Ci + ci) * Co + co, u[xi]);
      });
    }
  });
}

// dw [3][3][Ci][Co] = G^T dU G of dU [36][Ci][Co].
void filterGradient(const ConvGeometry& g, const float* dU, float* dw) {
  const int64_t Ci = g.Ci, Co = g.Co;
  parallelFor(Ci, std::max<int64_t>(1, 4096 / Co), [&](int64_t c0, int64_t c1) {
    for (int64_t ci = c0; ci < c1; ci++) {
      forChannels(Co, [&](auto zero, int64_t co) {
        using T = decltype(zero);
        T u[kXi], t[18], w[9];
        for (int64_t xi = 0; xi < kXi; xi++) u[xi] = load<T>(dU + (xi * Ci + ci) * Co + co);
        for (int64_t i = 0; i < kSide; i++) filterAdjoint(u + i * kSide, 1, t + i * 3, 1);  // t [6][3] = dU G
        for (int64_t kw = 0; kw < 3; kw++) filterAdjoint(t + kw, 3, w + kw, 3);          // w [3][3] = G^T t
        for (int64_t k = 0; k < 9; k++) store(dw + (k * Ci + ci) * Co + co, w[k]);
      });
    }
  });
}

// One tile's B^T d B for channels [c, c + lanes of T), into v (row stride
// C per entry). Inside: the tile's 6x6 inputs all lie in the map (no
// checks); else taps outside it read 0. The row transforms go through a
// small stack array and the column transforms store straight into v.
template <typename T, bool Inside>
__attribute__((always_inline)) inline void inputTile(const float* image, int64_t H, int64_t W, int64_t C, int64_t iy0, int64_t ix0, int64_t c, float* v) {
  T s[kXi];
#pragma GCC unroll 6
  for (int64_t i = 0; i < kSide; i++) {
    const int64_t iy = iy0 + i;
    T d[kSide];
#pragma GCC unroll 6
    for (int64_t j = 0; j < kSide; j++) {
      const int64_t ix = ix0 + j;
      d[j] = (Inside || (iy >= 0 && iy < H && ix >= 0 && ix < W)) ? load<T>(image + (iy * W + ix) * C + c) : T{};
    }
    inputT(d, 1, s + i * kSide, 1);  // s = d B
  }
#pragma GCC unroll 6
  for (int64_t j = 0; j < kSide; j++) {
    T o[kSide];
    inputT(s + j, kSide, o, 1);  // column j of B^T s
#pragma GCC unroll 6
    for (int64_t i = 0; i < kSide; i++) store(v + (i * kSide + j) * C + c, o[i]);
  }
}

// V [rows][36][C] = B^T d B of every tile of images [b0, b0 + n) of
// x [B, H, W, C]; row = image * T + tile.
void inputTiles(const ConvGeometry& g, const Tiling& t, const float* x, int64_t b0, int64_t n, float* V) {
  const int64_t C = g.Ci, H = g.H, W = g.W, rows = n * t.T;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t b = b0 + r / t.T, tile = r % t.T;
    const int64_t iy0 = (tile / t.tx) * kTile - g.padTop, ix0 = (tile % t.tx) * kTile - g.padLeft;
    const float* image = x + b * H * W * C;
    float* v = V + r * kXi * C;
    if (iy0 >= 0 && ix0 >= 0 && iy0 + kSide <= H && ix0 + kSide <= W) {
      int64_t c = 0;
      for (; c + 8 <= C; c += 8) inputTile<Vec8, true>(image, H, W, C, iy0, ix0, c, v);
      for (; c < C; c++) inputTile<float, true>(image, H, W, C, iy0, ix0, c, v);
    } else {
      int64_t c = 0;
      for (; c + 8 <= C; c += 8) inputTile<Vec8, false>(image, H, W, C, iy0, ix0, c, v);
      for (; c < C; c++) inputTile<float, false>(image, H, W, C, iy0, ix0, c, v);
    }
  }
}

// Mg [rows][36][C] = A dY A^T of every tile of dy [B, OH, OW, C] for images
// [b0, b0 + n), outputs past the map read as 0.
void gradientTiles(const ConvGeometry& g, const Tiling& t, const float* dy, int64_t b0, int64_t n, float* Mg) {
  const int64_t C = g.Co, rows = n * t.T;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t b = b0 + r / t.T, tile = r % t.T;
    const int64_t oy0 = (tile / t.tx) * kTile, ox0 = (tile % t.tx) * kTile;
    const float* image = dy + b * g.OH * g.OW * C;
    float* m = Mg + r * kXi * C;
    forChannels(C, [&](auto zero, int64_t c) {
      using T = decltype(zero);
      T s[kTile * kSide];
#pragma GCC unroll 4
      for (int64_t i = 0; i < kTile; i++) {
        T y[kTile];
#pragma GCC unroll 4
        for (int64_t j = 0; j < kTile; j++) y[j] = (oy0 + i < g.OH && ox0 + j < g.OW) ? load<T>(image + ((oy0 + i) * g.OW + ox0 + j) * C + c) : zero;
        outputAdjoint(y, 1, s + i * kSide, 1);  // s [4][6] = dY A^T
      }
#pragma GCC unroll 6
      for (int64_t j = 0; j < kSide; j++) {
        T o[kSide];
        outputAdjoint(s + j, kSide, o, 1);  // column j of A s
#pragma GCC unroll 6
        for (int64_t i = 0; i < kSide; i++) store(m + (i * kSide + j) * C + c, o[i]);
      }
    });
  }
}

// out tiles = A^T M A of M [rows][36][Co], dropping outputs past the map.
void outputTiles(const ConvGeometry& g, const Tiling& t, const float* M, int64_t b0, int64_t n, float* out) {
  const int64_t C = g.Co, rows = n * t.T;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t b = b0 + r / t.T, tile = r % t.T;
    const int64_t oy0 = (tile / t.tx) * kTile, ox0 = (tile % t.tx) * kTile;
    float* image = out + b * g.OH * g.OW * C;
    const float* m = M + r * kXi * C;
    forChannels(C, [&](auto zero, int64_t c) {
      using T = decltype(zero);
      T s[kSide * kTile];
#pragma GCC unroll 6
      for (int64_t i = 0; i < kSide; i++) {
        T row[kSide];
#pragma GCC unroll 6
        for (int64_t j = 0; j < kSide; j++) row[j] = load<T>(m + (i * kSide + j) * C + c);
        outputT(row, 1, s + i * kTile, 1);  // s [6][4] = M A
      }
#pragma GCC unroll 4
      for (int64_t j = 0; j < kTile; j++) {
        T y[kTile];
        outputT(s + j, kTile, y, 1);  // column j of A^T s
        if (ox0 + j >= g.OW) continue;
#pragma GCC unroll 4
        for (int64_t i = 0; i < kTile; i++)
          if (oy0 + i < g.OH) store(image + ((oy0 + i) * g.OW + ox0 + j) * C + c, y[i]);
      }
    });
  }
}

// dx += B dV B^T of every tile, for images [b0, b0 + n) (taps in the
// padding dropped).
void addInputGradient(const ConvGeometry& g, const Tiling& t, const float* dV, int64_t b0, int64_t n, float* dx) {
  const int64_t C = g.Ci, rows = n * t.T;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t b = b0 + r / t.T, tile = r % t.T;
    const int64_t iy0 = (tile / t.tx) * kTile - g.padTop, ix0 = (tile % t.tx) * kTile - g.padLeft;
    float* image = dx + b * g.H * g.W * C;
    const float* v = dV + r * kXi * C;
    forChannels(C, [&](auto zero, int64_t c) {
      using T = decltype(zero);
      T s[kXi];
#pragma GCC unroll 6
      for (int64_t i = 0; i < kSide; i++) {
        T row[kSide];
#pragma GCC unroll 6
        for (int64_t j = 0; j < kSide; j++) row[j] = load<T>(v + (i * kSide + j) * C + c);
        inputAdjoint(row, 1, s + i * kSide, 1);  // s = dV B^T
      }
#pragma GCC unroll 6
      for (int64_t j = 0; j < kSide; j++) {
        const int64_t ix = ix0 + j;
        if (ix < 0 || ix >= g.W) continue;
        T d[kSide];
        inputAdjoint(s + j, kSide, d, 1);  // column j of B s
#pragma GCC unroll 6
        for (int64_t i = 0; i < kSide; i++) {
          const int64_t iy = iy0 + i;
          if (iy >= 0 && iy < g.H) addStore(image + (iy * g.W + ix) * C + c, d[i]);
        }
      }
    });
  }
}

}  // namespace

void setWinogradMode(WinogradMode mode) { winogradMode.store(mode); }

bool winogradPays(const ConvGeometry& g) {
  const WinogradMode mode = winogradMode.load();
  if (mode == WinogradMode::Never) return false;
  if (g.KH != 3 || g.KW != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 || g.dw != 1 || g.OH < 1 || g.OW < 1) return false;
  if (mode == WinogradMode::Always) return true;
  // A tile computes 16 outputs for 36 products per channel pair (direct:
  // 144), and the transforms cost about as much as a GEMM with 16 channels
  // on either side: below that, or when most of each tile falls past a
  // small map (1-2 outputs a side), im2col is as fast.
  const Tiling t(g);
  const double used = static_cast<double>(g.OH * g.OW) / static_cast<double>(t.T * kTile * kTile);
  return g.Ci >= 16 && g.Co >= 16 && used >= 0.5;
}

void winogradConv2d(const ConvGeometry& g, const float* x, const float* filter, float* out, const float* bias,
                    int64_t biasLen, Activation activation, float alpha) {
  const Tiling t(g);
  const int64_t Ci = g.Ci, Co = g.Co, maxRows = t.group * t.T;
  ScratchFloats U(kXi * Ci * Co);
  filterTransform(g, filter, U.get());
  const int threads = threadCount();
  ScratchFloats work(threads * kXi * maxRows * (Ci + Co));
  parallelTasks(t.tasks, [&](int64_t task, int worker) {
    const int64_t b0 = task * t.group, n = std::min(t.group, g.B - b0), rows = n * t.T;
    float* V = work.get() + worker * kXi * maxRows * (Ci + Co);
    float* M = V + kXi * maxRows * Ci;
    inputTiles(g, t, x, b0, n, V);
    for (int64_t xi = 0; xi < kXi; xi++)
      sgemm(false, false, rows, Co, Ci, 1.0f, V + xi * Ci, kXi * Ci, U.get() + xi * Ci * Co, Co, 0.0f, M + xi * Co, kXi * Co);
    outputTiles(g, t, M, b0, n, out);
    // The epilogue on the group's maps while they are in cache.
    biasActivation(out + b0 * g.OH * g.OW * Co, n * g.OH * g.OW, Co, bias, biasLen, activation, alpha);
  }, threads);
}

void winogradBackpropInput(const ConvGeometry& g, const float* dy, const float* filter, float* dx) {
  const Tiling t(g);
  const int64_t Ci = g.Ci, Co = g.Co, maxRows = t.group * t.T;
  ScratchFloats U(kXi * Ci * Co);
  filterTransform(g, filter, U.get());
  const int threads = threadCount();
  ScratchFloats work(threads * kXi * maxRows * (Ci + Co));
  parallelTasks(t.tasks, [&](int64_t task, int worker) {
    const int64_t b0 = task * t.group, n = std::min(t.group, g.B - b0), rows = n * t.T;
    float* Mg = work.get() + worker * kXi * maxRows * (Ci + Co);
    float* dV = Mg + kXi * maxRows * Co;
    gradientTiles(g, t, dy, b0, n, Mg);
    for (int64_t xi = 0; xi < kXi; xi++)
      sgemm(false, true, rows, Ci, Co, 1.0f, Mg + xi * Co, kXi * Co, U.get() + xi * Ci * Co, Co, 0.0f, dV + xi * Ci, kXi * Ci);
    // Tasks own whole images: the tiles' overlapping additions stay within one task.
    std::memset(dx + b0 * g.H * g.W * Ci, 0, sizeof(float) * n * g.H * g.W * Ci);
    addInputGradient(g, t, dV, b0, n, dx);
  }, threads);
}

void winogradBackpropFilter(const ConvGeometry& g, const float* x, const float* dy, float* dw) {
  const Tiling t(g);
  const int64_t Ci = g.Ci, Co = g.Co, maxRows = t.group * t.T, filterFloats = kXi * Ci * Co;
  const int threads = threadCount();
  ScratchFloats work(threads * kXi * maxRows * (Ci + Co));
  // One partial dU per task (not per thread), summed in task order below.
  ScratchFloats partial(t.tasks * filterFloats);
  parallelTasks(t.tasks, [&](int64_t task, int worker) {
    const int64_t b0 = task * t.group, n = std::min(t.group, g.B - b0), rows = n * t.T;
    float* V = work.get() + worker * kXi * maxRows * (Ci + Co);
    float* Mg = V + kXi * maxRows * Ci;
    inputTiles(g, t, x, b0, n, V);
    gradientTiles(g, t, dy, b0, n, Mg);
    float* dU = partial.get() + task * filterFloats;
    for (int64_t xi = 0; xi < kXi; xi++)
      sgemm(true, false, Ci, Co, rows, 1.0f, V + xi * Ci, kXi * Ci, Mg + xi * Co, kXi * Co, 0.0f, dU + xi * Ci * Co, Co);
  }, threads);
  float* dU = partial.get();
  parallelFor(filterFloats, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t task = 1; task < t.tasks; task++) {
      const float* p = partial.get() + task * filterFloats;
      for (int64_t i = begin; i < end; i++) dU[i] += p[i];
    }
  });
  filterGradient(g, dU, dw);
}

}  // namespace capsnet
