/**
 * Picture decoding throughput: MNIST test digits, tinted RGB, written as PNG
 * and JPEG at 28x28 and 64x64, decoded and resized to 32x32 RGB one after
 * another by the decoder --data uses (src/data/imageDecode.ts, sharp), and by
 * @napi-rs/image and jpeg-js/pngjs when they are installed beside it
 * (`npm install --no-save @napi-rs/image jpeg-js`), for comparison; jpeg-js and
 * pngjs only decode (no resize).
 *
 *   node dist/bench/decodeBench.js [--count 1000]
 *
 * Other work on the machine skews every figure, so the load average is printed too.
 */
import os from 'node:os';
import { take } from '../src/data/dataset.js';
import { imagePreparation, prepareImage } from '../src/data/imageDecode.js';
import { loadMnist } from '../src/data/mnist.js';
import { encodePicture } from '../test/userDataFiles.js';

const i = process.argv.indexOf('--count');
const count = i >= 0 ? Number(process.argv[i + 1]) : 1000;
const ds = take(loadMnist('test'), count);
type Decoder = (bytes: Uint8Array) => Promise<unknown>;
const prep = imagePreparation(32, 32, 3);
const decoders: Record<string, Decoder> = { 'sharp (capsnet)': (b) => prepareImage(b, 'bench', prep) };
const optional = async (name: string) => import(name).catch(() => null);
const napi = await optional('@napi-rs/image');
if (napi) decoders['@napi-rs/image'] = async (b) => new napi.Transformer(Buffer.from(b)).resize(32, 32).rawPixelsSync();
const jpeg = await optional('jpeg-js');
const { PNG } = await import('pngjs');
if (jpeg) decoders['jpeg-js/pngjs (decode only)'] = async (b) => (b[0] === 0x89 ? PNG.sync.read(Buffer.from(b)).data : (jpeg.default ?? jpeg).decode(b, { useTArray: true }).data);

console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, ${os.cpus().length} cores`);
for (const size of [28, 64]) {
  for (const format of ['png', 'jpeg'] as const) {
    const files: Uint8Array[] = [];
    for (let k = 0; k < count; k++) files.push(await encodePicture(ds, k, ds.labels[k], { format, colour: true, size }));
    for (const [name, decode] of Object.entries(decoders)) {
      for (let k = 0; k < Math.min(50, count); k++) await decode(files[k]);
      const t = performance.now();
      for (const f of files) await decode(f);
      console.log(`${format} ${size}x${size}  ${name.padEnd(28)} ${Math.round(count / ((performance.now() - t) / 1000))} images/s`);
    }
  }
}
