// Convolutions computed in the frequency domain, for the layers where that
// takes far fewer operations than im2col + GEMM: CapsNet's primary capsules
// (9x9 kernels, stride 2, 256 -> 256 channels on a 20x20 map) need about a
// third of the multiply-adds.
//
// Polyphase split: with stride s, kernel tap k = s q + p and input row
// y = s n + p - pad, so a strided correlation is the sum over the s x s
// phases p of stride-1 correlations of the phase's input rows x_p[n] with
// the phase's taps w_p[q]. Each of those is exact as a circular correlation
// of length N = OH + Q - 1 (the output never reaches around), so a DFT of
// exactly that size (10 x 10 for CapsNet) turns it into a product:
//
//   forward:          OUT(f) = sum over (p, ci) of X_p(f) conj(W_p(f))
//   input gradient:   DX_p(f) = sum over co of DY(f) W_p(f)
//   filter gradient:  DW_p(f) = sum over images of X_p(f) conj(DY(f))
//
// For each frequency f each sum is one complex matrix product, done as a
// real sgemm on [re | im] blocks; the transforms are direct small DFTs
// (along y, for most even sizes, a radix-2 FFT or Cooley-Tukey: see
// fftAlongY), vectorized
// across channels (contiguous in NHWC and HWIO). Real inputs give Hermitian
// spectra, so only Nx/2 + 1 columns are kept.
//
// Working memory is bounded: images are processed in groups and the
// filter's spectrum a few frequencies at a time.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "biasActivation.h"
#include "blas.h"
#include "conv.h"
#include "memory.h"
#include "parallel.h"

namespace capsnet {

namespace {

std::atomic<SpectralMode> spectralMode{SpectralMode::Auto};
// Most columns per block; 0: as many as kColumnBlockBudget allows (tests
// set 1 or 2 to run the blocked loops on small geometries).
std::atomic<int64_t> spectralColumns{0};

// Floats of one spectrum column's input spectra for a group of images, and
// of filter spectra (or filter-gradient products) held at once.
constexpr int64_t kSpectraBudget = int64_t{8} << 20;
// Floats of one operand's spectra for a block of columns (256 MB; a call
// holds two such, inputs and products or gradients). Each block of columns
// reads every input tile once and writes every output tile once
// (tileColumns, inverseColumns), so fewer, larger blocks go through memory
// fewer times. At 64 MB the CNN baseline's 40x40 layers took 8 blocks (a
// column there is 18 MB) and its training step 7.8 s at batch 100 (2-core
// AMD EPYC); at 256 MB they take 2 and the step 6.2 s, with 0.35 GB more
// peak memory; 512 MB (one block) gained nothing more. The paper CapsNet's
// primary capsules on MultiMNIST's 36x36 pairs went from 4 blocks to 1:
// 2.03 to 1.73 s a step, 0.13 GB more.
constexpr int64_t kColumnBlockBudget = int64_t{64} << 20;
constexpr int64_t kFilterChunkBudget = int64_t{6} << 20;
// Channels transformed together: the working rows stay in L1.
constexpr int64_t kChannelBlock = 64;
// Largest transform size along either axis (spectralPays checks it): 64
// covers the CNN baseline's 5x5 layers on MultiMNIST's 36x36 pairs (40) and
// the affine experiment's 40x40 images (44), where im2col takes about three
// times as long for a training step.
constexpr int64_t kMaxTransform = 64;
// Largest size the cost model's overhead factor was measured on (see
// spectralPays).
constexpr int64_t kMeasuredTransform = 32;

// Along y, a size Ny = N1 N2 with N1 odd and N2 a power of two can be
// transformed by Cooley-Tukey (fftColumn): N2 direct DFTs of size N1,
// twiddles, then N1 radix-2 FFTs of size N2. In complex multiply-adds (a
// butterfly counted as 1.5) that is N2 N1^2 + Ny + N1 (N2 / 2) log2(N2) 1.5
// (the first two terms only for N1 > 1) against about Ny^2 for the direct
// sums. It is used from size 8 where it takes at most half as many, which
// works out to every multiple of 4 (twice an odd number never gains
// enough): the powers of two (32, the CNN baseline's at 28x28: 120 against
// 1,024), 40 and 44 (the CNN's on 36x36 and 40x40: 330 against 1,600, 594
// against 1,936), 12, 20, 24, ...; not 10 or 14 (CapsNet's primary capsules
// at 28x28 and 36x36: 68 against 100, 123 against 196), nor odd sizes.
struct YFactors {
  int64_t N1, N2, log2N2;  // Ny = N1 N2, N1 odd, N2 = 2^log2N2
};
inline YFactors factorY(int64_t Ny) {
  YFactors f{Ny, 1, 0};
  while (f.N1 > 0 && f.N1 % 2 == 0) {
    f.N1 /= 2;
    f.N2 *= 2;
    f.log2N2++;
  }
  return f;
}
inline bool fftAlongY(int64_t Ny) {
  const YFactors f = factorY(Ny);
  if (Ny < 8 || f.N2 < 2) return false;
  const double oddDfts = f.N1 > 1 ? static_cast<double>(f.N2 * f.N1 * f.N1 + Ny) : 0.0;  // none for a power of two
  const double factored = oddDfts + 1.5 * static_cast<double>(f.N1 * (f.N2 / 2) * f.log2N2);
  return factored <= 0.5 * static_cast<double>(Ny * Ny);
}

struct Plan {
  ConvGeometry g;
  int64_t Qy, Qx;  // taps per phase
  int64_t Ny, Nx;  // transform sizes
  int64_t Fx, F;   // kept columns (Nx/2 + 1) and frequencies (Ny * Fx)
  int64_t P, K;    // phases, phases * input channels
  // cos/sin(2 pi f n / N), [Ny][Ny] and [Fx][Nx]
  std::vector<float> cy, sy, cx, sx;
  // Weight of column fx in a real inverse (1 or 2: Hermitian pairs).
  std::vector<float> wx;
  bool fftY = false;  // fftAlongY(Ny); then, with Ny = N1 N2 (N1 odd):
  int64_t N1 = 1, N2 = 1;  // the N1-point DFTs and twiddles read cy and sy
  std::vector<float> twr, twi;  // cos/sin(2 pi j / N2), j < N2 / 2
  std::vector<int64_t> bitReversed;  // of n < N2
  std::vector<int64_t> yRow;    // after fftColumn, frequency k is in row yRow[k]

