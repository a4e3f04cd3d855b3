// EM routing (Procedure 1 of "Matrix capsules with EM routing") for one
// image, forward and backward, as plain loops: the fused kernels
// CapsEmRouting and CapsEmRoutingGrad. They compute exactly what
// emRoutingReference in src/capsules/emRouting.ts computes (same variance
// floor, mean epsilon, cost scale, bounded logit and log-space E-step with
// each child normalised over every parent that receives it), in a few passes
// over the votes instead of a chain of full-size tensors.
//
// Layout of one image: votes V[p][n][j][h] (P parent positions, N child slots
// per position, J parent types, D pose entries), slot activations a[p][n],
// outputs mu[p][j][h], act[p][j], R[p][n][j].
//
// The backward pass recomputes the forward pass, keeping the routing weights
// of every iteration and the per-parent statistics (small next to V), then
// walks the iterations in reverse. Derivation, per parent, with r_n = R_n a_n,
// S = sum r, w = r / (S + eps), W = sum w, mu = sum w V, v = sum w (V - mu)^2
// + floor, L = sum_h log(v) / 2, cost = (L + D beta_u) S c,
// z = lambda (beta_a - cost), zb = Z tanh(z / Z), act = sigmoid(zb),
// logA = log sigmoid(zb):
//   gzb  = gact act (1 - act) + glogA (1 - act)
//   gz   = gzb (1 - (zb / Z)^2);  gbeta_a += lambda gz;  gcost = -lambda gz
//   gL  += gcost S c;  gbeta_u += gcost S c D;  gS = gcost (L + D beta_u) c
//   gv_h += gL / (2 v_h);  gmu_h += -2 gv_h mu_h (1 - W)
//   gw_n = sum_h gv_h (V_nh - mu_h)^2 + gmu_h V_nh
//   gV_nh += 2 gv_h w_n (V_nh - mu_h) + gmu_h w_n
//   gS  += -sum_n gw_n w_n / (S + eps);  gr_n = gw_n / (S + eps) + gS
//   gR_n = gr_n a_n;  ga_n += gr_n R_n
// and for the E-step l = logA - L - sum_h (V - mu)^2 / (2 v), R = softmax of
// l over the child's parents: gl = R (gR - sum_{child's parents} R gR), then
//   glogA += sum_n gl;  gL -= sum_n gl;  gV_nh -= gl (V_nh - mu_h) / v_h
//   gmu_h += sum_n gl (V_nh - mu_h) / v_h;  gv_h += sum_n gl (V_nh - mu_h)^2 / (2 v_h^2).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace capsnet {
namespace em {

struct Settings {
  int iterations = 3;
  std::vector<double> lambdas;
  double varianceFloor = 1e-6;
  double costScale = 1;
  double logitBound = 15;
  double meanEps = 1e-8;
};

// Which child each slot holds, and the slots of each child (see
// geometryTables in emRouting.ts). Without geometry every slot is its own
// child: childOf is the identity and each child has one slot.
struct Tables {
  int64_t P = 0, N = 0;
  bool conv = false;
  std::vector<int32_t> slotChild;   // [P*N]
  std::vector<int32_t> childStart;  // [C+1], offsets into childSlots
  std::vector<int32_t> childSlots;  // slots, grouped by child
  std::vector<int32_t> counts;      // parent positions per slot's child, [P*N]
};

// geometry: inHeight, inWidth, inTypes, kernel, stride, outHeight, outWidth.
inline Tables makeTables(int64_t P, int64_t N, const int64_t* g /* 7 values or null */) {
  Tables t;
  t.P = P;
  t.N = N;
  t.slotChild.resize(P * N);
  t.counts.assign(P * N, 1);
  if (!g) {
    for (int64_t s = 0; s < P * N; s++) t.slotChild[s] = static_cast<int32_t>(s);
    return t;
  }
  t.conv = true;
  const int64_t inW = g[1], inT = g[2], K = g[3], S = g[4], outW = g[6];
  const int64_t C = g[0] * inW * inT;
  std::vector<int32_t> childCount(C, 0);
  for (int64_t p = 0; p < P; p++) {
    const int64_t oy = p / outW, ox = p % outW;
    for (int64_t n = 0; n < N; n++) {
      const int64_t ti = n % inT, k = n / inT, ky = k / K, kx = k % K;
      const int64_t c = ((oy * S + ky) * inW + ox * S + kx) * inT + ti;
      t.slotChild[p * N + n] = static_cast<int32_t>(c);
      childCount[c]++;
    }
  }
  t.childStart.assign(C + 1, 0);
  for (int64_t c = 0; c < C; c++) t.childStart[c + 1] = t.childStart[c] + childCount[c];
  t.childSlots.resize(P * N);
  std::vector<int32_t> fill(t.childStart.begin(), t.childStart.end() - 1);
  for (int64_t s = 0; s < P * N; s++) t.childSlots[fill[t.slotChild[s]]++] = static_cast<int32_t>(s);
  for (int64_t s = 0; s < P * N; s++) t.counts[s] = childCount[t.slotChild[s]];
  return t;
}

// Per-parent statistics of one M-step.
struct MStats {
  std::vector<double> mu, var;           // [P*J*D]
  std::vector<double> S, L, zb, act;     // [P*J]
};

inline double sigmoid(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }
inline double logSigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

struct Dims {
  int64_t P, N, J, D;
};

// One M-step for every parent of the image. Each parent position streams
// its votes once per pass in memory order (slot, type, entry), with the J x D
// accumulators of that position in cache; inner loops run over the D
// entries in float so that they vectorise.
inline void mStep(const float* V, const float* a, const float* R, const float* betaU, const float* betaA, const Dims& d, const Settings& s, double lambda, MStats& m) {
  const int64_t P = d.P, N = d.N, J = d.J, D = d.D;
  std::vector<float> acc(J * D), mu(J * D), r(J);
  std::vector<double> S(J);
  for (int64_t p = 0; p < P; p++) {
    std::fill(S.begin(), S.end(), 0.0);
    for (int64_t n = 0; n < N; n++)
      for (int64_t j = 0; j < J; j++) S[j] += static_cast<double>(R[(p * N + n) * J + j]) * a[p * N + n];
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t n = 0; n < N; n++) {
      const float an = a[p * N + n];
      if (an == 0) continue;
      const float* Rn = R + (p * N + n) * J;
      const float* Vn = V + (p * N + n) * J * D;
      for (int64_t j = 0; j < J; j++) {
        const float rr = Rn[j] * an;
        float* aj = &acc[j * D];
        const float* vj = Vn + j * D;
        for (int64_t h = 0; h < D; h++) aj[h] += rr * vj[h];
      }
    }
    for (int64_t j = 0; j < J; j++) {
      const double inv = 1 / (S[j] + s.meanEps);
      for (int64_t h = 0; h < D; h++) {
        m.mu[(p * J + j) * D + h] = acc[j * D + h] * inv;
        mu[j * D + h] = static_cast<float>(m.mu[(p * J + j) * D + h]);
      }
    }
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t n = 0; n < N; n++) {
      const float an = a[p * N + n];
      if (an == 0) continue;
      const float* Rn = R + (p * N + n) * J;
      const float* Vn = V + (p * N + n) * J * D;
      for (int64_t j = 0; j < J; j++) {
        const float rr = Rn[j] * an;
        float* aj = &acc[j * D];
        const float* vj = Vn + j * D;
        const float* mj = &mu[j * D];
        for (int64_t h = 0; h < D; h++) {
          const float dv = vj[h] - mj[h];
          aj[h] += rr * dv * dv;
        }
      }
    }
    for (int64_t j = 0; j < J; j++) {
      const int64_t pj = p * J + j;
      const double inv = 1 / (S[j] + s.meanEps);
      double L = 0;
      for (int64_t h = 0; h < D; h++) {
        const double v = acc[j * D + h] * inv + s.varianceFloor;
        m.var[pj * D + h] = v;
        L += 0.5 * std::log(v);
      }
      const double cost = (L + D * static_cast<double>(betaU[j])) * S[j] * s.costScale;
      const double z = lambda * (betaA[j] - cost);
      const double zb = s.logitBound * std::tanh(z / s.logitBound);
      m.S[pj] = S[j];
      m.L[pj] = L;
      m.zb[pj] = zb;
      m.act[pj] = sigmoid(zb);
    }
  }
}

