/**
 * Kernels the tfjs wasm backend lacks. Each missing kernel that the cpu
 * backend has is registered for wasm by running the cpu kernel on a copy of
 * the inputs (correct but slow); the convolution gradients, which dominate
 * training, get implementations on wasm's own matmul.
 */
import * as tf from '@tensorflow/tfjs';

let registered = false;

type TensorInfo = { dataId: object; shape: number[]; dtype: tf.DataType };
type KernelBackendLike = {
  readSync(dataId: object): tf.backend_util.BackendValues;
  makeOutput?(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
};

export function registerWasmExtraKernels(): void {
  if (registered) return;
  registered = true;
  const cpuKernels = tf.getKernelsForBackend('cpu');
  for (const k of cpuKernels) {
    if (tf.getKernel(k.kernelName, 'wasm') != null || k.kernelName === 'Conv2DBackpropFilter') continue;
    tf.registerKernel({ kernelName: k.kernelName, backendName: 'wasm', kernelFunc: viaCpu(k.kernelName) as tf.KernelFunc });
  }
  // Convolution gradients as im2col + one matmul (wasm has no filter
  // gradient, and its input gradient is a slow direct loop).
  tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2dBackpropFilterWasm as unknown as tf.KernelFunc });
  tf.registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: conv2dBackpropInputWasm as unknown as tf.KernelFunc });
}

let cpuBackend: tf.KernelBackend | null = null;
function getCpu(): tf.KernelBackend {
  return (cpuBackend ??= tf.findBackend('cpu') ?? (tf.engine().findBackend('cpu') as tf.KernelBackend));
}

/** Run cpu kernel `name` on copies of wasm inputs and copy the outputs back. */
function viaCpu(name: string) {
  return ({ inputs, attrs, backend }: { inputs: Record<string, TensorInfo>; attrs: tf.NamedAttrMap; backend: KernelBackendLike }) => {
    const cpu = getCpu() as unknown as KernelBackendLike & { makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.backend_util.BackendValues): TensorInfo };
    const cpuInputs: Record<string, TensorInfo> = {};
    for (const [key, t] of Object.entries(inputs)) {
      if (t == null) continue;
      cpuInputs[key] = cpu.makeTensorInfo(t.shape, t.dtype, backend.readSync(t.dataId));
    }
    const kernel = tf.getKernel(name, 'cpu')!;
    const out = kernel.kernelFunc({ inputs: cpuInputs as unknown as tf.NamedTensorInfoMap, attrs, backend: cpu as unknown as tf.KernelBackend });
    const outs = (Array.isArray(out) ? out : [out]) as TensorInfo[];
    const wasmOuts = outs.map((o) => {
      const vals = cpu.readSync(o.dataId);
      return wasmMakeOutput(backend, vals, o.shape, o.dtype);
    });
    for (const t of Object.values(cpuInputs)) cpu.disposeData(t.dataId, true);
    for (const o of outs) cpu.disposeData(o.dataId, true);
    return Array.isArray(out) ? wasmOuts : wasmOuts[0];
  };
}

function wasmMakeOutput(backend: KernelBackendLike, values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): TensorInfo {
  // The wasm backend allocates through makeOutput(shape, dtype) and we then
  // fill its typed-array view.
  const b = backend as unknown as { makeOutput(shape: number[], dtype: tf.DataType): TensorInfo; typedArrayFromHeap(t: TensorInfo): tf.backend_util.TypedArray };
  const out = b.makeOutput(shape, dtype);
  if (tf.util.sizeFromShape(shape) > 0) b.typedArrayFromHeap(out).set(values as tf.backend_util.TypedArray);
  return out;
}

type ConvAttrs = {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number;
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
};

type WasmBackend = tf.KernelBackend & {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
};

function convInfo(xShape: number[], filterShape: number[], attrs: ConvAttrs, kernel: string): tf.backend_util.Conv2DInfo {
  if (attrs.dataFormat === 'NCHW') throw new Error(`${kernel} (wasm): NCHW is not supported`);
  return tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number], attrs.strides, attrs.dilations ?? 1, attrs.pad as 'valid', attrs.dimRoundingMode, false, 'channelsLast');
}

function runWasm(backend: tf.KernelBackend, name: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown> = {}): TensorInfo {
  return tf.getKernel(name, 'wasm')!.kernelFunc({ inputs: inputs as unknown as tf.NamedTensorInfoMap, attrs: attrs as tf.NamedAttrMap, backend }) as TensorInfo;
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
function conv2dBackpropFilterWasm({ inputs, attrs, backend }: { inputs: { x: TensorInfo; dy: TensorInfo }; attrs: tf.NamedAttrMap; backend: WasmBackend }): TensorInfo {
  const { x, dy } = inputs;
  const filterShape = (attrs as unknown as { filterShape: number[] }).filterShape;
  const c = convInfo(x.shape, filterShape, attrs as unknown as ConvAttrs, 'Conv2DBackpropFilter');
  const n = c.batchSize * c.outHeight * c.outWidth;
  const rowLen = c.filterHeight * c.filterWidth * c.inChannels;
  const cols = backend.makeOutput([1, n, rowLen], 'float32');
  im2col(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(cols), c);
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
function conv2dBackpropInputWasm({ inputs, attrs, backend }: { inputs: { dy: TensorInfo; filter: TensorInfo }; attrs: tf.NamedAttrMap; backend: WasmBackend }): TensorInfo {
  const { dy, filter } = inputs;
  const inputShape = (attrs as unknown as { inputShape: number[] }).inputShape;
  const c = convInfo(inputShape, filter.shape, attrs as unknown as ConvAttrs, 'Conv2DBackpropInput');
  const n = c.batchSize * c.outHeight * c.outWidth;
  const rowLen = c.filterHeight * c.filterWidth * c.inChannels;
  const dy3 = runWasm(backend, 'Reshape', { x: dy }, { shape: [1, n, c.outChannels] });
  const w2 = runWasm(backend, 'Reshape', { x: filter }, { shape: [rowLen, c.outChannels] });
  const wT = runWasm(backend, 'Transpose', { x: w2 }, { perm: [1, 0] });
  const wT3 = runWasm(backend, 'Reshape', { x: wT }, { shape: [1, c.outChannels, rowLen] });
  const cols = runWasm(backend, 'BatchMatMul', { a: dy3, b: wT3 }, { transposeA: false, transposeB: false }); // [1, n, rowLen]
  const dx = backend.makeOutput(inputShape, 'float32');
  const dxArr = backend.typedArrayFromHeap(dx);
  dxArr.fill(0);
  col2im(backend.typedArrayFromHeap(cols), dxArr, c);
  for (const t of [dy3, w2, wT, wT3, cols]) backend.disposeData(t.dataId);
  return dx;
}