  explicit Plan(const ConvGeometry& geo) : g(geo) {
    Qy = (g.KH + g.sh - 1) / g.sh;
    Qx = (g.KW + g.sw - 1) / g.sw;
    Ny = g.OH + Qy - 1;
    Nx = g.OW + Qx - 1;
    Fx = Nx / 2 + 1;
    F = Ny * Fx;
    P = g.sh * g.sw;
    K = P * g.Ci;
    cy.resize(Ny * Ny);
    sy.resize(Ny * Ny);
    for (int64_t f = 0; f < Ny; f++)
      for (int64_t n = 0; n < Ny; n++) {
        double a = 2.0 * M_PI * static_cast<double>((f * n) % Ny) / static_cast<double>(Ny);
        cy[f * Ny + n] = static_cast<float>(std::cos(a));
        sy[f * Ny + n] = static_cast<float>(std::sin(a));
      }
    fftY = fftAlongY(Ny);
    if (fftY) {
      const YFactors f = factorY(Ny);
      N1 = f.N1;
      N2 = f.N2;
      for (int64_t j = 0; j < N2 / 2; j++) {
        double a = 2.0 * M_PI * static_cast<double>(j) / static_cast<double>(N2);
        twr.push_back(static_cast<float>(std::cos(a)));
        twi.push_back(static_cast<float>(std::sin(a)));
      }
      for (int64_t n = 0; n < N2; n++) {
        int64_t r = 0;
        for (int64_t b = 0; b < f.log2N2; b++) r |= ((n >> b) & 1) << (f.log2N2 - 1 - b);
        bitReversed.push_back(r);
      }
      for (int64_t k = 0; k < Ny; k++) yRow.push_back(N2 * (k % N1) + k / N1);
    }
    cx.resize(Fx * Nx);
    sx.resize(Fx * Nx);
    wx.resize(Fx);
    for (int64_t f = 0; f < Fx; f++) {
      wx[f] = (f == 0 || (Nx % 2 == 0 && f == Nx / 2)) ? 1.0f : 2.0f;
      for (int64_t n = 0; n < Nx; n++) {
        double a = 2.0 * M_PI * static_cast<double>((f * n) % Nx) / static_cast<double>(Nx);
        cx[f * Nx + n] = static_cast<float>(std::cos(a));
        sx[f * Nx + n] = static_cast<float>(std::sin(a));
      }
    }
  }
};

// --- Channel chunks ---------------------------------------------------------
// Every transform below is a short sum over taps or frequencies, the same
// for every channel, with channels contiguous. Each chunk of channels is
// summed in registers over the whole tap loop and stored once: summing into
// a row in memory instead costs a load and a store per multiply-add, and the
// transforms were then bound by them rather than by arithmetic.
//
// A chunk is 32 channels where that many remain (four independent 8-float
// vectors, enough sums in flight to hide the multiply-add latency), then 8,
// then single floats. GCC's vector extension lowers the 8-float vector to
// whatever the build targets (AVX2 with scripts/native-config.mjs on most
// machines, two SSE registers otherwise). The 32-channel chunk is a struct
// of four, not a 128-byte vector type, which GCC would keep on the stack.
typedef float Chunk8 __attribute__((vector_size(32)));
struct Chunk32 {
  Chunk8 a, b, c, d;  // named, not an array: GCC then keeps each in a register
};
inline Chunk32 operator+(const Chunk32& x, const Chunk32& y) { return {x.a + y.a, x.b + y.b, x.c + y.c, x.d + y.d}; }
inline Chunk32 operator-(const Chunk32& x, const Chunk32& y) { return {x.a - y.a, x.b - y.b, x.c - y.c, x.d - y.d}; }
inline Chunk32 operator*(const Chunk32& x, float s) { return {x.a * s, x.b * s, x.c * s, x.d * s}; }
inline Chunk32& operator+=(Chunk32& x, const Chunk32& y) { return x = x + y; }

// Unaligned loads and stores, one vector register at a time (a memcpy of
// the whole struct would go through the stack).
template <typename T>
inline T loadChunk(const float* p);
template <>
inline float loadChunk<float>(const float* p) {
  return *p;
}
template <>
inline Chunk8 loadChunk<Chunk8>(const float* p) {
  Chunk8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <>
inline Chunk32 loadChunk<Chunk32>(const float* p) {
  return {loadChunk<Chunk8>(p), loadChunk<Chunk8>(p + 8), loadChunk<Chunk8>(p + 16), loadChunk<Chunk8>(p + 24)};
}
inline void storeChunk(float* p, float v) { *p = v; }
inline void storeChunk(float* p, const Chunk8& v) { std::memcpy(p, &v, sizeof v); }
inline void storeChunk(float* p, const Chunk32& v) {
  storeChunk(p, v.a);
  storeChunk(p + 8, v.b);
  storeChunk(p + 16, v.c);
  storeChunk(p + 24, v.d);
}

// body(T{}, k) for consecutive chunks covering channels [0, C); T is the
// chunk's type (Chunk32, Chunk8 or float), passed as a zero value.
template <typename Body>
__attribute__((always_inline)) inline void forChunks(int64_t C, Body body) {
  int64_t k = 0;
  for (; k + 32 <= C; k += 32) body(Chunk32{}, k);
  for (; k + 8 <= C; k += 8) body(Chunk8{}, k);
  for (; k < C; k++) body(0.0f, k);
}

// The work runs a block of spectrum columns at a time: the Ny frequencies
// (fy, fx) of every column of the block for all images, then their
// products column by column, then the block's share of the inverse
// transforms, accumulated into the outputs. Per column:
//
//   Xs[fy] [2nb x 2K]: rows b = [Xr | Xi], rows nb + b = [Xi | -Xr] of image b
//   Ds[fy] [2nb x Co]: rows b = Dr, rows nb + b = Di
//   S[fy]  [2K x Co] : rows k = Wr, rows K + k = Wi
//
// so that one real GEMM per frequency gives
//   Xs S     = [re; im] of X conj(W)                  (forward)
//   Ds S^T   = [Dr Wr^T | Dr Wi^T; Di Wr^T | Di Wi^T]  (input gradient, combined after)
//   Xs^T Ds  = [re; im] of sum over images of X conj(D) (filter gradient)
// with K = phases * input channels.

// One frequency of a real DFT over taps: re[k] = sum over j < taps of
// tap[j][k] c[j], im[k] the same with s[j], for channels k < C.
inline void sumTaps(const float* const* tap, const float* c, const float* s, int64_t taps, int64_t C, float* re, float* im) {
  forChunks(C, [&](auto zero, int64_t k) {
    using T = decltype(zero);
    T a = zero, b = zero;
    for (int64_t j = 0; j < taps; j++) {
      const T t = loadChunk<T>(tap[j] + k);
      a += t * c[j];
      b += t * s[j];
    }
    storeChunk(re + k, a);
    storeChunk(im + k, b);
  });
}

// In place, the radix-2 FFT of p.N2 rows (decimation in time: the rows are
// put in bit-reversed order, then log2(N2) stages of butterflies).
void radix2Rows(const Plan& p, float* re, float* im, int64_t C, float sign) {
  const int64_t N = p.N2;
  for (int64_t n = 0; n < N; n++) {
    const int64_t r = p.bitReversed[n];
    if (r <= n) continue;
    for (int64_t k = 0; k < C; k++) {
      std::swap(re[n * kChannelBlock + k], re[r * kChannelBlock + k]);
      std::swap(im[n * kChannelBlock + k], im[r * kChannelBlock + k]);
    }
  }
  for (int64_t half = 1; half < N; half *= 2) {
    const int64_t step = N / (2 * half);  // twiddle index stride of this stage
    for (int64_t start = 0; start < N; start += 2 * half) {
      for (int64_t j = 0; j < half; j++) {
        const float wr = p.twr[j * step], wi = sign * p.twi[j * step];
        float* ar = re + (start + j) * kChannelBlock;
        float* ai = im + (start + j) * kChannelBlock;
        float* br = re + (start + j + half) * kChannelBlock;
        float* bi = im + (start + j + half) * kChannelBlock;
        forChunks(C, [&](auto zero, int64_t k) {
          using T = decltype(zero);
          const T xr = loadChunk<T>(ar + k), xi = loadChunk<T>(ai + k);
          const T yr = loadChunk<T>(br + k), yi = loadChunk<T>(bi + k);
          // t = y w, then (x + t, x - t)
          const T tr = yr * wr - yi * wi, ti = yr * wi + yi * wr;
          storeChunk(ar + k, xr + tr);
          storeChunk(ai + k, xi + ti);
          storeChunk(br + k, xr - tr);
          storeChunk(bi + k, xi - ti);
        });
      }
    }
  }
}

// In place, the DFT along y of Ny complex C-vectors (rows re[n], im[n],
// kChannelBlock apart): X(f) = sum over n of x(n) e^(sign 2 pi i f n / Ny),
// sign -1 forward, +1 inverse (unscaled), left in row p.yRow[f]; only for
// p.fftY. With Ny = N1 N2, n = N2 n1 + n2 and f = k1 + N1 k2 (Cooley-Tukey),
//   X(k1 + N1 k2) = sum over n2 of e^(sign 2 pi i n2 k2 / N2) Y(n2, k1),
//   Y(n2, k1) = e^(sign 2 pi i n2 k1 / Ny) sum over n1 of x(N2 n1 + n2) e^(sign 2 pi i n1 k1 / N1):
// the direct N1-point DFTs of each n2's rows, twiddled, go back into the
// rows N2 k1 + n2, so that each k1's N2 values are contiguous for its
// radix-2 FFT, which leaves X(k1 + N1 k2) in row N2 k1 + k2. tmp holds
// 2 N1 rows. For a power of two (N1 = 1) this is the plain radix-2 FFT.
void fftColumn(const Plan& p, float* re, float* im, int64_t C, float sign, float* tmp) {
  const int64_t N1 = p.N1, N2 = p.N2;
  if (N1 > 1) {
    float* tr = tmp;
    float* ti = tmp + N1 * kChannelBlock;
    for (int64_t n2 = 0; n2 < N2; n2++) {
      for (int64_t k1 = 0; k1 < N1; k1++) {
        // e^(2 pi i n1 k1 / N1) = e^(2 pi i k1 (N2 n1) / Ny): row k1 of cy, sy at n = N2 n1
        const float* c = &p.cy[k1 * p.Ny];
        const float* s = &p.sy[k1 * p.Ny];
        const float wr = p.cy[n2 * p.Ny + k1], wi = sign * p.sy[n2 * p.Ny + k1];
        forChunks(C, [&](auto zero, int64_t k) {
          using T = decltype(zero);
          T a = zero, b = zero;
          for (int64_t n1 = 0; n1 < N1; n1++) {
            // (xr + i xi)(c + i sign s)
            const T xr = loadChunk<T>(re + (N2 * n1 + n2) * kChannelBlock + k);
            const T xi = loadChunk<T>(im + (N2 * n1 + n2) * kChannelBlock + k);
            a += xr * c[N2 * n1] - xi * (sign * s[N2 * n1]);
            b += xi * c[N2 * n1] + xr * (sign * s[N2 * n1]);
          }
          storeChunk(tr + k1 * kChannelBlock + k, a * wr - b * wi);
          storeChunk(ti + k1 * kChannelBlock + k, a * wi + b * wr);
        });
      }
      for (int64_t k1 = 0; k1 < N1; k1++) {
        std::memcpy(re + (N2 * k1 + n2) * kChannelBlock, tr + k1 * kChannelBlock, sizeof(float) * C);
        std::memcpy(im + (N2 * k1 + n2) * kChannelBlock, ti + k1 * kChannelBlock, sizeof(float) * C);
      }
    }
  }
  for (int64_t k1 = 0; k1 < N1; k1++) radix2Rows(p, re + N2 * k1 * kChannelBlock, im + N2 * k1 * kChannelBlock, C, sign);
}

// The spectra of one tile for columns fx0 .. fx0 + nfx - 1: the row DFTs
// of every column first, row by row, then each column's DFT along y for
// every fy: emit(c, fy, re, im) receives the C-vectors of frequency
// (fy, fx0 + c). src(ny, nx) is the tile's C-vector at (ny, nx), or null
// where the tile is padding. Each row's taps are copied once into a
// contiguous block that serves every column, so a block of columns reads
// the tile once (in place, taps sit a whole pixel apart: Ci floats, 1 KB
// for 256 channels). work holds tileWorkFloats(p, Lx, nfx) floats.
template <typename Src, typename Emit>
void tileColumns(const Plan& p, int64_t Ly, int64_t Lx, int64_t C, int64_t fx0, int64_t nfx, Src src, Emit emit,
                 float* work) {
  float* spectra = work;  // per column: [Ny][C] real parts, then imaginary parts (Ly <= Ny)
  float* taps = spectra + nfx * 2 * p.Ny * kChannelBlock;  // [Lx][C], one row's non-padding positions
  float* re = taps + Lx * kChannelBlock;  // [C]
  float* im = re + kChannelBlock;
  float* tmp = im + kChannelBlock;  // fftColumn's 2 N1 rows
  const float* row[kMaxTransform];
  int64_t position[kMaxTransform];
  float rc[kMaxTransform], rs[kMaxTransform];
  for (int64_t ny = 0; ny < Ly; ny++) {
    int64_t count = 0;
    for (int64_t nx = 0; nx < Lx; nx++) {
      const float* t = src(ny, nx);
      if (!t) continue;
      std::memcpy(taps + count * kChannelBlock, t, sizeof(float) * C);
      row[count] = taps + count * kChannelBlock;
      position[count] = nx;
      count++;
    }
    for (int64_t c = 0; c < nfx; c++) {
      const int64_t fx = fx0 + c;
      for (int64_t j = 0; j < count; j++) {
        rc[j] = p.cx[fx * p.Nx + position[j]];
        rs[j] = -p.sx[fx * p.Nx + position[j]];
      }
      float* r1 = spectra + c * 2 * p.Ny * kChannelBlock;
      sumTaps(row, rc, rs, count, C, r1 + ny * kChannelBlock, r1 + (p.Ny + ny) * kChannelBlock);
    }
  }
  for (int64_t c = 0; c < nfx; c++) {
    float* r1 = spectra + c * 2 * p.Ny * kChannelBlock;
    float* i1 = r1 + p.Ny * kChannelBlock;
    if (p.fftY) {
      for (int64_t ny = Ly; ny < p.Ny; ny++) {
        std::fill(r1 + ny * kChannelBlock, r1 + ny * kChannelBlock + C, 0.0f);
        std::fill(i1 + ny * kChannelBlock, i1 + ny * kChannelBlock + C, 0.0f);
      }
      fftColumn(p, r1, i1, C, -1.0f, tmp);
      for (int64_t fy = 0; fy < p.Ny; fy++) {
        const int64_t r = p.yRow[fy];
        emit(c, fy, static_cast<const float*>(r1 + r * kChannelBlock), static_cast<const float*>(i1 + r * kChannelBlock));
      }
      continue;
    }
    for (int64_t fy = 0; fy < p.Ny; fy++) {
      const float* cy = &p.cy[fy * p.Ny];
      const float* sy = &p.sy[fy * p.Ny];
      forChunks(C, [&](auto zero, int64_t k) {
        using T = decltype(zero);
        T a = zero, b = zero;
        for (int64_t ny = 0; ny < Ly; ny++) {
          // (r + i i)(cos - i sin)
          const T r = loadChunk<T>(r1 + ny * kChannelBlock + k);
          const T i = loadChunk<T>(i1 + ny * kChannelBlock + k);
          a += r * cy[ny] + i * sy[ny];
          b += i * cy[ny] - r * sy[ny];
        }
        storeChunk(re + k, a);
        storeChunk(im + k, b);
      });
      emit(c, fy, static_cast<const float*>(re), static_cast<const float*>(im));
    }
  }
}

int64_t tileWorkFloats(const Plan& p, int64_t Lx, int64_t nfx) {
  return (nfx * 2 * p.Ny + Lx + 2 + 2 * p.N1) * kChannelBlock;
}

// Columns fx0 .. fx0 + nfx - 1's share of a real inverse 2D DFT, added
// into rows ny < Ly and columns nx < Lx: with Z(ny) = sum over fy of
// S(fy) e^(+2 pi i fy ny / Ny) for each column fx,
//   out(ny, nx) += sum over fx of wx (Zr cos(2 pi fx nx / Nx) - Zi sin(...)) / (Ny Nx).
// spec(c, fy, re, im) writes the C-vectors of frequency (fy, fx0 + c) into
// re and im; out(ny, nx) is the destination vector or null to skip. With
// assign, the destination is overwritten instead (the first block of
// columns). Every column's Z is summed in registers, so each destination
// is read and written once per block of columns rather than once per
// column (the output tile, pixels 1 KB apart, does not stay in cache).
// work holds inverseWorkFloats(p, Lx, nfx) floats.
template <typename Spec, typename Out>
void inverseColumns(const Plan& p, int64_t Ly, int64_t Lx, int64_t C, int64_t fx0, int64_t nfx, Spec spec, Out out,
                    float* work, bool assign) {
  float* spectra = work;  // per column: [Ny][C] real parts, then imaginary parts
  float* z = spectra + nfx * 2 * p.Ny * kChannelBlock;  // per column: Z of one row, [C] real, [C] imaginary
  float* tmp = z + nfx * 2 * kChannelBlock;  // fftColumn's 2 N1 rows
  float* weights = tmp + 2 * p.N1 * kChannelBlock;  // [nx][cos | sin][c], times wx / (Ny Nx)
  const float* za[kMaxTransform];
  const float* zb[kMaxTransform];
  for (int64_t c = 0; c < nfx; c++) {
    float* sr = spectra + c * 2 * p.Ny * kChannelBlock;
    float* si = sr + p.Ny * kChannelBlock;
    for (int64_t fy = 0; fy < p.Ny; fy++) spec(c, fy, sr + fy * kChannelBlock, si + fy * kChannelBlock);
    if (p.fftY) fftColumn(p, sr, si, C, 1.0f, tmp);  // then Z(ny) is row yRow[ny]
    const float w = p.wx[fx0 + c] / static_cast<float>(p.Ny * p.Nx);
    for (int64_t nx = 0; nx < Lx; nx++) {
      weights[(2 * nx) * nfx + c] = w * p.cx[(fx0 + c) * p.Nx + nx];
      weights[(2 * nx + 1) * nfx + c] = -w * p.sx[(fx0 + c) * p.Nx + nx];
    }
  }
  for (int64_t ny = 0; ny < Ly; ny++) {
    for (int64_t c = 0; c < nfx; c++) {
      const float* sr = spectra + c * 2 * p.Ny * kChannelBlock;
      const float* si = sr + p.Ny * kChannelBlock;
      if (p.fftY) {
        za[c] = sr + p.yRow[ny] * kChannelBlock;
        zb[c] = si + p.yRow[ny] * kChannelBlock;
        continue;
      }
      float* zr = z + c * 2 * kChannelBlock;
      float* zi = zr + kChannelBlock;
      forChunks(C, [&](auto zero, int64_t k) {
        using T = decltype(zero);
        T a = zero, b = zero;
        for (int64_t fy = 0; fy < p.Ny; fy++) {
          // (sr + i si)(cos + i sin)
          const float cs = p.cy[fy * p.Ny + ny], sn = p.sy[fy * p.Ny + ny];
          const T r = loadChunk<T>(sr + fy * kChannelBlock + k);
          const T i = loadChunk<T>(si + fy * kChannelBlock + k);
          a += r * cs - i * sn;
          b += r * sn + i * cs;
        }
        storeChunk(zr + k, a);
        storeChunk(zi + k, b);
      });
      za[c] = zr;
      zb[c] = zi;
    }
    for (int64_t nx = 0; nx < Lx; nx++) {
      float* o = out(ny, nx);
      if (!o) continue;
      const float* wc = weights + 2 * nx * nfx;
      const float* ws = wc + nfx;
      forChunks(C, [&](auto zero, int64_t k) {
        using T = decltype(zero);
        T v = zero;
        for (int64_t c = 0; c < nfx; c++) v += loadChunk<T>(za[c] + k) * wc[c] + loadChunk<T>(zb[c] + k) * ws[c];
        if (assign)
          storeChunk(o + k, v);
        else
          storeChunk(o + k, loadChunk<T>(o + k) + v);
      });
    }
  }
}

int64_t inverseWorkFloats(const Plan& p, int64_t Lx, int64_t nfx) {
  return (nfx * 2 * p.Ny + nfx * 2 + 2 * p.N1) * kChannelBlock + 2 * Lx * nfx;
}

// Xs for columns [fx0, fx0 + nfx) from images [b0, b0 + nb) of x, column
// after column: column fx0 + c starts at Xs + c * Ny * 2nb * 2K.
void inputColumns(const Plan& p, const float* x, int64_t b0, int64_t nb, int64_t fx0, int64_t nfx, float* Xs) {
  const ConvGeometry& g = p.g;
  const int64_t blocks = (g.Ci + kChannelBlock - 1) / kChannelBlock;
  const int64_t K = p.K, rows = 2 * nb, rowLen = 2 * K;
  // One work buffer per thread, uninitialized: every float is written before it is read.
  const int workers = threadCount();
  const int64_t workLen = tileWorkFloats(p, p.Nx, nfx);
  ScratchFloats work(workers * workLen);
  parallelTasks(nb * p.P * blocks, [&](int64_t task, int worker) {
    const int64_t cb = task % blocks, ph = (task / blocks) % p.P, bl = task / (blocks * p.P);
    const int64_t py = ph / g.sw, px = ph % g.sw;
    const int64_t c0 = cb * kChannelBlock, C = std::min(kChannelBlock, g.Ci - c0);
    const float* image = x + (b0 + bl) * g.H * g.W * g.Ci;
    auto src = [&](int64_t ny, int64_t nx) -> const float* {
      int64_t y = g.sh * ny + py - g.padTop, xx = g.sw * nx + px - g.padLeft;
      if (y < 0 || y >= g.H || xx < 0 || xx >= g.W) return nullptr;
      return image + (y * g.W + xx) * g.Ci + c0;
    };
    auto emit = [&](int64_t c, int64_t fy, const float* re, const float* im) {
      float* column = Xs + c * p.Ny * rows * rowLen;
      float* top = column + (fy * rows + bl) * rowLen + ph * g.Ci + c0;
      float* bottom = column + (fy * rows + nb + bl) * rowLen + ph * g.Ci + c0;
      forChunks(C, [&](auto zero, int64_t k) {
        using T = decltype(zero);
        const T r = loadChunk<T>(re + k), i = loadChunk<T>(im + k);
        storeChunk(top + k, r);
        storeChunk(top + K + k, i);
        storeChunk(bottom + k, i);
        storeChunk(bottom + K + k, zero - r);
      });
    };
    tileColumns(p, p.Ny, p.Nx, C, fx0, nfx, src, emit, work.get() + worker * workLen);
  }, workers);
}

// Ds for columns [fx0, fx0 + nfx) from images [b0, b0 + nb) of dy, column
// after column: column fx0 + c starts at Ds + c * Ny * 2nb * Co.
void gradientColumns(const Plan& p, const float* dy, int64_t b0, int64_t nb, int64_t fx0, int64_t nfx, float* Ds) {
  const ConvGeometry& g = p.g;
  const int64_t blocks = (g.Co + kChannelBlock - 1) / kChannelBlock;
  const int64_t rows = 2 * nb;
  const int workers = threadCount();
  const int64_t workLen = tileWorkFloats(p, g.OW, nfx);
  ScratchFloats work(workers * workLen);  // per thread, as in inputColumns
  parallelTasks(nb * blocks, [&](int64_t task, int worker) {
    const int64_t cb = task % blocks, bl = task / blocks;
    const int64_t c0 = cb * kChannelBlock, C = std::min(kChannelBlock, g.Co - c0);
    const float* image = dy + (b0 + bl) * g.OH * g.OW * g.Co;
    auto src = [&](int64_t oy, int64_t ox) -> const float* { return image + (oy * g.OW + ox) * g.Co + c0; };
    auto emit = [&](int64_t c, int64_t fy, const float* re, const float* im) {
      float* column = Ds + c * p.Ny * rows * g.Co;
      std::memcpy(column + (fy * rows + bl) * g.Co + c0, re, sizeof(float) * C);
      std::memcpy(column + (fy * rows + nb + bl) * g.Co + c0, im, sizeof(float) * C);
    };
    tileColumns(p, g.OH, g.OW, C, fx0, nfx, src, emit, work.get() + worker * workLen);
  }, workers);
}

// The filter's spectra along x for column fx: WX[(p, qy, ci)][re co | im co]
// = sum over qx of w[s qy + py][s qx + px][ci][:] e^(-2 pi i fx qx / Nx).
void filterColumnSpectra(const Plan& p, const float* w, int64_t fx, float* WX) {
  const ConvGeometry& g = p.g;
  const int64_t rows = p.P * p.Qy * g.Ci;
  parallelFor(rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t ci = r % g.Ci, qy = (r / g.Ci) % p.Qy, ph = r / (g.Ci * p.Qy);
      const int64_t py = ph / g.sw, px = ph % g.sw, ky = g.sh * qy + py;
      float* re = WX + r * 2 * g.Co;
      float* im = re + g.Co;
      // The row's taps: kx = s qx + px < KW (none past the kernel's last row).
      const float* tap[kMaxTransform];
      float tc[kMaxTransform], ts[kMaxTransform];
      int64_t taps = 0;
      for (int64_t qx = 0; qx < p.Qx && ky < g.KH; qx++) {
        const int64_t kx = g.sw * qx + px;
        if (kx >= g.KW) continue;
        tap[taps] = w + ((ky * g.KW + kx) * g.Ci + ci) * g.Co;
        tc[taps] = p.cx[fx * p.Nx + qx];
        ts[taps] = -p.sx[fx * p.Nx + qx];
        taps++;
      }
      sumTaps(tap, tc, ts, taps, g.Co, re, im);
    }
  });
}

// S for frequencies (fy0 + j, fx), j < n, from WX into S + j * 2K * Co:
// W = sum over qy of WX e^(-2 pi i fy qy / Ny). WX is larger than L2, so
// one k's Qy rows (a few KB) are brought in once and serve all n frequencies.
void filterSpectra(const Plan& p, const float* WX, int64_t fy0, int64_t n, float* S) {
  const ConvGeometry& g = p.g;
  const int64_t Co = g.Co, stride = 2 * p.K * Co;
  parallelFor(p.K, 16, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++) {
      const int64_t ph = k / g.Ci, ci = k % g.Ci;
      // WX's rows of this k, one per tap qy: [re Co | im Co] each.
      const float* x0 = WX + (ph * p.Qy * g.Ci + ci) * 2 * Co;
      const int64_t tapStride = g.Ci * 2 * Co;
      for (int64_t j = 0; j < n; j++) {
        const float* cy = &p.cy[(fy0 + j) * p.Ny];
        const float* sy = &p.sy[(fy0 + j) * p.Ny];
        float* wr = S + j * stride + k * Co;
        float* wi = S + j * stride + (p.K + k) * Co;
        forChunks(Co, [&](auto zero, int64_t q) {
          using T = decltype(zero);
          T a = zero, b = zero;
          for (int64_t qy = 0; qy < p.Qy; qy++) {
            // (xr + i xi)(cos - i sin)
            const T xr = loadChunk<T>(x0 + qy * tapStride + q);
            const T xi = loadChunk<T>(x0 + qy * tapStride + Co + q);
            a += xr * cy[qy] + xi * sy[qy];
            b += xi * cy[qy] - xr * sy[qy];
          }
          storeChunk(wr + q, a);
          storeChunk(wi + q, b);
        });
      }
    }
  });
}

