/**
 * Kernels the tfjs wasm backend lacks. Each missing kernel that the cpu
 * backend has is registered for wasm by running the cpu kernel on a copy of
 * the inputs (correct but slow); Conv2DBackpropFilter, which dominates
 * training, gets a dedicated implementation on wasm's own matmul.
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
    if (tf.getKernel(k.kernelName, 'wasm') != null) continue;
    if (k.kernelName === 'Conv2DBackpropFilter') continue;
    tf.registerKernel({ kernelName: k.kernelName, backendName: 'wasm', kernelFunc: viaCpu(k.kernelName) as tf.KernelFunc });
  }
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2dBackpropFilterWasm as unknown as tf.KernelFunc });
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

/**
 * dW[kh, kw, ci, co] = sum over (b, oy, ox) of x[b, oy*s + kh*d, ox*s + kw*d, ci] * dy[b, oy, ox, co]
 *
 * For each kernel position one strided slice of the (padded) input, laid out
 * as [N, Ci], is multiplied by dy as [N, Co] with wasm's BatchMatMul.
 */
function conv2dBackpropFilterWasm({ inputs, attrs, backend }: { inputs: { x: TensorInfo; dy: TensorInfo }; attrs: tf.NamedAttrMap; backend: tf.KernelBackend }): TensorInfo {
  const { x, dy } = inputs;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter (wasm): NCHW is not supported');
  const conv = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad as 'valid', dimRoundingMode, false, 'channelsLast');
  const run = (name: string, ins: Record<string, TensorInfo>, at: Record<string, unknown> = {}): TensorInfo =>
    tf.getKernel(name, 'wasm')!.kernelFunc({ inputs: ins as unknown as tf.NamedTensorInfoMap, attrs: at as tf.NamedAttrMap, backend }) as TensorInfo;
  const dispose = (t: TensorInfo) => backend.disposeData(t.dataId as tf.DataId);
  const { batchSize, outHeight, outWidth, inChannels, outChannels, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = conv;
  const { top, left, bottom, right } = conv.padInfo;
  const padded = top || left || bottom || right
    ? run('PadV2', { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 })
    : x;
  const n = batchSize * outHeight * outWidth;
  const dy2 = run('Reshape', { x: dy }, { shape: [1, n, outChannels] });
  const parts: TensorInfo[] = [];
  for (let kh = 0; kh < filterHeight; kh++) {
    for (let kw = 0; kw < filterWidth; kw++) {
      const y0 = kh * dilationHeight;
      const x0 = kw * dilationWidth;
      const slice = run('StridedSlice', { x: padded }, {
        begin: [0, y0, x0, 0],
        end: [batchSize, y0 + (outHeight - 1) * strideHeight + 1, x0 + (outWidth - 1) * strideWidth + 1, inChannels],
        strides: [1, strideHeight, strideWidth, 1],
        beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0,
      });
      const cols = run('Reshape', { x: slice }, { shape: [1, n, inChannels] });
      const prod = run('BatchMatMul', { a: cols, b: dy2 }, { transposeA: true, transposeB: false }); // [1, Ci, Co]
      parts.push(prod);
      dispose(slice);
      dispose(cols);
    }
  }
  // Concat takes its inputs as an array.
  const stacked = run('Concat', parts as unknown as Record<string, TensorInfo>, { axis: 0 });
  const out = run('Reshape', { x: stacked }, { shape: filterShape });
  for (const p of parts) dispose(p);
  dispose(stacked);
  dispose(dy2);
  if (padded !== x) dispose(padded);
  return out;
}
