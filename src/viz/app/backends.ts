/**
 * Which tfjs backend the worker runs on: WebGPU, then WebGL, then wasm,
 * then plain JavaScript, the first that works. A GPU API that a software
 * rasterizer draws (SwiftShader, llvmpipe: browsers without a usable GPU)
 * goes after wasm, which is several times faster on the CPU. The page's
 * `?backend=` tries only the one it names.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-webgpu';
import { registerWasmExtraKernels } from '../../backend/wasmKernels.js';
import { BACKEND_ORDER, type BackendChoice, type BackendName } from './protocol.js';

const SOFTWARE = /swiftshader|llvmpipe|softpipe|software|basic render driver|fallback/i;

/** The WebGL renderer's name when a software rasterizer draws it, else null. */
function softwareWebGL(): string | null {
  try {
    const canvas = new OffscreenCanvas(1, 1);
    const gl = (canvas.getContext('webgl2') ?? canvas.getContext('webgl')) as WebGLRenderingContext | null;
    if (!gl) return null;
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return SOFTWARE.test(renderer) ? renderer : null;
  } catch {
    return null;
  }
}

interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

/**
 * The browser's WebGPU adapter: null without one (no WebGPU, or no usable
 * device), else its description when it is a software (fallback) adapter.
 */
async function webGPUAdapter(): Promise<{ software: string | null } | null> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return null;
  try {
    const adapter = (await gpu.requestAdapter()) as (GPUAdapter & { info?: AdapterInfoLike; isFallbackAdapter?: boolean }) | null;
    if (!adapter) return null;
    const info = adapter.info ?? {};
    const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
    return { software: adapter.isFallbackAdapter || info.isFallbackAdapter || SOFTWARE.test(text) ? text || 'a fallback adapter' : null };
  } catch {
    return null;
  }
}

/** One test op: a backend can register and still fail on first use (a lost context, a missing adapter). */
async function works(): Promise<boolean> {
  const t = tf.add(tf.scalar(1), tf.scalar(2));
  const v = (await t.data())[0];
  t.dispose();
  return v === 3;
}

/**
 * Activate the first backend that works; `forced` (the page's ?backend=)
 * tries only that one. `wasmUrl` is where tfjs's .wasm files are.
 */
export async function chooseBackend(forced: string | null, wasmUrl: string): Promise<BackendChoice> {
  setWasmPaths(wasmUrl);
  // Training needs the convolution gradients that tfjs's wasm backend lacks.
  registerWasmExtraKernels();
  const adapter = await webGPUAdapter();
  const [softGpu, softGl] = [adapter?.software ?? null, softwareWebGL()];
  // Without an adapter tfjs's WebGPU backend cannot start: not tried unless asked for.
  let order: BackendName[] = BACKEND_ORDER.filter((b) => b !== 'webgpu' || adapter);
  let note: string | undefined;
  if (forced) {
    if (!(BACKEND_ORDER as readonly string[]).includes(forced)) throw new Error(`unknown backend '${forced}' in the address: expected ${BACKEND_ORDER.join(', ')}`);
    order = [forced as BackendName];
    note = 'chosen with ?backend=';
  } else if (softGpu || softGl) {
    // Software-drawn GPU APIs go after wasm, in their usual order.
    const soft = new Set<BackendName>([...(softGpu ? ['webgpu' as const] : []), ...(softGl ? ['webgl' as const] : [])]);
    order = [...order.filter((b) => !soft.has(b) && b !== 'cpu'), ...order.filter((b) => soft.has(b)), 'cpu'];
    note = `${[...soft].map((b) => (b === 'webgpu' ? 'WebGPU' : 'WebGL')).join(' and ')} ${soft.size > 1 ? 'are' : 'is'} software-rendered here, and wasm is faster`;
  }
  const tried: string[] = [];
  for (const name of order) {
    try {
      if ((await tf.setBackend(name)) && (await works())) {
        const why = note ?? (tried.length ? tried.join('; ') : undefined);
        const renderer = name === 'webgpu' ? softGpu : name === 'webgl' ? softGl : null;
        return { backend: name, ...(why ? { note: why } : {}), ...(renderer ? { softwareRenderer: renderer } : {}) };
      }
      tried.push(`${name} unavailable`);
    } catch (e) {
      tried.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no tfjs backend works in this browser (${tried.join('; ')})`);
}
