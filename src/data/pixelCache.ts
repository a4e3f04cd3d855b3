/**
 * The decoded-image cache (Node only): one file holding a dataset's images as
 * uint8 bytes (height x width x channels each, channels last), its labels and
 * which split each image came from. Decoding pictures is slow; reading bytes
 * is not, so a folder is decoded once and later runs (and --resume) read the
 * cache. The file is read image by image on demand, never whole, so training
 * on a dataset larger than memory needs only the batch it is assembling.
 *
 *   "CAPSNET-PIXELS\n\0"  16 bytes
 *   uint32 LE             header length in bytes
 *   header                JSON (PixelCacheHeader), padded with spaces to a multiple of 8
 *   labels                int32 LE [count]
 *   groups                uint8 [count], padded with zeros to a multiple of 8
 *   pixels                uint8 [count, height, width, channels]
 *
 * The file is written under a temporary name and renamed into place when
 * complete, so an interrupted decode leaves no half cache behind.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PixelSource } from './dataset.js';

const MAGIC = Buffer.from('CAPSNET-PIXELS\n\0', 'latin1');

export interface PixelCacheHeader {
  format: 'capsnet-pixels';
  version: 1;
  /** What the cache was made from (source files with their sizes and times, preparation); a different key means a stale cache. */
  key: string;
  count: number;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  /** Names of the values of `groups` (e.g. ['train', 'test'], or ['all']). */
  groupNames: string[];
  /** Anything else worth keeping with the images (preparation, skipped files, source). */
  info?: Record<string, unknown>;
}

export interface PixelCache {
  path: string;
  header: PixelCacheHeader;
  labels: Int32Array;
  groups: Uint8Array;
  /** Byte offset of image 0. */
  pixelOffset: number;
}

const pad8 = (n: number) => (n + 7) & ~7;

function layout(header: PixelCacheHeader): { headerBytes: Buffer; labelsAt: number; groupsAt: number; pixelsAt: number } {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerBytes = Buffer.alloc(pad8(json.length), 0x20);
  json.copy(headerBytes);
  const labelsAt = MAGIC.length + 4 + headerBytes.length;
  const groupsAt = labelsAt + 4 * header.count;
  const pixelsAt = pad8(groupsAt + header.count);
  return { headerBytes, labelsAt, groupsAt, pixelsAt };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
}

/**
 * Write a cache at `path`: the header, labels and groups, then each image as
 * `images` yields it (in order), so the pixels never need to be in memory at
 * once. Returns the path.
 */
export async function writePixelCache(path: string, header: PixelCacheHeader, labels: Int32Array, groups: Uint8Array, images: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<string> {
  if (labels.length !== header.count || groups.length !== header.count) throw new Error(`pixel cache: ${header.count} images but ${labels.length} labels and ${groups.length} groups`);
  const per = header.height * header.width * header.channels;
  const { headerBytes, groupsAt, pixelsAt } = layout(header);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.cache.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(headerBytes.length);
    writeAll(fd, MAGIC);
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    writeAll(fd, new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength));
    writeAll(fd, groups);
    writeAll(fd, new Uint8Array(pixelsAt - groupsAt - header.count));
    let n = 0;
    for await (const img of images) {
      if (img.length !== per) throw new Error(`pixel cache: image ${n} has ${img.length} bytes, expected ${per}`);
      writeAll(fd, img);
      n++;
    }
    if (n !== header.count) throw new Error(`pixel cache: ${n} images written, expected ${header.count}`);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  return path;
}

/** Read a cache's header, labels and groups (not its pixels); null when `path` does not exist. */
export function openPixelCache(path: string): PixelCache | null {
  if (!existsSync(path)) return null;
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(MAGIC.length + 4);
    if (readSync(fd, head, 0, head.length, 0) !== head.length || !head.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error(`${path}: not a capsnet pixel cache (delete it to rebuild)`);
    const headerLen = head.readUInt32LE(MAGIC.length);
    const hb = Buffer.alloc(headerLen);
    if (readSync(fd, hb, 0, headerLen, head.length) !== headerLen) throw new Error(`${path}: truncated pixel cache header (delete it to rebuild)`);
    let header: PixelCacheHeader;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch {
      throw new Error(`${path}: corrupt pixel cache header (delete it to rebuild)`);
    }
    if (header.format !== 'capsnet-pixels' || header.version !== 1) throw new Error(`${path}: unsupported pixel cache format (delete it to rebuild)`);
    const { labelsAt, groupsAt, pixelsAt } = layout(header);
    const expected = pixelsAt + header.count * header.height * header.width * header.channels;
    const size = fstatSync(fd).size;
    if (size !== expected) throw new Error(`${path}: pixel cache holds ${size} bytes, expected ${expected} (delete it to rebuild)`);
    const labels = new Int32Array(header.count);
    readSync(fd, new Uint8Array(labels.buffer), 0, labels.byteLength, labelsAt);
    const groups = new Uint8Array(header.count);
    readSync(fd, groups, 0, groups.length, groupsAt);
    return { path, header, labels, groups, pixelOffset: pixelsAt };
  } finally {
    closeSync(fd);
  }
}

/**
 * Images `indices[0]`, `indices[1]`, ... of a cache, read one at a time from
 * the file into one reused buffer: memory stays at one image whatever the
 * cache's size (the operating system's page cache keeps hot data fast).
 */
export class PixelFileReader implements PixelSource {
  private fd: number;
  private readonly buffer: Uint8Array;
  private readonly per: number;

  constructor(private readonly cache: PixelCache, private readonly indices?: Int32Array) {
    this.per = cache.header.height * cache.header.width * cache.header.channels;
    this.buffer = new Uint8Array(this.per);
    this.fd = openSync(cache.path, 'r');
  }

  read(i: number): Uint8Array {
    const g = this.indices ? this.indices[i] : i;
    if (!(g >= 0 && g < this.cache.header.count)) throw new Error(`${this.cache.path}: image ${g} is outside 0..${this.cache.header.count - 1}`);
    const pos = this.cache.pixelOffset + g * this.per;
    let got = 0;
    while (got < this.per) {
      const n = readSync(this.fd, this.buffer, got, this.per - got, pos + got);
      if (n <= 0) throw new Error(`${this.cache.path}: truncated at image ${g}`);
      got += n;
    }
    return this.buffer;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