// E-step log terms l[p][n][j] and their normalisation into Rnext.
inline void eStep(const float* V, const Dims& d, const Tables& t, const MStats& m, std::vector<double>& l, float* Rnext) {
  const int64_t P = d.P, N = d.N, J = d.J, D = d.D;
  std::vector<float> mu(J * D), halfInv(J * D);
  std::vector<double> base(J);
  for (int64_t p = 0; p < P; p++) {
    for (int64_t j = 0; j < J; j++) {
      base[j] = logSigmoid(m.zb[p * J + j]) - m.L[p * J + j];
      for (int64_t h = 0; h < D; h++) {
        mu[j * D + h] = static_cast<float>(m.mu[(p * J + j) * D + h]);
        halfInv[j * D + h] = static_cast<float>(0.5 / m.var[(p * J + j) * D + h]);
      }
    }
    for (int64_t n = 0; n < N; n++) {
      const float* Vn = V + (p * N + n) * J * D;
      for (int64_t j = 0; j < J; j++) {
        const float* vj = Vn + j * D;
        const float* mj = &mu[j * D];
        const float* hj = &halfInv[j * D];
        float q = 0;
        for (int64_t h = 0; h < D; h++) {
          const float dv = vj[h] - mj[h];
          q += dv * dv * hj[h];
        }
        l[(p * N + n) * J + j] = base[j] - q;
      }
    }
  }
  auto normalise = [&](const int32_t* slots, int64_t count) {
    double mx = -INFINITY;
    for (int64_t k = 0; k < count; k++)
      for (int64_t j = 0; j < J; j++) mx = std::max(mx, l[slots[k] * J + j]);
    double total = 0;
    for (int64_t k = 0; k < count; k++)
      for (int64_t j = 0; j < J; j++) total += std::exp(l[slots[k] * J + j] - mx);
    for (int64_t k = 0; k < count; k++)
      for (int64_t j = 0; j < J; j++) Rnext[slots[k] * J + j] = static_cast<float>(std::exp(l[slots[k] * J + j] - mx) / total);
  };
  if (!t.conv) {
    for (int64_t s = 0; s < P * N; s++) {
      const int32_t slot = static_cast<int32_t>(s);
      normalise(&slot, 1);
    }
  } else {
    const int64_t C = static_cast<int64_t>(t.childStart.size()) - 1;
    for (int64_t c = 0; c < C; c++) {
      const int64_t b = t.childStart[c], e = t.childStart[c + 1];
      if (e > b) normalise(&t.childSlots[b], e - b);
    }
  }
}

