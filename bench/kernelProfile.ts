/**
 * Per-kernel timing of the active tfjs backend: every registered kernel is
 * wrapped with a timer, so that a training step can be broken down by kernel
 * (which ones dominate, and which still run in JS).
 */
import * as tf from '@tensorflow/tfjs';

export interface KernelTiming {
  kernel: string;
  calls: number;
  ms: number;
  /** CPU time of the process (every thread) spent in the kernel: less sensitive than ms to other work on the machine. */
  cpuMs: number;
  /** Largest output, in elements. */
  maxOutput: number;
}

const timings = new Map<string, KernelTiming>();
let installedOn: string | null = null;

function outputSize(out: unknown): number {
  const list = Array.isArray(out) ? out : [out];
  let m = 0;
  for (const t of list as { shape?: number[] }[]) if (t?.shape) m = Math.max(m, tf.util.sizeFromShape(t.shape));
  return m;
}

/** Wrap every kernel of `backend` with a timer (once). */
export function installKernelTimers(backend: string): void {
  if (installedOn === backend) return;
  if (installedOn) throw new Error(`kernel timers are already installed on ${installedOn}`);
  installedOn = backend;
  for (const config of tf.getKernelsForBackend(backend)) {
    const inner = config.kernelFunc;
    const name = config.kernelName;
    tf.unregisterKernel(name, backend);
    tf.registerKernel({
      ...config,
      kernelFunc: ((args: Parameters<tf.KernelFunc>[0]) => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const out = inner(args);
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(c0);
        const entry = timings.get(name) ?? { kernel: name, calls: 0, ms: 0, cpuMs: 0, maxOutput: 0 };
        entry.calls++;
        entry.ms += ms;
        entry.cpuMs += (cpu.user + cpu.system) / 1000;
        entry.maxOutput = Math.max(entry.maxOutput, outputSize(out));
        timings.set(name, entry);
        return out;
      }) as tf.KernelFunc,
    });
  }
}

export function resetKernelTimings(): void {
  timings.clear();
}

/** Timings since the last reset, slowest first. */
export function kernelTimings(): KernelTiming[] {
  return [...timings.values()].sort((a, b) => b.ms - a.ms);
}
