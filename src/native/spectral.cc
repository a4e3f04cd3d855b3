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
// real sgemm on [re | im] blocks; the transforms are direct small DFTs,
// vectorized across channels (contiguous in NHWC and HWIO). Real inputs
// give Hermitian spectra, so only Nx/2 + 1 columns are kept.
//
// Working memory is bounded: images are processed in groups and the
// filter's spectrum a few frequencies at a time.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "blas.h"
#include "conv.h"
#include "parallel.h"

namespace capsnet {

void biasActivation(float* y, int64_t rows, int64_t cols, const float* bias, int64_t biasLen, int activation,
                    float alpha);

namespace {

// 0: never, 1: where the cost model says it pays, 2: wherever the
// geometry allows (tests).
std::atomic<int> spectralMode{1};

// Floats of one spectrum column's input spectra for a group of images, and
// of filter spectra (or filter-gradient products) held at once.
constexpr int64_t kSpectraBudget = int64_t{8} << 20;
constexpr int64_t kFilterChunkBudget = int64_t{6} << 20;
// Channels transformed together: the working rows stay in L1.
constexpr int64_t kChannelBlock = 64;

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

// Uninitialized scratch: every buffer below is fully written before it is read.
struct Floats {
  std::unique_ptr<float[]> data;
  explicit Floats(int64_t n) : data(new float[std::max<int64_t>(n, 1)]) {}
  float* get() const { return data.get(); }
};

// The work runs one spectrum column fx at a time: the Ny frequencies
// (fy, fx) of all images, then their products, then their share of the
// inverse transforms, accumulated into the outputs. Per column:
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

// Row DFT of a tile for one column fx, then the column DFT for every fy:
// emit(fy, re, im) receives the C-vectors of frequency (fy, fx).
template <typename Src, typename Emit>
void tileColumn(const Plan& p, int64_t Ly, int64_t Lx, int64_t C, int64_t fx, Src src, Emit emit, float* work) {
  float* r1 = work;                 // [Ly][C]
  float* i1 = work + Ly * kChannelBlock;
  float* re = i1 + Ly * kChannelBlock;  // [C]
  float* im = re + kChannelBlock;
  std::fill(r1, r1 + 2 * Ly * kChannelBlock, 0.0f);
  for (int64_t ny = 0; ny < Ly; ny++) {
    float* __restrict rr = r1 + ny * kChannelBlock;
    float* __restrict ii = i1 + ny * kChannelBlock;
    for (int64_t nx = 0; nx < Lx; nx++) {
      const float* __restrict t = src(ny, nx);
      if (!t) continue;
      const float c = p.cx[fx * p.Nx + nx], s = -p.sx[fx * p.Nx + nx];
      for (int64_t k = 0; k < C; k++) {
        rr[k] += t[k] * c;
        ii[k] += t[k] * s;
      }
    }
  }
  for (int64_t fy = 0; fy < p.Ny; fy++) {
    float* __restrict a = re;
    float* __restrict b = im;
    for (int64_t k = 0; k < C; k++) a[k] = b[k] = 0.0f;
    for (int64_t ny = 0; ny < Ly; ny++) {
      // (r + i i)(cos - i sin)
      const float c = p.cy[fy * p.Ny + ny], s = p.sy[fy * p.Ny + ny];
      const float* __restrict rr = r1 + ny * kChannelBlock;
      const float* __restrict ii = i1 + ny * kChannelBlock;
      for (int64_t k = 0; k < C; k++) {
        a[k] += rr[k] * c + ii[k] * s;
        b[k] += ii[k] * c - rr[k] * s;
      }
    }
    emit(fy, a, b);
  }
}

// Column fx's share of a real inverse 2D DFT, added into rows ny < Ly and
// columns nx < Lx: with Z(ny) = sum over fy of S(fy) e^(+2 pi i fy ny / Ny),
//   out(ny, nx) += wx (Zr cos(2 pi fx nx / Nx) - Zi sin(...)) / (Ny Nx).
// spec(fy, re, im) gives the C-vectors of frequency (fy, fx) (it may
// compute them into buffers of its own); out(ny, nx) is the destination
// vector or null to skip. With assign, the destination is overwritten
// instead (the first column).
template <typename Spec, typename Out>
void inverseColumn(const Plan& p, int64_t Ly, int64_t Lx, int64_t C, int64_t fx, Spec spec, Out out, float* work,
                   bool assign) {
  float* zr = work;  // [Ly][C]
  float* zi = work + Ly * kChannelBlock;
  std::fill(zr, zr + 2 * Ly * kChannelBlock, 0.0f);
  for (int64_t fy = 0; fy < p.Ny; fy++) {
    const float* srIn;
    const float* siIn;
    spec(fy, srIn, siIn);
    const float* __restrict sr = srIn;
    const float* __restrict si = siIn;
    for (int64_t ny = 0; ny < Ly; ny++) {
      // (sr + i si)(cos + i sin)
      const float c = p.cy[fy * p.Ny + ny], s = p.sy[fy * p.Ny + ny];
      float* __restrict a = zr + ny * kChannelBlock;
      float* __restrict b = zi + ny * kChannelBlock;
      for (int64_t k = 0; k < C; k++) {
        a[k] += sr[k] * c - si[k] * s;
        b[k] += sr[k] * s + si[k] * c;
      }
    }
  }
  const float w = p.wx[fx] / static_cast<float>(p.Ny * p.Nx);
  for (int64_t ny = 0; ny < Ly; ny++) {
    const float* __restrict a = zr + ny * kChannelBlock;
    const float* __restrict b = zi + ny * kChannelBlock;
    for (int64_t nx = 0; nx < Lx; nx++) {
      float* __restrict o = out(ny, nx);
      if (!o) continue;
      const float c = w * p.cx[fx * p.Nx + nx], s = -w * p.sx[fx * p.Nx + nx];
      if (assign)
        for (int64_t k = 0; k < C; k++) o[k] = a[k] * c + b[k] * s;
      else
        for (int64_t k = 0; k < C; k++) o[k] += a[k] * c + b[k] * s;
    }
  }
}

int64_t workFloats(const Plan& p) { return (2 * std::max(p.Ny, p.g.OH) + 2) * kChannelBlock; }

// Xs for column fx from images [b0, b0 + nb) of x.
void inputColumn(const Plan& p, const float* x, int64_t b0, int64_t nb, int64_t fx, float* Xs) {
  const ConvGeometry& g = p.g;
  const int64_t blocks = (g.Ci + kChannelBlock - 1) / kChannelBlock;
  const int64_t K = p.K, rows = 2 * nb, rowLen = 2 * K;
  parallelTasks(nb * p.P * blocks, [&](int64_t task, int) {
    std::vector<float> work(workFloats(p));
    const int64_t cb = task % blocks, ph = (task / blocks) % p.P, bl = task / (blocks * p.P);
    const int64_t py = ph / g.sw, px = ph % g.sw;
    const int64_t c0 = cb * kChannelBlock, C = std::min(kChannelBlock, g.Ci - c0);
    const float* image = x + (b0 + bl) * g.H * g.W * g.Ci;
    auto src = [&](int64_t ny, int64_t nx) -> const float* {
      int64_t y = g.sh * ny + py - g.padTop, xx = g.sw * nx + px - g.padLeft;
      if (y < 0 || y >= g.H || xx < 0 || xx >= g.W) return nullptr;
      return image + (y * g.W + xx) * g.Ci + c0;
    };
    auto emit = [&](int64_t fy, const float* re, const float* im) {
      float* __restrict top = Xs + (fy * rows + bl) * rowLen + ph * g.Ci + c0;
      float* __restrict bottom = Xs + (fy * rows + nb + bl) * rowLen + ph * g.Ci + c0;
      for (int64_t k = 0; k < C; k++) {
        top[k] = re[k];
        top[K + k] = im[k];
        bottom[k] = im[k];
        bottom[K + k] = -re[k];
      }
    };
    tileColumn(p, p.Ny, p.Nx, C, fx, src, emit, work.data());
  });
}

// Ds for column fx from images [b0, b0 + nb) of dy.
void gradientColumn(const Plan& p, const float* dy, int64_t b0, int64_t nb, int64_t fx, float* Ds) {
  const ConvGeometry& g = p.g;
  const int64_t blocks = (g.Co + kChannelBlock - 1) / kChannelBlock;
  const int64_t rows = 2 * nb;
  parallelTasks(nb * blocks, [&](int64_t task, int) {
    std::vector<float> work(workFloats(p));
    const int64_t cb = task % blocks, bl = task / blocks;
    const int64_t c0 = cb * kChannelBlock, C = std::min(kChannelBlock, g.Co - c0);
    const float* image = dy + (b0 + bl) * g.OH * g.OW * g.Co;
    auto src = [&](int64_t oy, int64_t ox) -> const float* { return image + (oy * g.OW + ox) * g.Co + c0; };
    auto emit = [&](int64_t fy, const float* re, const float* im) {
      std::memcpy(Ds + (fy * rows + bl) * g.Co + c0, re, sizeof(float) * C);
      std::memcpy(Ds + (fy * rows + nb + bl) * g.Co + c0, im, sizeof(float) * C);
    };
    tileColumn(p, g.OH, g.OW, C, fx, src, emit, work.data());
  });
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
      float* __restrict re = WX + r * 2 * g.Co;
      float* __restrict im = re + g.Co;
      std::fill(re, re + 2 * g.Co, 0.0f);
      if (ky >= g.KH) continue;
      for (int64_t qx = 0; qx < p.Qx; qx++) {
        const int64_t kx = g.sw * qx + px;
        if (kx >= g.KW) continue;
        const float* __restrict t = w + ((ky * g.KW + kx) * g.Ci + ci) * g.Co;
        const float c = p.cx[fx * p.Nx + qx], s = -p.sx[fx * p.Nx + qx];
        for (int64_t k = 0; k < g.Co; k++) {
          re[k] += t[k] * c;
          im[k] += t[k] * s;
        }
      }
    }
  });
}

