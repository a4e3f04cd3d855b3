// Entry points of the fused EM routing kernels (CapsEmRouting and
// CapsEmRoutingGrad): argument checks, then emRoutingCore.h once per image,
// images spread over the engine's threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "common.h"
#include "emRoutingCore.h"
#include "parallel.h"

namespace capsnet {
namespace {

struct EmArgs {
  int64_t B = 0;
  em::Dims d{0, 0, 0, 0};
  em::Settings s;
  std::vector<int64_t> geometry;  // empty, or the 7 values of em::makeTables
  // The first four arguments of both kernels, and sizes per image.
  View<float> V, act, betaU, betaA;
  int64_t PN = 0, PNJD = 0, PJ = 0;
};

// votes, activations, betaU and betaA (arguments 0-3), then from `first`
// on: B, P, N, J, D, lambdas (Float32Array, one per
// iteration), varianceFloor, costScale, logitBound, meanEps, geometry.
EmArgs readEm(Args& a, size_t first) {
  EmArgs e;
  e.B = a.integer(first, "B", 0, INT32_MAX);
  e.d.P = a.integer(first + 1, "P", 1, INT32_MAX);
  e.d.N = a.integer(first + 2, "N", 1, INT32_MAX);
  e.d.J = a.integer(first + 3, "J", 1, INT32_MAX);
  e.d.D = a.integer(first + 4, "D", 1, 4096);
  View<float> lambdas = a.f32(first + 5, "lambdas");
  require(lambdas.length >= 1 && lambdas.length <= 1000, "emRouting", "lambdas must hold one value per iteration (1 to 1000)");
  e.s.iterations = static_cast<int>(lambdas.length);
  e.s.lambdas.assign(lambdas.data, lambdas.data + lambdas.length);
  e.s.varianceFloor = a.number(first + 6, "varianceFloor");
  e.s.costScale = a.number(first + 7, "costScale");
  e.s.logitBound = a.number(first + 8, "logitBound");
  e.s.meanEps = a.number(first + 9, "meanEps");
  require(e.s.varianceFloor > 0 && std::isfinite(e.s.varianceFloor), "emRouting", "varianceFloor must be positive");
  require(e.s.logitBound > 0 && std::isfinite(e.s.logitBound), "emRouting", "logitBound must be positive");
  require(e.s.meanEps >= 0 && std::isfinite(e.s.meanEps) && std::isfinite(e.s.costScale), "emRouting", "meanEps and costScale must be finite");
  for (double l : e.s.lambdas) require(std::isfinite(l), "emRouting", "lambdas must be finite");
  e.geometry = a.intList(first + 10, "geometry", 1, INT32_MAX, 7);
  checkedProduct({e.B, e.d.P, e.d.N, e.d.J, e.d.D}, "emRouting votes");
  if (!e.geometry.empty()) {
    require(e.geometry.size() == 7, "emRouting", "geometry must have 7 entries (inHeight, inWidth, inTypes, kernel, stride, outHeight, outWidth)");
    const int64_t inH = e.geometry[0], inW = e.geometry[1], inT = e.geometry[2], K = e.geometry[3], S = e.geometry[4], outH = e.geometry[5], outW = e.geometry[6];
    require(outH * outW == e.d.P, "emRouting", "geometry: outHeight x outWidth must equal P");
    require(K * K * inT == e.d.N, "emRouting", "geometry: kernel^2 x inTypes must equal N");
    require((outH - 1) * S + K <= inH && (outW - 1) * S + K <= inW, "emRouting", "geometry: the kernel windows leave the input");
  }
  e.PN = e.d.P * e.d.N;
  e.PNJD = e.PN * e.d.J * e.d.D;
  e.PJ = e.d.P * e.d.J;
  e.V = a.f32(0, "votes", e.B * e.PNJD);
  e.act = a.f32(1, "activations", e.B * e.PN);
  e.betaU = a.f32(2, "betaU", e.d.J);
  e.betaA = a.f32(3, "betaA", e.d.J);
  return e;
}

// Outputs may overlap neither an input nor each other.
using Views = std::initializer_list<const View<float>*>;
void requireOutputsApart(Views outputs, Views inputs, const char* what) {
  for (auto o = outputs.begin(); o != outputs.end(); ++o) {
    for (const View<float>* i : inputs) requireDisjoint(**o, *i, what);
    for (auto p = o + 1; p != outputs.end(); ++p) requireDisjoint(**o, **p, what);
  }
}

// emRouting(votes, activations, betaU, betaA, poses, act, routing, B, P, N,
// J, D, lambdas, varianceFloor, costScale, logitBound, meanEps, geometry)
void emRouting(Args& a) {
  EmArgs e = readEm(a, 7);
  const em::Dims& d = e.d;
  const int64_t PN = e.PN, PNJD = e.PNJD, PJ = e.PJ;
  const View<float>&V = e.V, &act = e.act, &betaU = e.betaU, &betaA = e.betaA;
  View<float> poses = a.f32(4, "poses", e.B * PJ * d.D);
  View<float> actOut = a.f32(5, "act", e.B * PJ);
  View<float> routing = a.f32(6, "routing", e.B * PN * d.J);
  requireOutputsApart({&poses, &actOut, &routing}, {&V, &act, &betaU, &betaA}, "emRouting");
  if (e.B == 0) return;
  const em::Tables t = em::makeTables(d.P, d.N, e.geometry.empty() ? nullptr : e.geometry.data());
  parallelTasks(e.B, [&](int64_t b, int) {
    em::forward(V.data + b * PNJD, act.data + b * PN, betaU.data, betaA.data, d, t, e.s, poses.data + b * PJ * d.D, actOut.data + b * PJ, routing.data + b * PN * d.J);
  });
}

// emRoutingGrad(votes, activations, betaU, betaA, dPoses, dAct, dVotes,
// dActivations, dBetaU, dBetaA, B, P, N, J, D, lambdas, ...): the gradients
// of the forward outputs poses and act (the routing output has none).
void emRoutingGrad(Args& a) {
  EmArgs e = readEm(a, 10);
  const em::Dims& d = e.d;
  const int64_t PN = e.PN, PNJD = e.PNJD, PJ = e.PJ;
  const View<float>&V = e.V, &act = e.act, &betaU = e.betaU, &betaA = e.betaA;
  View<float> dPoses = a.f32(4, "dPoses", e.B * PJ * d.D);
  View<float> dAct = a.f32(5, "dAct", e.B * PJ);
  View<float> dV = a.f32(6, "dVotes", e.B * PNJD);
  View<float> da = a.f32(7, "dActivations", e.B * PN);
  View<float> dBetaU = a.f32(8, "dBetaU", d.J);
  View<float> dBetaA = a.f32(9, "dBetaA", d.J);
  requireOutputsApart({&dV, &da, &dBetaU, &dBetaA}, {&V, &act, &betaU, &betaA, &dPoses, &dAct}, "emRoutingGrad");
  std::fill(dBetaU.data, dBetaU.data + d.J, 0.f);
  std::fill(dBetaA.data, dBetaA.data + d.J, 0.f);
  if (e.B == 0) return;
  const em::Tables t = em::makeTables(d.P, d.N, e.geometry.empty() ? nullptr : e.geometry.data());
  // One double accumulator per image for the shared betas, summed in image
  // order afterwards so that the result does not depend on the thread count.
  std::vector<double> gU(e.B * d.J, 0.0), gA(e.B * d.J, 0.0);
  parallelTasks(e.B, [&](int64_t b, int) {
    float* dVb = dV.data + b * PNJD;
    float* dab = da.data + b * PN;
    std::fill(dVb, dVb + PNJD, 0.f);
    std::fill(dab, dab + PN, 0.f);
    em::backward(V.data + b * PNJD, act.data + b * PN, betaU.data, betaA.data, dPoses.data + b * PJ * d.D, dAct.data + b * PJ, d, t, e.s, dVb, dab, &gU[b * d.J], &gA[b * d.J]);
  });
  for (int64_t j = 0; j < d.J; j++) {
    double u = 0, s = 0;
    for (int64_t b = 0; b < e.B; b++) {
      u += gU[b * d.J + j];
      s += gA[b * d.J + j];
    }
    dBetaU.data[j] = static_cast<float>(u);
    dBetaA.data[j] = static_cast<float>(s);
  }
}

}  // namespace

void addEmRoutingExports(std::vector<Export>& out) {
  out.push_back({"emRouting", entry<emRouting>});
  out.push_back({"emRoutingGrad", entry<emRoutingGrad>});
}

}  // namespace capsnet