// For column fx: the filter's spectra, a chunk of frequencies at a time into
// S, and product(fy, Sf) for each frequency (fy, fx), one thread each, with
// Sf its spectrum [2K x Co] (rows k = Wr, rows K + k = Wi).
template <typename Product>
void withFilterSpectra(const Plan& p, const float* filter, int64_t fx, int64_t chunk, float* WX, float* S, Product product) {
  filterColumnSpectra(p, filter, fx, WX);
  for (int64_t fy0 = 0; fy0 < p.Ny; fy0 += chunk) {
    const int64_t n = std::min(chunk, p.Ny - fy0);
    filterSpectra(p, WX, fy0, n, S);
    parallelTasks(n, [&](int64_t j, int) { product(fy0 + j, S + j * 2 * p.K * p.g.Co); });
  }
}

// Images per group, so that one column's input spectra fit kSpectraBudget.
int64_t imageGroup(const Plan& p) {
  return std::max<int64_t>(1, std::min(p.g.B, kSpectraBudget / (p.Ny * 4 * p.K)));
}

// Columns per block, so that a block's input spectra for a group of images
// fit kColumnBlockBudget.
int64_t columnBlock(const Plan& p, int64_t group) {
  const int64_t limit = spectralColumns.load();
  const int64_t n = std::max<int64_t>(1, std::min(p.Fx, kColumnBlockBudget / (p.Ny * 4 * p.K * group)));
  return limit > 0 ? std::min(n, limit) : n;
}