// S for frequencies (fy0 + j, fx), j < n, from WX into S + j * 2K * Co:
// W = sum over qy of WX e^(-2 pi i fy qy / Ny). Each row of WX is read once
// for all n frequencies (WX is larger than L2).
void filterSpectra(const Plan& p, const float* WX, int64_t fy0, int64_t n, float* S) {
  const ConvGeometry& g = p.g;
  const int64_t Co = g.Co, stride = 2 * p.K * Co;
  parallelFor(p.K, 16, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++) {
      const int64_t ph = k / g.Ci, ci = k % g.Ci;
      for (int64_t qy = 0; qy < p.Qy; qy++) {
        const float* __restrict xr = WX + ((ph * p.Qy + qy) * g.Ci + ci) * 2 * Co;
        const float* __restrict xi = xr + Co;
        for (int64_t j = 0; j < n; j++) {
          const int64_t fy = fy0 + j;
          float* __restrict wr = S + j * stride + k * Co;
          float* __restrict wi = S + j * stride + (p.K + k) * Co;
          // (xr + i xi)(cos - i sin)
          const float c = p.cy[fy * p.Ny + qy], s = p.sy[fy * p.Ny + qy];
          if (qy == 0) {
            for (int64_t q = 0; q < Co; q++) {
              wr[q] = xr[q] * c + xi[q] * s;
              wi[q] = xi[q] * c - xr[q] * s;
            }
          } else {
            for (int64_t q = 0; q < Co; q++) {
              wr[q] += xr[q] * c + xi[q] * s;
              wi[q] += xi[q] * c - xr[q] * s;
            }
          }
        }
      }
    }
  });
}

