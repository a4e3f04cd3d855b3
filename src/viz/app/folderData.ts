/**
 * A folder of pictures picked or dropped in the page, as the Train panel's
 * data, read the way `capsnet train --data DIR` reads one: the same layout
 * rules, class names, input size and channels (data/pictureFolder.ts), the
 * same preparation (composited on black, stretched, colour or the training
 * decoder's gray: pictures.ts) and the same seeded held-out split for a
 * folder without train/ and test/ (data/split.ts). The browser decodes the
 * pictures; this runs in the worker, which keeps the files so that a new
 * image size or split needs no new pick.
 */
import { validateDataset, type ImageDataset } from '../../data/dataset.js';
import { checkDecodedClasses, folderInputShape, folderLayout, folderTree, hasColour, type FolderLayout, type ImageProbe } from '../../data/pictureFolder.js';
import { imagePreparation, type ImagePreparation } from '../../data/preparation.js';
import { stratifiedSplit } from '../../data/split.js';
import { drawBitmap, preparedBytes } from './pictures.js';
import type { FolderFile, FolderOptions, FolderSummary } from './protocol.js';

/** Progress of a long read: pictures done of all. */
export type FolderProgress = (stage: 'reading' | 'preparing', done: number, total: number) => void;

/** Why the browser cannot decode a file, in its own words. */
function decodeError(e: unknown): string {
  const m = ((e as Error)?.message ?? String(e)).split('\n')[0];
  return m || 'not a picture this browser can decode';
}

/**
 * The pictures of one folder: its layout, and what decoding each told (its
 * size and colour, or why it failed). Prepared pixels are kept per input
 * shape, so that switching back and forth decodes nothing again.
 */
export class PictureFolder {
  private readonly prepared = new Map<string, Uint8Array>();

  private constructor(
    readonly name: string,
    readonly layout: FolderLayout,
    private readonly files: Map<string, File>,
    /** Per picture of the layout: its probe, or why it cannot be decoded. */
    private readonly probes: (ImageProbe | { error: string })[],
  ) {}

  /**
   * Read a folder: its layout from the files' paths (relative to the folder,
   * '/' between names) and the folders seen (a drop lists empty ones too),
   * then every picture decoded once to find its size and colour, and those
   * the browser cannot decode (left out, as --skip-invalid does, and named).
   */
  static async read(name: string, entries: FolderFile[], folders: string[], progress: FolderProgress): Promise<PictureFolder> {
    if (!entries.length) throw new Error(`the folder '${name}' holds no files`);
    const files = new Map(entries.map((e) => [e.path, e.file]));
    const layout = folderLayout(folderTree([...files.keys()], folders), (rel) => (rel ? `${name}/${rel}` : name));
    const probes: (ImageProbe | { error: string })[] = [];
    for (const [i, f] of layout.files.entries()) {
      try {
        const bitmap = await createImageBitmap(files.get(f.rel)!);
        const { width, height } = bitmap;
        // Composited on black, as the training decoder flattens transparency, before looking for colour.
        const rgba = drawBitmap(bitmap, width, height, '#000', false);
        probes.push({ width, height, colour: hasColour(rgba, 4) });
      } catch (e) {
        probes.push({ error: decodeError(e) });
      }
      if (i % 16 === 15 || i === layout.files.length - 1) progress('reading', i + 1, layout.files.length);
    }
    checkDecodedClasses(layout, probes.map((p) => !('error' in p)));
    return new PictureFolder(name, layout, files, probes);
  }

  /** The pictures that decoded, by their index in the layout. */
  private kept(): number[] {
    return this.probes.flatMap((p, i) => ('error' in p ? [] : [i]));
  }

  /** The model input these pictures make with the panel's image size (null: the rule's choice). */
  preparation(imageSize: number | null): ImagePreparation {
    const { height, width, channels } = folderInputShape(this.kept().map((i) => this.probes[i] as ImageProbe), imageSize === null ? {} : { imageSize });
    return imagePreparation(height, width, channels);
  }

  /** Every kept picture prepared for `prep`, in layout order (decoded again at that size, once per shape). */
  private async pixels(prep: ImagePreparation, progress: FolderProgress): Promise<Uint8Array> {
    const key = `${prep.height}x${prep.width}x${prep.channels}`;
    const have = this.prepared.get(key);
    if (have) return have;
    const kept = this.kept();
    const per = prep.height * prep.width * prep.channels;
    const out = new Uint8Array(kept.length * per);
    for (const [k, i] of kept.entries()) {
      const rel = this.layout.files[i].rel;
      let bitmap: ImageBitmap;
      try {
        bitmap = await createImageBitmap(this.files.get(rel)!);
      } catch (e) {
        throw new Error(`${this.name}/${rel} cannot be decoded any more (${decodeError(e)}): was the file changed?`);
      }
      out.set(preparedBytes(drawBitmap(bitmap, prep.width, prep.height, '#000', true), prep), k * per);
      if (k % 16 === 15 || k === kept.length - 1) progress('preparing', k + 1, kept.length);
    }
    this.prepared.set(key, out);
    return out;
  }

  /**
   * The training and test sets for the panel's options: the folder's own
   * train/ and test/, or a seeded split holding out `valSplit` of each class.
   */
  async datasets(o: FolderOptions, progress: FolderProgress): Promise<{ train: ImageDataset; test: ImageDataset; summary: FolderSummary }> {
    const prep = this.preparation(o.imageSize);
    const pixels = await this.pixels(prep, progress);
    const kept = this.kept();
    const labels = Int32Array.from(kept, (i) => this.layout.files[i].label);
    const { classNames, groupNames } = this.layout;
    let parts: { train: Int32Array; test: Int32Array };
    if (groupNames.length > 1) {
      const of = (g: number) => Int32Array.from(kept.flatMap((i, k) => (this.layout.files[i].group === g ? [k] : [])));
      parts = { train: of(groupNames.indexOf('train')), test: of(groupNames.indexOf('test')) };
    } else {
      parts = stratifiedSplit(labels, o.valSplit, o.seed);
    }
    const per = prep.height * prep.width * prep.channels;
    const dataset = (idx: Int32Array, split: string): ImageDataset => {
      const images = new Uint8Array(idx.length * per);
      idx.forEach((k, j) => images.set(pixels.subarray(k * per, (k + 1) * per), j * per));
      return validateDataset({
        name: `${this.name}-${split}`,
        images,
        labels: Int32Array.from(idx, (k) => labels[k]),
        count: idx.length,
        height: prep.height,
        width: prep.width,
        channels: prep.channels,
        numClasses: classNames.length,
        classNames,
        preparation: prep,
      });
    };
    const train = dataset(parts.train, 'train');
    const test = dataset(parts.test, 'test');
    const skipped = this.probes.flatMap((p, i) => ('error' in p ? [{ path: this.layout.files[i].rel, reason: p.error }] : []));
    const summary: FolderSummary = {
      name: this.name,
      layout: this.layout.layout,
      classNames,
      pictures: this.layout.files.length,
      skipped,
      preparation: prep,
      sizes: folderInputShape(kept.map((i) => this.probes[i] as ImageProbe)).sizes,
      trainCount: train.count,
      testCount: test.count,
      heldOut: groupNames.length > 1 ? null : { fraction: o.valSplit, seed: o.seed },
      imageSize: o.imageSize,
    };
    return { train, test, summary };
  }
}
