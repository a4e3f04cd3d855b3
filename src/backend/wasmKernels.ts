/**
 * Kernels the tfjs wasm backend lacks. Each missing kernel that the cpu
 * backend has is registered for wasm by running the cpu kernel on a copy of
 * the inputs (correct but slow); the convolution gradients, which dominate
 * training, get implementations on wasm's own matmul.
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

let registered = false;

type TensorInfo = tf.TensorInfo;
type KernelParams = Parameters<tf.KernelFunc>[0];

/** The wasm backend a kernel runs on (the kernels here are registered for wasm only). */
function wasmBackend(backend: KernelParams['backend'], kernel: string): BackendWasm {
  if (!(backend instanceof BackendWasm)) throw new Error(`${kernel} (wasm): called on another backend`);
  return backend;
}

/** Input `name` of a kernel call, or an error naming it. */
function input(inputs: tf.NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const t = inputs[name];
  if (!t) throw new Error(`${kernel} (wasm): missing input ${name}`);
  return t;
}

/** The float32 heap view of a wasm tensor. */
function heapF32(backend: BackendWasm, t: TensorInfo, kernel: string): Float32Array {
  const v = backend.typedArrayFromHeap(t);
  if (!(v instanceof Float32Array)) throw new Error(`${kernel} (wasm): expects float32 tensors, got ${t.dtype}`);
  return v;
}

export function registerWasmExtraKernels(): void {
  if (registered) return;
  registered = true;
  const cpuKernels = tf.getKernelsForBackend('cpu');
  for (const k of cpuKernels) {
    if (tf.getKernel(k.kernelName, 'wasm') != null || k.kernelName === 'Conv2DBackpropFilter') continue;
    tf.registerKernel({ kernelName: k.kernelName, backendName: 'wasm', kernelFunc: viaCpu(k.kernelName) });
  }
  // Convolution gradients as im2col + one matmul (wasm has no filter
  // gradient, and its input gradient is a slow direct loop).
  tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2dBackpropFilterWasm });
  tf.registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: conv2dBackpropInputWasm });
}

let cpuBackend: MathBackendCPU | null = null;
function getCpu(): MathBackendCPU {
  if (cpuBackend) return cpuBackend;
  const b = tf.findBackend('cpu') ?? tf.engine().findBackend('cpu');
  if (!(b instanceof MathBackendCPU)) throw new Error('the wasm fallback kernels need the cpu backend');
  return (cpuBackend = b);
}

/** Run cpu kernel `name` on copies of wasm inputs and copy the outputs back. */
function viaCpu(name: string): tf.KernelFunc {
  return ({ inputs, attrs, backend: b }) => {
    const backend = wasmBackend(b, name);
    const cpu = getCpu();
    const cpuInputs: tf.NamedTensorInfoMap = {};
    for (const [key, t] of Object.entries(inputs)) {
      if (t == null) continue;
      cpuInputs[key] = cpu.makeTensorInfo(t.shape, t.dtype, backend.readSync(t.dataId));
    }
    const kernel = tf.getKernel(name, 'cpu')!;
    const out = kernel.kernelFunc({ inputs: cpuInputs, attrs, backend: cpu });
    const outs = Array.isArray(out) ? out : [out];
    const wasmOuts = outs.map((o) => {
      const vals = cpu.readSync(o.dataId);
      return wasmMakeOutput(backend, vals, o.shape, o.dtype);
    });
    for (const t of Object.values(cpuInputs)) if (t) cpu.disposeData(t.dataId, true);
    for (const o of outs) cpu.disposeData(o.dataId, true);
    return Array.isArray(out) ? wasmOuts : wasmOuts[0];
  };
}

function wasmMakeOutput(backend: BackendWasm, values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): TensorInfo {
  // The wasm backend allocates through makeOutput(shape, dtype) and we then
  // fill its typed-array view.
  const out = backend.makeOutput(shape, dtype);
  if (tf.util.sizeFromShape(shape) > 0) backend.typedArrayFromHeap(out).set(values as tf.backend_util.TypedArray);
  return out;
}

type ConvAttrs = {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number;
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
};

function convInfo(xShape: number[], filterShape: number[], attrMap: tf.NamedAttrMap | undefined, kernel: string): tf.backend_util.Conv2DInfo {
  const attrs: ConvAttrs = {
    strides: attrMap?.strides as ConvAttrs['strides'],
    pad: attrMap?.pad as ConvAttrs['pad'],
    dataFormat: attrMap?.dataFormat as ConvAttrs['dataFormat'],
    dilations: attrMap?.dilations as ConvAttrs['dilations'],
    dimRoundingMode: attrMap?.dimRoundingMode as ConvAttrs['dimRoundingMode'],
  };
  if (attrs.dataFormat === 'NCHW') throw new Error(`${kernel} (wasm): NCHW is not supported`);
  return tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number], attrs.strides, attrs.dilations ?? 1, attrs.pad as 'valid', attrs.dimRoundingMode, false, 'channelsLast');
}

function runWasm(backend: BackendWasm, name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}): TensorInfo {
  return tf.getKernel(name, 'wasm')!.kernelFunc({ inputs, attrs, backend }) as TensorInfo;
}

/**
 * im2col: rows are output positions (b, oy, ox), columns are (kh, kw, ci),
 * matching the HWIO filter layout; taps outside the input are zero.
 */