// Frequencies of a column whose filter spectra (or filter-gradient
// products) are held at once.
int64_t frequencyChunk(const Plan& p) {
  return std::max<int64_t>(1, std::min(p.Ny, kFilterChunkBudget / (2 * p.K * p.g.Co)));
}

}  // namespace

void setSpectralMode(SpectralMode mode) { spectralMode.store(mode); }
void setSpectralColumns(int64_t columns) { spectralColumns.store(columns); }

bool spectralPays(const ConvGeometry& g) {
  const SpectralMode mode = spectralMode.load();
  if (mode == SpectralMode::Never) return false;
  if (g.dh != 1 || g.dw != 1 || g.Ci < 16 || g.Co < 16 || g.OH < 1 || g.OW < 1) return false;
  const int64_t Qy = (g.KH + g.sh - 1) / g.sh, Qx = (g.KW + g.sw - 1) / g.sw;
  if (Qy * Qx < 4) return false;
  const int64_t Ny = g.OH + Qy - 1, Nx = g.OW + Qx - 1;
  if (Ny > kMaxTransform || Nx > kMaxTransform) return false;
  if (mode == SpectralMode::Always) return true;
  // Estimated multiply-adds. im2col: OH OW KH KW Ci Co per image. Spectral:
  // 4 per complex term for every frequency, phase and channel pair per
  // image, plus a third for the transforms and memory passes; and, once per
  // call, the filter's spectra (about 80 multiply-add equivalents per float
  // of them, measured: they are written and read back through memory).
  // The third was measured on sizes up to kMeasuredTransform (CapsNet's 10
  // to 16, the CNN baseline's 32). Beyond, a size along y that fftAlongY
  // leaves to direct sums takes Ny per frequency and channel of every tile
  // (input and output), which grow as Ny^3 against the products' Ny^2 Co:
  // their cost is added, so that at large sizes with few channels the
  // transforms decide.
  // Require a clear gain: small batches stay on im2col.
  const double B = static_cast<double>(g.B), CiCo = static_cast<double>(g.Ci * g.Co);
  const double F = static_cast<double>(Ny * (Nx / 2 + 1)), P = static_cast<double>(g.sh * g.sw);
  const double tilesY = Ny <= kMeasuredTransform || fftAlongY(Ny) ? 0.0 : B * 4.0 * F * static_cast<double>(Ny) * (P * static_cast<double>(g.Ci) + static_cast<double>(g.Co));
  const double direct = B * static_cast<double>(g.OH * g.OW * g.KH * g.KW) * CiCo;
  const double spectral = B * 1.35 * 4.0 * F * P * CiCo + 80.0 * F * 2.0 * P * CiCo + tilesY;
  return direct >= 1.15 * spectral;
}