inline void initialRouting(const Dims& d, const Tables& t, float* R) {
  for (int64_t s = 0; s < d.P * d.N; s++)
    for (int64_t j = 0; j < d.J; j++) R[s * d.J + j] = static_cast<float>(1.0 / (static_cast<double>(t.counts[s]) * d.J));
}

inline MStats newStats(const Dims& d) {
  MStats m;
  m.mu.resize(d.P * d.J * d.D);
  m.var.resize(d.P * d.J * d.D);
  m.S.resize(d.P * d.J);
  m.L.resize(d.P * d.J);
  m.zb.resize(d.P * d.J);
  m.act.resize(d.P * d.J);
  return m;
}

// Forward pass of one image. Rs (if not null) receives the routing weights
// used by each iteration's M-step ([iterations][P*N*J]) and stats the M-step
// statistics of each iteration.
inline void forward(const float* V, const float* a, const float* betaU, const float* betaA, const Dims& d, const Tables& t, const Settings& s, float* muOut, float* actOut, float* Rout,
                    std::vector<float>* Rs = nullptr, std::vector<MStats>* stats = nullptr) {
  const int64_t PNJ = d.P * d.N * d.J;
  std::vector<float> Rlocal;
  std::vector<float>& R = Rs ? *Rs : Rlocal;
  R.resize(Rs ? PNJ * s.iterations : PNJ * 2);
  std::vector<MStats> localStats;
  std::vector<MStats>& st = stats ? *stats : localStats;
  st.assign(stats ? s.iterations : 1, newStats(d));
  std::vector<double> l(PNJ);
  initialRouting(d, t, R.data());
  for (int it = 0; it < s.iterations; it++) {
    float* Rcur = Rs ? R.data() + it * PNJ : R.data() + (it % 2) * PNJ;
    MStats& m = stats ? st[it] : st[0];
    mStep(V, a, Rcur, betaU, betaA, d, s, s.lambdas[it], m);
    if (it == s.iterations - 1) {
      for (int64_t i = 0; i < d.P * d.J * d.D; i++) muOut[i] = static_cast<float>(m.mu[i]);
      for (int64_t i = 0; i < d.P * d.J; i++) actOut[i] = static_cast<float>(m.act[i]);
      if (Rout) std::copy(Rcur, Rcur + PNJ, Rout);
      break;
    }
    float* Rnext = Rs ? R.data() + (it + 1) * PNJ : R.data() + ((it + 1) % 2) * PNJ;
    eStep(V, d, t, m, l, Rnext);
  }
}

