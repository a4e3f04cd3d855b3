// Batch normalization in training mode (Ioffe and Szegedy 2015, Algorithm 1)
// over every axis but the last, and its gradient, for
// src/native/kernels/batchNorm.ts. They compute what
// batchNormTrainingReference in src/layers/batchNormalization.ts computes:
// x is [rows, C] (NHWC maps flattened), and per channel c
//   mu = mean of x[., c],  sigma^2 = mean of (x[., c] - mu)^2 (biased),
//   y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta.
// The reference's tfjs ops make six passes over x forward and more than a
// dozen for the gradient (one per op, with broadcasts of every per-channel
// term); here the forward takes three (sum, squared deviations, y) and the
// gradient two.
//
// Sums run in double over fixed blocks of rows, added in block order, so
// the statistics do not depend on the thread count; the mean is taken
// before the deviations are summed (two passes), which keeps the variance
// exact where the mean is large against the spread.
#include <algorithm>
#include <cmath>
#include <vector>

#include "entry.h"
#include "parallel.h"

namespace capsnet {
namespace {

// Rows per block of partial sums.
constexpr int64_t kRowsPerPartial = 256;

// sums[c] (+ sums2[c] when given) over all rows, of f(row, c) (and g),
// summed per block of rows in double and then in block order.
template <typename F>
void channelSums(int64_t rows, int64_t C, std::vector<double>& out, int terms, const F& rowTerms) {
  const int64_t parts = (rows + kRowsPerPartial - 1) / kRowsPerPartial;
  std::vector<double> partial(static_cast<size_t>(parts * terms * C), 0.0);
  parallelTasks(parts, [&](int64_t p, int) {
    double* acc = partial.data() + p * terms * C;
    const int64_t r1 = std::min(rows, (p + 1) * kRowsPerPartial);
    for (int64_t r = p * kRowsPerPartial; r < r1; r++) rowTerms(r, acc);
  });
  out.assign(static_cast<size_t>(terms * C), 0.0);
  for (int64_t p = 0; p < parts; p++)
    for (int64_t k = 0; k < terms * C; k++) out[k] += partial[p * terms * C + k];
}

// batchNormTraining({ x, gamma, beta, epsilon, y, mean, variance }): y, and
// the batch mean and biased variance of every channel.
CAPSNET_ENTRY(batchNormTraining, "x", "gamma", "beta", "epsilon", "y", "mean", "variance") {
  View<float> gamma = a.f32("gamma");
  const int64_t C = gamma.length;
  require(C > 0, "batchNormTraining", "gamma is empty");
  View<float> x = a.f32("x");
  require(x.length > 0 && x.length % C == 0, "batchNormTraining", "x is not a non-empty multiple of the channel count");
  View<float> beta = a.f32("beta", C);
  const double eps = a.number("epsilon");
  require(std::isfinite(eps) && eps >= 0, "batchNormTraining", "epsilon must be a finite non-negative number");
  View<float> y = a.f32("y", x.length);
  View<float> mean = a.f32("mean", C);
  View<float> variance = a.f32("variance", C);
  for (const View<float>* in : {&x, &gamma, &beta}) {
    requireDisjoint(y, *in, "batchNormTraining");
    requireDisjoint(mean, *in, "batchNormTraining");
    requireDisjoint(variance, *in, "batchNormTraining");
  }
  requireDisjoint(mean, y, "batchNormTraining");
  requireDisjoint(variance, y, "batchNormTraining");
  requireDisjoint(mean, variance, "batchNormTraining");
  const int64_t rows = x.length / C;
  const float* X = x.data;

  std::vector<double> sums;
  channelSums(rows, C, sums, 1, [&](int64_t r, double* acc) {
    const float* xr = X + r * C;
    for (int64_t c = 0; c < C; c++) acc[c] += xr[c];
  });
  std::vector<float> mu(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; c++) mu[c] = static_cast<float>(sums[c] / static_cast<double>(rows));
  channelSums(rows, C, sums, 1, [&](int64_t r, double* acc) {
    const float* xr = X + r * C;
    for (int64_t c = 0; c < C; c++) {
      const double d = static_cast<double>(xr[c]) - mu[c];
      acc[c] += d * d;
    }
  });
  // y = (x - mu) scale + beta with scale = gamma / sqrt(sigma^2 + eps); eps
  // keeps it finite for a channel constant over the batch (sigma^2 = 0).
  std::vector<float> scale(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; c++) {
    const double var = sums[c] / static_cast<double>(rows);
    mean.data[c] = mu[c];
    variance.data[c] = static_cast<float>(var);
    scale[c] = static_cast<float>(gamma.data[c] / std::sqrt(var + eps));
  }
  const float* shift = beta.data;
  parallelFor(rows, std::max<int64_t>(1, 8192 / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* __restrict xr = X + r * C;
      float* __restrict yr = y.data + r * C;
      for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mu[c]) * scale[c] + shift[c];
    }
  });
}