void spectralConv2d(const ConvGeometry& g, const float* x, const float* filter, float* out, const float* bias,
                    int64_t biasLen, Activation activation, float alpha) {
  Plan p(g);
  const int64_t Co = g.Co, K = p.K;
  const int64_t group = imageGroup(p), chunk = frequencyChunk(p), columns = columnBlock(p, group);
  ScratchFloats Xs(columns * p.Ny * 2 * group * 2 * K), Cs(columns * p.Ny * 2 * group * Co), WX(p.P * p.Qy * g.Ci * 2 * Co),
      S(chunk * 2 * K * Co);
  const int64_t outImage = g.OH * g.OW * Co;
  for (int64_t b0 = 0; b0 < g.B; b0 += group) {
    const int64_t nb = std::min(group, g.B - b0), rows = 2 * nb;
    for (int64_t fx0 = 0; fx0 < p.Fx; fx0 += columns) {
      const int64_t nfx = std::min(columns, p.Fx - fx0);
      inputColumns(p, x, b0, nb, fx0, nfx, Xs.get());
      for (int64_t c = 0; c < nfx; c++) {
        const float* Xc = Xs.get() + c * p.Ny * rows * 2 * K;
        float* Cc = Cs.get() + c * p.Ny * rows * Co;
        withFilterSpectra(p, filter, fx0 + c, chunk, WX.get(), S.get(), [&](int64_t fy, const float* Sf) {
          sgemm(false, false, rows, Co, 2 * K, 1.0f, Xc + fy * rows * 2 * K, 2 * K, Sf, Co, 0.0f, Cc + fy * rows * Co, Co);
        });
      }
      const int64_t blocks = (Co + kChannelBlock - 1) / kChannelBlock;
      const int workers = threadCount();
      const int64_t workLen = inverseWorkFloats(p, g.OW, nfx);
      ScratchFloats work(workers * workLen);  // per thread, as in inputColumns
      parallelTasks(nb * blocks, [&](int64_t task, int worker) {
        const int64_t cb = task % blocks, bl = task / blocks;
        const int64_t c0 = cb * kChannelBlock, C = std::min(kChannelBlock, Co - c0);
        float* image = out + (b0 + bl) * outImage;
        auto dst = [&](int64_t oy, int64_t ox) -> float* { return image + (oy * g.OW + ox) * Co + c0; };
        auto spec = [&](int64_t c, int64_t fy, float* re, float* im) {
          const float* Cc = Cs.get() + c * p.Ny * rows * Co;
          std::memcpy(re, Cc + (fy * rows + bl) * Co + c0, sizeof(float) * C);
          std::memcpy(im, Cc + (fy * rows + nb + bl) * Co + c0, sizeof(float) * C);
        };
        inverseColumns(p, g.OH, g.OW, C, fx0, nfx, spec, dst, work.get() + worker * workLen, fx0 == 0);
      }, workers);
    }
    biasActivation(out + b0 * outImage, nb * g.OH * g.OW, Co, bias, biasLen, activation, alpha);
  }
}

