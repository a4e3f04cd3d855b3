// Entry points of the fused EM routing kernels (CapsEmRouting and
// CapsEmRoutingGrad): argument checks, then emRoutingCore.h once per image,
// images spread over the engine's threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "entry.h"
#include "emRoutingCore.h"
#include "parallel.h"

namespace capsnet {
namespace {

struct EmArgs {
  int64_t B = 0;
  em::Dims d{0, 0, 0, 0};
  em::Settings s;
  std::vector<int64_t> geometry;  // empty, or the 7 values of em::makeTables
  // The four inputs of both kernels, and sizes per image.
  View<float> V, act, betaU, betaA;
  int64_t PN = 0, PNJD = 0, PJ = 0;
};

// The settings both entries share: the sizes batch, positions (P parent
// positions), slots (N child slots per position), types (J parent types)
// and poseSize (D); lambdas (a Float32Array, one inverse temperature per
// iteration), varianceFloor, costScale, logitBound, meanEps; optionally the
// child geometry inHeight, inWidth, inTypes, kernel, stride, outHeight,
// outWidth (all or none); and the inputs votes, activations, betaU, betaA.
#define CAPSNET_EM_SETTINGS                                                                                        \
  "votes", "activations", "betaU", "betaA", "batch", "positions", "slots", "types", "poseSize", "lambdas",           \
      "varianceFloor", "costScale", "logitBound", "meanEps", "inHeight", "inWidth", "inTypes", "kernel", "stride", \
      "outHeight", "outWidth"

EmArgs readEm(Args& a) {
  EmArgs e;
  e.B = a.integer("batch", 0, INT32_MAX);
  e.d.P = a.integer("positions", 1, INT32_MAX);
  e.d.N = a.integer("slots", 1, INT32_MAX);
  e.d.J = a.integer("types", 1, INT32_MAX);
  e.d.D = a.integer("poseSize", 1, 4096);
  View<float> lambdas = a.f32("lambdas");
  require(lambdas.length >= 1 && lambdas.length <= 1000, "emRouting", "lambdas must hold one value per iteration (1 to 1000)");
  e.s.iterations = static_cast<int>(lambdas.length);
  e.s.lambdas.assign(lambdas.data, lambdas.data + lambdas.length);
  e.s.varianceFloor = a.number("varianceFloor");
  e.s.costScale = a.number("costScale");
  e.s.logitBound = a.number("logitBound");
  e.s.meanEps = a.number("meanEps");
  require(e.s.varianceFloor > 0 && std::isfinite(e.s.varianceFloor), "emRouting", "varianceFloor must be positive");
  require(e.s.logitBound > 0 && std::isfinite(e.s.logitBound), "emRouting", "logitBound must be positive");
  require(e.s.meanEps >= 0 && std::isfinite(e.s.meanEps) && std::isfinite(e.s.costScale), "emRouting", "meanEps and costScale must be finite");
  for (double l : e.s.lambdas) require(std::isfinite(l), "emRouting", "lambdas must be finite");
  // The order of em::makeTables; 0 marks a value that is absent.
  const char* const geometryNames[] = {"inHeight", "inWidth", "inTypes", "kernel", "stride", "outHeight", "outWidth"};
  int given = 0;
  for (const char* name : geometryNames) {
    const int64_t v = a.integer(name, 1, INT32_MAX, 0);
    if (v != 0) {
      e.geometry.push_back(v);
      given++;
    }
  }
  require(given == 0 || given == 7, "emRouting", "geometry needs all of inHeight, inWidth, inTypes, kernel, stride, outHeight, outWidth, or none");
  checkedProduct({e.B, e.d.P, e.d.N, e.d.J, e.d.D}, "emRouting votes");
  if (!e.geometry.empty()) {
    const int64_t inH = e.geometry[0], inW = e.geometry[1], inT = e.geometry[2], K = e.geometry[3], S = e.geometry[4], outH = e.geometry[5], outW = e.geometry[6];
    require(outH * outW == e.d.P, "emRouting", "geometry: outHeight x outWidth must equal positions");
    require(K * K * inT == e.d.N, "emRouting", "geometry: kernel^2 x inTypes must equal slots");
    require((outH - 1) * S + K <= inH && (outW - 1) * S + K <= inW, "emRouting", "geometry: the kernel windows leave the input");
  }
  e.PN = e.d.P * e.d.N;
  e.PNJD = e.PN * e.d.J * e.d.D;
  e.PJ = e.d.P * e.d.J;
  e.V = a.f32("votes", e.B * e.PNJD);
  e.act = a.f32("activations", e.B * e.PN);
  e.betaU = a.f32("betaU", e.d.J);
  e.betaA = a.f32("betaA", e.d.J);
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

// emRouting({ votes, activations, betaU, betaA, poses, act, routing, ...the
// settings of readEm })
CAPSNET_ENTRY(emRouting, CAPSNET_EM_SETTINGS, "poses", "act", "routing") {
  EmArgs e = readEm(a);
  const em::Dims& d = e.d;
  const int64_t PN = e.PN, PNJD = e.PNJD, PJ = e.PJ;
  const View<float>&V = e.V, &act = e.act, &betaU = e.betaU, &betaA = e.betaA;
  View<float> poses = a.f32("poses", e.B * PJ * d.D);
  View<float> actOut = a.f32("act", e.B * PJ);
  View<float> routing = a.f32("routing", e.B * PN * d.J);
  requireOutputsApart({&poses, &actOut, &routing}, {&V, &act, &betaU, &betaA}, "emRouting");
  if (e.B == 0) return;
  const em::Tables t = em::makeTables(d.P, d.N, e.geometry.empty() ? nullptr : e.geometry.data());
  parallelTasks(e.B, [&](int64_t b, int) {
    em::forward(V.data + b * PNJD, act.data + b * PN, betaU.data, betaA.data, d, t, e.s, poses.data + b * PJ * d.D, actOut.data + b * PJ, routing.data + b * PN * d.J);
  });
}

// emRoutingGrad({ votes, activations, betaU, betaA, dPoses, dAct, dVotes,
// dActivations, dBetaU, dBetaA, ...the settings of readEm }): the gradients
// of the forward outputs poses and act (the routing output has none).
CAPSNET_ENTRY(emRoutingGrad, CAPSNET_EM_SETTINGS, "dPoses", "dAct", "dVotes", "dActivations", "dBetaU", "dBetaA") {
  EmArgs e = readEm(a);
  const em::Dims& d = e.d;
  const int64_t PN = e.PN, PNJD = e.PNJD, PJ = e.PJ;
  const View<float>&V = e.V, &act = e.act, &betaU = e.betaU, &betaA = e.betaA;
  View<float> dPoses = a.f32("dPoses", e.B * PJ * d.D);
  View<float> dAct = a.f32("dAct", e.B * PJ);
  View<float> dV = a.f32("dVotes", e.B * PNJD);
  View<float> da = a.f32("dActivations", e.B * PN);
  View<float> dBetaU = a.f32("dBetaU", d.J);
  View<float> dBetaA = a.f32("dBetaA", d.J);
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


}  // namespace capsnet