// Images per group, so that one column's input spectra fit kSpectraBudget.
int64_t imageGroup(const Plan& p) {
  return std::max<int64_t>(1, std::min(p.g.B, kSpectraBudget / (p.Ny * 4 * p.K)));
}

// Frequencies of a column whose filter spectra (or filter-gradient
// products) are held at once.
int64_t frequencyChunk(const Plan& p) {
  return std::max<int64_t>(1, std::min(p.Ny, kFilterChunkBudget / (2 * p.K * p.g.Co)));
}

}  // namespace

void setSpectralMode(int mode) { spectralMode.store(mode); }

bool spectralPays(const ConvGeometry& g) {
  const int mode = spectralMode.load();
  if (mode == 0) return false;
  if (g.dh != 1 || g.dw != 1 || g.Ci < 16 || g.Co < 16 || g.OH < 1 || g.OW < 1) return false;
  const int64_t Qy = (g.KH + g.sh - 1) / g.sh, Qx = (g.KW + g.sw - 1) / g.sw;
  if (Qy * Qx < 4) return false;
  const int64_t Ny = g.OH + Qy - 1, Nx = g.OW + Qx - 1;
  if (Ny > 32 || Nx > 32) return false;
  if (mode == 2) return true;
  // Estimated multiply-adds. im2col: OH OW KH KW Ci Co per image. Spectral:
  // 4 per complex term for every frequency, phase and channel pair per
  // image, plus a third for the transforms and memory passes; and, once per
  // call, the filter's spectra (about 80 multiply-add equivalents per float
  // of them, measured: they are written and read back through memory).
  // Require a clear gain: small batches stay on im2col.
  const double B = static_cast<double>(g.B), CiCo = static_cast<double>(g.Ci * g.Co);
  const double F = static_cast<double>(Ny * (Nx / 2 + 1)), P = static_cast<double>(g.sh * g.sw);
  const double direct = B * static_cast<double>(g.OH * g.OW * g.KH * g.KW) * CiCo;
  const double spectral = B * 1.35 * 4.0 * F * P * CiCo + 80.0 * F * 2.0 * P * CiCo;
  return direct >= 1.15 * spectral;
}