void spectralBackpropInput(const ConvGeometry& g, const float* dy, const float* filter, float* dx) {
  Plan p(g);
  const int64_t Co = g.Co, K = p.K;
  const int64_t group = imageGroup(p), chunk = frequencyChunk(p), columns = columnBlock(p, group);
  ScratchFloats Ds(columns * p.Ny * 2 * group * Co), T(columns * p.Ny * 2 * group * 2 * K), WX(p.P * p.Qy * g.Ci * 2 * Co),
      S(chunk * 2 * K * Co);
  const int64_t image = g.H * g.W * g.Ci;
  // Every input position belongs to one phase tile, written by the first
  // column and added to by the others; positions beyond the tiles (that no
  // output reads) must be zero.
  const bool allCovered = g.sh * p.Ny >= g.H + g.padTop && g.sw * p.Nx >= g.W + g.padLeft;
  if (!allCovered) std::memset(dx, 0, sizeof(float) * g.B * image);
  for (int64_t b0 = 0; b0 < g.B; b0 += group) {
    const int64_t nb = std::min(group, g.B - b0), rows = 2 * nb;
    for (int64_t fx0 = 0; fx0 < p.Fx; fx0 += columns) {
      const int64_t nfx = std::min(columns, p.Fx - fx0);
      gradientColumns(p, dy, b0, nb, fx0, nfx, Ds.get());
      for (int64_t c = 0; c < nfx; c++) {
        const float* Dc = Ds.get() + c * p.Ny * rows * Co;
        float* Tc = T.get() + c * p.Ny * rows * 2 * K;
        withFilterSpectra(p, filter, fx0 + c, chunk, WX.get(), S.get(), [&](int64_t fy, const float* Sf) {
          sgemm(false, true, rows, 2 * K, Co, 1.0f, Dc + fy * rows * Co, Co, Sf, Co, 0.0f, Tc + fy * rows * 2 * K, 2 * K);
        });
      }
      const int64_t blocks = (g.Ci + kChannelBlock - 1) / kChannelBlock;
      const int workers = threadCount();
      const int64_t workLen = inverseWorkFloats(p, p.Nx, nfx);
      ScratchFloats work(workers * workLen);  // per thread, as in inputColumns
      parallelTasks(nb * p.P * blocks, [&](int64_t task, int worker) {
        const int64_t cb = task % blocks, ph = (task / blocks) % p.P, bl = task / (blocks * p.P);
        const int64_t py = ph / g.sw, px = ph % g.sw;
        const int64_t c0 = cb * kChannelBlock, C = std::min(kChannelBlock, g.Ci - c0);
        float* img = dx + (b0 + bl) * image;
        auto dst = [&](int64_t ny, int64_t nx) -> float* {
          int64_t y = g.sh * ny + py - g.padTop, xx = g.sw * nx + px - g.padLeft;
          if (y < 0 || y >= g.H || xx < 0 || xx >= g.W) return nullptr;
          return img + (y * g.W + xx) * g.Ci + c0;
        };
        // DX = D W: re = Dr Wr^T - Di Wi^T, im = Dr Wi^T + Di Wr^T.
        auto spec = [&](int64_t c, int64_t fy, float* __restrict re, float* __restrict im) {
          const float* Tc = T.get() + c * p.Ny * rows * 2 * K;
          const int64_t k = ph * g.Ci + c0;
          const float* __restrict dr = Tc + (fy * rows + bl) * 2 * K;
          const float* __restrict di = Tc + (fy * rows + nb + bl) * 2 * K;
          for (int64_t q = 0; q < C; q++) {
            re[q] = dr[k + q] - di[K + k + q];
            im[q] = dr[K + k + q] + di[k + q];
          }
        };
        inverseColumns(p, p.Ny, p.Nx, C, fx0, nfx, spec, dst, work.get() + worker * workLen, fx0 == 0 && allCovered);
      }, workers);
    }
  }
}

