/**
 * Kernel outputs of 256 KiB and more live in engine-owned buffers
 * (memory.cc) that are freed the moment their tensor is disposed, instead of
 * whenever V8 next collects garbage. A buffer is released only while the
 * backend can vouch that no JS code holds a view of it:
 *
 *  - it was registered as the values of exactly one tensor, whole (a second
 *    tensor on the same memory, or a view of part of it, pins it);
 *  - its values were never handed out (readSync/read or a move to another
 *    backend pin it).
 *
 * A pinned buffer is left to the garbage collector like any ArrayBuffer.
 * Releasing detaches the buffer first, so even a view this bookkeeping
 * missed would read as empty, never as freed memory.
 */
import type { NativeAddon } from './boundary/addon.js';

/** Smaller outputs are ordinary ArrayBuffers: the bookkeeping would cost more than it saves. */
export const MANAGED_MIN_BYTES = 256 * 1024;

interface BufferState {
  /** Registered as a tensor's values. */
  registered: boolean;
  /** Possibly visible to JS beyond that one tensor: never released explicitly. */
  pinned: boolean;
}

let addon: NativeAddon | null = null;
const managed = new WeakMap<ArrayBufferLike, BufferState>();

export function initManagedMemory(a: NativeAddon): void {
  addon = a;
}

type Typed = Float32Array | Int32Array | Uint8Array;
type TypedCtor<T extends Typed> = { new (buffer: ArrayBuffer, byteOffset?: number, length?: number): T; new (length: number): T; BYTES_PER_ELEMENT: number };

function alloc<T extends Typed>(ctor: TypedCtor<T>, n: number): T {
  const bytes = n * ctor.BYTES_PER_ELEMENT;
  if (addon && bytes >= MANAGED_MIN_BYTES) {
    const buffer = addon.allocBuffer({ bytes });
    managed.set(buffer, { registered: false, pinned: false });
    return new ctor(buffer, 0, n);
  }
  if (n === 0) return new ctor(0);
  // Uninitialized memory: every kernel writes all of its output.
  return new ctor(Buffer.allocUnsafeSlow(bytes).buffer, 0, n);
}

export const allocF32 = (n: number): Float32Array => alloc(Float32Array, n);
export const allocI32 = (n: number): Int32Array => alloc(Int32Array, n);
export const allocU8 = (n: number): Uint8Array => alloc(Uint8Array, n);

function isTyped(v: unknown): v is Typed {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function wholeBuffer(v: Typed): boolean {
  return v.byteOffset === 0 && v.byteLength === v.buffer.byteLength;
}

function pin(buffer: ArrayBufferLike, s: BufferState): void {
  if (s.pinned) return;
  s.pinned = true;
  // From now on the garbage collector frees it: let V8 count its bytes.
  addon?.accountBuffer({ buffer: buffer as ArrayBuffer });
}

/** `values` became a tensor's data. */
export function onRegister(values: unknown): void {
  if (!isTyped(values)) return;
  const s = managed.get(values.buffer);
  if (!s) return;
  if (s.registered || !wholeBuffer(values)) pin(values.buffer, s);
  else s.registered = true;
}

/** `values` was handed to code outside the backend. */
export function onEscape(values: unknown): void {
  if (!isTyped(values)) return;
  const s = managed.get(values.buffer);
  if (s) pin(values.buffer, s);
}

/** The tensor holding `values` is gone: free its buffer if nothing else can see it. */
export function onDispose(values: unknown): void {
  if (!isTyped(values) || !addon) return;
  const s = managed.get(values.buffer);
  if (!s || s.pinned || !wholeBuffer(values)) return;
  managed.delete(values.buffer);
  addon.releaseBuffer({ buffer: values.buffer as ArrayBuffer });
}

/** Free a kernel's scratch array (never registered as a tensor) now. */
export function releaseScratch(values: Typed): void {
  const s = managed.get(values.buffer);
  if (!s || s.registered || s.pinned || !addon) return;
  managed.delete(values.buffer);
  addon.releaseBuffer({ buffer: values.buffer as ArrayBuffer });
}
