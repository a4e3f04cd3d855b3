// The bias + activation epilogue that the fused matmul (_FusedMatMul) and
// convolution (FusedConv2D) kernels share, on the im2col and the spectral
// path alike.
#pragma once

#include <cstdint>

namespace capsnet {

// The activations of tfjs's fused kernels, named as tfjs names them (JS
// takes the codes from opTables(), see entry.h); prelu is not covered.
enum class Activation { Linear, Relu, Relu6, LeakyRelu, Sigmoid, Elu, Count };

// y[r, c] = act(y[r, c] + bias[c]) in place for y [rows, cols]; bias has
// cols entries, one (added everywhere), or none (biasLen 0). alpha is
// LeakyRelu's slope.
void biasActivation(float* y, int64_t rows, int64_t cols, const float* bias, int64_t biasLen, Activation activation, float alpha);

}  // namespace capsnet
