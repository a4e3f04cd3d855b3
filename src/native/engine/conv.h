// Convolution geometry shared by the im2col path (conv.cc), the spectral
// path (spectral.cc) and the depthwise convolutions (depthwiseConv.cc).
#pragma once

#include <cstdint>

#include "args.h"
#include "biasActivation.h"

namespace capsnet {

// NHWC input [B, H, W, Ci], HWIO filter [KH, KW, Ci, Co], output
// [B, OH, OW, Co]; strides sh, sw; dilations dh, dw; padding at the top and
// left (the bottom and right padding follow from OH and OW).
struct ConvGeometry {
  int64_t B, H, W, Ci, OH, OW, Co, KH, KW, sh, sw, dh, dw, padTop, padLeft;
  int64_t M() const { return B * OH * OW; }
  int64_t P() const { return KH * KW; }
  int64_t K() const { return KH * KW * Ci; }
};

// The geometry settings every convolution entry takes, named as tfjs's
// Conv2DInfo names them (padTop and padLeft are its padInfo.top and .left).
#define CAPSNET_CONV_GEOMETRY                                                                                     \
  "batchSize", "inHeight", "inWidth", "inChannels", "outHeight", "outWidth", "outChannels", "filterHeight", \
      "filterWidth", "strideHeight", "strideWidth", "dilationHeight", "dilationWidth", "padTop", "padLeft"

// Reads the CAPSNET_CONV_GEOMETRY settings of a call (conv.cc), checking
// that its sizes fit the GEMM's 32-bit dimensions.
ConvGeometry readConvGeometry(Args& a);

// When the spectral path computes a convolution: never, where it takes
// markedly less time than im2col + GEMM (Auto, the default), or wherever
// the geometry allows (Always, for tests that compare the paths).
enum class SpectralMode { Never, Auto, Always };

bool spectralPays(const ConvGeometry& g);
void setSpectralMode(SpectralMode mode);
// At most this many spectrum columns per block (0: as memory allows; tests).
void setSpectralColumns(int64_t columns);

// The three convolution kernels on the spectral path (see spectral.cc);
// same contracts as their im2col counterparts in conv.cc.
void spectralConv2d(const ConvGeometry& g, const float* x, const float* filter, float* out, const float* bias,
                    int64_t biasLen, Activation activation, float alpha);
void spectralBackpropInput(const ConvGeometry& g, const float* dy, const float* filter, float* dx);
void spectralBackpropFilter(const ConvGeometry& g, const float* x, const float* dy, float* dw);

// When 3x3 stride-1 convolutions take Winograd's F(4x4, 3x3)
// (winograd.cc): never, where it pays (Auto, the default), or wherever the
// geometry allows (Always, for tests that compare the paths).
enum class WinogradMode { Never, Auto, Always };

bool winogradPays(const ConvGeometry& g);
void setWinogradMode(WinogradMode mode);

// The three convolution kernels by Winograd's minimal filtering; same
// contracts as their im2col counterparts in conv.cc.
void winogradConv2d(const ConvGeometry& g, const float* x, const float* filter, float* out, const float* bias,
                    int64_t biasLen, Activation activation, float alpha);
void winogradBackpropInput(const ConvGeometry& g, const float* dy, const float* filter, float* dx);
void winogradBackpropFilter(const ConvGeometry& g, const float* x, const float* dy, float* dw);

}  // namespace capsnet