// batchNormTrainingGrad({ dy, x, gamma, mean, variance, epsilon, dmean,
// dvariance, dx, dgamma, dbeta }): the gradients of batchNormTraining for
// upstream dy (on y) and, when given, dmean and dvariance (on the
// statistics). With n rows, s = 1 / sqrt(sigma^2 + eps), xhat = (x - mu) s,
//   dbeta  = sum dy,   dgamma = sum dy xhat,
//   dx     = gamma s (dy - dbeta / n - xhat dgamma / n)
//            + dmean / n + 2 dvariance (x - mu) / n,
// the last two terms from mu = sum x / n and sigma^2 = sum (x - mu)^2 / n.
CAPSNET_ENTRY(batchNormTrainingGrad, "dy", "x", "gamma", "mean", "variance", "epsilon", "dmean", "dvariance", "dx", "dgamma", "dbeta") {
  View<float> gamma = a.f32("gamma");
  const int64_t C = gamma.length;
  require(C > 0, "batchNormTrainingGrad", "gamma is empty");
  View<float> dy = a.f32("dy");
  require(dy.length > 0 && dy.length % C == 0, "batchNormTrainingGrad", "dy is not a non-empty multiple of the channel count");
  View<float> x = a.f32("x", dy.length);
  View<float> mean = a.f32("mean", C);
  View<float> variance = a.f32("variance", C);
  const double eps = a.number("epsilon");
  require(std::isfinite(eps) && eps >= 0, "batchNormTrainingGrad", "epsilon must be a finite non-negative number");
  View<float> dmean = a.optionalF32("dmean");
  View<float> dvariance = a.optionalF32("dvariance");
  require(dmean.length == 0 || dmean.length == C, "batchNormTrainingGrad", "dmean must have one entry per channel");
  require(dvariance.length == 0 || dvariance.length == C, "batchNormTrainingGrad", "dvariance must have one entry per channel");
  View<float> dx = a.f32("dx", dy.length);
  View<float> dgamma = a.f32("dgamma", C);
  View<float> dbeta = a.f32("dbeta", C);
  for (const View<float>* in : {&dy, &x, &gamma, &mean, &variance, &dmean, &dvariance}) {
    requireDisjoint(dx, *in, "batchNormTrainingGrad");
    requireDisjoint(dgamma, *in, "batchNormTrainingGrad");
    requireDisjoint(dbeta, *in, "batchNormTrainingGrad");
  }
  requireDisjoint(dgamma, dx, "batchNormTrainingGrad");
  requireDisjoint(dbeta, dx, "batchNormTrainingGrad");
  requireDisjoint(dgamma, dbeta, "batchNormTrainingGrad");
  const int64_t rows = dy.length / C;
  const float *DY = dy.data, *X = x.data, *MU = mean.data;

  // sums[c] = sum dy, sums[C + c] = sum dy (x - mu).
  std::vector<double> sums;
  channelSums(rows, C, sums, 2, [&](int64_t r, double* acc) {
    const float* gr = DY + r * C;
    const float* xr = X + r * C;
    for (int64_t c = 0; c < C; c++) {
      acc[c] += gr[c];
      acc[C + c] += static_cast<double>(gr[c]) * (static_cast<double>(xr[c]) - MU[c]);
    }
  });
  // dx = k1 dy + k2 (x - mu) + k3 per channel.
  std::vector<float> k1(static_cast<size_t>(C)), k2(static_cast<size_t>(C)), k3(static_cast<size_t>(C));
  const double n = static_cast<double>(rows);
  for (int64_t c = 0; c < C; c++) {
    const double s = 1.0 / std::sqrt(static_cast<double>(variance.data[c]) + eps);
    const double g = gamma.data[c];
    dbeta.data[c] = static_cast<float>(sums[c]);
    dgamma.data[c] = static_cast<float>(sums[C + c] * s);
    k1[c] = static_cast<float>(g * s);
    k2[c] = static_cast<float>(-g * s * s * s * sums[C + c] / n + (dvariance.length ? 2.0 * dvariance.data[c] / n : 0.0));
    k3[c] = static_cast<float>(-g * s * sums[c] / n + (dmean.length ? dmean.data[c] / n : 0.0));
  }
  parallelFor(rows, std::max<int64_t>(1, 8192 / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* __restrict gr = DY + r * C;
      const float* __restrict xr = X + r * C;
      float* __restrict out = dx.data + r * C;
      for (int64_t c = 0; c < C; c++) out[c] = k1[c] * gr[c] + k2[c] * (xr[c] - MU[c]) + k3[c];
    }
  });
}

}  // namespace
}  // namespace capsnet
