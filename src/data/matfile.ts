/**
 * A reader for MATLAB level-5 MAT-files (the format affNIST ships in):
 * numeric arrays, character arrays, structs and cells, compressed
 * (miCOMPRESSED, zlib) or not, little- or big-endian. Node only (zlib).
 *
 * Layout: a 128-byte header (text, subsystem offset, version, endian mark
 * "IM"), then data elements, each a tag (type, byte count; or the 4-byte
 * "small element" form) and data padded to 8 bytes. Arrays are miMATRIX
 * elements: flags (class), dimensions, name, then the class's contents.
 */
import { inflateSync } from 'node:zlib';

export interface MatNumeric {
  kind: 'numeric';
  class: string;
  dims: number[];
  /** Column-major, as MATLAB stores it. */
  data: Float64Array | Float32Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;
}

export interface MatStruct {
  kind: 'struct';
  dims: number[];
  /** One record per struct element (MATLAB's column-major order). */
  elements: Record<string, MatValue>[];
}

export interface MatCell {
  kind: 'cell';
  dims: number[];
  cells: MatValue[];
}

export interface MatChar {
  kind: 'char';
  dims: number[];
  text: string;
}

export type MatValue = MatNumeric | MatStruct | MatCell | MatChar;

const MI = { INT8: 1, UINT8: 2, INT16: 3, UINT16: 4, INT32: 5, UINT32: 6, SINGLE: 7, DOUBLE: 9, INT64: 12, UINT64: 13, MATRIX: 14, COMPRESSED: 15, UTF8: 16, UTF16: 17, UTF32: 18 };
const CLASS_NAMES: Record<number, string> = { 1: 'cell', 2: 'struct', 3: 'object', 4: 'char', 5: 'sparse', 6: 'double', 7: 'single', 8: 'int8', 9: 'uint8', 10: 'int16', 11: 'uint16', 12: 'int32', 13: 'uint32', 14: 'int64', 15: 'uint64' };

class Reader {
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    readonly little: boolean,
    readonly source: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u32(off: number): number {
    this.need(off, 4);
    return this.view.getUint32(off, this.little);
  }

  need(off: number, n: number): void {
    if (off < 0 || off + n > this.bytes.byteLength) throw new Error(`${this.source}: truncated MAT-file (needs byte ${off + n}, has ${this.bytes.byteLength})`);
  }

  /** A data element at `off`: its type, data range and the offset after it. */
  element(off: number): { type: number; start: number; size: number; next: number } {
    const first = this.u32(off);
    if (first >>> 16 !== 0) {
      // Small data element: size in the upper 16 bits, data in the next 4 bytes.
      const size = first >>> 16;
      if (size > 4) throw new Error(`${this.source}: corrupt small data element at byte ${off}`);
      return { type: first & 0xffff, start: off + 4, size, next: off + 8 };
    }
    const size = this.u32(off + 4);
    this.need(off + 8, size);
    return { type: first, start: off + 8, size, next: off + 8 + Math.ceil(size / 8) * 8 };
  }

  typed(type: number, start: number, size: number): MatNumeric['data'] {
    const map: Record<number, [number, (v: DataView, o: number, le: boolean) => number, new (n: number) => MatNumeric['data']]> = {
      [MI.INT8]: [1, (v, o) => v.getInt8(o), Int8Array],
      [MI.UINT8]: [1, (v, o) => v.getUint8(o), Uint8Array],
      [MI.INT16]: [2, (v, o, le) => v.getInt16(o, le), Int16Array],
      [MI.UINT16]: [2, (v, o, le) => v.getUint16(o, le), Uint16Array],
      [MI.INT32]: [4, (v, o, le) => v.getInt32(o, le), Int32Array],
      [MI.UINT32]: [4, (v, o, le) => v.getUint32(o, le), Uint32Array],
      [MI.SINGLE]: [4, (v, o, le) => v.getFloat32(o, le), Float32Array],
      [MI.DOUBLE]: [8, (v, o, le) => v.getFloat64(o, le), Float64Array],
      [MI.INT64]: [8, (v, o, le) => Number(v.getBigInt64(o, le)), Float64Array],
      [MI.UINT64]: [8, (v, o, le) => Number(v.getBigUint64(o, le)), Float64Array],
    };
    const m = map[type];
    if (!m) throw new Error(`${this.source}: unsupported MAT data type ${type}`);
    const [bytes, get, Ctor] = m;
    if (size % bytes !== 0) throw new Error(`${this.source}: data element of ${size} bytes is not a whole number of type-${type} values`);
    const n = size / bytes;
    const out = new Ctor(n);
    for (let i = 0; i < n; i++) out[i] = get(this.view, start + i * bytes, this.little);
    return out;
  }