void spectralBackpropFilter(const ConvGeometry& g, const float* x, const float* dy, float* dw) {
  Plan p(g);
  const int64_t Co = g.Co, K = p.K;
  const int64_t group = imageGroup(p), chunk = frequencyChunk(p), columns = columnBlock(p, group);
  ScratchFloats Xs(columns * p.Ny * 2 * group * 2 * K), Ds(columns * p.Ny * 2 * group * Co);
  ScratchFloats R(chunk * 2 * K * Co);  // [DWr; DWi] for a chunk of frequencies
  ScratchFloats Z(p.Qy * 2 * K * Co);   // DW along y for one column: [qy][re k | im k][co]
  std::fill(dw, dw + g.KH * g.KW * g.Ci * Co, 0.0f);
  const float scale = 1.0f / static_cast<float>(p.Ny * p.Nx);
  for (int64_t b0 = 0; b0 < g.B; b0 += group) {
    const int64_t nb = std::min(group, g.B - b0), rows = 2 * nb;
    for (int64_t fx0 = 0; fx0 < p.Fx; fx0 += columns) {
      const int64_t nfx = std::min(columns, p.Fx - fx0);
      inputColumns(p, x, b0, nb, fx0, nfx, Xs.get());
      gradientColumns(p, dy, b0, nb, fx0, nfx, Ds.get());
      for (int64_t fx = fx0; fx < fx0 + nfx; fx++) {
        const float* Xc = Xs.get() + (fx - fx0) * p.Ny * rows * 2 * K;
        const float* Dc = Ds.get() + (fx - fx0) * p.Ny * rows * Co;
        std::fill(Z.get(), Z.get() + p.Qy * 2 * K * Co, 0.0f);
        for (int64_t fy0 = 0; fy0 < p.Ny; fy0 += chunk) {
          const int64_t n = std::min(chunk, p.Ny - fy0);
          parallelTasks(n, [&](int64_t j, int) {
            const int64_t fy = fy0 + j;
            sgemm(true, false, 2 * K, Co, rows, 1.0f, Xc + fy * rows * 2 * K, 2 * K, Dc + fy * rows * Co, Co, 0.0f,
                  R.get() + j * 2 * K * Co, Co);
          });
          // Inverse along y for the taps qy < Qy, accumulated over the
          // column's frequencies in a fixed order.
          parallelFor(K, 16, [&](int64_t k0, int64_t k1) {
            for (int64_t k = k0; k < k1; k++) {
              for (int64_t qy = 0; qy < p.Qy; qy++) {
                float* zr = Z.get() + (qy * 2 * K + k) * Co;
                float* zi = Z.get() + (qy * 2 * K + K + k) * Co;
                forChunks(Co, [&](auto zero, int64_t q) {
                  using T = decltype(zero);
                  T a = loadChunk<T>(zr + q), b = loadChunk<T>(zi + q);
                  for (int64_t j = 0; j < n; j++) {
                    // (re + i im)(cos + i sin), frequencies in a fixed order
                    const int64_t fy = fy0 + j;
                    const float c = p.cy[fy * p.Ny + qy], s = p.sy[fy * p.Ny + qy];
                    const float* Rf = R.get() + j * 2 * K * Co;
                    const T re = loadChunk<T>(Rf + k * Co + q);
                    const T im = loadChunk<T>(Rf + (K + k) * Co + q);
                    a += re * c - im * s;
                    b += re * s + im * c;
                  }
                  storeChunk(zr + q, a);
                  storeChunk(zi + q, b);
                });
              }
            }
          });
        }
        // This column's share of the inverse along x, into the taps.
        const float w = p.wx[fx] * scale;
        parallelFor(p.P * p.Qy * g.Ci, 8, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; r++) {
            const int64_t ci = r % g.Ci, qy = (r / g.Ci) % p.Qy, ph = r / (g.Ci * p.Qy);
            const int64_t py = ph / g.sw, px = ph % g.sw, ky = g.sh * qy + py;
            if (ky >= g.KH) continue;
            const int64_t k = ph * g.Ci + ci;
            const float* zr = Z.get() + (qy * 2 * K + k) * Co;
            const float* zi = Z.get() + (qy * 2 * K + K + k) * Co;
            forChunks(Co, [&](auto zero, int64_t q) {
              using T = decltype(zero);
              const T a = loadChunk<T>(zr + q), b = loadChunk<T>(zi + q);
              for (int64_t qx = 0; qx < p.Qx; qx++) {
                const int64_t kx = g.sw * qx + px;
                if (kx >= g.KW) continue;
                const float c = w * p.cx[fx * p.Nx + qx], s = -w * p.sx[fx * p.Nx + qx];
                float* t = dw + ((ky * g.KW + kx) * g.Ci + ci) * Co + q;
                storeChunk(t, loadChunk<T>(t) + a * c + b * s);
              }
            });
          }
        });
      }
    }
  }
}

}  // namespace capsnet
