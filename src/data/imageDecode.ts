/**
 * Decoding pictures of any supported format into model inputs (Node only).
 * sharp (libvips, shipped prebuilt in its npm packages) decodes PNG, JPEG,
 * WebP and GIF (the first frame) and does the resizing; libvips has no BMP
 * reader, so BMP files are decoded by bmp-ts and handed to sharp as raw
 * pixels. Every picture goes through the same steps, recorded as an
 * ImagePreparation in a model's metadata, so `predict` prepares a picture
 * exactly as the model's training images were prepared.
 */
import { readFile } from 'node:fs/promises';
import { decode as decodeBmp } from 'bmp-ts';
import sharp, { type OutputInfo, type Sharp } from 'sharp';
import { hasColour, type ImageProbe } from './pictureFolder.js';
import type { ImagePreparation } from './preparation.js';

export { imagePreparation, parseImagePreparation, type ImagePreparation } from './preparation.js';

function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

/** A sharp pipeline reading `bytes`; truncated or corrupt data makes it fail instead of giving a partial picture. */
function open(bytes: Uint8Array, source: string): Sharp {
  if (bytes.length === 0) throw new Error(`${source}: empty file`);
  if (isBmp(bytes)) {
    let bmp: ReturnType<typeof decodeBmp>;
    try {
      bmp = decodeBmp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { toRGBA: true });
    } catch (e) {
      throw new Error(`${source}: not a readable BMP (${(e as Error).message})`);
    }
    const n = bmp.width * bmp.height;
    if (!(bmp.width > 0 && bmp.height > 0) || bmp.data.length < 4 * n) throw new Error(`${source}: truncated BMP data`);
    const rgba = Buffer.from(bmp.data.subarray(0, 4 * n));
    // BMPs of up to 24 bits per pixel have no alpha; the decoder leaves it 0.
    if (bmp.bitPP < 32) for (let i = 0; i < n; i++) rgba[4 * i + 3] = 255;
    return sharp(rgba, { raw: { width: bmp.width, height: bmp.height, channels: 4 } });
  }
  return sharp(bytes, { failOn: 'truncated', animated: false });
}

async function run(pipeline: () => Sharp, source: string): Promise<{ data: Buffer; info: OutputInfo }> {
  try {
    return await pipeline().toBuffer({ resolveWithObject: true });
  } catch (e) {
    // libvips reports some truncated JPEGs only as an unknown error.
    const msg = (e as Error).message.split('\n')[0].replace(/^Unknown error$/, 'corrupt or truncated data');
    throw new Error(msg.startsWith(source) ? msg : `${source}: cannot decode (${msg})`);
  }
}

/** Decode a whole picture (so that corrupt and truncated files fail here) and report its size and whether it has colour. */
export async function probeImage(bytes: Uint8Array, source: string): Promise<ImageProbe> {
  const { data, info } = await run(() => open(bytes, source).flatten({ background: '#000000' }).toColourspace('srgb').raw({ depth: 'uchar' }), source);
  return { width: info.width, height: info.height, colour: info.channels >= 3 && hasColour(data, info.channels) };
}

/** A picture as the model input `prep` describes: height * width * channels bytes, channels last. */
export async function prepareImage(bytes: Uint8Array, source: string, prep: ImagePreparation): Promise<Uint8Array> {
  const { data, info } = await run(
    () =>
      open(bytes, source)
        .flatten({ background: '#000000' })
        .resize(prep.width, prep.height, { fit: 'fill' })
        .toColourspace(prep.channels === 1 ? 'b-w' : 'srgb')
        .raw({ depth: 'uchar' }),
    source,
  );
  const expected = prep.height * prep.width * prep.channels;
  if (info.channels !== prep.channels || data.length !== expected) {
    throw new Error(`${source}: decoded to ${info.width}x${info.height}x${info.channels}, expected ${prep.width}x${prep.height}x${prep.channels}`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A picture of any supported format as floats in [0, 1]: one channel when it has no colour, else RGB. */
export async function decodeRaster(bytes: Uint8Array, source: string): Promise<{ width: number; height: number; channels: 1 | 3; data: Float32Array }> {
  const { data, info } = await run(() => open(bytes, source).flatten({ background: '#000000' }).toColourspace('srgb').raw({ depth: 'uchar' }), source);
  const c = info.channels;
  const n = info.width * info.height;
  const channels = hasColour(data, c) ? 3 : 1;
  const out = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) for (let k = 0; k < channels; k++) out[i * channels + k] = data[i * c + k] / 255;
  return { width: info.width, height: info.height, channels, data: out };
}

export async function readImageFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === 'ENOENT' ? `image not found: ${path}` : `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Map `fn` over `items` with at most `limit` calls in flight, keeping the order of results. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