void spectralConv2d(const ConvGeometry& g, const float* x, const float* filter, float* out, const float* bias,
                    int64_t biasLen, int activation, float alpha) {
  Plan p(g);
  const int64_t Co = g.Co, K = p.K;
  const int64_t group = imageGroup(p), chunk = frequencyChunk(p);
  Floats Xs(p.Ny * 2 * group * 2 * K), Cs(p.Ny * 2 * group * Co), WX(p.P * p.Qy * g.Ci * 2 * Co), S(chunk * 2 * K * Co);
  const int64_t outImage = g.OH * g.OW * Co;
  for (int64_t b0 = 0; b0 < g.B; b0 += group) {
    const int64_t nb = std::min(group, g.B - b0), rows = 2 * nb;
    for (int64_t fx = 0; fx < p.Fx; fx++) {
      inputColumn(p, x, b0, nb, fx, Xs.get());
      filterColumnSpectra(p, filter, fx, WX.get());
      for (int64_t fy0 = 0; fy0 < p.Ny; fy0 += chunk) {
        const int64_t n = std::min(chunk, p.Ny - fy0);
        filterSpectra(p, WX.get(), fy0, n, S.get());
        // One product per frequency, one thread each.
        parallelTasks(n, [&](int64_t j, int) {
          const int64_t fy = fy0 + j;
          sgemm(false, false, rows, Co, 2 * K, 1.0f, Xs.get() + fy * rows * 2 * K, 2 * K, S.get() + j * 2 * K * Co, Co, 0.0f,
                Cs.get() + fy * rows * Co, Co);
        });
      }
      const int64_t blocks = (Co + kChannelBlock - 1) / kChannelBlock;
      parallelTasks(nb * blocks, [&](int64_t task, int) {
        std::vector<float> work(workFloats(p));
        const int64_t cb = task % blocks, bl = task / blocks;
        const int64_t c0 = cb * kChannelBlock, C = std::min(kChannelBlock, Co - c0);
        float* image = out + (b0 + bl) * outImage;
        auto spec = [&](int64_t fy, const float*& re, const float*& im) {
          re = Cs.get() + (fy * rows + bl) * Co + c0;
          im = Cs.get() + (fy * rows + nb + bl) * Co + c0;
        };
        auto dst = [&](int64_t oy, int64_t ox) -> float* { return image + (oy * g.OW + ox) * Co + c0; };
        inverseColumn(p, g.OH, g.OW, C, fx, spec, dst, work.data(), fx == 0);
      });
    }
    biasActivation(out + b0 * outImage, nb * g.OH * g.OW, Co, bias, biasLen, activation, alpha);
  }
}