  /** Parse a miMATRIX element's contents (start..start+size). */
  matrix(start: number, size: number): { name: string; value: MatValue } {
    const end = start + size;
    if (size === 0) return { name: '', value: { kind: 'numeric', class: 'double', dims: [0, 0], data: new Float64Array(0) } };
    const flags = this.element(start);
    const cls = this.u32(flags.start) & 0xff;
    const dimsEl = this.element(flags.next);
    const dims = Array.from(this.typed(dimsEl.type, dimsEl.start, dimsEl.size));
    const nameEl = this.element(dimsEl.next);
    const name = Buffer.from(this.bytes.subarray(nameEl.start, nameEl.start + nameEl.size)).toString('latin1');
    let off = nameEl.next;
    const count = dims.reduce((a, b) => a * b, 1);
    const className = CLASS_NAMES[cls];
    if (!className) throw new Error(`${this.source}: unknown MAT array class ${cls} for '${name}'`);
    if (className === 'struct') {
      const lenEl = this.element(off);
      const fieldLen = this.typed(lenEl.type, lenEl.start, lenEl.size)[0] as number;
      const namesEl = this.element(lenEl.next);
      const fields: string[] = [];
      for (let p = 0; p + fieldLen <= namesEl.size; p += fieldLen) {
        const raw = this.bytes.subarray(namesEl.start + p, namesEl.start + p + fieldLen);
        fields.push(Buffer.from(raw.subarray(0, raw.indexOf(0) >= 0 ? raw.indexOf(0) : raw.length)).toString('latin1'));
      }
      off = namesEl.next;
      const elements: Record<string, MatValue>[] = [];
      for (let e = 0; e < count; e++) {
        const rec: Record<string, MatValue> = {};
        for (const f of fields) {
          const el = this.element(off);
          if (el.type !== MI.MATRIX) throw new Error(`${this.source}: struct field '${f}' is not an array`);
          rec[f] = this.matrix(el.start, el.size).value;
          off = el.next;
        }
        elements.push(rec);
      }
      return { name, value: { kind: 'struct', dims, elements } };
    }
    if (className === 'cell') {
      const cells: MatValue[] = [];
      for (let e = 0; e < count; e++) {
        const el = this.element(off);
        cells.push(this.matrix(el.start, el.size).value);
        off = el.next;
      }
      return { name, value: { kind: 'cell', dims, cells } };
    }
    if (className === 'object' || className === 'sparse') throw new Error(`${this.source}: MAT ${className} arrays are not supported ('${name}')`);
    const re = this.element(off);
    if (re.next > end + 8) throw new Error(`${this.source}: array '${name}' overruns its element`);
    const data = this.typed(re.type, re.start, re.size);
    if (data.length !== count) throw new Error(`${this.source}: array '${name}' has ${data.length} values for dimensions [${dims}]`);
    if (className === 'char') return { name, value: { kind: 'char', dims, text: String.fromCharCode(...Array.from(data as ArrayLike<number>)) } };
    return { name, value: { kind: 'numeric', class: className, dims, data } };
  }
}

/** Parse a level-5 MAT-file into its top-level variables. */
export function parseMat(bytes: Uint8Array, source = 'MAT-file'): Record<string, MatValue> {
  if (bytes.byteLength < 128) throw new Error(`${source}: too short for a MAT-file header (${bytes.byteLength} bytes)`);
  const mark = String.fromCharCode(bytes[126], bytes[127]);
  if (mark !== 'IM' && mark !== 'MI') {
    const head = Buffer.from(bytes.subarray(0, 10)).toString('latin1');
    throw new Error(head.startsWith('\x89HDF') ? `${source}: MAT-file v7.3 (HDF5) is not supported; save with -v7` : `${source}: not a level-5 MAT-file (no endian mark)`);
  }
  const little = mark === 'IM';
  const top = new Reader(bytes, little, source);
  const out: Record<string, MatValue> = {};
  let off = 128;
  while (off < bytes.byteLength) {
    if (bytes.byteLength - off < 8) break;
    const el = top.element(off);
    if (el.type === MI.COMPRESSED) {
      let inner: Uint8Array;
      try {
        inner = inflateSync(bytes.subarray(el.start, el.start + el.size));
      } catch (e) {
        throw new Error(`${source}: corrupt compressed data at byte ${off} (${(e as Error).message})`);
      }
      const r = new Reader(inner, little, source);
      const m = r.element(0);
      if (m.type !== MI.MATRIX) throw new Error(`${source}: compressed element holds type ${m.type}, not an array`);
      const { name, value } = r.matrix(m.start, m.size);
      out[name] = value;
    } else if (el.type === MI.MATRIX) {
      const { name, value } = top.matrix(el.start, el.size);
      out[name] = value;
    } else {
      throw new Error(`${source}: unexpected top-level data type ${el.type} at byte ${off}`);
    }
    off = el.next;
  }
  return out;
}