// Backward pass of one image: dV (+=), da (+=), dBetaU and dBetaA (+=, in
// double) from the gradients dMu [P*J*D] and dAct [P*J] of the outputs.
inline void backward(const float* V, const float* a, const float* betaU, const float* betaA, const float* dMu, const float* dAct, const Dims& d, const Tables& t, const Settings& s, float* dV, float* da,
                     double* dBetaU, double* dBetaA) {
  const int64_t P = d.P, N = d.N, J = d.J, D = d.D, PNJ = P * N * J;
  std::vector<float> Rs;
  std::vector<MStats> stats;
  std::vector<float> muOut(P * J * D), actOut(P * J);
  forward(V, a, betaU, betaA, d, t, s, muOut.data(), actOut.data(), nullptr, &Rs, &stats);
  // Gradients reaching each iteration's M-step outputs.
  std::vector<double> gMu(P * J * D), gVar(P * J * D, 0.0), gL(P * J, 0.0), gLogA(P * J, 0.0);
  for (int64_t i = 0; i < P * J * D; i++) gMu[i] = dMu[i];
  std::vector<double> gR(PNJ), gw(N);
  const double Z = s.logitBound;
  for (int it = s.iterations - 1; it >= 0; it--) {
    const MStats& m = stats[it];
    const float* R = Rs.data() + it * PNJ;
    const double lambda = s.lambdas[it];
    const bool last = it == s.iterations - 1;
    // M-step backward, one parent position at a time (votes streamed in
    // memory order, as in the forward pass).
    std::vector<float> gvF(J * D), gmuF(J * D), muF(J * D), twoGvW(J * D);
    std::vector<double> gS(J), inv(J), gwDotW(J);
    for (int64_t p = 0; p < P; p++) {
      for (int64_t j = 0; j < J; j++) {
        const int64_t pj = p * J + j;
        const double act = m.act[pj], zb = m.zb[pj], S = m.S[pj], L = m.L[pj];
        const double gzb = (last ? dAct[pj] * act * (1 - act) : 0.0) + gLogA[pj] * (1 - act);
        const double gz = gzb * (1 - (zb / Z) * (zb / Z));
        dBetaA[j] += lambda * gz;
        const double gcost = -lambda * gz;
        const double gLtot = gL[pj] + gcost * S * s.costScale;
        dBetaU[j] += gcost * S * s.costScale * D;
        gS[j] = gcost * (L + D * static_cast<double>(betaU[j])) * s.costScale;
        inv[j] = 1 / (S + s.meanEps);
        gwDotW[j] = 0;
        const double W = S * inv[j];
        for (int64_t h = 0; h < D; h++) {
          double gv = gVar[pj * D + h] + gLtot / (2 * m.var[pj * D + h]);
          double gmu = gMu[pj * D + h] - 2 * gv * m.mu[pj * D + h] * (1 - W);
          gvF[j * D + h] = static_cast<float>(gv);
          gmuF[j * D + h] = static_cast<float>(gmu);
          muF[j * D + h] = static_cast<float>(m.mu[pj * D + h]);
        }
      }
      for (int64_t n = 0; n < N; n++) {
        const float an = a[p * N + n];
        const float* Rn = R + (p * N + n) * J;
        const float* Vn = V + (p * N + n) * J * D;
        float* gVn = dV + (p * N + n) * J * D;
        for (int64_t j = 0; j < J; j++) {
          const float w = static_cast<float>(Rn[j] * an * inv[j]);
          const float* vj = Vn + j * D;
          const float* mj = &muF[j * D];
          const float* gvj = &gvF[j * D];
          const float* gmj = &gmuF[j * D];
          float* gVj = gVn + j * D;
          float g = 0;
          for (int64_t h = 0; h < D; h++) {
            const float dv = vj[h] - mj[h];
            g += gvj[h] * dv * dv + gmj[h] * vj[h];
            gVj[h] += 2 * gvj[h] * w * dv + gmj[h] * w;
          }
          gR[(p * N + n) * J + j] = g;  // gw for now
          gwDotW[j] += static_cast<double>(g) * w;
        }
      }
      for (int64_t j = 0; j < J; j++) gS[j] -= gwDotW[j] * inv[j];
      for (int64_t n = 0; n < N; n++) {
        const float an = a[p * N + n];
        double gan = 0;
        for (int64_t j = 0; j < J; j++) {
          const int64_t k = (p * N + n) * J + j;
          const double gr = gR[k] * inv[j] + gS[j];
          gR[k] = gr * an;
          gan += gr * R[k];
        }
        da[p * N + n] += static_cast<float>(gan);
      }
    }
    if (it == 0) break;
    // E-step backward: R (used here) = softmax over the child's parents of
    // the log terms of iteration it - 1.
    const MStats& prev = stats[it - 1];
    std::vector<double> gl(PNJ);
    auto softmaxBack = [&](const int32_t* slots, int64_t count) {
      double dot = 0;
      for (int64_t k = 0; k < count; k++)
        for (int64_t j = 0; j < J; j++) dot += static_cast<double>(R[slots[k] * J + j]) * gR[slots[k] * J + j];
      for (int64_t k = 0; k < count; k++)
        for (int64_t j = 0; j < J; j++) gl[slots[k] * J + j] = R[slots[k] * J + j] * (gR[slots[k] * J + j] - dot);
    };
    if (!t.conv) {
      for (int64_t sl = 0; sl < P * N; sl++) {
        const int32_t slot = static_cast<int32_t>(sl);
        softmaxBack(&slot, 1);
      }
    } else {
      const int64_t C = static_cast<int64_t>(t.childStart.size()) - 1;
      for (int64_t c = 0; c < C; c++) {
        const int64_t b = t.childStart[c], e = t.childStart[c + 1];
        if (e > b) softmaxBack(&t.childSlots[b], e - b);
      }
    }
    std::fill(gMu.begin(), gMu.end(), 0.0);
    std::fill(gVar.begin(), gVar.end(), 0.0);
    std::fill(gL.begin(), gL.end(), 0.0);
    std::fill(gLogA.begin(), gLogA.end(), 0.0);
    std::vector<float> accMu(J * D), accVar(J * D), invVar(J * D), halfInv2(J * D);
    for (int64_t p = 0; p < P; p++) {
      for (int64_t j = 0; j < J; j++) {
        for (int64_t h = 0; h < D; h++) {
          const double v = prev.var[(p * J + j) * D + h];
          muF[j * D + h] = static_cast<float>(prev.mu[(p * J + j) * D + h]);
          invVar[j * D + h] = static_cast<float>(1 / v);
          halfInv2[j * D + h] = static_cast<float>(0.5 / (v * v));
        }
      }
      std::fill(accMu.begin(), accMu.end(), 0.f);
      std::fill(accVar.begin(), accVar.end(), 0.f);
      for (int64_t n = 0; n < N; n++) {
        const float* Vn = V + (p * N + n) * J * D;
        float* gVn = dV + (p * N + n) * J * D;
        for (int64_t j = 0; j < J; j++) {
          const float g = static_cast<float>(gl[(p * N + n) * J + j]);
          if (g == 0) continue;
          gLogA[p * J + j] += g;
          gL[p * J + j] -= g;
          const float* vj = Vn + j * D;
          const float* mj = &muF[j * D];
          const float* ij = &invVar[j * D];
          const float* i2 = &halfInv2[j * D];
          float* gVj = gVn + j * D;
          float* am = &accMu[j * D];
          float* av = &accVar[j * D];
          for (int64_t h = 0; h < D; h++) {
            const float dv = vj[h] - mj[h];
            const float q = g * dv * ij[h];
            gVj[h] -= q;
            am[h] += q;
            av[h] += g * dv * dv * i2[h];
          }
        }
      }
      for (int64_t i = 0; i < J * D; i++) {
        gMu[p * J * D + i] += accMu[i];
        gVar[p * J * D + i] += accVar[i];
      }
    }
  }
}

}  // namespace em
}  // namespace capsnet