void spectralBackpropInput(const ConvGeometry& g, const float* dy, const float* filter, float* dx) {
  Plan p(g);
  const int64_t Co = g.Co, K = p.K;
  const int64_t group = imageGroup(p), chunk = frequencyChunk(p);
  Floats Ds(p.Ny * 2 * group * Co), T(p.Ny * 2 * group * 2 * K), WX(p.P * p.Qy * g.Ci * 2 * Co), S(chunk * 2 * K * Co);
  const int64_t image = g.H * g.W * g.Ci;
  // Every input position belongs to one phase tile, written by the first
  // column and added to by the others; positions beyond the tiles (that no
  // output reads) must be zero.
  const bool allCovered = g.sh * p.Ny >= g.H + g.padTop && g.sw * p.Nx >= g.W + g.padLeft;
  if (!allCovered) std::memset(dx, 0, sizeof(float) * g.B * image);
  for (int64_t b0 = 0; b0 < g.B; b0 += group) {
    const int64_t nb = std::min(group, g.B - b0), rows = 2 * nb;
    for (int64_t fx = 0; fx < p.Fx; fx++) {
      gradientColumn(p, dy, b0, nb, fx, Ds.get());
      filterColumnSpectra(p, filter, fx, WX.get());
      for (int64_t fy0 = 0; fy0 < p.Ny; fy0 += chunk) {
        const int64_t n = std::min(chunk, p.Ny - fy0);
        filterSpectra(p, WX.get(), fy0, n, S.get());
        parallelTasks(n, [&](int64_t j, int) {
          const int64_t fy = fy0 + j;
          sgemm(false, true, rows, 2 * K, Co, 1.0f, Ds.get() + fy * rows * Co, Co, S.get() + j * 2 * K * Co, Co, 0.0f,
                T.get() + fy * rows * 2 * K, 2 * K);
        });
      }
      const int64_t blocks = (g.Ci + kChannelBlock - 1) / kChannelBlock;
      parallelTasks(nb * p.P * blocks, [&](int64_t task, int) {
        std::vector<float> work(workFloats(p));
        float combined[2 * kChannelBlock];
        const int64_t cb = task % blocks, ph = (task / blocks) % p.P, bl = task / (blocks * p.P);
        const int64_t py = ph / g.sw, px = ph % g.sw;
        const int64_t c0 = cb * kChannelBlock, C = std::min(kChannelBlock, g.Ci - c0);
        float* img = dx + (b0 + bl) * image;
        // DX = D W: re = Dr Wr^T - Di Wi^T, im = Dr Wi^T + Di Wr^T.
        auto spec = [&](int64_t fy, const float*& re, const float*& im) {
          const int64_t k = ph * g.Ci + c0;
          const float* __restrict dr = T.get() + (fy * rows + bl) * 2 * K;
          const float* __restrict di = T.get() + (fy * rows + nb + bl) * 2 * K;
          float* __restrict a = combined;
          float* __restrict b = combined + kChannelBlock;
          for (int64_t q = 0; q < C; q++) {
            a[q] = dr[k + q] - di[K + k + q];
            b[q] = dr[K + k + q] + di[k + q];
          }
          re = a;
          im = b;
        };
        auto dst = [&](int64_t ny, int64_t nx) -> float* {
          int64_t y = g.sh * ny + py - g.padTop, xx = g.sw * nx + px - g.padLeft;
          if (y < 0 || y >= g.H || xx < 0 || xx >= g.W) return nullptr;
          return img + (y * g.W + xx) * g.Ci + c0;
        };
        inverseColumn(p, p.Ny, p.Nx, C, fx, spec, dst, work.data(), fx == 0 && allCovered);
      });
    }
  }
}

