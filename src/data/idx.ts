/**
 * The IDX format of MNIST and Fashion-MNIST (one reader for every IDX file):
 *
 *   bytes 0-1  zero
 *   byte  2    element type: 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int,
 *              0x0D float, 0x0E double
 *   byte  3    number of dimensions n
 *   then n big-endian uint32 sizes, then the data, big-endian.
 */
export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export interface IdxArray {
  dtype: IdxDtype;
  dims: number[];
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const TYPES: Record<number, { dtype: IdxDtype; bytes: number }> = {
  0x08: { dtype: 'uint8', bytes: 1 },
  0x09: { dtype: 'int8', bytes: 1 },
  0x0b: { dtype: 'int16', bytes: 2 },
  0x0c: { dtype: 'int32', bytes: 4 },
  0x0d: { dtype: 'float32', bytes: 4 },
  0x0e: { dtype: 'float64', bytes: 8 },
};

/** Parse IDX bytes; `source` names the file in errors. */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  if (bytes.byteLength < 4) throw new Error(`${source}: too short for an IDX header (${bytes.byteLength} bytes)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(`${source}: bad IDX magic number 0x${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join('')} (first two bytes must be zero)`);
  }
  const type = TYPES[bytes[2]];
  if (!type) throw new Error(`${source}: unknown IDX element type 0x${bytes[2].toString(16)}`);
  const rank = bytes[3];
  if (rank < 1) throw new Error(`${source}: IDX rank must be at least 1, got ${rank}`);
  const headerBytes = 4 + 4 * rank;
  if (bytes.byteLength < headerBytes) throw new Error(`${source}: truncated IDX header (needs ${headerBytes} bytes for ${rank} dimensions, file has ${bytes.byteLength})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = headerBytes + count * type.bytes;
  if (bytes.byteLength < expected) {
    throw new Error(`${source}: truncated: dimensions [${dims.join(', ')}] need ${expected} bytes, file has ${bytes.byteLength}`);
  }
  if (bytes.byteLength > expected) {
    throw new Error(`${source}: ${bytes.byteLength - expected} unexpected bytes after the data for dimensions [${dims.join(', ')}]`);
  }
  let data: IdxArray['data'];
  switch (type.dtype) {
    case 'uint8':
      data = bytes.slice(headerBytes, expected);
      break;
    case 'int8':
      data = new Int8Array(bytes.slice(headerBytes, expected).buffer);
      break;
    default: {
      const Ctor = { int16: Int16Array, int32: Int32Array, float32: Float32Array, float64: Float64Array }[type.dtype];
      const arr = new Ctor(count);
      const get = {
        int16: (o: number) => view.getInt16(o, false),
        int32: (o: number) => view.getInt32(o, false),
        float32: (o: number) => view.getFloat32(o, false),
        float64: (o: number) => view.getFloat64(o, false),
      }[type.dtype];
      for (let i = 0; i < count; i++) arr[i] = get(headerBytes + i * type.bytes);
      data = arr;
    }
  }
  return { dtype: type.dtype, dims, data };
}

/** Write an IDX file's bytes (used to export generated datasets such as MultiMNIST). */
export function encodeIdx(dims: number[], data: Uint8Array): Uint8Array {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`encodeIdx: dimensions [${dims}] need ${count} values, got ${data.length}`);
  const out = new Uint8Array(4 + 4 * dims.length + count);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