function im2col(x: Float32Array, cols: Float32Array, c: tf.backend_util.Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = c;
  const { top, left } = c.padInfo;
  const rowLen = filterHeight * filterWidth * inChannels;
  let row = 0;
  for (let b = 0; b < batchSize; b++) {
    const xb = b * inHeight * inWidth * inChannels;
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox++, row++) {
        let o = row * rowLen;
        for (let kh = 0; kh < filterHeight; kh++) {
          const iy = oy * strideHeight - top + kh * dilationHeight;
          for (let kw = 0; kw < filterWidth; kw++, o += inChannels) {
            const ix = ox * strideWidth - left + kw * dilationWidth;
            if (iy < 0 || iy >= inHeight || ix < 0 || ix >= inWidth) {
              cols.fill(0, o, o + inChannels);
            } else {
              const src = xb + (iy * inWidth + ix) * inChannels;
              cols.set(x.subarray(src, src + inChannels), o);
            }
          }
        }
      }
    }
  }
}

/** col2im: the adjoint of im2col, accumulating columns back into dx (which must start at zero). */
function col2im(cols: Float32Array, dx: Float32Array, c: tf.backend_util.Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = c;
  const { top, left } = c.padInfo;
  const rowLen = filterHeight * filterWidth * inChannels;
  let row = 0;
  for (let b = 0; b < batchSize; b++) {
    const xb = b * inHeight * inWidth * inChannels;
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox++, row++) {
        let o = row * rowLen;
        for (let kh = 0; kh < filterHeight; kh++) {
          const iy = oy * strideHeight - top + kh * dilationHeight;
          for (let kw = 0; kw < filterWidth; kw++, o += inChannels) {
            const ix = ox * strideWidth - left + kw * dilationWidth;
            if (iy < 0 || iy >= inHeight || ix < 0 || ix >= inWidth) continue;
            const dst = xb + (iy * inWidth + ix) * inChannels;
            for (let ci = 0; ci < inChannels; ci++) dx[dst + ci] += cols[o + ci];
          }
        }
      }
    }
  }
}

// wasm's matmul is about 5x slower with a transposed operand, so the small
// operands are transposed explicitly and both products run untransposed.

/** dW = (dy^T im2col(x))^T, one matmul on wasm. */
function conv2dBackpropFilterWasm({ inputs, attrs, backend: b }: KernelParams): TensorInfo {
  const backend = wasmBackend(b, 'Conv2DBackpropFilter');
  const x = input(inputs, 'x', 'Conv2DBackpropFilter');
  const dy = input(inputs, 'dy', 'Conv2DBackpropFilter');
  const filterShape = attrs?.filterShape as number[];
  const c = convInfo(x.shape, filterShape, attrs, 'Conv2DBackpropFilter');
  const n = c.batchSize * c.outHeight * c.outWidth;
  const rowLen = c.filterHeight * c.filterWidth * c.inChannels;
  const cols = backend.makeOutput([1, n, rowLen], 'float32');
  im2col(heapF32(backend, x, 'Conv2DBackpropFilter'), heapF32(backend, cols, 'Conv2DBackpropFilter'), c);
  const dy2 = runWasm(backend, 'Reshape', { x: dy }, { shape: [n, c.outChannels] });
  const dyT = runWasm(backend, 'Transpose', { x: dy2 }, { perm: [1, 0] });
  const dyT3 = runWasm(backend, 'Reshape', { x: dyT }, { shape: [1, c.outChannels, n] });
  const prod = runWasm(backend, 'BatchMatMul', { a: dyT3, b: cols }, { transposeA: false, transposeB: false }); // [1, Co, rowLen]
  const prod2 = runWasm(backend, 'Reshape', { x: prod }, { shape: [c.outChannels, rowLen] });
  const dw = runWasm(backend, 'Transpose', { x: prod2 }, { perm: [1, 0] });
  const out = runWasm(backend, 'Reshape', { x: dw }, { shape: filterShape });
  for (const t of [cols, dy2, dyT, dyT3, prod, prod2, dw]) backend.disposeData(t.dataId);
  return out;
}

/** dx = col2im(dy W^T), one matmul on wasm and a scatter-add in JS. */
function conv2dBackpropInputWasm({ inputs, attrs, backend: b }: KernelParams): TensorInfo {
  const backend = wasmBackend(b, 'Conv2DBackpropInput');
  const dy = input(inputs, 'dy', 'Conv2DBackpropInput');
  const filter = input(inputs, 'filter', 'Conv2DBackpropInput');
  const inputShape = attrs?.inputShape as number[];
  const c = convInfo(inputShape, filter.shape, attrs, 'Conv2DBackpropInput');
  const n = c.batchSize * c.outHeight * c.outWidth;
  const rowLen = c.filterHeight * c.filterWidth * c.inChannels;
  const dy3 = runWasm(backend, 'Reshape', { x: dy }, { shape: [1, n, c.outChannels] });
  const w2 = runWasm(backend, 'Reshape', { x: filter }, { shape: [rowLen, c.outChannels] });
  const wT = runWasm(backend, 'Transpose', { x: w2 }, { perm: [1, 0] });
  const wT3 = runWasm(backend, 'Reshape', { x: wT }, { shape: [1, c.outChannels, rowLen] });
  const cols = runWasm(backend, 'BatchMatMul', { a: dy3, b: wT3 }, { transposeA: false, transposeB: false }); // [1, n, rowLen]
  const dx = backend.makeOutput(inputShape, 'float32');
  const dxArr = heapF32(backend, dx, 'Conv2DBackpropInput');
  dxArr.fill(0);
  col2im(heapF32(backend, cols, 'Conv2DBackpropInput'), dxArr, c);
  for (const t of [dy3, w2, wT, wT3, cols]) backend.disposeData(t.dataId);
  return dx;
}