void spectralBackpropFilter(const ConvGeometry& g, const float* x, const float* dy, float* dw) {
  Plan p(g);
  const int64_t Co = g.Co, K = p.K;
  const int64_t group = imageGroup(p), chunk = frequencyChunk(p);
  Floats Xs(p.Ny * 2 * group * 2 * K), Ds(p.Ny * 2 * group * Co);
  Floats R(chunk * 2 * K * Co);  // [DWr; DWi] for a chunk of frequencies
  Floats Z(p.Qy * 2 * K * Co);   // DW along y for one column: [qy][re k | im k][co]
  std::fill(dw, dw + g.KH * g.KW * g.Ci * Co, 0.0f);
  const float scale = 1.0f / static_cast<float>(p.Ny * p.Nx);
  for (int64_t b0 = 0; b0 < g.B; b0 += group) {
    const int64_t nb = std::min(group, g.B - b0), rows = 2 * nb;
    for (int64_t fx = 0; fx < p.Fx; fx++) {
      inputColumn(p, x, b0, nb, fx, Xs.get());
      gradientColumn(p, dy, b0, nb, fx, Ds.get());
      std::fill(Z.get(), Z.get() + p.Qy * 2 * K * Co, 0.0f);
      for (int64_t fy0 = 0; fy0 < p.Ny; fy0 += chunk) {
        const int64_t n = std::min(chunk, p.Ny - fy0);
        parallelTasks(n, [&](int64_t j, int) {
          const int64_t fy = fy0 + j;
          sgemm(true, false, 2 * K, Co, rows, 1.0f, Xs.get() + fy * rows * 2 * K, 2 * K, Ds.get() + fy * rows * Co, Co, 0.0f,
                R.get() + j * 2 * K * Co, Co);
        });
        // Inverse along y for the taps qy < Qy, accumulated over the
        // column's frequencies in a fixed order.
        parallelFor(K, 16, [&](int64_t k0, int64_t k1) {
          for (int64_t j = 0; j < n; j++) {
            const int64_t fy = fy0 + j;
            const float* Rf = R.get() + j * 2 * K * Co;
            for (int64_t k = k0; k < k1; k++) {
              const float* __restrict re = Rf + k * Co;
              const float* __restrict im = Rf + (K + k) * Co;
              for (int64_t qy = 0; qy < p.Qy; qy++) {
                // (re + i im)(cos + i sin)
                const float c = p.cy[fy * p.Ny + qy], s = p.sy[fy * p.Ny + qy];
                float* __restrict zr = Z.get() + (qy * 2 * K + k) * Co;
                float* __restrict zi = Z.get() + (qy * 2 * K + K + k) * Co;
                for (int64_t q = 0; q < Co; q++) {
                  zr[q] += re[q] * c - im[q] * s;
                  zi[q] += re[q] * s + im[q] * c;
                }
              }
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
          const float* __restrict zr = Z.get() + (qy * 2 * K + k) * Co;
          const float* __restrict zi = Z.get() + (qy * 2 * K + K + k) * Co;
          for (int64_t qx = 0; qx < p.Qx; qx++) {
            const int64_t kx = g.sw * qx + px;
            if (kx >= g.KW) continue;
            const float c = w * p.cx[fx * p.Nx + qx], s = -w * p.sx[fx * p.Nx + qx];
            float* __restrict t = dw + ((ky * g.KW + kx) * g.Ci + ci) * Co;
            for (int64_t q = 0; q < Co; q++) t[q] += zr[q] * c + zi[q] * s;
          }
        }
      });
    }
  }
}

}  // namespace capsnet
